#!/usr/bin/env node
// The sound's benchmark (make bench-audio; make bench runs it too): a picture and a tone into
// rfbsink, one headless Chromium viewer on loopback playing both, measured at steady state for
// --seconds (60 by default): underruns, the sound's latency from a packet's arrival to its first
// sample handed to the output (median of the viewer's per-second medians) and the output's own
// latency as the browser reports it, the A/V offset (sound heard minus picture painted, p95 of
// |offset|) with the time pictures wait for their sound, and the time from the start of sound to
// its first sample heard. Writes tests/bench/out/audio.json.
//
//   node tests/bench/audio.mjs [--seconds N] [--quick] [--only REGEX]

import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startPipeline, withQuery } from '../e2e/lib.mjs';
import { launchBareBrowser } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: { seconds: { type: 'string' }, only: { type: 'string' }, quick: { type: 'boolean' } },
});
const SECONDS = Number(opts.seconds ?? (opts.quick ? 15 : 60));
const WARMUP_MS = 5000;

const video = (w, h, fps) => `videotestsrc is-live=true pattern=ball ! video/x-raw,width=${w},height=${h},framerate=${fps}/1 `
  + `! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=${2 * fps} ! sink.`;
const tone = (frameMs) => 'audiotestsrc is-live=true freq=440 volume=0.3 ! audio/x-raw,rate=48000,channels=2 '
  + `! opusenc frame-size=${frameMs} ! sink.audio`;

const CASES = [
  { name: '720p30 + Opus 20 ms, WebSocket', line: `${video(1280, 720, 30)} ${tone(20)}`, query: 'transport=ws' },
  { name: '720p30 + Opus 10 ms, WebTransport', line: `${video(1280, 720, 30)} ${tone(10)}`, query: 'transport=wt' },
  { name: '1080p60 + Opus 10 ms, WebSocket', line: `${video(1920, 1080, 60)} ${tone(10)}`, query: 'transport=ws' },
].filter((c) => !opts.only || new RegExp(opts.only, 'i').test(c.name));

const median = (xs) => (xs.length ? [...xs].sort((a, b) => a - b)[xs.length >> 1] : null);
const p95abs = (xs) => (xs.length ? xs.map(Math.abs).sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))] : null);
const f = (v, d = 1) => (v === null || v === undefined ? '-' : Number(v).toFixed(d));

async function run(c, browser) {
  const pipeline = await startPipeline(`rfbsink name=sink port=0 ${c.line}`);
  const page = await browser.context.newPage();
  try {
    await page.goto(withQuery(pipeline.url, c.query));
    const stats = () => page.evaluate(() => window.rfbViewer?.stats() ?? null);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const s = await stats().catch(() => null);
      if (s?.audio?.state === 'waiting-for-click') break;
      if (Date.now() > deadline) throw new Error(`no sound announced: ${JSON.stringify(s?.audio)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // --autoplay-policy=no-user-gesture-required stands in for the click.
    await page.evaluate(() => window.rfbViewer.startAudio());
    await new Promise((r) => setTimeout(r, WARMUP_MS));
    const first = await stats();
    const latencies = [];
    const offsets = [];
    const holds = [];
    for (let i = 0; i < SECONDS; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const s = await stats();
      if (s.audio.latencyMs !== null) latencies.push(s.audio.latencyMs);
      if (s.audio.avOffsetMs !== null) offsets.push(s.audio.avOffsetMs);
      if (s.audio.videoHoldMs !== null) holds.push(s.audio.videoHoldMs);
    }
    const last = await stats();
    return {
      case: c.name,
      transport: last.transport,
      seconds: SECONDS,
      underruns: last.audio.underruns - first.audio.underruns,
      skipped_ms: last.audio.skippedMs - first.audio.skippedMs,
      decode_errors: last.audio.decodeErrors,
      latency_p50_ms: median(latencies),
      output_latency_ms: last.audio.outputLatencyMs,
      av_offset_p95_abs_ms: p95abs(offsets),
      video_hold_ms: median(holds),
      start_ms: last.audio.startMs,
      fps: last.fps,
      server_latency_p50_ms: last.server ? last.server.latency_p50_us / 1000 : null,
    };
  } catch (e) {
    return { case: c.name, error: `${e instanceof Error ? e.message : e}\n${pipeline.logs().slice(-1500)}` };
  } finally {
    await page.close().catch(() => {});
    await pipeline.stop();
  }
}

async function main() {
  const browser = await launchBareBrowser({ width: 1280, height: 720 }, ['--autoplay-policy=no-user-gesture-required']);
  const results = [];
  try {
    for (const c of CASES) {
      console.log(`audio bench: ${c.name} (${SECONDS} s)`);
      results.push(await run(c, browser));
    }
  } finally {
    await browser.close();
  }
  const rows = [['case', 'underruns', 'latency p50 ms', '+ output ms', '|A/V| p95 ms', 'picture waits ms', 'start ms', 'fps', 'render->decoded ms']];
  for (const r of results) {
    rows.push(r.error ? [r.case, 'error (below)'] : [
      r.case, `${r.underruns} in ${r.seconds} s`, f(r.latency_p50_ms), f(r.output_latency_ms), f(r.av_offset_p95_abs_ms),
      f(r.video_hold_ms), f(r.start_ms, 0), f(r.fps, 0), f(r.server_latency_p50_ms),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '').length)));
  for (const r of rows) console.log(r.map((v, i) => String(v ?? '').padEnd(widths[i])).join('  '));
  for (const r of results.filter((x) => x.error)) console.log(`${r.case}: ${r.error}`);
  mkdirSync(path.join(HERE, 'out'), { recursive: true });
  const out = path.join(HERE, 'out', 'audio.json');
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), seconds: SECONDS, results }, null, 2));
  console.log(`wrote ${out}`);
  if (results.some((r) => r.error)) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
