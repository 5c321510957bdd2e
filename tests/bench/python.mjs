#!/usr/bin/env node
// The Python package's benchmark (make bench-python): numpy frames pushed from Python at --fps,
// 512x512, 2048x2048 and 4096x4096, uint8 RGB and uint16 gray, watched by headless Chromium:
//   - rfb direct: rfbsink.Stream (codec auto: H.264 for uint8, lossless for uint16), the viewer on
//     the stream's own WebSocket;
//   - rfb via Jupyter: the same stream through a real Jupyter server's jupyter-server-proxy
//     (/proxy/<port>/ws), as the notebook widget reaches it when only Jupyter's port is open;
//   - aiortc: the same frames through aiortc's VideoStreamTrack (its own encoder) to an
//     RTCPeerConnection in the page (uint16 scaled to 8 bits, as aiortc cannot carry 16).
// Prints per case: frames painted per second, push() -> painted latency p50/p99 (read from a
// barcode of the push time drawn into each frame: tests/bench/barcode.mjs), and the time push()
// itself took. Writes tests/bench/out/python.json. Runs in a private network namespace (aiortc
// gathers no loopback candidates).
//
//   node tests/bench/python.mjs [--seconds N] [--only REGEX] [--fps N]

import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { freePort, gstEnv } from '../e2e/lib.mjs';
import { ADDRESS_A, runInPrivateNetns } from '../e2e/netns.mjs';
import { dist, launchBareBrowser, sleep, spawnJson, startServer } from './harness.mjs';

runInPrivateNetns('python bench');

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const PYTHON = path.join(REPO, 'target', 'pyenv', 'bin', 'python');
const JUPYTER = path.join(REPO, 'target', 'pyenv', 'bin', 'jupyter');
const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string' }, only: { type: 'string' }, fps: { type: 'string' }, quick: { type: 'boolean' },
    'max-latency': { type: 'string' },
  },
});
const SECONDS = Number(opts.seconds ?? (opts.quick ? 5 : 10));
const FPS = Number(opts.fps ?? 30);
const WARMUP_MS = 2500;

const CASES = [];
for (const size of [512, 2048, 4096]) {
  for (const dtype of ['uint8', 'uint16']) {
    for (const via of ['direct', 'jupyter', 'aiortc']) CASES.push({ name: `${size}x${size} ${dtype} ${via}`, size, dtype, via });
  }
}

/** A Jupyter server (no Lab UI: only its proxy is measured) on 127.0.0.1. */
async function startJupyter() {
  const port = await freePort();
  const token = randomBytes(16).toString('hex');
  const proc = spawn(JUPYTER, ['server', '--allow-root', '--no-browser', '--ip=127.0.0.1', `--port=${port}`, '--port-retries=0',
    `--IdentityProvider.token=${token}`, '--ServerApp.allow_origin=*'], { env: gstEnv(), stdio: 'ignore' });
  process.on('exit', () => proc.kill('SIGKILL'));
  for (let i = 0; i < 300; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/api/status?token=${token}`).then((r) => r.ok, () => false);
    if (ok) return { port, token, stop: () => proc.kill('SIGTERM') };
    await sleep(100);
  }
  throw new Error('jupyter server did not answer in 30 s');
}

/**
 * After the warm-up, what the page's barcode reader saw in SECONDS (window.benchRead on both the
 * viewer page and the WebRTC page), and the seconds it took.
 */
async function measureWindow(page) {
  await sleep(WARMUP_MS);
  await page.evaluate(() => window.benchRead());
  const t0 = Date.now();
  await sleep(SECONDS * 1000);
  const measured = await page.evaluate(() => window.benchRead());
  return { measured, elapsed: (Date.now() - t0) / 1000 };
}

async function runRfb(c, ctx) {
  const producer = spawnJson(PYTHON, [path.join(HERE, 'pyproducer.py'), '--mode', 'rfb', '--size', String(c.size), '--dtype', c.dtype,
    '--fps', String(FPS), '--allowed-origin', ctx.base, ...(opts['max-latency'] ? ['--max-latency', opts['max-latency']] : [])],
  { env: gstEnv(), what: 'pyproducer.py' });
  const page = await ctx.browser.context.newPage();
  try {
    const listening = await producer.waitFor((e) => e.event === 'listening', 'listening');
    const ws = c.via === 'jupyter'
      ? `ws://127.0.0.1:${ctx.jupyter.port}/proxy/${listening.port}/ws?rfb_token=${listening.token}&token=${ctx.jupyter.token}`
      : `ws://127.0.0.1:${listening.port}/ws?rfb_token=${listening.token}`;
    await page.goto(`${ctx.base}/bench/viewer.html?${new URLSearchParams({ ws, transport: 'ws' })}`);
    const hook = await page.evaluate(() => Promise.race([window.benchInstalled, new Promise((r) => setTimeout(() => r({ ok: false, error: 'timeout' }), 15000))]));
    if (!hook.ok) throw new Error(`bench hook: ${hook.error}`);
    for (let i = 0; ; i++) {
      const s = await page.evaluate(() => window.rfbViewer.stats());
      if (s.framesDecoded >= 3) break;
      if (i > 300) throw new Error(`no frames decoded in 60 s: ${JSON.stringify(s)}`);
      await sleep(200);
    }
    const { measured, elapsed } = await measureWindow(page);
    const stats = await page.evaluate(() => window.rfbViewer.stats());
    producer.proc.stdin.end();
    const done = await producer.waitFor((e) => e.event === 'done', 'done', 20_000);
    const lat = measured.samples.filter((s) => s.frameLatencyMs !== null).map((s) => s.frameLatencyMs);
    return { ...c, codec: listening.codec, codecString: stats.codecString, paintedFps: measured.samples.length / elapsed,
      latency: dist(lat), pushMs: done.push_ms, misreads: measured.misreads, decoded: stats.framesDecoded };
  } finally {
    await page.close().catch(() => {});
    await producer.stop();
  }
}

