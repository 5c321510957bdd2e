#!/usr/bin/env node
// The paint-path benchmark (make bench-paint; make bench runs it too): which way from a decoded
// VideoFrame to the screen costs a browser least. A recorded H.264 clip (x264enc, moving colour
// bars) is decoded with WebCodecs in a worker at its frame rate and handed to the screen by each
// path of tests/bench/paint-worker.js (2d drawImage, 2d desynchronized, bitmaprenderer, WebGL
// texture, MediaStreamTrackGenerator -> <video>), in headless Chromium (idle, and busy: its
// compositor's output recorded as a screen recorder does), Firefox ESR and WebKitGTK under Xvfb
// (idle). Per path:
// frames decoded and shown a second, frames replaced before they were shown, decode -> shown
// p50/p99, the paint call's time, and the browser's CPU (all its processes) per frame shown.
// Writes tests/bench/out/paint.json.
//
//   node tests/bench/paint.mjs [--seconds N] [--quick] [--only REGEX]

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import puppeteer from 'puppeteer-core';

import { gstEnv } from '../e2e/lib.mjs';
import { launchWebKit, webkitMissing } from '../e2e/webkit.mjs';
import { dist, launchBareBrowser, sleep, startRecorder, startServer } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.join(HERE, 'out');
const FIREFOX = process.env.RFB_FIREFOX ?? '/usr/bin/firefox-esr';
const { values: opts } = parseArgs({
  options: { seconds: { type: 'string' }, only: { type: 'string' }, quick: { type: 'boolean' } },
});
const SECONDS = Number(opts.seconds ?? (opts.quick ? 5 : 10));
const WARMUP_MS = 2000;
const CLK_TCK = 100;

const CLIPS = [
  { name: '1280x720@60', width: 1280, height: 720, fps: 60 },
  { name: '1920x1080@30', width: 1920, height: 1080, fps: 30 },
];
const PATHS = {
  chromium: ['2d', '2d-desync', 'bitmaprenderer', 'webgl', 'track'],
  // No MediaStreamTrackGenerator, no desynchronized 2d context, and (headless, no GPU) no WebGL
  // on an OffscreenCanvas in Firefox ESR 153.
  firefox: ['2d', 'bitmaprenderer'],
  // WebKitGTK 2.50 (Tauri's engine on Linux) under Xvfb: no generator, no WebGL on an OffscreenCanvas.
  webkit: ['2d', 'bitmaprenderer'],
};

/**
 * Records the clip once (cached in tests/bench/out/): 4 s of moving colour bars from x264enc, as
 * [1 byte key][4 bytes length][access unit] records (split at x264's access unit delimiters).
 */
