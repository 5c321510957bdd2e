// WebRTC peers on links slower than the stream (docs/protocol.md, "Rate control" and
// "Renditions"): a peer sends no acks, so its RTCP receiver reports stand in (what it received
// and lost, the round trip). What the element's WebRTC ports send (`webrtc-ports`) is held to a
// slow rate behind a 300 ms queue (a token bucket on the loopback of a private network namespace
// this file makes; netns.mjs), and the real viewer plays with ?transport=webrtc in headless
// Chromium, which also sends transport-wide congestion control feedback (TWCC); GStreamer's own
// WHEP client (whepclientsrc, whep.mjs) sends receiver reports alone, every 5 s. Before these
// counted, such a peer showed 0-8 frames a second for good: the encoder kept its rate and the
// peer stayed on the large rendition.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Viewer, assertPluginBuilt, launchBrowser, requireElements, startPipeline, withQuery } from './lib.mjs';
import { ADDRESS_A, runInPrivateNetns, shapeAlso, shapeLink, unshapeLink } from './netns.mjs';
import { pull, whepPlugin } from './whep.mjs';

runInPrivateNetns('webrtc-links.test');

/** The element's WebRTC media ports: 16 from a multiple of 16, so that one filter holds them. */
const FIRST_PORT = 40000;
const PORTS = `webrtc-ports=${FIRST_PORT}-${FIRST_PORT + 15}`;
const X264 = 'x264enc tune=zerolatency speed-preset=ultrafast';
const SOURCE = 'videotestsrc is-live=true pattern=snow ! video/x-raw,format=I420,width=640,height=360,framerate=30/1';

/** @type {Awaited<ReturnType<typeof launchBrowser>> | undefined} */
let browser;
before(async () => {
  assertPluginBuilt();
  browser = await launchBrowser();
});
after(async () => {
  unshapeLink();
  await browser?.close();
});

/**
 * Plays `line` to a WebRTC viewer, slows what the element's WebRTC ports send to `kbit` once the
 * viewer shows frames, and then, each second for `seconds`, reads the viewer's frames decoded
 * and rendition and the encoder's target.
 */
async function watchOverWebRtc(line, kbit, seconds) {
  const pipeline = await startPipeline(line);
  /** @type {Viewer | null} */
  let viewer = null;
  try {
    viewer = await Viewer.open(/** @type {any} */ (browser).context, withQuery(pipeline.url, 'transport=webrtc'));
    const details = () => `${viewer?.logs()}\n${pipeline.logs()}`;
    await viewer.waitForStats((s) => s.transport === 'webrtc' && s.framesDecoded >= 30, 'frames over WebRTC', { extra: pipeline.logs, timeoutMs: 30_000 });
    // Three seconds on the free link first: what the peer gets there.
    await new Promise((r) => setTimeout(r, 3000));
    const free = { rendition: (await viewer.stats()).renditions?.current ?? 0, targetKbps: (pipeline.stats()?.['target-bitrate'] ?? 0) / 1000 };
    shapeLink(FIRST_PORT, kbit, { mask: 0xfff0 });
    const seen = [];
    let prev = await viewer.stats();
    for (let i = 0; i < seconds; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const s = await viewer.stats();
      const target = pipeline.stats()?.['target-bitrate'];
      seen.push({ frames: s.framesDecoded - prev.framesDecoded, n: s.renditions?.current ?? 0, width: s.width, targetKbps: target == null ? null : target / 1000 });
      prev = s;
    }
    const logs = details();
    return { free, seen, last: prev, details: () => logs };
  } finally {
    await viewer?.close();
    await pipeline.stop();
    unshapeLink();
  }
}

/** The median of `values` (0 for none). */
function median(values) {
  const v = [...values].sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : 0;
}

