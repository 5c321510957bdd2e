#!/usr/bin/env node
// The lossless raw path's benchmark (make bench-lossless; make bench runs it too): raw video into
// rfbsink, one headless Chromium viewer on loopback, and the same content through pngenc and
// jpegenc in the same run. Prints, per case: frames painted per second, lossless pixel throughput
// (Gbit/s of source pixels painted), bytes on the wire per frame, render() -> decoded latency
// (the server's, from the viewer's acks), and CPU per frame of the element's process and of the
// browser. Writes tests/bench/out/lossless.json.
//
//   node tests/bench/lossless.mjs [--seconds N] [--only REGEX]

import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startPipeline, withQuery } from '../e2e/lib.mjs';
import { launchBareBrowser } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: { seconds: { type: 'string' }, only: { type: 'string' }, quick: { type: 'boolean' } },
});
const SECONDS = Number(opts.seconds ?? (opts.quick ? 5 : 10));
const CLK_TCK = 100;

/** bits per pixel of the source, for the throughput figure */
const BPP = { RGBA: 32, GRAY8: 8, GRAY16_LE: 16 };

const src = (pattern, format, w, h, fps, extra = '') =>
  `videotestsrc is-live=true pattern=${pattern} ${extra} ! video/x-raw,format=${format},width=${w},height=${h},framerate=${fps}/1`;

// Noise that really changes every frame (videotestsrc's snow repeats itself at large sizes): a
// file of NOISE_FRAMES random pictures, looped and paced by rfbsink's clock.
const NOISE_FRAMES = 6;
const NOISE_DIR = mkdtempSync(path.join(tmpdir(), 'rfbsink-bench-noise-'));
process.on('exit', () => rmSync(NOISE_DIR, { recursive: true, force: true }));
function noise(format, w, h, fps) {
  const bytes = { rgba: 4, gray8: 1, 'gray16-le': 2 }[format];
  const file = path.join(NOISE_DIR, `${format}-${w}x${h}.raw`);
  writeFileSync(file, randomBytes(w * h * bytes * NOISE_FRAMES));
  return `multifilesrc location=${file} loop=true ! rawvideoparse format=${format} width=${w} height=${h} framerate=${fps}/1`;
}

// The same source for the lossless path and its png/jpeg peers.
const CASES = [
  { name: '1080p30 RGBA moving bars (all tiles change)', source: src('smpte', 'RGBA', 1920, 1080, 30, 'horizontal-speed=8'), format: 'RGBA', w: 1920, h: 1080, fps: 30, peers: true },
  { name: '1080p30 RGBA noise (incompressible)', source: () => noise('rgba', 1920, 1080, 30), format: 'RGBA', w: 1920, h: 1080, fps: 30 },
  { name: '4096x4096 GRAY8 noise (worst case)', source: () => noise('gray8', 4096, 4096, 15), format: 'GRAY8', w: 4096, h: 4096, fps: 15, peers: true },
  { name: '4096x4096 GRAY8 noise at 30 fps', source: () => noise('gray8', 4096, 4096, 30), format: 'GRAY8', w: 4096, h: 4096, fps: 30 },
  { name: '2048x2048 GRAY16 noise at 30 fps', source: () => noise('gray16-le', 2048, 2048, 30), format: 'GRAY16_LE', w: 2048, h: 2048, fps: 30 },
  { name: '2048x2048 GRAY16 30fps moving', source: src('smpte', 'GRAY16_LE', 2048, 2048, 30, 'horizontal-speed=8'), format: 'GRAY16_LE', w: 2048, h: 2048, fps: 30 },
  { name: '1080p30 RGBA sparse (a small ball moves)', source: src('ball', 'RGBA', 1920, 1080, 30, 'motion=wavy'), format: 'RGBA', w: 1920, h: 1080, fps: 30 },
];

function cpuTicks(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** CPU ticks of every process whose command line mentions `needle` (the browser's profile). */
function cpuTicksOf(needle) {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle)) total += cpuTicks(pid);
    } catch { /* gone */ }
  }
  return total;
}

