// Each codec rfbsink serves, end to end: videotestsrc's SMPTE bars through an encoder and rfbsink
// into the real viewer page in headless Chromium; the test reads back what the page shows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SMPTE_BARS, Viewer, assertSmpteBars, decodePng, pollUntil, sharedBrowser, smptePoints, outPath, requireElements, startPipeline, withQuery,
} from './lib.mjs';

// format=I420: left free, x264enc would negotiate 10-bit 4:4:4 (High 4:4:4), which Chromium
// decodes in software but hardware decoders and other browsers refuse.
const SOURCE = 'videotestsrc pattern=smpte is-live=true ! video/x-raw,format=I420,width=640,height=480,framerate=30/1';
const X264 = 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';

const browser = sharedBrowser();

/**
 * Starts `SOURCE ! encoder ! rfbsink port=0`, opens the viewer (with `query`), and checks what a
 * user sees: frames decoded, the codec, the size and the colour bars.
 */
async function checkStream(t, { elements, encoder, query = '', transport, envelope, codec, codecString, screenshot }) {
  if (!requireElements(t, elements)) return;
  const pipeline = await startPipeline(`${SOURCE} ! ${encoder} ! rfbsink port=0`);
  t.after(() => pipeline.stop());
  const viewer = await Viewer.open(browser.context, withQuery(pipeline.url, query));
  t.after(() => viewer.close());

  const stats = await viewer.waitForFrames(10, { extra: pipeline.logs });
  const context = `stats: ${JSON.stringify(stats)}\n${viewer.logs()}`;
  assert.equal(stats.connected, true, context);
  assert.equal(stats.codec, codec, context);
  assert.ok(codecString.test(String(stats.codecString)),
    `codecString ${JSON.stringify(stats.codecString)} should match ${codecString}\n${context}`);
  assert.equal(stats.width, 640, context);
  assert.equal(stats.height, 480, context);
  assert.equal(stats.decodeErrors ?? 0, 0, context);
  // The query must really pick the transport and wire format, or two tests test one path.
  if (transport) assert.equal(stats.transport, transport, context);
  if (envelope) assert.equal(stats.envelope, envelope, context);

  await assertSmpteBars(viewer, { width: 640, y: 100, tolerance: 40, extra: pipeline.logs });

  if (screenshot) {
    const file = outPath(screenshot);
    await viewer.page.screenshot({ path: file });
    t.diagnostic(`screenshot: ${file}`);
  }
}

test('H.264 byte-stream (default page): the viewer decodes and shows the colour bars', { timeout: 90_000 }, (t) =>
  checkStream(t, {
    elements: ['x264enc'],
    encoder: X264,
    codec: 'h264',
    codecString: /^avc1\./,
    screenshot: 'h264.png',
  }));

/**
 * What the page shows (a screenshot, not the viewer's own read-back): the seven top bars at the
 * places the picture is laid out, each within `tolerance`.
 */
async function barsOnScreen(viewer, selector, tolerance = 40) {
  const box = await viewer.page.evaluate((sel) => {
    const r = /** @type {HTMLElement} */ (document.querySelector(sel)).getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  }, selector);
  // object-fit: contain, a 640x480 picture.
  const scale = Math.min(box.width / 640, box.height / 480);
  const left = box.x + (box.width - 640 * scale) / 2;
  const top = box.y + (box.height - 480 * scale) / 2;
  const png = decodePng(await viewer.page.screenshot());
  return smptePoints(640, 100).flatMap(([x, y], i) => {
    const px = Math.round(left + x * scale);
    const py = Math.round(top + y * scale);
    const o = (py * png.width + px) * 4;
    const got = [png.rgba[o], png.rgba[o + 1], png.rgba[o + 2]];
    const [name, want] = SMPTE_BARS[i];
    return want.every((c, k) => Math.abs(got[k] - c) <= tolerance) ? [] : [`${name} at (${px}, ${py}): want ~${want}, got ${got}`];
  });
}

