import assert from 'node:assert/strict';
import { test } from 'node:test';

import { formatAudio, formatBytes, formatMs, formatRenditions, formatServerStats, formatStats } from '../overlay.js';

/** @returns {import('../decode-worker.js').ViewerStats} */
function viewerStats(overrides = {}) {
  return {
    connected: true, envelope: 'binary', transport: 'websocket', clientId: 3, codec: 'h264',
    codecString: 'avc1.42C01E', width: 320, height: 240, framesReceived: 100, framesDecoded: 99,
    framesDropped: 1, decodeErrors: 0, protocolErrors: 0, keyframeRequests: 0, fps: 15, bitrateBps: 250_000,
    decodeLatencyMs: 2.5, lastFrameId: 98, reconnects: 0, refines: 0, exact: false, status: 'playing', server: null,
    latencyHistory: [], window: null, paintPath: null, renditions: null,
    ...overrides,
  };
}

const SERVER = {
  transport: 'websocket', latency_p50_us: 12_340, latency_p95_us: 20_060, latency_max_us: 141_000,
  paint_p50_us: 13_000, paint_p95_us: 21_000, fps: 15, bitrate_bps: 260_000, frames_dropped: 0,
  queued_bytes: 3000, keyframe_requests: 1, delivered_bps: 250_000, target_bps: 595_000,
};

test('the sound\'s line: its state until it plays, then latency, buffer, underruns and A/V offset', () => {
  const audio = { state: 'playing', channels: 2, packetsReceived: 90, framesDecoded: 88, decodeErrors: 0, underruns: 1,
    depthMs: 24.4, targetMs: 30, skippedMs: 0, latencyMs: 21.6, outputLatencyMs: 36.2, avOffsetMs: -0.4, startMs: 80, videoHoldMs: 35 };
  assert.equal(formatAudio(audio), 'sound: 22 ms +36 ms out  buffer 24 ms  underruns 1  A/V +0 ms');
  assert.equal(formatAudio({ ...audio, state: 'waiting-for-click' }), 'sound: waiting-for-click');
  assert.ok(formatStats(viewerStats({ audio })).includes('sound: 22 ms +36 ms out  buffer 24 ms  underruns 1  A/V +0 ms'));
  assert.ok(!formatStats(viewerStats({ audio: { ...audio, state: 'none' } })).some((l) => l.startsWith('sound')));
});

test('microseconds read as milliseconds', () => {
  assert.equal(formatMs(12_340), '12.3 ms');
  assert.equal(formatMs(0), '0.0 ms');
  assert.equal(formatMs(141_000), '141 ms');
  assert.equal(formatMs(null), '-');
});

test('bytes read in B, KiB, MiB', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(3000), '3 KiB');
  assert.equal(formatBytes(5 * 1024 * 1024), '5.0 MiB');
  assert.equal(formatBytes(null), '-');
});

test('no server line until the server sends its stats', () => {
  const lines = formatStats(viewerStats());
  assert.equal(lines.length, 5);
  assert.ok(lines.every((l) => !l.startsWith('server:')), lines.join('\n'));
});

test('the server line: render→decoded percentiles and painted p50', () => {
  const lines = formatStats(viewerStats({ server: SERVER }));
  assert.equal(lines[5], 'server: render→decoded p50 12.3 ms p95 20.1 ms max 141 ms, painted p50 13.0 ms');
  assert.equal(lines[6], 'server: websocket  15.0 fps  260 kbit/s  dropped 0  queued 3 KiB  key req 1');
  assert.equal(lines[7], 'server: delivered 250 kbit/s  encoder target 595 kbit/s');
});

test('the measured link shows next to what was delivered', () => {
  const lines = formatServerStats({ ...SERVER, capacity_bps: 7_200_000 });
  assert.equal(lines[2], 'server: delivered 250 kbit/s  link >= 7.20 Mbit/s  encoder target 595 kbit/s');
});

test('without rate control the overlay says so', () => {
  const lines = formatServerStats({ ...SERVER, target_bps: null, delivered_bps: null });
  assert.equal(lines[2], 'server: delivered -  encoder target - (rate control off)');
});

test('figures the server left out show as -', () => {
  const lines = formatServerStats({ ...SERVER, latency_p50_us: null, latency_p95_us: null, latency_max_us: null, paint_p50_us: null, fps: null, bitrate_bps: null });
  assert.equal(lines[0], 'server: render→decoded p50 - p95 - max -, painted p50 -');
  assert.match(lines[1], /^server: websocket {2}- fps {2}- {2}dropped 0/);
});

test('refine stills: how many, and whether the picture shown is the exact one', () => {
  assert.equal(formatStats(viewerStats())[1], '320x240  avc1.42C01E');
  assert.equal(formatStats(viewerStats({ refines: 2, exact: true }))[1], '320x240  avc1.42C01E  refined 2 (exact now)');
  assert.equal(formatStats(viewerStats({ refines: 2, exact: false }))[1], '320x240  avc1.42C01E  refined 2');
});

test('the paint path in use is shown', () => {
  assert.equal(formatStats(viewerStats({ paintPath: '2d drawImage VideoFrame' }))[2], 'decode 2.5 ms  frame 98  paint: 2d drawImage VideoFrame');
});

test('renditions: a line when there are several, the one shown starred, and who chose it', () => {
  const renditions = {
    current: 1,
    chosen: null,
    renditions: [
      { id: 0, codec: 'h264', width: 1280, height: 720, bitrateBps: 1_500_000 },
      { id: 1, codec: 'h264', width: 640, height: 360, bitrateBps: 600_000 },
    ],
  };
  assert.equal(formatRenditions(renditions), 'renditions: 0 1280x720 1.50 Mbit/s  *1 640x360 600 kbit/s  (by link)');
  assert.match(formatRenditions({ ...renditions, chosen: 1 }), /\(chose 1\)$/);
  assert.ok(formatStats(viewerStats({ renditions })).some((l) => l.startsWith('renditions: ')));
  const one = { ...renditions, renditions: renditions.renditions.slice(0, 1), current: 0 };
  assert.ok(!formatStats(viewerStats({ renditions: one })).some((l) => l.startsWith('renditions')));
});
