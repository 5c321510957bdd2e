// Several viewers on one rfbsink at once: every one of them gets and decodes the stream.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Viewer, assertSmpteBars, sharedBrowser, requireElements, startPipeline,
} from './lib.mjs';

const browser = sharedBrowser();

test('three viewers at once all decode frames', { timeout: 90_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const pipeline = await startPipeline(
    'videotestsrc pattern=smpte is-live=true ! video/x-raw,format=I420,width=640,height=480,framerate=30/1 '
    + '! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! rfbsink port=0');
  t.after(() => pipeline.stop());

  const viewers = [];
  t.after(() => Promise.all(viewers.map((v) => v.close())));
  for (let i = 0; i < 3; i++) {
    viewers.push(await Viewer.open(browser.context, pipeline.url));
  }

  const stats = await Promise.all(viewers.map((v) => v.waitForFrames(10, { extra: pipeline.logs })));
  for (const [i, s] of stats.entries()) {
    assert.equal(s.connected, true, `viewer ${i}: ${JSON.stringify(s)}`);
    assert.equal(s.codec, 'h264', `viewer ${i}: ${JSON.stringify(s)}`);
  }
  for (const v of viewers) {
    await assertSmpteBars(v, { extra: pipeline.logs });
  }
});
