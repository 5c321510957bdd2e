// Renditions end to end (docs/protocol.md, "Renditions"): two encodings of one source into
// rfbsink, the real viewer in headless Chromium. A viewer that chooses the small one shows it
// (its colours, its size), its clicks arrive upstream in the source's pixels, and it moves to the
// large one mid-stream without an error or a stall; the overlay names both.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Viewer, assertPluginBuilt, assertSmpteBars, launchBrowser, outPath, pollUntil, streamToPage, withQuery } from './lib.mjs';
import { probeReady, startProbe } from './probe.mjs';

const X264 = 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';
const PIPELINE = 'videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=640,height=480,framerate=30/1 ! tee name=t '
  + `t. ! queue ! ${X264} bitrate=2000 ! sink.sink `
  + `t. ! queue ! videoscale ! video/x-raw,width=320,height=240 ! ${X264} bitrate=300 ! sink.rendition_1 `
  + 'rfbsink name=sink port=0 stats-interval=200';
const VIEWPORT = { width: 800, height: 600 };

/** @type {Awaited<ReturnType<typeof launchBrowser>>} */
let browser;
let probe = null;
/** @type {Viewer | null} */
let viewer = null;

before(async () => {
  assertPluginBuilt();
  browser = await launchBrowser();
});

after(async () => {
  await viewer?.close();
  await probe?.stop();
  await browser?.close();
});

for (const transport of ['wt', 'ws']) test(`${transport}: a viewer chooses the small rendition, points in the source's pixels, and moves to the large one without a stall`, { timeout: 120_000 }, async (t) => {
  if (!probeReady(t, ['x264enc', 'videoscale'])) return;
  probe ??= await startProbe(PIPELINE);
  const details = () => `${viewer?.logs() ?? ''}\n${probe.logs()}`;
  await viewer?.close();
  viewer = await Viewer.open(browser.context, withQuery(probe.url, `rendition=1&overlay=1&transport=${transport}`), { viewport: VIEWPORT });

  // The small one: announced, shown at its size, with the source's colours.
  const small = await viewer.waitForStats((s) => s.renditions?.current === 1 && s.width === 320 && s.framesDecoded >= 10,
    'the small rendition, decoding', { extra: probe.logs });
  assert.deepEqual(small.renditions.renditions.map((r) => [r.id, r.width, r.height]), [[0, 640, 480], [1, 320, 240]]);
  assert.equal(small.renditions.chosen, 1);
  await assertSmpteBars(viewer, { width: 320, y: 50, extra: probe.logs });
  // The overlay refreshes twice a second.
  await pollUntil(() => viewer.page.evaluate(() => document.querySelector('.rfb-overlay')?.textContent ?? ''),
    (text) => /renditions: 0 640x480 .* \*1 320x240 .*\(chose 1\)/.test(text), { what: 'the overlay\'s renditions line', details });
  assert.equal(small.transport, transport === 'wt' ? 'webtransport' : 'websocket');
  await viewer.page.screenshot({ path: outPath(`renditions-small-${transport}.png`) });

  // A click at the small picture's (80, 60) is the source's (160, 120).
  const from = probe.lines.length;
  const at = await streamToPage(viewer.page, 'canvas.rfb-canvas', { width: 320, height: 240 }, 80, 60);
  await viewer.page.mouse.click(at.x, at.y);
  const press = await probe.waitFor((l) => l.event === 'mouse-button-press', 'mouse-button-press', { from });
  assert.ok(Math.abs(press.x - 160) <= 3 && Math.abs(press.y - 120) <= 3,
    `the press is at the source's pixel: ${JSON.stringify(press)}\n${details()}`);

  // To the large one, mid-stream: shown at its size, decoding on, no decoder error.
  const before = await viewer.stats();
  await viewer.page.evaluate(() => window.rfbViewer.setRendition(0));
  const large = await viewer.waitForStats((s) => s.renditions?.current === 0 && s.width === 640,
    'the large rendition', { extra: probe.logs });
  await pollUntil(() => viewer.stats(), (s) => s.framesDecoded >= large.framesDecoded + 30,
    { what: '30 more frames decoded after the switch', details });
  await assertSmpteBars(viewer, { width: 640, y: 100, extra: probe.logs });
  const after = await viewer.stats();
  assert.equal(after.decodeErrors, before.decodeErrors, `no decoder error at the switch\n${details()}`);
  assert.equal(after.status, 'playing');
});
