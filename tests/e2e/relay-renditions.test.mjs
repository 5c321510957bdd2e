// Renditions through a relay (docs/protocol.md, "Relays"): rfbsink publishes two renditions of
// one source (video0 640x360 at 3 Mbit/s, video1 320x180 at 300 kbit/s) to a real moq-relay, and
// the element's viewer page watches through it. A viewer that chooses one gets it, and moves to
// the other when asked, without a decoder error. A viewer that does not choose watches the large
// one while its link carries it, and moves down on its own when what the relay sends it is held
// to 1.2 Mbit/s behind a 300 ms queue (a token bucket on the loopback of a private network
// namespace this file makes; netns.mjs), then shows the small one at its full rate; a later try
// of the large one falls back.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Viewer, assertPluginBuilt, launchBrowser, pollUntil, requireElements, withQuery } from './lib.mjs';
import { publishToNewRelay, relayBin } from './moq.mjs';
import { runInPrivateNetns, shapeLink, unshapeLink } from './netns.mjs';

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