async function runAiortc(c, ctx) {
  const producer = spawnJson(PYTHON, [path.join(HERE, 'pyproducer.py'), '--mode', 'aiortc', '--size', String(c.size), '--dtype', c.dtype,
    '--fps', String(FPS), '--address', ADDRESS_A], { env: gstEnv(), what: 'pyproducer.py' });
  const page = await ctx.browser.context.newPage();
  try {
    const { url } = await producer.waitFor((e) => e.event === 'http', 'http');
    await page.goto(`${ctx.base}/bench/webrtc.html?${new URLSearchParams({ signal: url })}`);
    for (let i = 0; ; i++) {
      const r = await page.evaluate(() => window.benchStats?.());
      if (r && r.framesDecoded >= 3) break;
      if (i > 300) throw new Error(`aiortc: no frames decoded in 60 s: ${JSON.stringify(r)} ${JSON.stringify(await page.evaluate(() => window.benchState))} ${producer.stderr().slice(-600)}`);
      await sleep(200);
    }
    const { measured, elapsed } = await measureWindow(page);
    const stats = await page.evaluate(() => window.benchStats());
    producer.proc.stdin.end();
    const done = await producer.waitFor((e) => e.event === 'done', 'done', 20_000);
    return { ...c, codec: stats?.codec, paintedFps: measured.samples.length / elapsed,
      latency: dist(measured.samples.map((s) => s.latencyMs)), pushMs: done.push_ms, misreads: measured.misreads,
      size: `${measured.width}x${measured.height}` };
  } finally {
    await page.close().catch(() => {});
    await producer.stop();
  }
}

const f = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? '-' : Number(x).toFixed(d));

async function main() {
  const only = opts.only ? new RegExp(opts.only) : null;
  const cases = CASES.filter((c) => !only || only.test(c.name));
  const { server, base } = await startServer();
  // Bare DevTools (launchBareBrowser): Playwright's network domain would copy every WebSocket
  // frame of these big pictures. Host candidates as addresses for aiortc's WebRTC.
  const browser = await launchBareBrowser({ width: 1280, height: 720 },
    ['--autoplay-policy=no-user-gesture-required', '--disable-features=WebRtcHideLocalIpsWithMdns']);
  const jupyter = cases.some((c) => c.via === 'jupyter') ? await startJupyter() : null;
  const ctx = { base, browser, jupyter };
  const results = [];
  console.log(`${cases.length} cases, ${SECONDS} s each, frames pushed at ${FPS} fps`);
  console.log('case                           | codec      | painted fps | push->painted p50 / p99 ms | push() p50 ms');
  try {
    for (const c of cases) {
      let r;
      try {
        r = c.via === 'aiortc' ? await runAiortc(c, ctx) : await runRfb(c, ctx);
      } catch (e) {
        r = { ...c, error: String(e.message ?? e).split('\n').slice(0, 6).join(' ') };
      }
      results.push(r);
      console.log(r.error ? `${c.name.padEnd(30)} | error: ${r.error}`
        : `${c.name.padEnd(30)} | ${String(r.codecString ?? r.codec ?? '').padEnd(10)} | ${f(r.paintedFps).padStart(11)} | ${f(r.latency.p50).padStart(12)} / ${f(r.latency.p99).padEnd(12)} | ${f(r.pushMs?.p50, 2)}`);
    }
  } finally {
    jupyter?.stop();
    await browser.close();
    server.close();
  }
  mkdirSync(path.join(HERE, 'out'), { recursive: true });
  const out = path.join(HERE, 'out', 'python.json');
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), seconds: SECONDS, fps: FPS, results }, null, 2));
  console.log(`wrote ${out}`);
  return results.some((r) => r.error) ? 3 : 0;
}

process.exitCode = await main();