test('a WebRTC peer behind a 700 kbit/s link: x264enc follows it down (its feedback), and it shows the stream', { timeout: 120_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const kbit = 700;
  const line = `${SOURCE} ! ${X264} bitrate=2000 key-int-max=60 ! rfbsink name=sink port=0 stats-interval=500 ${PORTS}`;
  const { free, seen, last, details } = await watchOverWebRtc(line, kbit, 25);
  assert.equal(free.targetKbps, 2000, `x264enc's bitrate kept on the free link\n${details()}`);
  const trace = seen.map((x) => `${x.frames}@${x.targetKbps}`).join(' ');
  // The first 10 s: the link's queue fills, and the encoder comes down; then the measure.
  const measured = seen.slice(10);
  const fps = measured.reduce((a, x) => a + x.frames, 0) / measured.length;
  const lowest = Math.min(...seen.map((x) => x.targetKbps ?? Infinity));
  t.diagnostic(`each second, frames@target kbit/s: ${trace}; ${fps.toFixed(1)} fps over the last ${measured.length} s`);
  assert.ok(lowest < kbit, `x264enc's target (2000 kbit/s) went below the link's ${kbit}: ${trace}\n${details()}`);
  // A probe upward that passes the link costs a second of frames now and then.
  assert.ok(fps >= 20, `the stream shown: ${fps.toFixed(1)} fps (${trace})\n${details()}`);
  assert.equal(last.decodeErrors, 0, details());
});

test('a WebRTC peer behind a 1.2 Mbit/s link moves to the rendition its link carries, and shows it at its full rate', { timeout: 120_000 }, async (t) => {
  if (!requireElements(t, ['x264enc', 'videoscale'])) return;
  const line = `${SOURCE} ! tee name=t `
    + `t. ! queue ! ${X264} key-int-max=30 bitrate=3000 ! sink. `
    + `t. ! queue ! videoscale ! video/x-raw,width=320,height=180 ! ${X264} key-int-max=30 bitrate=300 ! sink.rendition_1 `
    + `rfbsink name=sink port=0 ${PORTS}`;
  const { free, seen, last, details } = await watchOverWebRtc(line, 1200, 30);
  assert.equal(free.rendition, 0, `the large rendition on the free link\n${details()}`);
  const trace = seen.map((x) => x.n).join('');
  const movedAfter = seen.findIndex((x) => x.n === 1 && x.width === 320);
  // Each second on the small one after the move, but for seconds at a move (the last one a
  // try up that fell back).
  const onSmall = seen.filter((x, i) => i > 0 && x.n === 1 && seen[i - 1].n === 1).map((x) => x.frames);
  const fps = median(onSmall);
  t.diagnostic(`each second, the rendition: ${trace} (frames ${seen.map((x) => x.frames).join(' ')}); on the small one after ${movedAfter + 1} s, median ${fps} fps`);
  assert.ok(movedAfter >= 0 && movedAfter < 8, `moved to the small rendition within 8 s: ${trace}\n${details()}`);
  assert.ok(seen.filter((x) => x.n === 1).length >= 20, `mostly on the small rendition: ${trace}\n${details()}`);
  const longestUp = Math.max(...trace.slice(movedAfter).split('1').map((run) => run.length));
  assert.ok(longestUp < 8, `a try of the large one lasted ${longestUp} s: ${trace}\n${details()}`);
  assert.ok(fps >= 25, `median ${fps} fps on the small rendition (${seen.map((x) => x.frames).join(' ')})\n${details()}`);
  assert.equal(last.decodeErrors, 0, details());
});

