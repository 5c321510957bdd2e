// Sound (docs/protocol.md, "Audio"): opusenc into rfbsink's audio pad, played by the viewer's
// AudioWorklet in headless Chromium. The tests check what a listener hears, taken from the
// worklet's output: the tone's pitch, clicks where the pipeline put them, the picture in step,
// and the page asking for the click that browsers want before they play sound.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireElements, sharedBrowser, startPipeline, Viewer, withQuery, pollUntil } from './lib.mjs';
import { probeReady, startProbe } from './probe.mjs';

const shared = sharedBrowser();

const VIDEO = 'videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! s.';
const TONE = (freq) => `audiotestsrc is-live=true freq=${freq} volume=0.5 ! audio/x-raw,rate=48000,channels=2 ! opusenc frame-size=20 ! s.audio`;

/** The frequency of a recorded tone, by its zero crossings. */
function pitch(samples, sampleRate) {
  let crossings = 0;
  let first = -1;
  let last = -1;
  for (let i = 1; i < samples.length; i++) {
    if (samples[i - 1] < 0 && samples[i] >= 0) {
      crossings++;
      if (first < 0) first = i;
      last = i;
    }
  }
  if (crossings < 2) return 0;
  return ((crossings - 1) * sampleRate) / (last - first);
}

/** RMS of a recording. */
function rms(samples) {
  let sum = 0;
  for (const s of samples) sum += s * s;
  return Math.sqrt(sum / samples.length);
}

/** Clicks the page (a user gesture: the browser may now play sound). */
async function click(viewer) {
  await viewer.page.mouse.click(5, 5);
}

async function record(viewer, ms) {
  const r = await viewer.page.evaluate(async (n) => {
    const { samples, sampleRate, startEpochMs } = await window.rfbViewer.recordAudio(n);
    return { samples: Array.from(samples), sampleRate, startEpochMs };
  }, ms);
  return { ...r, samples: Float32Array.from(r.samples) };
}

test('a tone plays after a click: "Click for sound" first, then its pitch out of the worklet', async (t) => {
  if (!requireElements(t, ['opusenc', 'x264enc'])) return;
  const pipeline = await startPipeline(`rfbsink name=s port=0 ${VIDEO} ${TONE(440)}`);
  t.after(() => pipeline.stop());
  const viewer = await Viewer.open(shared.context, pipeline.url);
  t.after(() => viewer.close());
  await viewer.waitForFrames(5, { extra: pipeline.logs });
  const before = await viewer.waitForStats((s) => s.audio.state === 'waiting-for-click', 'the stream\'s sound announced');
  assert.equal(before.audio.channels, 2);
  assert.equal(before.audio.framesDecoded, 0, 'nothing is decoded before the click');
  const prompt = await viewer.page.locator('.rfb-sound').textContent();
  assert.match(prompt ?? '', /Click for sound/);

  await click(viewer);
  const playing = await viewer.waitForStats((s) => s.audio.state === 'playing' && s.audio.framesDecoded >= 25,
    'sound playing', { extra: pipeline.logs });
  assert.equal(playing.audio.decodeErrors, 0);
  const { samples, sampleRate } = await record(viewer, 1000);
  const heard = pitch(samples, sampleRate);
  assert.ok(Math.abs(heard - 440) < 5, `heard ${heard.toFixed(1)} Hz, expected 440 Hz (rms ${rms(samples).toFixed(3)})`);
  assert.ok(rms(samples) > 0.2, `rms ${rms(samples)}`);
  const settled = await viewer.stats();
  t.diagnostic(`audio ${JSON.stringify(settled.audio)}`);
  assert.match(await viewer.page.locator('.rfb-sound').textContent() ?? '', /🔊/);
  // The video goes on: sound never holds the picture up.
  const more = await viewer.waitForFrames(30, { from: settled.framesDecoded });
  assert.equal(more.decodeErrors, 0);
});