async function run(browser, c, { encoder = null, label }) {
  const source = typeof c.source === 'function' ? (c.source = c.source()) : c.source;
  const line = encoder
    ? `${source} ! videoconvert ! ${encoder} ! rfbsink port=0`
    : `${source} ! rfbsink port=0`;
  const pipeline = await startPipeline(line);
  try {
    // The element's own page, 1280x720, as a person opens it (no DevTools network domain: see
    // launchBareBrowser).
    const page = await browser.context.newPage();
    await page.goto(withQuery(pipeline.url, '?transport=ws'));
    const viewer = { stats: () => page.evaluate(() => window.rfbViewer.stats()), close: () => page.close() };
    for (let waited = 0; ((await viewer.stats().catch(() => null))?.framesDecoded ?? 0) < 2; waited += 100) {
      if (waited > 30_000) throw new Error(`no frames in 30 s\n${pipeline.logs()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 1500)); // warm-up
    const s0 = await viewer.stats();
    const t0 = performance.now();
    const e0 = cpuTicks(pipeline.proc.pid);
    const b0 = cpuTicksOf(browser.profile);
    const latencies = [];
    const bitrates = [];
    while (performance.now() - t0 < SECONDS * 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      const s = await viewer.stats();
      if (s.server?.latency_p50_us != null) latencies.push(s.server.latency_p50_us / 1000);
      bitrates.push(s.bitrateBps);
    }
    const s1 = await viewer.stats();
    const dt = (performance.now() - t0) / 1000;
    const frames = s1.framesDecoded - s0.framesDecoded;
    const elementCpu = (cpuTicks(pipeline.proc.pid) - e0) / CLK_TCK;
    const browserCpu = (cpuTicksOf(browser.profile) - b0) / CLK_TCK;
    await viewer.close();
    const fps = frames / dt;
    const sorted = latencies.sort((a, b) => a - b);
    const wireBps = bitrates.reduce((a, b) => a + b, 0) / Math.max(1, bitrates.length);
    return {
      case: c.name,
      path: label,
      fps,
      source_fps: c.fps,
      pixel_gbps: (fps * c.w * c.h * BPP[c.format]) / 1e9,
      wire_mbps: wireBps / 1e6,
      bytes_per_frame: fps > 0 ? wireBps / 8 / fps : 0,
      latency_p50_ms: sorted.length ? sorted[Math.floor(sorted.length / 2)] : null,
      element_cpu_ms_per_frame: frames ? (elementCpu * 1000) / frames : null,
      browser_cpu_ms_per_frame: frames ? (browserCpu * 1000) / frames : null,
      dropped: s1.framesDropped - s0.framesDropped,
    };
  } finally {
    await pipeline.stop();
  }
}

const f = (x, d = 1) => (x === null || !Number.isFinite(x) ? '-' : x.toFixed(d));

async function main() {
  const only = opts.only ? new RegExp(opts.only, 'i') : null;
  const launched = await launchBareBrowser({ width: 1280, height: 720 });
  // The profile directory names the browser's processes (for their CPU time).
  const browser = { context: launched.context, profile: launched.profile };
  const results = [];
  try {
    for (const c of CASES) {
      if (only && !only.test(c.name)) continue;
      const paths = [{ label: 'rfbsink raw (lossless)' }];
      if (c.peers) {
        paths.push({ label: 'pngenc (lossless)', encoder: 'pngenc compression-level=1' });
        paths.push({ label: 'jpegenc q=90 (lossy)', encoder: 'jpegenc quality=90' });
      }
      for (const p of paths) {
        process.stderr.write(`${c.name}: ${p.label}...\n`);
        try {
          results.push(await run(browser, c, p));
        } catch (e) {
          results.push({ case: c.name, path: p.label, error: e.message.split('\n')[0] });
        }
      }
    }
  } finally {
    await launched.close();
  }
  const rows = [['case', 'path', 'fps', 'Gbit/s px', 'wire Mbit/s', 'KiB/frame', 'p50 ms', 'elem ms/f', 'browser ms/f']];
  for (const r of results) {
    rows.push(r.error ? [r.case, r.path, 'error (below)'] : [
      r.case, r.path, `${f(r.fps)}/${r.source_fps}`, f(r.pixel_gbps, 2), f(r.wire_mbps, 0),
      f(r.bytes_per_frame / 1024, 0), f(r.latency_p50_ms), f(r.element_cpu_ms_per_frame), f(r.browser_cpu_ms_per_frame),
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '').length)));
  for (const r of rows) console.log(r.map((v, i) => String(v ?? '').padEnd(widths[i])).join('  '));
  for (const r of results.filter((x) => x.error)) console.log(`${r.case}, ${r.path}: ${r.error.slice(0, 300)}`);
  // Ratios against the peers in this run.
  for (const c of CASES) {
    const raw = results.find((r) => r.case === c.name && r.path.startsWith('rfbsink') && !r.error);
    for (const peer of results.filter((r) => r.case === c.name && !r.path.startsWith('rfbsink') && !r.error)) {
      if (raw && peer.fps > 0) console.log(`${c.name}: rfbsink raw delivers ${f(raw.fps / peer.fps, 2)}x the frames of ${peer.path}`);
    }
  }
  mkdirSync(path.join(HERE, 'out'), { recursive: true });
  const out = path.join(HERE, 'out', 'lossless.json');
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), seconds: SECONDS, results }, null, 2));
  console.log(`wrote ${out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