test('H.264 paint paths: Chromium shows decoded frames through a <video> (MediaStreamTrackGenerator) by default, ?paint=canvas on the canvas; the screen shows the bars either way',
  { timeout: 120_000 }, async (t) => {
    if (!requireElements(t, ['x264enc'])) return;
    const pipeline = await startPipeline(`${SOURCE} ! ${X264} ! rfbsink port=0`);
    t.after(() => pipeline.stop());
    for (const [query, path, shown] of [
      ['', 'video element (MediaStreamTrackGenerator)', 'video.rfb-frames'],
      ['?paint=canvas', '2d drawImage VideoFrame', 'canvas.rfb-canvas'],
    ]) {
      const viewer = await Viewer.open(browser.context, withQuery(pipeline.url, query));
      try {
        const stats = await viewer.waitForFrames(10, { extra: pipeline.logs });
        assert.equal(stats.paintPath, path, `${query || 'default'}: ${JSON.stringify(stats)}\n${viewer.logs()}`);
        const state = await viewer.page.evaluate(() => {
          const video = document.querySelector('video.rfb-frames');
          return { video: video ? getComputedStyle(video).visibility : null, playing: video ? !video.paused && video.videoWidth : null };
        });
        if (shown.startsWith('video')) {
          assert.equal(state.video, 'visible', `the <video> shows the picture: ${JSON.stringify(state)}`);
          assert.equal(state.playing, 640, `the <video> plays the 640-wide stream: ${JSON.stringify(state)}`);
        } else {
          assert.equal(state.video, null, `?paint=canvas makes no <video>: ${JSON.stringify(state)}`);
        }
        // The viewer's own read-back (the frame the <video> was given), then the screen itself.
        await assertSmpteBars(viewer, { width: 640, y: 100, tolerance: 40, extra: pipeline.logs });
        let wrong = [];
        await pollUntil(() => barsOnScreen(viewer, shown), (w) => { wrong = w; return w.length === 0; },
          { timeoutMs: 10_000, what: 'the bars on screen' }).catch((e) => assert.fail(`${query || 'default'}: the screen does not show the bars:\n  ${wrong.length ? wrong.join('\n  ') : e.message}`));
        await viewer.page.screenshot({ path: outPath(`paint-${query ? 'canvas' : 'video'}.png`) });
      } finally {
        await viewer.close();
      }
    }
  });

test('a page whose thread is busy for 1.5 s: the worker drops the frames it cannot hand over (a few in flight, not 45 queued) and the <video> goes on with current pictures',
  { timeout: 90_000 }, async (t) => {
    if (!requireElements(t, ['x264enc'])) return;
    const pipeline = await startPipeline(`${SOURCE} ! ${X264} ! rfbsink port=0`);
    t.after(() => pipeline.stop());
    const viewer = await Viewer.open(browser.context, pipeline.url);
    t.after(() => viewer.close());
    const before = await viewer.waitForFrames(10, { extra: pipeline.logs });
    assert.equal(before.paintPath, 'video element (MediaStreamTrackGenerator)', JSON.stringify(before));
    // A long task on the page (an app's own script, a big layout): 1.5 s at 30 fps is 45 frames.
    await viewer.page.evaluate(() => { const end = performance.now() + 1500; while (performance.now() < end); });
    const after = await viewer.stats();
    const dropped = after.framesDropped - before.framesDropped;
    t.diagnostic(`during the long task: ${after.framesDecoded - before.framesDecoded} decoded, ${dropped} dropped in the worker`);
    assert.ok(dropped >= 30, `the worker should drop what the page cannot take (dropped ${dropped}): ${JSON.stringify(after)}`);
    // Pictures go on: more frames handed over and shown after the task.
    const more = await viewer.waitForFrames(after.framesDecoded + 15, { extra: pipeline.logs });
    assert.equal(more.framesDropped - after.framesDropped <= 3, true, `no drops once the page is free: ${JSON.stringify(more)}`);
    await assertSmpteBars(viewer, { width: 640, y: 100, tolerance: 40, extra: pipeline.logs });
    const playing = await viewer.page.evaluate(() => {
      const v = /** @type {HTMLVideoElement} */ (document.querySelector('video.rfb-frames'));
      return { paused: v.paused, width: v.videoWidth, frames: v.getVideoPlaybackQuality?.().totalVideoFrames ?? null };
    });
    assert.equal(playing.paused, false, JSON.stringify(playing));
  });

test('H.264 over WebSocket (?transport=ws), binary envelope', { timeout: 90_000 }, (t) =>
  checkStream(t, {
    elements: ['x264enc'],
    encoder: X264,
    query: '?transport=ws',
    transport: 'websocket',
    envelope: 'binary',
    codec: 'h264',
    codecString: /^avc1\./,
  }));

// The json envelope exists on the WebSocket only; left to 'auto' the viewer prefers WebTransport.
test('H.264 over WebSocket with ?envelope=json', { timeout: 90_000 }, (t) =>
  checkStream(t, {
    elements: ['x264enc'],
    encoder: X264,
    query: '?transport=ws&envelope=json',
    transport: 'websocket',
    envelope: 'json',
    codec: 'h264',
    codecString: /^avc1\./,
  }));

test('H.264 stream-format=avc (length-prefixed, avcC description)', { timeout: 90_000 }, (t) =>
  checkStream(t, {
    elements: ['x264enc'],
    encoder: `${X264} ! video/x-h264,stream-format=avc`,
    codec: 'h264',
    codecString: /^avc1\./,
  }));

test('VP8: the viewer decodes and shows the colour bars', { timeout: 90_000 }, (t) =>
  checkStream(t, {
    elements: ['vp8enc'],
    encoder: 'vp8enc deadline=1 keyframe-max-dist=30',
    codec: 'vp8',
    codecString: /^vp8$/,
  }));

test('JPEG: the viewer decodes and shows the colour bars', { timeout: 90_000 }, (t) =>
  checkStream(t, {
    elements: ['jpegenc'],
    encoder: 'jpegenc',
    codec: 'jpeg',
    codecString: /^image\/jpeg$/,
  }));