function clip(c) {
  const file = path.join(OUT, `paint-${c.width}x${c.height}-${c.fps}.bin`);
  if (existsSync(file)) return file;
  const raw = path.join(OUT, `paint-${c.width}x${c.height}-${c.fps}.h264`);
  const line = `videotestsrc num-buffers=${4 * c.fps} pattern=smpte horizontal-speed=4 ! video/x-raw,width=${c.width},height=${c.height},framerate=${c.fps}/1 `
    + `! videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=${2 * c.fps} bitrate=${Math.round((c.width * c.height * c.fps) / 230_400) * 100} aud=true `
    + `! video/x-h264,profile=constrained-baseline,stream-format=byte-stream,alignment=au ! filesink location=${raw}`;
  const r = spawnSync('gst-launch-1.0', ['-q', ...line.split(' ')], { env: gstEnv(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`recording the clip failed: ${r.stderr}`);
  const bytes = readFileSync(raw);
  rmSync(raw);
  // Access units start at an AUD (00 00 00 01 09); an IDR slice (type 5) makes a key unit.
  const starts = [];
  for (let i = 0; i + 4 < bytes.length; i++) {
    if (bytes[i] === 0 && bytes[i + 1] === 0 && bytes[i + 2] === 0 && bytes[i + 3] === 1 && (bytes[i + 4] & 0x1f) === 9) starts.push(i);
  }
  const parts = [];
  starts.forEach((s, k) => {
    const unit = bytes.subarray(s, starts[k + 1] ?? bytes.length);
    let key = false;
    for (let i = 0; i + 3 < unit.length; i++) {
      if (unit[i] === 0 && unit[i + 1] === 0 && unit[i + 2] === 1 && (unit[i + 3] & 0x1f) === 5) { key = true; break; }
    }
    const head = Buffer.alloc(5);
    head.writeUInt8(key ? 1 : 0, 0);
    head.writeUInt32BE(unit.length, 1);
    parts.push(head, unit);
  });
  if (!starts.length || !parts[0].readUInt8(0)) throw new Error('the recorded clip does not start with a keyframe');
  writeFileSync(file, Buffer.concat(parts));
  return file;
}

function ticks(pid) {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return { ppid: Number(f[1]), cpu: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

/** CPU seconds of the processes whose command line has `needle`, or of `roots` and their descendants. */
function browserCpu({ needle, roots = [] }) {
  const procs = new Map();
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    const t = ticks(pid);
    if (!t) continue;
    let cmd = '';
    try { cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { continue; }
    procs.set(Number(pid), { ...t, cmd });
  }
  const mine = new Set();
  for (const [pid, p] of procs) if (needle && p.cmd.includes(needle)) mine.add(pid);
  if (roots.length) {
    for (const root of roots) mine.add(root);
    for (let grew = true; grew;) {
      grew = false;
      for (const [pid, p] of procs) if (!mine.has(pid) && mine.has(p.ppid)) { mine.add(pid); grew = true; }
    }
  }
  let total = 0;
  for (const pid of mine) total += procs.get(pid)?.cpu ?? 0;
  return total / CLK_TCK;
}

/** One path on one clip: the figures of the measured window. */
async function measure(browser, base, c, paintPath, busy) {
  const page = await browser.newPage();
  let recorder = null;
  try {
    const q = new URLSearchParams({ clip: `/bench/out/${path.basename(clip(c))}`, fps: String(c.fps), codec: 'avc1.42e028', path: paintPath });
    await page.goto(`${base}/bench/paint.html?${q}`);
    for (let i = 0; !(await page.evaluate(() => window.benchReady === true)); i++) {
      if (i > 100) throw new Error('the page did not start in 10 s');
      await sleep(100);
    }
    if (busy) recorder = await startRecorder(page);
    await sleep(WARMUP_MS);
    await page.evaluate(() => window.benchRead());
    const cpu0 = browserCpu(browser.cpu);
    const t0 = Date.now();
    await sleep(SECONDS * 1000);
    const s = await page.evaluate(() => window.benchRead());
    const seconds = (Date.now() - t0) / 1000;
    const cpu = browserCpu(browser.cpu) - cpu0;
    if (s.errors.length) throw new Error(s.errors.join('; '));
    if (!s.shown) throw new Error(`nothing shown (${s.decoded} decoded, ${s.handed} handed over)`);
    const lat = dist(s.latency);
    const paint = dist(s.paintMs);
    return {
      decodedFps: s.decoded / seconds,
      shownFps: s.shown / seconds,
      replaced: s.replaced,
      latencyP50: lat.p50,
      latencyP99: lat.p99,
      paintMsP50: paint.p50,
      browserCpuPercent: (cpu / seconds) * 100,
      browserCpuMsPerShown: (cpu * 1000) / s.shown,
      recordedFps: null,
    };
  } finally {
    if (recorder) await recorder.stop();
    await page.close().catch(() => {});
  }
}

const f = (v, d = 1) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : Number(v).toFixed(d));

async function main() {
  mkdirSync(OUT, { recursive: true });
  const { server, base } = await startServer();
  const rows = [];
  const engines = [];
  // Chromium: the bench's bare DevTools browser (the screencast recorder needs DevTools).
  engines.push({
    name: 'chromium',
    open: async () => {
      const b = await launchBareBrowser({ width: 1280, height: 720 }, ['--autoplay-policy=no-user-gesture-required']);
      return { newPage: () => b.context.newPage(), cpu: { needle: b.profile }, close: () => b.close(), recorder: true };
    },
  });
  if (existsSync(FIREFOX)) {
    engines.push({
      name: 'firefox',
      open: async () => {
        const profile = mkdtempSync(path.join(tmpdir(), 'rfbsink-bench-firefox-'));
        const b = await puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX, headless: true, userDataDir: profile,
          defaultViewport: { width: 1280, height: 720 } });
        const root = b.process()?.pid;
        return {
          newPage: async () => {
            const p = await b.newPage();
            return { goto: (u) => p.goto(u), evaluate: (fn, arg) => p.evaluate(fn, arg), close: () => p.close() };
          },
          cpu: { roots: [root] },
          close: async () => { await b.close().catch(() => {}); rmSync(profile, { recursive: true, force: true }); },
          recorder: false,
        };
      },
    });
  }
  if (!webkitMissing()) {
    engines.push({
      name: 'webkit',
      open: async () => {
        const wk = await launchWebKit();
        await wk.driver.setWindow(1280, 720).catch(() => {});
        // One window: each case navigates it.
        const page = {
          goto: (/** @type {string} */ u) => wk.driver.go(u),
          evaluate: async (/** @type {Function} */ fn, /** @type {any} */ arg) => {
            const r = await wk.driver.run(`return await (${fn})(arguments[0]);`, arg ?? null);
            if (r && typeof r === 'object' && 'error' in r && Object.keys(r).length === 1) throw new Error(r.error);
            return r;
          },
          close: () => wk.driver.go('about:blank'),
        };
        // Xvfb's CPU counts: it is this display's compositor.
        return { newPage: async () => page, cpu: { roots: wk.pids }, close: () => wk.close(), recorder: false };
      },
    });
  }
  try {
    for (const engine of engines) {
      const browser = await engine.open();
      try {
        for (const c of CLIPS) {
          for (const busy of browser.recorder ? [false, true] : [false]) {
            for (const p of PATHS[engine.name]) {
              const name = `${engine.name} ${c.name} ${p}${busy ? ' busy' : ''}`;
              if (opts.only && !new RegExp(opts.only, 'i').test(name)) continue;
              process.stderr.write(`paint: ${name}... `);
              try {
                const r = { name, engine: engine.name, clip: c.name, path: p, busy, ...(await measure(browser, base, c, p, busy)) };
                rows.push(r);
                process.stderr.write(`${f(r.shownFps)} fps shown, ${f(r.latencyP50)} ms, ${f(r.browserCpuMsPerShown, 2)} ms CPU a frame\n`);
              } catch (e) {
                rows.push({ name, engine: engine.name, clip: c.name, path: p, busy, error: String(e.message ?? e) });
                process.stderr.write(`FAILED: ${e.message ?? e}\n`);
              }
            }
          }
        }
      } finally {
        await browser.close();
      }
    }
  } finally {
    server.close();
  }
  console.log(`\nrfbsink paint paths  ${new Date().toISOString()}  ${SECONDS} s a case; busy = the page recorded by DevTools' screencast\n`);
  console.log(`${'case'.padEnd(44)} ${'dec fps'.padStart(7)} ${'shown'.padStart(6)} ${'replaced'.padStart(8)} ${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'paint ms'.padStart(8)} ${'CPU %'.padStart(6)} ${'CPU ms/shown'.padStart(12)}`);
  for (const r of rows) {
    if (r.error) { console.log(`${r.name.padEnd(44)} FAILED: ${r.error.slice(0, 120)}`); continue; }
    console.log(`${r.name.padEnd(44)} ${f(r.decodedFps).padStart(7)} ${f(r.shownFps).padStart(6)} ${String(r.replaced).padStart(8)} ${f(r.latencyP50).padStart(7)} ${f(r.latencyP99).padStart(7)} `
      + `${f(r.paintMsP50, 2).padStart(8)} ${f(r.browserCpuPercent, 0).padStart(6)} ${f(r.browserCpuMsPerShown, 2).padStart(12)}`);
  }
  console.log('\nshown: pictures that reached an animation frame (canvas paths) or the <video>\'s requestVideoFrameCallback (track); replaced: handed over but overtaken before either;');
  console.log('p50/p99: decode output -> shown; paint ms: the paint call; CPU: every process of the browser (% of one core, and per frame shown).');
  writeFileSync(path.join(OUT, 'paint.json'), `${JSON.stringify({ at: new Date().toISOString(), seconds: SECONDS, rows }, null, 1)}\n`);
  console.log(`wrote ${path.join(OUT, 'paint.json')}`);
  return rows.some((r) => r.error) ? 3 : 0;
}

process.exitCode = await main();
