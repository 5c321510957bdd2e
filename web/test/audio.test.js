// The sound's pure parts: the jitter buffer (audio-buffer.js) and the audio messages (protocol.js).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JitterBuffer, START_TARGET_MS, UNDERRUN_STEP_MS, EXCESS_MS, MIN_TARGET_MS, JOIN_MS } from '../audio-buffer.js';
import { DecodeOrder, lateP99 } from '../sound.js';
import { MessageDecoder, parseAudioConfig, parseStreamMessage, ProtocolError, withAudio } from '../protocol.js';

const RATE = 48000;
/** A chunk of `ms` of one value (mono). */
const chunk = (ms, value, timestampUs = 0) => ({ planes: [new Float32Array((RATE * ms) / 1000).fill(value)], timestampUs, arrivedMs: 0 });
const quantum = () => [new Float32Array(128), new Float32Array(128)];

test('the jitter buffer waits for its target, then plays in order on every channel', () => {
  const b = new JitterBuffer(RATE);
  b.push(chunk(START_TARGET_MS - 10, 0.1, 1000));
  const out = quantum();
  assert.equal(b.read(out), null, 'silence below the target');
  assert.equal(out[0][0], 0);
  b.push(chunk(20, 0.2, 1000 + (START_TARGET_MS - 10) * 1000));
  const played = b.read(out);
  assert.deepEqual(played, { timestampUs: 1000, started: { arrivedMs: 0, at: 0 } });
  assert.ok(Math.abs(out[0][0] - 0.1) < 1e-6 && Math.abs(out[1][0] - 0.1) < 1e-6, 'mono on both channels');
  assert.equal(b.depth, (RATE * (START_TARGET_MS + 10)) / 1000 - 128);
  // The second quantum starts 128 samples later.
  assert.equal(Math.round(b.read(out).timestampUs), 1000 + Math.round((128 * 1e6) / RATE));
});

test('an underrun is counted and raises the target; a burst is cut back to it', () => {
  const b = new JitterBuffer(RATE);
  b.push(chunk(START_TARGET_MS, 0.5));
  const out = quantum();
  while (b.depth >= 128) b.read(out);
  b.read(out);
  assert.equal(b.underruns, 1);
  assert.equal(b.targetMs, START_TARGET_MS + UNDERRUN_STEP_MS);
  assert.equal(b.playing, false);
  b.push(chunk(b.targetMs, 0.5));
  b.read(out);
  assert.equal(b.playing, true);
  b.push(chunk(EXCESS_MS + 100, 0.5));
  assert.ok(b.depthMs <= b.targetMs + 1, `depth ${b.depthMs} ms after a burst, target ${b.targetMs}`);
  assert.ok(b.skipped > 0);
});

/** A 440 Hz sine, `ms` long, from sample `from` (stereo). */
const sine = (ms, from) => {
  const n = (RATE * ms) / 1000;
  const plane = new Float32Array(n);
  for (let i = 0; i < n; i++) plane[i] = 0.5 * Math.sin((2 * Math.PI * 440 * (from + i)) / RATE);
  return { planes: [plane, plane.slice()], timestampUs: (from * 1e6) / RATE, arrivedMs: 0 };
};

/**
 * Plays `seconds` of 20 ms packets of a sine through `b`, each sent as its time comes unless
 * `stalled(played)` (nothing arrives then; the late packets come at once after), and returns what
 * came out (first channel, with `record`) and the depth after each packet.
 * @param {JitterBuffer} b
 * @param {number} seconds
 * @param {{stalled?: (played: number) => boolean, record?: boolean}} [how]
 */
function play(b, seconds, { stalled = () => false, record = false } = {}) {
  const out = quantum();
  const heard = [];
  const depths = [];
  let sent = 0;
  const packet = (RATE * 20) / 1000;
  for (let played = 0; played < RATE * seconds; played += 128) {
    while (!stalled(played) && sent <= played) {
      b.push(sine(20, sent));
      sent += packet;
      depths.push(b.depthMs);
    }
    b.read(out);
    if (record) heard.push(...out[0]);
  }
  return { heard, depths };
}

