// Firefox: Debian's firefox-esr driven through WebDriver BiDi (puppeteer-core, no browser
// download) runs the codec, transport, input and reconnect checks the Chromium tests run, with the
// same assertions: decoded frames, the colour bars read back from the page, events upstream.
// Firefox 153 ESR has WebCodecs (H.264, VP8; decoded by the system's libavcodec) and
// WebTransport with serverCertificateHashes, so it gets the same paths as Chromium.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import {
  Viewer, assertPluginBuilt, assertSmpteBars, requireElements, startPipeline, streamToPage, withQuery } from './lib.mjs';
import { probeReady, startProbe } from './probe.mjs';
import { AV_LINE, checkAvSync, click, record, startSoundServer } from './audio.mjs';

const FIREFOX = process.env.RFB_FIREFOX ?? '/usr/bin/firefox-esr';
const SOURCE = 'videotestsrc pattern=smpte is-live=true ! video/x-raw,format=I420,width=640,height=480,framerate=30/1';
const X264 = 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';
const STREAM = { width: 640, height: 480 };

/** @type {import('puppeteer-core').Browser | undefined} */
let browser;
let profile = '';
/** The sound device Firefox plays to (a null sink), or why there is none. */
let sound = { server: null, why: 'not started', stop: async () => {} };
/** What Viewer.open needs of a browser context. */
const context = { newPage: () => /** @type {import('puppeteer-core').Browser} */ (browser).newPage() };

