import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SlidingWindow, StreamRates } from '../stats.js';

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
