// Sound (docs/protocol.md, "Audio"): opusenc into rfbsink's audio pad, played by the viewer's
// AudioWorklet in headless Chromium. The tests check what a listener hears, taken from the
// worklet's output: the tone's pitch, clicks where the pipeline put them, the picture in step,
// and the page asking for the click that browsers want before they play sound.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requireElements, sharedBrowser, startPipeline, Viewer, withQuery, pollUntil } from './lib.mjs';
import { probeReady, startProbe } from './probe.mjs';
import { AV_LINE, checkAvSync, click, record } from './audio.mjs';

const shared = sharedBrowser();

const VIDEO = 'videotestsrc is-live=true pattern=smpte ! video/x-raw,width=320,height=240,framerate=30/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! s.';
const TONE = (freq) => `audiotestsrc is-live=true freq=${freq} volume=0.5 ! audio/x-raw,rate=48000,channels=2 ! opusenc frame-size=20 ! s.audio`;

/**
 * A 440 Hz tone over `query`'s transport: "Click for sound" until a click, then the pitch out
 * of the worklet, the sound soon after the click, and the picture going on.
 */
async function tone(t, query, transport) {
  if (!requireElements(t, ['opusenc', 'x264enc'])) return;
  const pipeline = await startPipeline(`rfbsink name=s port=0 ${VIDEO} ${TONE(440)}`);
  t.after(() => pipeline.stop());
  const viewer = await Viewer.open(shared.context, withQuery(pipeline.url, query));
  t.after(() => viewer.close());
  await viewer.waitForFrames(5, { extra: pipeline.logs });
  const before = await viewer.waitForStats((s) => s.audio.state === 'waiting-for-click', 'the stream\'s sound announced');
  assert.equal(before.transport, transport);
  assert.equal(before.audio.channels, 2);
  assert.equal(before.audio.framesDecoded, 0, 'nothing is decoded before the click');
  const prompt = await viewer.page.locator('.rfb-sound').textContent();
  assert.match(prompt ?? '', /Click for sound/);

  await click(viewer);
  const playing = await viewer.waitForStats((s) => s.audio.state === 'playing' && s.audio.framesDecoded >= 25,
    'sound playing', { extra: pipeline.logs });
  assert.equal(playing.audio.decodeErrors, 0);
  const { pitch, rms } = await record(viewer, 1000);
  assert.ok(Math.abs(pitch - 440) < 5, `heard ${pitch.toFixed(1)} Hz, expected 440 Hz (rms ${rms.toFixed(3)})`);
  assert.ok(rms > 0.2, `rms ${rms}`);
  const settled = await viewer.stats();
  t.diagnostic(`${transport}: audio ${JSON.stringify(settled.audio)}`);
  // A viewer that joins a stream hears it soon after its click: the context's start, the
  // worklet's module, one packet and the jitter buffer's first fill.
  assert.ok(settled.audio.startMs !== null && settled.audio.startMs < 400, `sound ${settled.audio.startMs} ms after the click`);
  assert.match(await viewer.page.locator('.rfb-sound').textContent() ?? '', /🔊/);
  if (query.includes('audio=datagram') && transport === 'webtransport') {
    // Every packet came as a datagram: none on the stream (which carries the config alone).
    assert.equal(settled.audio.datagrams, settled.audio.packetsReceived, 'packets by datagram');
  } else {
    assert.equal(settled.audio.datagrams, 0, 'no datagrams unless asked');
  }
  // The video goes on: sound never holds the picture up.
  const more = await viewer.waitForFrames(30, { from: settled.framesDecoded });
  assert.equal(more.decodeErrors, 0);
}

test('a tone plays after a click over WebSocket', (t) => tone(t, 'transport=ws', 'websocket'));
test('a tone plays after a click over WebTransport (sound on its own stream)', (t) => tone(t, 'transport=wt', 'webtransport'));
test('a tone over WebTransport datagrams (?audio=datagram)', (t) => tone(t, 'transport=wt&audio=datagram', 'webtransport'));
test('a tone with ?audio=datagram over WebSocket: the packets come in order on the socket', (t) => tone(t, 'transport=ws&audio=datagram', 'websocket'));
test('a tone over WebSocket with the JSON envelope', (t) => tone(t, 'transport=ws&envelope=json', 'websocket'));

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

test('A/V sync: a flash and a tick captured at the same instant are seen and heard together', async (t) => {
  if (!probeReady(t, ['opusenc', 'x264enc', 'videoconvert'])) return;
  // nav-probe.py feeds both appsrcs like a camera and a microphone: a white flash and a 1 kHz
  // tick at each whole second of running time.
  const probe = await startProbe(AV_LINE);
  t.after(() => probe.stop());
  const viewer = await Viewer.open(shared.context, withQuery(probe.url, process.env.RFB_AVSYNC === '0' ? 'avsync=0' : ''));
  t.after(() => viewer.close());
  await checkAvSync(t, viewer, probe.logs);
});
