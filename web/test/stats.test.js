import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  graphScaleMs, History, parseServerStats, SERVER_STATS_NUMBERS, SlidingWindow, sparklinePoints, StreamRates,
} from '../stats.js';

test('sliding window keeps the last second', () => {
  const w = new SlidingWindow(1000);
  w.push(0, 10);
  w.push(500, 20);
  w.push(900, 30);
  assert.equal(w.count(900), 3);
  assert.equal(w.sum(900), 60);
  assert.equal(w.mean(900), 20);
  assert.equal(w.max(900), 30);
  // At t=1000 the sample at t=0 is exactly one window old: gone.
  assert.equal(w.count(1000), 2);
  assert.equal(w.sum(1000), 50);
  assert.equal(w.count(1500), 1);
  assert.equal(w.count(1900), 0);
  assert.equal(w.mean(1900), 0);
  assert.equal(w.max(1900), 0);
  assert.equal(w.sum(1900), 0);
});

test('sliding window rate is per second', () => {
  const w = new SlidingWindow(500);
  w.push(100, 1000);
  w.push(200, 1000);
  assert.equal(w.rate(300), 4000);
});

test('sliding window survives many samples (compaction)', () => {
  const w = new SlidingWindow(1000);
  for (let t = 0; t < 100_000; t += 10) w.push(t, 1);
  // Samples at 98_990 < t <= 99_990: 99_000, 99_010, ..., 99_990.
  assert.equal(w.count(99_990), 100);
  assert.ok(w.times.length < 5000, `arrays grew to ${w.times.length}`);
});

test('sliding window rejects a non-positive window', () => {
  assert.throws(() => new SlidingWindow(0), RangeError);
});

test('30 fps stream of 5000-byte frames with 4 ms decode', () => {
  const rates = new StreamRates(1000);
  const period = 1000 / 30;
  for (let i = 0; i < 90; i++) {
    const t = 10_000 + i * period;
    rates.frameReceived(t, 5000);
    rates.frameDecoded(t + 4, 4);
  }
  const now = 10_000 + 89 * period + 4;
  const s = rates.snapshot(now);
  assert.equal(s.fps, 30);
  assert.equal(s.bitrateBps, 30 * 5000 * 8);
  assert.ok(Math.abs(s.decodeLatencyMs - 4) < 1e-9, `latency ${s.decodeLatencyMs}`);
});

test('a sparse stream reads as what it is, and idle reads as zero', () => {
  const rates = new StreamRates(1000);
  rates.frameReceived(0, 1000);
  rates.frameDecoded(10, 10);
  rates.frameReceived(600, 3000);
  rates.frameDecoded(630, 30);
  assert.deepEqual(rates.snapshot(700), { fps: 2, bitrateBps: 32000, decodeLatencyMs: 20 });
  assert.deepEqual(rates.snapshot(5000), { fps: 0, bitrateBps: 0, decodeLatencyMs: 0 });
  rates.frameDecoded(5001, 2);
  rates.clear();
  assert.equal(rates.snapshot(5002).fps, 0);
});

// --- the server's telemetry ---------------------------------------------------------------------

const STATS_MESSAGE = {
  channel: 'rfb.stats', kind: 'stats', transport: 'webtransport',
  latency_p50_us: 12_300, latency_p95_us: 20_100, latency_max_us: 41_000,
  paint_p50_us: 13_000, paint_p95_us: 21_500, fps: 30, bitrate_bps: 2_400_000,
  delivered_bps: 2_350_000, target_bps: 1_800_000, frames_dropped: 2, queued_bytes: 0, keyframe_requests: 1,
  rendition: 1, rendition_switches: 3, capacity_bps: null,
};

test('a stats message parses into its figures', () => {
  const { channel: _c, kind: _k, ...figures } = STATS_MESSAGE;
  assert.deepEqual(parseServerStats(STATS_MESSAGE), figures);
});

test('stats figures that are missing or not numbers are null; other kinds are not stats', () => {
  const s = parseServerStats({ channel: 'rfb.stats', kind: 'stats', latency_p50_us: 'soon', fps: -1, latency_max_us: NaN });
  assert.equal(s.transport, 'unknown');
  for (const name of SERVER_STATS_NUMBERS) assert.equal(s[name], null, name);
  assert.equal(parseServerStats({ channel: 'rfb.stats', kind: 'ack', frame_id: 1 }), null);
  assert.equal(parseServerStats(null), null);
});

test('history keeps the last minute, oldest first, with ages', () => {
  const h = new History(60_000, 128);
  for (let t = 0; t <= 90_000; t += 1000) h.push(t, t / 1000);
  const e = h.entries(90_000);
  // At 90 s the window is (30 s, 90 s]: 31 .. 90.
  assert.equal(e.length, 60);
  assert.deepEqual(e[0], { ageMs: 59_000, value: 31 });
  assert.deepEqual(e[59], { ageMs: 0, value: 90 });
  assert.equal(h.entries(200_000).length, 0);
});

test('history is a ring: when full the oldest sample goes, whatever its age', () => {
  const h = new History(60_000, 4);
  for (let t = 0; t < 10; t++) h.push(t, t);
  assert.deepEqual(h.entries(10).map((x) => x.value), [6, 7, 8, 9]);
  assert.equal(h.times.length, 4);
  h.clear();
  assert.deepEqual(h.entries(10), []);
  h.push(11, 'a');
  assert.deepEqual(h.entries(12), [{ ageMs: 1, value: 'a' }]);
});

test('history rejects a bad window or capacity', () => {
  assert.throws(() => new History(0), RangeError);
  assert.throws(() => new History(1000, 0), RangeError);
  assert.throws(() => new History(1000, 2.5), RangeError);
});

test('graph scale is the next 1-2-5 step, at least the minimum', () => {
  assert.equal(graphScaleMs(0), 1);
  assert.equal(graphScaleMs(0.3), 1);
  assert.equal(graphScaleMs(1), 1);
  assert.equal(graphScaleMs(1.01), 2);
  assert.equal(graphScaleMs(3.2), 5);
  assert.equal(graphScaleMs(5), 5);
  assert.equal(graphScaleMs(12), 20);
  assert.equal(graphScaleMs(41), 50);
  assert.equal(graphScaleMs(100), 100);
  assert.equal(graphScaleMs(101), 200);
  assert.equal(graphScaleMs(4321), 5000);
  assert.equal(graphScaleMs(0.3, 0.1), 0.5);
  assert.equal(graphScaleMs(NaN), 1);
  assert.equal(graphScaleMs(-Infinity), 1);
});

test('sparkline points: now at the right, the scale at the top, clamped to the box', () => {
  const box = { windowMs: 60_000, width: 240, height: 48, scale: 20 };
  assert.deepEqual(sparklinePoints([
    { ageMs: 60_000, value: 0 },
    { ageMs: 30_000, value: 10 },
    { ageMs: 0, value: 20 },
    { ageMs: 0, value: 35 }, // over the scale: at the top
    { ageMs: 90_000, value: -1 }, // out of the window: at the left, at the bottom
  ], box), [[0, 48], [120, 24], [240, 0], [240, 0], [0, 48]]);
});