test('once stalls stop, the target comes back down and the depth follows it, without a click', () => {
  const b = new JitterBuffer(RATE);
  // As after many underruns on a busy machine: a target of 150 ms, filled up to it.
  b.targetMs = 150;
  const { heard, depths } = play(b, 30, { record: true });
  assert.equal(b.underruns, 0);
  assert.equal(b.targetMs, MIN_TARGET_MS, 'the target is back at its least');
  const lateDepth = Math.max(...depths.slice(-100));
  assert.ok(lateDepth <= MIN_TARGET_MS + 20 + 6, `depth ${lateDepth} ms at the end: the target's, not the 150 ms it filled to`);
  assert.ok(b.skipped > (RATE * 100) / 1000, `${b.skipped} frames drained`);
  // The joins are cut at the sine's period: no sample jumps by more than the sine's steepest step.
  const steepest = (0.5 * 2 * Math.PI * 440) / RATE;
  let worst = 0;
  const start = heard.findIndex((v) => v !== 0);
  for (let i = start + 1; i < heard.length; i++) worst = Math.max(worst, Math.abs(heard[i] - heard[i - 1]));
  assert.ok(worst <= steepest * 1.2, `a step of ${worst.toFixed(4)} (the sine's steepest ${steepest.toFixed(4)})`);
});

test('stalls that keep coming keep their depth', () => {
  const b = new JitterBuffer(RATE);
  b.targetMs = 100;
  // Every 2.5 s nothing arrives for 60 ms.
  play(b, 30, { stalled: (played) => played % (RATE * 2.5) < (RATE * 60) / 1000 });
  assert.equal(b.underruns, 0, 'the depth that covers the stalls stays');
  assert.ok(b.targetMs >= 70, `target ${b.targetMs} ms`);
});

test('random stalls: about as many underruns as a slow decay, and the latency back once they stop', () => {
  // Ten runs of 60 s with stalls of 20-120 ms, 2 s apart on average (a busy machine), then 30 s
  // of a steady link. A decay of 5 ms each 5 s without draining (the buffer before this one) had
  // 9.0 underruns a run and a depth of 88 ms (as each packet came) in the last 15 s; this one
  // 10.6 and 44 ms; decaying without waiting for a quiet spell, 17.2 underruns.
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  let underruns = 0;
  let quietDepth = 0;
  for (let run = 0; run < 10; run++) {
    const b = new JitterBuffer(RATE);
    let stallUntil = 0;
    let nextStall = RATE * 2;
    const stalled = (played) => {
      if (played < RATE * 60 && played >= nextStall) {
        stallUntil = played + RATE * (0.02 + 0.1 * random());
        nextStall = played + RATE * -Math.log(1 - random()) * 2;
      }
      return played < stallUntil;
    };
    const { depths } = play(b, 90, { stalled });
    underruns += b.underruns;
    // The last 15 s: 750 packets.
    const quiet = depths.slice(-750);
    quietDepth += quiet.reduce((a, d) => a + d, 0) / quiet.length;
  }
  assert.ok(underruns / 10 <= 12, `${underruns / 10} underruns a run`);
  assert.ok(quietDepth / 10 <= 50, `a depth of ${(quietDepth / 10).toFixed(1)} ms 15 s after the stalls stopped`);
});

test('a steady link at the least target drains nothing and never runs dry', () => {
  const b = new JitterBuffer(RATE);
  play(b, 60);
  assert.equal(b.underruns, 0);
  assert.equal(b.skipped, 0);
  assert.equal(b.targetMs, MIN_TARGET_MS);
});

test('a cut keeps timestamps true: what plays after it is labelled with its own time', () => {
  const b = new JitterBuffer(RATE);
  b.push(sine(100, 0));
  const out = quantum();
  b.read(out);
  const taken = b.cut((RATE * 10) / 1000, (RATE * 15) / 1000);
  assert.ok(taken >= 480 && taken <= 720, `${taken} frames`);
  const played = b.read(out);
  // The join plays the sound from 128 + taken frames on.
  assert.equal(Math.round(played.timestampUs), Math.round(((128 + taken) * 1e6) / RATE));
  assert.equal(played.started, null, 'a join is not a packet\'s start');
  assert.equal(b.skipped, taken);
  assert.ok(Math.abs(b.depthMs - (100 - (128 * 2 * 1000) / RATE - (taken * 1000) / RATE)) < 1e-6);
  assert.ok(JOIN_MS > 0);
});

