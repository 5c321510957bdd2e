// A relay link slower than the stream (docs/protocol.md, "Relays": nothing waits on the relay).
// rfbsink publishes a 4 Mbit/s stream to a real moq-relay while what it sends to the relay is
// held to 1.5 Mbit/s behind a 300 ms queue (a token bucket on the loopback of a private network
// namespace this file makes; netns.mjs). The element's own viewer, on its own link, must not
// notice: every frame, at the latency it had before the relay link slowed. A viewer through the
// relay still gets pictures (moq skips to the newest group), and the element does not keep what
// the relay could not take: the groups it holds (relay-cache-bytes) stay at a couple of seconds
// of the stream, and its memory stops growing, while it hands on more than twice what the link
// carries.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Viewer, assertPluginBuilt, launchBrowser, requireElements, withQuery } from './lib.mjs';
import { publishToNewRelay, relayBin } from './moq.mjs';
import { runInPrivateNetns, shapeLink, unshapeLink } from './netns.mjs';

runInPrivateNetns('relay-slow.test');

const LINK_KBIT = 1500;
const BROADCAST = 'snow';
const LINE = 'videotestsrc is-live=true pattern=snow ! video/x-raw,format=I420,width=640,height=360,framerate=30/1 '
  + '! x264enc tune=zerolatency speed-preset=ultrafast bitrate=4000 key-int-max=30 '
  + `! rfbsink name=sink port=0 stats-interval=500 rate-control=off relay-broadcast=${BROADCAST}`;
const MEASURE_MS = 6000;
const SLOW_MS = 25_000;

/** @type {Awaited<ReturnType<typeof launchBrowser>> | undefined} */
let browser;
before(async () => {
  assertPluginBuilt();
  relayBin();
  browser = await launchBrowser();
});
after(async () => {
  unshapeLink();
  await browser?.close();
});

/** The process's resident memory, MiB. @param {number} pid */
function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

test('a relay link slower than the stream: the direct viewer does not notice, relay viewers skip, the element keeps nothing back', { timeout: 180_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const { port: relayPort, pipeline, details, stop } = await publishToNewRelay(LINE, BROADCAST);
  /** @type {Viewer | undefined} */
  let direct;
  /** @type {Viewer | undefined} */
  let through;
  try {
    const b = /** @type {NonNullable<typeof browser>} */ (browser);
    direct = await Viewer.open(b.context, withQuery(pipeline.url, 'transport=ws'));
    through = await Viewer.open(b.context, withQuery(pipeline.url, 'relay=1'));
    await direct.waitForFrames(30, { extra: details });
    await through.waitForFrames(30, { extra: details });
    const before = await direct.measure(MEASURE_MS);

    shapeLink(relayPort, LINK_KBIT, { to: true });
    // Let what was in flight drain into the queue, then watch for SLOW_MS.
    await new Promise((r) => setTimeout(r, 3000));
    const rss0 = rssMiB(/** @type {number} */ (pipeline.proc.pid));
    const sent0 = pipeline.stats()['relay-bytes'];
    const relayed0 = (await through.stats()).framesDecoded;
    const during = await direct.measure(MEASURE_MS);
    const series = [rss0];
    let cacheMax = 0;
    for (let waited = MEASURE_MS; waited < SLOW_MS; waited += 2000) {
      await new Promise((r) => setTimeout(r, 2000));
      series.push(rssMiB(/** @type {number} */ (pipeline.proc.pid)));
      cacheMax = Math.max(cacheMax, pipeline.stats()['relay-cache-bytes']);
    }
    const rss1 = series[series.length - 1];
    const sent = pipeline.stats()['relay-bytes'] - sent0;
    const relayed = (await through.stats()).framesDecoded - relayed0;
    t.diagnostic(`direct before: ${before.fps.toFixed(1)} fps, p50 ${before.p50?.toFixed(1)} ms; `
      + `relay link at ${LINK_KBIT} kbit/s: ${during.fps.toFixed(1)} fps, p50 ${during.p50?.toFixed(1)} ms; `
      + `handed to the relay ${(sent / 1e6).toFixed(1)} MB in ${SLOW_MS / 1000} s, the link carries ${(LINK_KBIT * SLOW_MS / 8e6).toFixed(1)} MB; `
      + `element RSS ${series.map((x) => x.toFixed(0)).join(' ')} MiB, groups held at most ${(cacheMax / 1e6).toFixed(1)} MB; relay viewer decoded ${relayed} frames`);

    // The slow relay link is really slower than the stream.
    assert.ok(sent > 2 * (LINK_KBIT * SLOW_MS) / 8, `only ${sent} bytes handed to the relay\n${details()}`);
    // The direct viewer: every frame, no slower than before.
    assert.ok(during.fps >= Math.min(27, before.fps * 0.9), `direct viewer ${during.fps} fps (before ${before.fps})\n${details()}`);
    assert.ok(during.p50 !== null && before.p50 !== null && during.p50 <= Math.max(50, 3 * before.p50),
      `direct viewer p50 ${during.p50} ms (before ${before.p50})\n${details()}`);
    // What the relay could not take was not kept: the groups held stay at seconds of the stream
    // (those the relay is still being sent, the newest, and 2 s of idle ones; measured 6-8 s
    // here, where moq's default kept every group for 30 s), and the element grew by far less than
    // the backlog.
    const streamBytesPerS = sent / (SLOW_MS / 1000);
    assert.ok(cacheMax > 0 && cacheMax < 12 * streamBytesPerS, `groups held up to ${cacheMax} bytes (stream ${streamBytesPerS} B/s)\n${details()}`);
    const backlogMiB = (sent - (LINK_KBIT * SLOW_MS) / 8) / 1048576;
    assert.ok(rss1 - rss0 < backlogMiB / 2, `element RSS grew ${(rss1 - rss0).toFixed(1)} MiB with a backlog of ${backlogMiB.toFixed(1)} MiB\n${details()}`);
    // The relay viewer still gets pictures: some of the newest groups.
    assert.ok(relayed > 0, `the relay viewer decoded nothing in ${SLOW_MS} ms\n${details()}`);
  } finally {
    unshapeLink();
    await direct?.close();
    await through?.close();
    await stop();
  }
});
