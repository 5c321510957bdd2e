// WebKit: Debian's WebKitGTK (webkit2gtk-driver: WebKitWebDriver driving its MiniBrowser) under a
// private Xvfb display the test starts, through plain W3C WebDriver. It is the engine Tauri uses
// on Linux. WebKitGTK 2.50 has WebCodecs (H.264 through GStreamer) and no WebTransport: the
// viewer's documented fallback is WebSocket, which the test asserts. Frames, the colour bars and a
// click arriving upstream are checked as in the Chromium tests.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SMPTE_BARS, assertPluginBuilt, pollUntil, requireElements, smptePoints, startPipeline } from './lib.mjs';
import { probeReady, startProbe } from './probe.mjs';
import { launchWebKit } from './webkit.mjs';
const SOURCE = 'videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=640,height=480,framerate=30/1';
const X264 = 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';
const STREAM = { width: 640, height: 480 };

/** @type {import('./webkit.mjs').WebDriver | undefined} */
let driver;
let capabilities;
/** @type {Awaited<ReturnType<typeof launchWebKit>> | undefined} */
let webkit;
before(async () => {
  assertPluginBuilt();
  webkit = await launchWebKit();
  ({ driver, capabilities } = webkit);
});
after(async () => {
  await webkit?.close();
});

const wd = () => /** @type {import('./webkit.mjs').WebDriver} */ (driver);
const stats = () => wd().run('return await window.rfbViewer.stats();');

async function waitFrames(n, logs) {
  return pollUntil(() => stats().catch((e) => ({ error: String(e) })), (s) => s?.framesDecoded >= n,
    { timeoutMs: 30_000, what: `${n} frames decoded in WebKitGTK`, details: logs });
}

test('WebKitGTK: the page shows the H.264 stream (WebCodecs, WebSocket: no WebTransport here)', { timeout: 90_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const pipeline = await startPipeline(`${SOURCE} ! ${X264} ! rfbsink port=0`);
  t.after(() => pipeline.stop());
  const t0 = Date.now();
  await wd().go(pipeline.url);
  const first = await waitFrames(1, pipeline.logs);
  const firstMs = Date.now() - t0;
  const s = await waitFrames(30, pipeline.logs);
  const ctx = JSON.stringify(s);
  assert.equal(s.codec, 'h264', ctx);
  assert.equal(s.width, STREAM.width, ctx);
  assert.equal(s.decodeErrors ?? 0, 0, ctx);
  assert.equal(s.transport, 'websocket', `the fallback where WebTransport is missing: ${ctx}`);
  const points = smptePoints(640, 100);
  const got = await wd().run('return await window.rfbViewer.samplePixels(arguments[0]);', points);
  SMPTE_BARS.forEach(([name, rgb], i) => {
    const px = got[i];
    assert.ok(rgb.every((v, k) => Math.abs(v - px[k]) <= 40), `${name} bar at ${points[i]}: got ${px}, want ${rgb}`);
  });
  // Its acks reach the element: the server's figures for this viewer have a latency.
  const acked = await pollUntil(stats, (v) => v?.server?.latency_p50_us > 0, { what: 'the element\'s latency from WebKitGTK\'s acks', details: pipeline.logs });
  t.diagnostic(`WebKitGTK ${capabilities?.browserVersion}: ${s.transport}, ${s.paintPath}, first picture ${firstMs} ms after load (${first.framesDecoded} decoded), `
    + `render() -> decoded p50 ${(acked.server.latency_p50_us / 1000).toFixed(1)} ms, painted p50 ${(acked.server.paint_p50_us / 1000).toFixed(1)} ms`);
});

test('WebKitGTK: a click arrives upstream at the stream coordinates it was made at', { timeout: 90_000 }, async (t) => {
  if (!probeReady(t, ['navigationtest', 'x264enc'])) return;
  const probe = await startProbe(`${SOURCE} ! navigationtest ! videoconvert ! ${X264} ! rfbsink name=sink port=0`);
  t.after(() => probe.stop());
  await wd().go(probe.url);
  await waitFrames(10, probe.logs);
  const rect = await wd().run('const r = document.querySelector("canvas.rfb-canvas").getBoundingClientRect(); return { left: r.left, top: r.top, width: r.width, height: r.height };');
  const scale = Math.min(rect.width / STREAM.width, rect.height / STREAM.height);
  const from = probe.lines.length;
  await wd().click(rect.left + (rect.width - STREAM.width * scale) / 2 + 480 * scale, rect.top + (rect.height - STREAM.height * scale) / 2 + 360 * scale);
  const press = await probe.waitFor((l) => l.event === 'mouse-button-press', 'the click upstream', { from });
  // WebDriver moves to whole CSS pixels: a pixel of the view is 1/scale stream pixels.
  const tol = 2 + 1 / scale;
  assert.ok(Math.abs(press.x - 480) <= tol && Math.abs(press.y - 360) <= tol, `click at (480, 360) arrived at (${press.x}, ${press.y})`);
});
