// The lossless raw path end to end: fixed random pixels from a file, through rfbsink's own tile
// encoding, into the real viewer in headless Chromium. What the page shows at 1:1 (a screenshot)
// must equal the source in every pixel, and the 16-bit values read back through the viewer's API
// must equal the source's.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Viewer, decodePng, requireElements, sharedBrowser, startPipeline } from './lib.mjs';

const browser = sharedBrowser();

/**
 * Writes `data` to a file and starts `multifilesrc ! rawvideoparse ! rfbsink`: the same picture
 * at 10 fps (unchanged frames cost nothing on the wire).
 * @param {import('node:test').TestContext} t
 */
async function rawPipeline(t, data, { format, width, height }) {
  const dir = mkdtempSync(path.join(tmpdir(), 'rfbsink-raw-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'picture.raw');
  writeFileSync(file, data);
  const pipeline = await startPipeline(
    `multifilesrc location=${file} loop=true ! rawvideoparse format=${format} width=${width} height=${height} framerate=10/1 `
    + '! rfbsink port=0');
  t.after(() => pipeline.stop());
  return pipeline;
}

/** Opens the viewer at the stream's size (1:1) and waits for a painted picture. */
async function openOneToOne(t, pipeline, size) {
  const viewer = await Viewer.open(browser.context, pipeline.url, { viewport: size });
  t.after(() => viewer.close());
  const stats = await viewer.waitForFrames(1, { extra: pipeline.logs });
  assert.equal(stats.codec, 'raw', viewer.logs());
  assert.equal(stats.width, size.width);
  assert.equal(stats.height, size.height);
  return viewer;
}

/** What the page shows, as RGBA, with the overlay's button out of the way. */
async function screenshot(viewer) {
  await viewer.page.evaluate(() => {
    for (const el of document.querySelectorAll('.rfb-overlay-toggle, .rfb-status')) el.style.display = 'none';
  });
  return decodePng(await viewer.page.screenshot());
}

/** Compares every pixel; the message names the first difference and how many differ. */
function assertPixels(shown, expect, what) {
  let differ = 0;
  let first = null;
  for (let i = 0; i < expect.length; i++) {
    if (shown.rgba[i] !== expect[i]) {
      differ++;
      first ??= i;
    }
  }
  if (differ) {
    const px = Math.floor(first / 4);
    assert.fail(`${what}: ${differ} of ${expect.length} bytes differ; first at pixel (${px % shown.width}, `
      + `${Math.floor(px / shown.width)}) channel ${first % 4}: shown ${shown.rgba[first]}, source ${expect[first]}`);
  }
}

test('raw RGBA random pixels: the page shows every pixel exactly at 1:1, and readRaw has the alpha too',
  { timeout: 90_000 }, async (t) => {
    const size = { width: 320, height: 240 };
    const data = randomBytes(size.width * size.height * 4);
    const pipeline = await rawPipeline(t, data, { format: 'rgba', ...size });
    const viewer = await openOneToOne(t, pipeline, size);
    const shown = await screenshot(viewer);
    assert.equal(shown.width, size.width);
    // Painted opaque: the RGB of every pixel is the source's, alpha aside.
    const expect = Uint8Array.from(data, (v, i) => (i % 4 === 3 ? 255 : v));
    assertPixels(shown, expect, 'RGBA on the page');
    const raw = await viewer.page.evaluate(async () => {
      const r = await window.rfbViewer.readRaw();
      return { format: r.format, width: r.width, data: Array.from(r.data) };
    });
    assert.equal(raw.format, 'rgba8');
    assert.deepEqual(Buffer.from(raw.data), data, 'readRaw equals the source, alpha included');
  });

test('raw GRAY8 random pixels: the page shows every pixel exactly at 1:1 (odd width)', { timeout: 90_000 }, async (t) => {
  const size = { width: 257, height: 130 };
  // GStreamer rows of GRAY8 are padded to 4 bytes: 257 -> 260.
  const stride = 260;
  const data = randomBytes(stride * size.height);
  const pipeline = await rawPipeline(t, data, { format: 'gray8', ...size });
  const viewer = await openOneToOne(t, pipeline, size);
  const shown = await screenshot(viewer);
  const expect = new Uint8Array(size.width * size.height * 4);
  for (let y = 0; y < size.height; y++) {
    for (let x = 0; x < size.width; x++) {
      const v = data[y * stride + x];
      expect.set([v, v, v, 255], (y * size.width + x) * 4);
    }
  }
  assertPixels(shown, expect, 'GRAY8 on the page');
});

test('raw GRAY16 (12-bit): values read back exactly, the automatic window follows the data, window/level changes only the display',
  { timeout: 90_000 }, async (t) => {
    const size = { width: 200, height: 100 };
    const samples = new Uint16Array(size.width * size.height);
    const noise = randomBytes(samples.length * 2);
    for (let i = 0; i < samples.length; i++) samples[i] = 300 + (noise.readUInt16LE(i * 2) % 3000);
    const data = Buffer.from(samples.buffer);
    const pipeline = await rawPipeline(t, data, { format: 'gray16-le', ...size });
    const viewer = await openOneToOne(t, pipeline, size);
    const read = () => viewer.page.evaluate(async () => {
      const r = await window.rfbViewer.readRaw();
      return { format: r.format, data: Array.from(new Uint16Array(r.data.buffer)) };
    });
    const before = await read();
    assert.equal(before.format, 'gray16le');
    assert.deepEqual(before.data, Array.from(samples), 'the 16-bit values are the source\'s');

    let lo = 65535;
    let hi = 0;
    for (const v of samples) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    const stats = await viewer.stats();
    assert.deepEqual(stats.window, { low: lo, high: hi, source: 'auto' }, 'the default window is the data\'s range');
    // The darkest pixel is black and the brightest white: a 12-bit image is visible at once.
    const darkest = samples.indexOf(lo);
    const brightest = samples.indexOf(hi);
    const at = (/** @type {number} */ i) => [i % size.width, Math.floor(i / size.width)];
    let [dark, bright] = await viewer.samplePixels([at(darkest), at(brightest)]);
    assert.deepEqual([dark[0], bright[0]], [0, 255]);

    // Another window: what is shown changes, the data does not.
    await viewer.page.evaluate(() => window.rfbViewer.setWindow(0, 65535));
    [dark, bright] = await viewer.samplePixels([at(darkest), at(brightest)]);
    assert.equal(dark[0], Math.round((lo * 255) / 65535));
    assert.equal(bright[0], Math.round((hi * 255) / 65535));
    assert.deepEqual((await viewer.stats()).window.source, 'user');
    assert.deepEqual((await read()).data, before.data, 'the window does not touch the data');
    // The raw value under a point, as the overlay shows it.
    const [x, y] = at(brightest);
    assert.deepEqual(await viewer.page.evaluate(([px, py]) => window.rfbViewer.rawValueAt(px, py), [x, y]), [hi]);
  });

test('raw larger than the view: painted at the size shown (each pixel the source pixel under its centre), exact again at 1:1',
  { timeout: 90_000 }, async (t) => {
    const size = { width: 640, height: 480 };
    const view = { width: 320, height: 240 };
    const data = randomBytes(size.width * size.height * 4);
    const pipeline = await rawPipeline(t, data, { format: 'rgba', ...size });
    const viewer = await Viewer.open(browser.context, pipeline.url, { viewport: view });
    t.after(() => viewer.close());
    const stats = await viewer.waitForFrames(1, { extra: pipeline.logs });
    assert.deepEqual([stats.width, stats.height], [size.width, size.height], 'stats give the stream\'s size');
    // Half the size: painted pixel (i, j) is source pixel (2i + 1, 2j + 1).
    const half = new Uint8Array(view.width * view.height * 4);
    for (let j = 0; j < view.height; j++) {
      for (let i = 0; i < view.width; i++) {
        const o = ((2 * j + 1) * size.width + 2 * i + 1) * 4;
        half.set([data[o], data[o + 1], data[o + 2], 255], (j * view.width + i) * 4);
      }
    }
    const full = Uint8Array.from(data, (v, i) => (i % 4 === 3 ? 255 : v));
    // The page says the view's size to the worker as it lays out: the picture follows within a
    // few frames.
    const shows = async (expect) => {
      let shown = null;
      for (let tries = 0; tries < 50; tries++) {
        shown = await screenshot(viewer);
        if (shown.rgba.length === expect.length && shown.rgba.every((v, i) => v === expect[i])) return shown;
        await new Promise((r) => setTimeout(r, 100));
      }
      return shown;
    };
    assertPixels(await shows(half), half, 'the half-size picture on the page');
    const [[r, g, b]] = await viewer.samplePixels([[2, 2]]);
    const o = (3 * size.width + 3) * 4;
    assert.deepEqual([r, g, b], [data[o], data[o + 1], data[o + 2]], 'samplePixels: the pixel painted for that point');
    const raw = await viewer.page.evaluate(async () => Array.from((await window.rfbViewer.readRaw()).data));
    assert.deepEqual(Buffer.from(raw), data, 'readRaw has every pixel');
    // The view grows to the stream's size: every pixel again, exactly.
    await viewer.page.setViewportSize(size);
    assertPixels(await shows(full), full, 'the picture at 1:1 after the view grew');
  });

test('refine: H.264 of random pixels is lossy; once the stream idles, the page shows the raw picture exactly',
  { timeout: 90_000 }, async (t) => {
    if (!requireElements(t, ['x264enc', 'rawvideoparse', 'tee'])) return;
    const size = { width: 320, height: 240 };
    const dir = mkdtempSync(path.join(tmpdir(), 'rfbsink-refine-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'picture.raw');
    const data = randomBytes(size.width * size.height * 4);
    writeFileSync(file, data);
    // One frame every 2 s (rfbsink syncs to the timestamps): 700 ms of the lossy picture, then
    // the still, exact, until the next frame.
    const pipeline = await startPipeline(
      `multifilesrc location=${file} loop=true ! rawvideoparse format=rgbx width=320 height=240 framerate=1/2 `
      + '! tee name=t t. ! queue ! videoconvert ! video/x-raw,format=I420 '
      + '! x264enc tune=zerolatency speed-preset=ultrafast ! rfbsink name=s port=0 refine-delay=700 '
      + 't. ! queue max-size-buffers=2 ! s.refine');
    t.after(() => pipeline.stop());
    const viewer = await Viewer.open(browser.context, pipeline.url, { viewport: size });
    t.after(() => viewer.close());
    await viewer.waitForFrames(1, { extra: pipeline.logs });
    const expect = Uint8Array.from(data, (v, i) => (i % 4 === 3 ? 255 : v));
    const differing = (shown) => shown.rgba.reduce((n, v, i) => n + (v !== expect[i]), 0);
    // A screenshot counts when nothing was painted while it was taken.
    let lossy = null;
    let exact = null;
    const deadline = Date.now() + 30_000;
    while ((lossy === null || exact === null) && Date.now() < deadline) {
      const before = await viewer.stats();
      const shown = await screenshot(viewer);
      const after = await viewer.stats();
      if (before.framesDecoded !== after.framesDecoded || before.refines !== after.refines) continue;
      if (after.exact) exact ??= { shown, stats: after };
      else lossy ??= differing(shown);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(lossy !== null && exact !== null, `saw the lossy picture: ${lossy !== null}, the still: ${exact !== null}\n${viewer.logs()}`);
    assert.ok(lossy > data.length / 10, `H.264 of noise is lossy: ${lossy} bytes differ`);
    assert.equal(exact.stats.codec, 'h264');
    assert.ok(exact.stats.refines >= 1);
    assertPixels(exact.shown, expect, 'the refined picture on the page');
    const raw = await viewer.page.evaluate(async () => (await window.rfbViewer.readRaw())?.format ?? null);
    assert.ok(raw === 'rgba8' || raw === null, raw);
  });
