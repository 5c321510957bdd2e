// Renditions through a relay (docs/protocol.md, "Relays"): rfbsink publishes two renditions of
// one source (video0 640x360 at 3 Mbit/s, video1 320x180 at 300 kbit/s) to a real moq-relay, and
// the element's viewer page watches through it. A viewer that chooses one gets it, and moves to
// the other when asked, without a decoder error. A viewer that does not choose watches the large
// one while its link carries it, and moves down on its own when what the relay sends it is held
// to 1.2 Mbit/s behind a 300 ms queue (a token bucket on the loopback of a private network
// namespace this file makes; netns.mjs), then shows the small one at its full rate; a later try
// of the large one falls back. A viewer that joins behind a slow link (its page's files and the
// relay's frames through one 700 kbit/s bucket) starts on the small one: its page measured the
// link, and the catalog says each rendition's rate.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Viewer, assertPluginBuilt, launchBrowser, pollUntil, requireElements, withQuery } from './lib.mjs';
import { publishToNewRelay, relayBin } from './moq.mjs';
import { runInPrivateNetns, shapeAlso, shapeLink, unshapeLink } from './netns.mjs';

runInPrivateNetns('relay-renditions.test');

const LINK_KBIT = 1200;
const BROADCAST = 'ladder';
const X264 = 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';
const LINE = 'videotestsrc is-live=true pattern=snow ! video/x-raw,format=I420,width=640,height=360,framerate=30/1 ! tee name=t '
  + `t. ! queue ! ${X264} bitrate=3000 ! sink. `
  + `t. ! queue ! videoscale ! video/x-raw,width=320,height=180 ! ${X264} bitrate=300 ! sink.rendition_1 `
  + `rfbsink name=sink port=0 rate-control=off relay-broadcast=${BROADCAST}`;

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

test('relay viewers: a chosen rendition, and the one the link carries when none is chosen', { timeout: 240_000 }, async (t) => {
  if (!requireElements(t, ['x264enc', 'videoscale'])) return;
  const { port: relayPort, pipeline, details, stop } = await publishToNewRelay(LINE, BROADCAST);
  /** @type {Viewer | undefined} */
  let chooser;
  /** @type {Viewer | undefined} */
  let auto;
  try {
    const b = /** @type {NonNullable<typeof browser>} */ (browser);

    // Chosen: the small one at once, then the large one on request.
    chooser = await Viewer.open(b.context, withQuery(pipeline.url, 'relay=1&rendition=1'));
    const small = await chooser.waitForStats((s) => s.transport === 'relay' && s.renditions?.current === 1 && s.width === 320 && s.framesDecoded >= 10,
      'the chosen small rendition through the relay', { extra: details });
    assert.deepEqual(small.renditions.renditions.map((r) => [r.id, r.width, r.height]), [[0, 640, 360], [1, 320, 180]]);
    assert.equal(small.renditions.chosen, 1);
    await chooser.page.evaluate(() => window.rfbViewer.setRendition(0));
    const large = await chooser.waitForStats((s) => s.renditions?.current === 0 && s.width === 640,
      'the large rendition after setRendition(0)', { extra: details });
    await pollUntil(() => chooser.stats(), (s) => s.framesDecoded >= large.framesDecoded + 30,
      { what: '30 more frames after the move', details });
    assert.equal((await chooser.stats()).decodeErrors, 0, `no decoder error at the move\n${details()}`);
    await chooser.close();
    chooser = undefined;

    // Not chosen, a free link: the large one, and it stays there.
    auto = await Viewer.open(b.context, withQuery(pipeline.url, 'relay=1'));
    await auto.waitForStats((s) => s.transport === 'relay' && s.renditions?.current === 0 && s.framesDecoded >= 30,
      'the large rendition on a free link', { extra: details });
    await new Promise((r) => setTimeout(r, 6000));
    const free = await auto.stats();
    assert.equal(free.renditions.current, 0, `moved off the large rendition on a free link\n${details()}`);

    // The relay's link to the viewer slows: down to the small one, shown at its full rate.
    shapeLink(relayPort, LINK_KBIT);
    const moved = Date.now();
    await auto.waitForStats((s) => s.renditions?.current === 1 && s.width === 320, 'the small rendition behind the slow link',
      { extra: details, timeoutMs: 30_000 });
    const movedMs = Date.now() - moved;
    // Then, each second for 30 s: the rendition shown and the frames decoded. The viewer tries
    // the large one again after 10 s (it cannot know the link got no faster), falls back, and
    // waits twice as long before the next try.
    const seen = [];
    let prev = await auto.stats();
    for (let i = 0; i < 30; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const s = await auto.stats();
      seen.push({ n: s.renditions.current, frames: s.framesDecoded - prev.framesDecoded, steady: s.renditions.current === prev.renditions.current });
      prev = s;
    }
    // The rate on the small one is the median second on it: a second that holds a move back
    // down (waiting for the small one's next keyframe) is the move's cost, counted by the
    // try-up bound below, not the rate the small one is shown at.
    const onSmall = seen.filter((x) => x.n === 1 && x.steady).map((x) => x.frames).sort((a, b) => a - b);
    const fps = onSmall.length ? onSmall[Math.floor(onSmall.length / 2)] : 0;
    const trace = seen.map((x) => x.n).join('');
    const perSecond = seen.map((x) => x.frames).join(' ');
    t.diagnostic(`moved down ${movedMs} ms after the link slowed to ${LINK_KBIT} kbit/s; then each second ${trace} (frames ${perSecond}); median ${fps} fps on the small one`);
    assert.ok(seen.filter((x) => x.n === 1).length >= 20, `mostly on the small rendition: ${trace}\n${details()}`);
    // A try up that fails comes back down within seconds.
    const longestUp = Math.max(...trace.split('1').map((run) => run.length));
    assert.ok(longestUp < 8, `a try of the large one lasted ${longestUp} s: ${trace}\n${details()}`);
    assert.ok(fps >= 25, `median ${fps} fps on the small rendition behind the slow link (frames each second: ${perSecond})\n${details()}`);
    assert.equal(prev.decodeErrors, 0, details());
  } finally {
    unshapeLink();
    await chooser?.close();
    await auto?.close();
    await stop();
  }
});