before(async () => {
  assertPluginBuilt();
  if (!existsSync(FIREFOX)) {
    throw new Error(`${FIREFOX} is missing: install Debian's firefox-esr (scripts/install-deps.sh does)`);
  }
  profile = mkdtempSync(path.join(tmpdir(), 'rfbsink-e2e-firefox-'));
  // Firefox starts an AudioContext only with a sound device: a private PulseAudio null sink.
  sound = await startSoundServer();
  const env = sound.server ? { ...process.env, PULSE_SERVER: sound.server } : process.env;
  browser = await puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX, headless: true, userDataDir: profile, env });
});
after(async () => {
  await browser?.close();
  await sound.stop();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/**
 * Opens the viewer on `SOURCE ! encoder ! rfbsink` with `query`, waits for frames and checks what
 * a user sees; returns the stats and the time from page load to the first decoded frame.
 */
async function checkStream(t, { elements, encoder, query = '', transport, codec }) {
  if (!requireElements(t, elements)) return null;
  const pipeline = await startPipeline(`${SOURCE} ! ${encoder} ! rfbsink port=0 stats-interval=500`);
  t.after(() => pipeline.stop());
  const t0 = Date.now();
  const viewer = await Viewer.open(context, withQuery(pipeline.url, query));
  t.after(() => viewer.close());
  const first = await viewer.waitForFrames(1, { extra: pipeline.logs });
  const firstMs = Date.now() - t0;
  const stats = await viewer.waitForFrames(45, { extra: pipeline.logs });
  const ctx = `stats: ${JSON.stringify(stats)}\n${viewer.logs()}`;
  assert.equal(stats.connected, true, ctx);
  assert.equal(stats.codec, codec, ctx);
  assert.equal(stats.width, STREAM.width, ctx);
  assert.equal(stats.height, STREAM.height, ctx);
  assert.equal(stats.decodeErrors ?? 0, 0, ctx);
  assert.equal(stats.transport, transport, ctx);
  // No MediaStreamTrackGenerator in Firefox: the viewer falls back to its canvas.
  assert.match(String(stats.paintPath), /^2d /, ctx);
  await assertSmpteBars(viewer, { width: 640, y: 100, tolerance: 40, extra: pipeline.logs });
  const server = stats.server;
  t.diagnostic(`firefox ${query || '(default)'}: ${stats.transport}, ${stats.paintPath}, first picture ${firstMs} ms after load `
    + `(${first.framesDecoded} decoded), render() -> decoded p50 ${server ? (server.latency_p50_us / 1000).toFixed(1) : '-'} ms, `
    + `painted p50 ${server ? (server.paint_p50_us / 1000).toFixed(1) : '-'} ms`);
  return stats;
}

test('Firefox: H.264 on the default page (WebTransport), the colour bars', { timeout: 90_000 }, (t) =>
  checkStream(t, { elements: ['x264enc'], encoder: X264, transport: 'webtransport', codec: 'h264' }));

test('Firefox: H.264 over WebSocket (?transport=ws)', { timeout: 90_000 }, (t) =>
  checkStream(t, { elements: ['x264enc'], encoder: X264, query: '?transport=ws', transport: 'websocket', codec: 'h264' }));

test('Firefox: H.264 over WebSocket with the JSON envelope', { timeout: 90_000 }, (t) =>
  checkStream(t, { elements: ['x264enc'], encoder: X264, query: '?transport=ws&envelope=json', transport: 'websocket', codec: 'h264' }));

// ?paint=video asks for the <video> path, which Firefox lacks: the viewer falls back to its canvas.
test('Firefox: VP8 (?paint=video falls back to the canvas)', { timeout: 90_000 }, (t) =>
  checkStream(t, {
    elements: ['vp8enc'],
    encoder: 'vp8enc deadline=1 cpu-used=16 lag-in-frames=0 keyframe-max-dist=30',
    query: '?transport=ws&paint=video',
    transport: 'websocket',
    codec: 'vp8',
  }));

test('Firefox: JPEG (image decode path)', { timeout: 90_000 }, (t) =>
  checkStream(t, { elements: ['jpegenc'], encoder: 'jpegenc quality=85', query: '?transport=ws', transport: 'websocket', codec: 'jpeg' }));

test('Firefox: a click arrives upstream at the stream coordinates it was made at', { timeout: 90_000 }, async (t) => {
  if (!probeReady(t, ['navigationtest', 'x264enc'])) return;
  const probe = await startProbe(`${SOURCE} ! navigationtest ! videoconvert ! ${X264} ! rfbsink name=sink port=0 stats-interval=200`);
  t.after(() => probe.stop());
  const viewer = await Viewer.open(context, probe.url, { viewport: { width: 1000, height: 500 } });
  t.after(() => viewer.close());
  await viewer.waitForFrames(10, { extra: probe.logs });
  const target = await streamToPage(viewer.page, 'canvas.rfb-canvas', STREAM, 480, 360);
  const from = probe.lines.length;
  await viewer.page.mouse.click(target.x, target.y);
  const press = await probe.waitFor((l) => l.event === 'mouse-button-press', 'the click upstream', { from });
  assert.ok(Math.abs(press.x - 480) <= 2 && Math.abs(press.y - 360) <= 2,
    `click at stream (480, 360) arrived at (${press.x}, ${press.y})\n${viewer.logs()}`);
  await viewer.page.keyboard.press('KeyA');
  const key = await probe.waitFor((l) => l.event === 'key-press', 'a key press upstream', { from });
  assert.equal(key.key, 'a');
});

test('Firefox: the viewer reconnects after the pipeline restarts on the same port', { timeout: 120_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const line = (port) => `${SOURCE} ! ${X264} ! rfbsink port=${port} token=firefox-reconnect-token`;
  const first = await startPipeline(line(0));
  t.after(() => first.stop());
  const viewer = await Viewer.open(context, first.url);
  t.after(() => viewer.close());
  await viewer.waitForFrames(10, { extra: first.logs });
  await first.stop();
  const down = await viewer.waitForStats((s) => s.connected === false, 'the viewer to notice the server went away', { extra: first.logs });
  const second = await startPipeline(line(first.port));
  t.after(() => second.stop());
  const stats = await viewer.waitForStats((s) => s.connected === true && s.framesDecoded >= down.framesDecoded + 10,
    '10 more decoded frames after the restart', { timeoutMs: 45_000, extra: second.logs });
  assert.equal(stats.codec, 'h264');
  await assertSmpteBars(viewer, { extra: second.logs });
});

test('Firefox: sound after a click, the tone\'s pitch out of the worklet (WebTransport)', { timeout: 90_000 }, async (t) => {
  if (!requireElements(t, ['x264enc', 'opusenc'])) return;
  if (!sound.server) return t.skip(`no sound device for Firefox: ${sound.why}`);
  const pipeline = await startPipeline(`${SOURCE} ! ${X264} ! rfbsink name=s port=0 `
    + 'audiotestsrc is-live=true freq=440 volume=0.5 ! audio/x-raw,rate=48000,channels=2 ! opusenc ! s.audio');
  t.after(() => pipeline.stop());
  const viewer = await Viewer.open(context, pipeline.url);
  t.after(() => viewer.close());
  await viewer.waitForFrames(5, { extra: pipeline.logs });
  await viewer.waitForStats((s) => s.audio.state === 'waiting-for-click', 'the stream\'s sound announced', { extra: pipeline.logs });
  await click(viewer);
  const playing = await viewer.waitForStats((s) => s.audio.state === 'playing' && s.audio.framesDecoded >= 25, 'sound playing',
    { extra: pipeline.logs });
  assert.equal(playing.audio.decodeErrors, 0);
  const { pitch, rms } = await record(viewer, 1000);
  assert.ok(Math.abs(pitch - 440) < 5, `heard ${pitch.toFixed(1)} Hz, expected 440 Hz (rms ${rms.toFixed(3)})\n${viewer.logs()}`);
  const stats = await viewer.stats();
  t.diagnostic(`firefox ${stats.transport}: audio ${JSON.stringify(stats.audio)}`);
});

test('Firefox: A/V sync, a flash and a tick captured together are seen and heard together', { timeout: 90_000 }, async (t) => {
  if (!probeReady(t, ['opusenc', 'x264enc', 'videoconvert'])) return;
  if (!sound.server) return t.skip(`no sound device for Firefox: ${sound.why}`);
  const probe = await startProbe(AV_LINE);
  t.after(() => probe.stop());
  const viewer = await Viewer.open(context, probe.url);
  t.after(() => viewer.close());
  await checkAvSync(t, viewer, probe.logs, 'firefox: ');
});