test('?audio=0: no sound is sent, nothing asks for a click', async (t) => {
  if (!requireElements(t, ['opusenc', 'x264enc'])) return;
  const pipeline = await startPipeline(`rfbsink name=s port=0 stats-interval=300 ${VIDEO} ${TONE(440)}`);
  t.after(() => pipeline.stop());
  const viewer = await Viewer.open(shared.context, withQuery(pipeline.url, 'audio=0'));
  t.after(() => viewer.close());
  const stats = await viewer.waitForFrames(30, { extra: pipeline.logs });
  assert.equal(stats.audio.state, 'off');
  assert.equal(stats.audio.packetsReceived, 0);
  assert.equal(await viewer.page.locator('.rfb-sound').count(), 0);
  const server = await pollUntil(async () => pipeline.stats(), (s) => (s?.['audio-packets'] ?? 0) > 20, { what: 'audio packets at the element' });
  assert.ok(server['audio-packets'] > 20);
});

/** Epoch ms (the clock page, worker and worklet share) of each tick onset in a recording. */
function tickOnsets({ samples, sampleRate, startEpochMs }) {
  const onsets = [];
  const quiet = Math.round(sampleRate * 0.05);
  let silentFor = quiet;
  for (let i = 0; i < samples.length; i++) {
    if (Math.abs(samples[i]) > 0.05) {
      if (silentFor >= quiet) onsets.push(startEpochMs + (i * 1000) / sampleRate);
      silentFor = 0;
    } else {
      silentFor++;
    }
  }
  return onsets;
}

test('A/V sync: a flash and a tick captured at the same instant are seen and heard together', async (t) => {
  if (!probeReady(t, ['opusenc', 'x264enc', 'videoconvert'])) return;
  // nav-probe.py feeds both appsrcs like a camera and a microphone: a white flash and a 1 kHz
  // tick at each whole second of running time.
  const line = 'appsrc name=avvideo ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! rfbsink name=sink port=0 '
    + 'appsrc name=avaudio ! audioconvert ! opusenc frame-size=10 ! sink.audio';
  const probe = await startProbe(line);
  t.after(() => probe.stop());
  const viewer = await Viewer.open(shared.context, withQuery(probe.url, process.env.RFB_AVSYNC === '0' ? 'avsync=0' : ''));
  t.after(() => viewer.close());
  await viewer.waitForFrames(5, { extra: probe.logs });
  await click(viewer);
  await viewer.waitForStats((s) => s.audio.state === 'playing' && s.audio.avOffsetMs !== null && s.audio.framesDecoded >= 100,
    'sound and pictures playing', { extra: probe.logs });
  // Watch the picture's centre while the sound is recorded: when each flash reached the canvas.
  const seconds = 8;
  const watch = viewer.page.evaluate(async (ms) => {
    const seen = [];
    let bright = null;
    const end = performance.now() + ms;
    while (performance.now() < end) {
      const [[r]] = await window.rfbViewer.samplePixels([[160, 120]]);
      const now = performance.timeOrigin + performance.now();
      const isBright = r > 128;
      if (bright === false && isBright) seen.push(now);
      bright = isBright;
    }
    return seen;
  }, seconds * 1000);
  const recording = await record(viewer, seconds * 1000);
  const flashes = await watch;
  const heard = tickOnsets(recording);
  assert.ok(flashes.length >= seconds - 2, `flashes seen at ${flashes}`);
  assert.ok(heard.length >= seconds - 2, `ticks heard at ${heard}`);
  const offsets = flashes.map((f) => heard.reduce((best, h) => (Math.abs(h - f) < Math.abs(best) ? h - f : best), Infinity))
    .filter((o) => Math.abs(o) < 500);
  const sorted = [...offsets].sort((a, b) => Math.abs(a) - Math.abs(b));
  const p95 = Math.abs(sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))]);
  const stats = await viewer.stats();
  t.diagnostic(`sound minus picture per flash (ms): ${offsets.map((o) => o.toFixed(1)).join(' ')}; |offset| p95 ${p95.toFixed(1)} ms; viewer: ${JSON.stringify(stats.audio)}`);
  assert.ok(offsets.length >= seconds - 2, `flashes matched to ticks: ${offsets}`);
  assert.ok(p95 <= 20, `|A/V offset| p95 ${p95.toFixed(1)} ms (sound minus picture: ${offsets.map((o) => o.toFixed(1))})`);
});