test('a WebRTC viewer joining late behind a 700 kbit/s link: its page\'s measure brings x264enc down as it connects, and it shows the stream from its first seconds', { timeout: 120_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const kbit = 700;
  const pipeline = await startPipeline(`${SOURCE} ! ${X264} bitrate=2000 key-int-max=60 ! rfbsink name=sink port=0 stats-interval=500 ${PORTS}`);
  /** @type {Viewer | null} */
  let viewer = null;
  try {
    // The whole link: the page's files (which the page measures) and the media ports.
    shapeLink(pipeline.port, kbit);
    shapeAlso(FIRST_PORT, { mask: 0xfff0 });
    await new Promise((r) => setTimeout(r, 1500));
    const opened = Date.now();
    viewer = await Viewer.open(/** @type {any} */ (browser).context, withQuery(pipeline.url, 'transport=webrtc'));
    await viewer.waitForStats((s) => s.transport === 'webrtc' && s.framesDecoded >= 1, 'a frame over WebRTC', { extra: pipeline.logs, timeoutMs: 30_000 });
    const firstFrameMs = Date.now() - opened;
    const seen = [];
    let prev = await viewer.stats();
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const s = await viewer.stats();
      seen.push({ frames: s.framesDecoded - prev.framesDecoded, targetKbps: (pipeline.stats()?.['target-bitrate'] ?? 0) / 1000 });
      prev = s;
    }
    const details = `${viewer.logs()}\n${pipeline.logs()}`;
    const trace = seen.map((x) => `${x.frames}@${x.targetKbps}`).join(' ');
    t.diagnostic(`first frame ${firstFrameMs} ms after the page was opened; each second after, frames@target kbit/s: ${trace}`);
    // Its page measured the link (resource timing): the target came down as it connected,
    // before any receiver report or TWCC feedback counted (2 s after the first). Before, the
    // target stayed at 2000 for its first 2 s, and it showed 8, 0, 0, 14 frames.
    assert.ok(seen[0].targetKbps > 0 && seen[0].targetKbps < 1.5 * kbit, `the target in its first second: ${trace}\n${details}`);
    const early = seen.slice(0, 3).reduce((a, x) => a + x.frames, 0);
    assert.ok(early >= 60, `its first 3 s: ${early} frames (${trace})\n${details}`);
    assert.equal(prev.decodeErrors, 0, details);
  } finally {
    await viewer?.close();
    await pipeline.stop();
    unshapeLink();
  }
});

test('GStreamer\'s whepclientsrc behind a 700 kbit/s link (receiver reports alone, no TWCC): x264enc follows it down, and it decodes the stream', { timeout: 3_700_000 }, async (t) => {
  if (!requireElements(t, ['x264enc', 'webrtcbin', 'nicesrc'])) return;
  whepPlugin();
  const kbit = 700;
  // On the veth address: libnice pairs no loopback candidates (what goes to it still leaves
  // through this namespace's loopback, where the link is shaped).
  const pipeline = await startPipeline(`${SOURCE} ! ${X264} bitrate=2000 key-int-max=60 ! rfbsink name=sink port=0 address=${ADDRESS_A} stats-interval=500 ${PORTS}`);
  t.after(async () => {
    unshapeLink();
    await pipeline.stop();
  });
  const url = new URL(pipeline.url);
  const target = () => (pipeline.stats()?.['target-bitrate'] ?? 0) / 1000;
  /** @type {number | null} */
  let freeTarget = null;
  /** @type {number[]} */
  const targets = [];
  const FREE_S = 3;
  const got = await pull(`${url.origin}/whep`, url.searchParams.get('rfb_token') ?? '', {
    seconds: FREE_S + 30,
    timeoutS: 90,
    onEvent: (e) => {
      if (e.event !== 'second') return;
      targets.push(target());
      // Three seconds on the free link first, then the slow one.
      if (targets.length === FREE_S) {
        freeTarget = target();
        shapeLink(FIRST_PORT, kbit, { mask: 0xfff0 });
      }
    },
  }).catch((e) => { throw new Error(`${e.message}\n${pipeline.logs()}`); });
  const shaped = got.seconds.slice(FREE_S);
  const trace = shaped.map((f, i) => `${f}@${targets[FREE_S + i]}`).join(' ');
  // The first 12 s: its reports (every 5 s) show the queue, and the encoder comes down.
  const measured = shaped.slice(12);
  const fps = median(measured);
  t.diagnostic(`each second on the slow link, frames@target kbit/s: ${trace}; median ${fps} fps over the last ${measured.length} s`);
  assert.equal(freeTarget, 2000, `x264enc's bitrate kept on the free link (${got.seconds.slice(0, FREE_S)})\n${pipeline.logs()}`);
  assert.ok(Math.min(...targets) < kbit, `x264enc's target went below the link's ${kbit}: ${trace}\n${pipeline.logs()}`);
  assert.ok(fps >= 25, `the stream decoded: median ${fps} fps (${trace})\n${pipeline.logs()}`);
});