test('decoded sound keeps its packet\'s timestamp when the decoder counts its own (packets skipped before it)', () => {
  const order = new DecodeOrder();
  // Packets of 10 ms at 0, 10, 40 and 50 ms: those at 20 and 30 ms were skipped.
  for (const [ts, at] of [[0, 1], [10_000, 2], [40_000, 3], [50_000, 4]]) order.sent(ts, at);
  assert.deepEqual(order.take(0), { timestampUs: 0, arrivedMs: 1 });
  assert.deepEqual(order.take(10_000), { timestampUs: 10_000, arrivedMs: 2 });
  // Chromium labels the next chunk 20 ms (its own count of samples): it is the packet of 40 ms.
  assert.deepEqual(order.take(20_000), { timestampUs: 40_000, arrivedMs: 3 });
  assert.deepEqual(order.take(30_000), { timestampUs: 50_000, arrivedMs: 4 });
  assert.equal(order.take(60_000), null, 'nothing pending');
  // A decoder that keeps the packets' timestamps and gave nothing for the first two.
  for (const [ts, at] of [[0, 1], [2_500, 2], [5_000, 3]]) order.sent(ts, at);
  assert.deepEqual(order.take(5_000), { timestampUs: 5_000, arrivedMs: 3 });
  assert.equal(order.pending.length, 0);
  order.sent(7_500, 5);
  order.clear();
  assert.equal(order.take(7_500), null, 'a new decoder starts with nothing pending');
});

test('audio messages: config, binary RA packets, JSON headers, and the ask for sound', () => {
  assert.deepEqual(parseAudioConfig({ channel: 'rfb.control', kind: 'audio-config', config_id: 2, codec: 'opus', sample_rate: 48000, channels: 1 }),
    { configId: 2, codec: 'opus', sampleRate: 48000, channels: 1 });
  assert.throws(() => parseAudioConfig({ config_id: 1, codec: 'aac', sample_rate: 48000, channels: 2 }), ProtocolError);
  assert.throws(() => parseAudioConfig({ config_id: 1, codec: 'opus', sample_rate: 48000, channels: 6 }), ProtocolError);
  const bytes = new Uint8Array(26);
  bytes.set([0x52, 0x41, 1, 0]);
  const view = new DataView(bytes.buffer);
  view.setUint32(4, 3, true);
  view.setBigUint64(8, 7n, true);
  view.setBigInt64(16, 40000n, true);
  bytes.set([0xf8, 0x01], 24);
  const d = new MessageDecoder('binary').decode(bytes);
  assert.equal(d.type, 'audio');
  assert.deepEqual(d.type === 'audio' && { ...d.packet, payload: [...d.packet.payload] }, { seq: 7, timestampUs: 40000, configId: 3, payload: [0xf8, 1] });
  assert.equal(parseStreamMessage(bytes).type, 'audio');
  const json = new MessageDecoder('json');
  assert.equal(json.decode(JSON.stringify({ type: 'audio', channel: 'rfb.audio', codec: 'opus', timestamp_us: 5, frame_id: 1, byte_length: 2, config_id: 1 })).type, 'pending');
  const p = json.decode(new Uint8Array([1, 2]));
  assert.equal(p.type, 'audio');
  assert.equal(new URL(withAudio('ws://127.0.0.1:8080/ws?envelope=binary')).searchParams.get('audio'), '1');
  assert.equal(new URL(withAudio('https://127.0.0.1:8080/wt', 'datagram')).searchParams.get('audio'), 'datagram');
});

test('lateP99: the 99th percentile of packets\' transit above the quickest one', () => {
  assert.equal(lateP99([1, 2, 3]), null, 'too few to say');
  // 100 packets 10 ms apart on a 30 ms path, two of them held 200 ms (a retransmission).
  const transits = Array.from({ length: 100 }, (_, i) => 1e6 + 30 + (i % 7));
  assert.equal(lateP99(transits), 6);
  transits[40] += 200;
  transits[41] += 190;
  // 40 % 7 = 5 and 41 % 7 = 6: 205 and 196 ms over the quickest; p99 of 100 is the second worst.
  assert.equal(lateP99(transits), 196);
});