test('a relay viewer joining behind a slow link starts on the rendition its page measured it carries', { timeout: 120_000 }, async (t) => {
  if (!requireElements(t, ['x264enc', 'videoscale'])) return;
  const { port: relayPort, pipeline, details, stop } = await publishToNewRelay(LINE, BROADCAST);
  /** @type {Viewer | undefined} */
  let viewer;
  try {
    // The catalog says a rendition's rate after 2 s of it; the viewer joins later.
    shapeLink(relayPort, 700);
    shapeAlso(pipeline.port);
    await new Promise((r) => setTimeout(r, 3000));
    const opened = Date.now();
    viewer = await Viewer.open(/** @type {any} */ (browser).context, withQuery(pipeline.url, 'relay=1'));
    const first = await viewer.waitForStats((s) => s.transport === 'relay' && s.framesDecoded >= 1 && s.renditions?.current !== undefined,
      'a first frame through the relay', { extra: details, timeoutMs: 30_000 });
    const firstMs = Date.now() - opened;
    const downlinkKbps = await viewer.page.evaluate(async () => {
      const m = await import(new URL('protocol.js', document.baseURI).href);
      return m.pageDownlinkKbps(performance, location.origin);
    });
    // Then each second for 5 s: the rendition shown (RelayAbr tries up only after 10 s).
    const seen = [first.renditions.current];
    let prev = first;
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      prev = await viewer.stats();
      seen.push(prev.renditions.current);
    }
    t.diagnostic(`the page measured ${downlinkKbps} kbit/s; first frame ${firstMs} ms after opening, on rendition ${first.renditions.current} (${first.width}x${first.height}); each second after: ${seen.join('')}; ${prev.framesDecoded - first.framesDecoded} frames in 5 s`);
    assert.ok(downlinkKbps !== null && downlinkKbps < 1500, `the page measured ${downlinkKbps} kbit/s`);
    assert.equal(first.renditions.current, 1, `its first frame is the small rendition's\n${details()}`);
    assert.equal(first.width, 320);
    assert.deepEqual(seen, seen.map(() => 1), `it stays there: ${seen.join('')}`);
    assert.ok(prev.framesDecoded - first.framesDecoded >= 100, `${prev.framesDecoded - first.framesDecoded} frames in 5 s\n${details()}`);
    assert.equal(prev.decodeErrors, 0, details());
    // The rates it chose by, as the catalog said them (and the viewer announces them).
    const rates = prev.renditions.renditions.map((/** @type {any} */ r) => [r.id, r.bitrateBps]);
    t.diagnostic(`the catalog's rates: ${JSON.stringify(rates)}`);
    assert.ok(rates.length === 2 && rates[0][1] > 1_500_000 && rates[1][1] > 0 && rates[1][1] < 600_000, JSON.stringify(rates));
  } finally {
    unshapeLink();
    await viewer?.close();
    await stop();
  }
});
