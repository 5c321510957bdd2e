// What the benchmarks share (tests/bench/bench.mjs, tests/bench/python.mjs): children that print
// JSON lines (killed when this process ends), CPU and memory from /proc, quantiles, the static
// server for the bench pages (web/ and tests/bench/ from disk) and Chromium with the bench's flags.

import { spawn } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { decodePng, onLines } from '../e2e/lib.mjs';
import { cellSize, decodeBands, latencyMs } from './barcode.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const CHROMIUM = process.env.RFB_CHROMIUM ?? '/usr/bin/chromium';
const CLK_TCK = 100;

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The e2e helpers' environment (plugin path, a private registry), with quieter logs.
process.env.GST_DEBUG ??= '*:1';
const live = new Set();
export function killAll() {
  for (const p of live) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
  live.clear();
}
process.on('exit', killAll);
for (const s of ['SIGINT', 'SIGTERM']) process.once(s, () => { killAll(); process.exit(130); });


/** A child that prints JSON lines; `events` keeps them, `waitFor(pred)` resolves on one. */
export function spawnJson(cmd, args, { env, what }) {
  const proc = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(proc);
  const events = [];
  const waiters = [];
  let errTail = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => { errTail = (errTail + c).slice(-4000); });
  onLines(proc.stdout, (line) => {
    let ev;
    try { ev = JSON.parse(line); } catch { return; }
    ev.recvAt = Date.now();
    events.push(ev);
    for (const w of [...waiters]) {
      if (w.pred(ev)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(ev); }
    }
  });
  const exited = new Promise((resolve) => proc.once('close', (code, signal) => { live.delete(proc); resolve({ code, signal }); }));
  exited.then(({ code, signal }) => {
    for (const w of waiters.splice(0)) w.reject(new Error(`${what} exited (code ${code}, signal ${signal}) while waiting for ${w.desc}\n${errTail}\n${events.slice(-5).map((e) => JSON.stringify(e)).join('\n')}`));
  });
  const waitFor = (pred, desc, timeoutMs = 30_000) => {
    const seen = events.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject, desc };
      waiters.push(w);
      setTimeout(() => {
        const i = waiters.indexOf(w);
        if (i >= 0) { waiters.splice(i, 1); reject(new Error(`${what}: timed out waiting for ${desc}\n${errTail}`)); }
      }, timeoutMs);
    });
  };
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      try { proc.stdin.end(); } catch { /* closed */ }
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    return exited;
  };
  return { proc, events, waitFor, stop, exited, stderr: () => errTail };
}


export function threadCpu(pid, prefix) {
  let ticks = 0;
  let dir;
  try { dir = readdirSync(`/proc/${pid}/task`); } catch { return NaN; }
  for (const tid of dir) {
    let stat;
    try { stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'); } catch { continue; }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    if (!name.startsWith(prefix)) continue;
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / CLK_TCK;
}
export function processCpu(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch { return NaN; }
}
export function vmHwmKb(pid) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmHWM:\s+(\d+)/);
    return m ? Number(m[1]) : NaN;
  } catch { return NaN; }
}
/** Total CPU seconds of the whole machine (all cores), for the load figure. */
export function machineCpu() {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + f[4];
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: (total - idle) / CLK_TCK, total: total / CLK_TCK };
}


export function quantile(xs, q) {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}
export const median = (xs) => quantile(xs, 0.5);
export function dist(xs) {
  return {
    n: xs.length,
    p1: quantile(xs, 0.01), p5: quantile(xs, 0.05), p25: quantile(xs, 0.25), p50: quantile(xs, 0.5),
    p75: quantile(xs, 0.75), p95: quantile(xs, 0.95), p99: quantile(xs, 0.99), max: xs.length ? Math.max(...xs) : NaN,
  };
}
/** Up to n values spread over xs (for the plot). */
export function thin(xs, n) {
  if (xs.length <= n) return xs.map((x) => Math.round(x * 100) / 100);
  const out = [];
  for (let i = 0; i < n; i++) out.push(Math.round(xs[Math.floor((i * xs.length) / n)] * 100) / 100);
  return out;
}


export function startServer() {
  const roots = { '/web/': path.join(REPO, 'web'), '/bench/': HERE };
  const types = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.html': 'text/html', '.svg': 'image/svg+xml', '.css': 'text/css' };
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const prefix = Object.keys(roots).find((p) => u.pathname.startsWith(p));
    const file = prefix && path.join(roots[prefix], path.normalize(u.pathname.slice(prefix.length)).replace(/^(\.\.[/\\])+/, ''));
    if (!file || !existsSync(file) || !statSync(file).isFile()) { res.writeHead(404); res.end('not found'); return; }
    res.writeHead(200, { 'Content-Type': types[path.extname(file)] ?? 'application/octet-stream', 'Cache-Control': 'no-store' });
    createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, base: `http://127.0.0.1:${server.address().port}` })));
}


export async function launchBenchBrowser() {
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'rfbsink-bench-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 720 },
    args: [
      '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      // Host candidates as addresses, not mDNS names (webrtcbin cannot resolve those).
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
  return {
    context,
    close: async () => { try { await context.close(); } finally { rmSync(userDataDir, { recursive: true, force: true }); } },
  };
}


/**
 * Records a page's compositor output as a screen recorder does (DevTools' screencast: every frame
 * the compositor makes is read back, encoded and handed over, and acknowledged as it comes), the
 * browser-side load of the `busy` bench scenarios, and what a viewer sees: with `read`, each
 * recorded frame's barcode (PNG frames, the picture laid out in `read.box` at `read.streamWidth`)
 * against the time the compositor made it, the one point shared by every paint path and by
 * WebRTC. `frames()`: frames recorded; `samples()`: {t48, latencyMs} of each new picture seen
 * since the last call (one per picture: the first frame that showed it).
 * @param {{devtools: (method: string, params?: object) => Promise<any>, onDevtools: (cb: (method: string, params: any) => void) => void}} page
 *   a page of launchBareBrowser
 * @param {{streamWidth: number, box: {x: number, y: number, width: number, height: number}}} [read]
 */
export async function startRecorder(page, read) {
  let frames = 0;
  let on = true;
  /** @type {{t48: number, latencyMs: number}[]} */
  let seen = [];
  let lastT48 = -1;
  let misreads = 0;
  page.onDevtools((method, params) => {
    if (method !== 'Page.screencastFrame' || !on) return;
    frames += 1;
    page.devtools('Page.screencastFrameAck', { sessionId: params.sessionId }).catch(() => {});
    if (!read) return;
    const t48 = readRecorded(Buffer.from(params.data, 'base64'), read);
    if (t48 === null) misreads += 1;
    else if (t48 !== lastT48) {
      lastT48 = t48;
      // The frame's swap time (wall clock, seconds), the same clock as the capture time.
      seen.push({ t48, latencyMs: latencyMs(t48, params.metadata.timestamp * 1e6) });
    }
  });
  await page.devtools('Page.startScreencast', { format: read ? 'png' : 'jpeg', quality: 80, everyNthFrame: 1 });
  return {
    frames: () => frames,
    samples: () => { const out = { seen, misreads }; seen = []; misreads = 0; return out; },
    stop: async () => {
      on = false;
      await page.devtools('Page.stopScreencast').catch(() => {});
    },
  };
}

/**
 * The barcode of a recorded frame (PNG) whose picture is laid out in `box` (CSS pixels = the
 * frame's pixels) from a `streamWidth`-wide stream; null when it does not read.
 * @param {Buffer} png
 * @param {{streamWidth: number, box: {x: number, y: number, width: number, height: number}}} read
 */
function readRecorded(png, { streamWidth, box }) {
  let image;
  try {
    image = decodePng(png);
  } catch {
    return null;
  }
  const scale = box.width / streamWidth;
  const cell = cellSize(streamWidth);
  const width = Math.round(box.width);
  const rows = 4;
  const band = (/** @type {number} */ centre) => {
    const out = new Uint8ClampedArray(width * rows * 4);
    const y0 = Math.round(box.y + centre * scale) - 2;
    for (let r = 0; r < rows; r++) {
      const from = ((y0 + r) * image.width + Math.round(box.x)) * 4;
      out.set(image.rgba.subarray(from, from + width * 4), r * width * 4);
    }
    return out;
  };
  return decodeBands(band(cell >> 1), band(cell + (cell >> 1)), width, rows, streamWidth);
}

/**
 * Chromium driven over a bare DevTools pipe: pages, navigation and Runtime.evaluate only. The
 * benchmarks that measure what the browser spends on big WebSocket messages use it: Playwright
 * enables DevTools' Network domain on every page and worker, and Chromium then copies (and
 * base64-encodes) each WebSocket frame for DevTools, in the browser process and the renderer.
 * Measured with 4096x4096 GRAY8 noise over WebSocket: 5.0 fps and 245 ms of browser CPU a frame
 * under Playwright, 15.1 fps and 30 ms bare. The subset of Playwright's API the benches use:
 * `context.newPage()`, `page.goto()`, `page.evaluate(fn, arg)`, `page.setViewportSize()`,
 * `page.on('console' | 'pageerror')`, `page.close()`, `close()`; `profile` names the browser's processes (their command lines).
 * @param {{width: number, height: number}} [viewport]
 * @param {string[]} [args] more Chromium flags
 */
export async function launchBareBrowser(viewport = { width: 1280, height: 720 }, args = []) {
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'rfbsink-bench-chromium-'));
  const proc = spawn(CHROMIUM, [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-background-timer-throttling',
    '--disable-renderer-backgrounding', '--disable-backgrounding-occluded-windows',
    '--remote-debugging-pipe', `--user-data-dir=${userDataDir}`, `--window-size=${viewport.width},${viewport.height}`,
    ...args, 'about:blank',
  ], { stdio: ['ignore', 'ignore', 'pipe', 'pipe', 'pipe'] });
  live.add(proc);
  let errTail = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => { errTail = (errTail + c).slice(-2000); });
  const toBrowser = /** @type {import('node:stream').Writable} */ (proc.stdio[3]);
  const fromBrowser = /** @type {import('node:stream').Readable} */ (proc.stdio[4]);
  let nextId = 0;
  /** @type {Map<number, {resolve: (v: any) => void, reject: (e: Error) => void}>} */
  const pending = new Map();
  /** DevTools events by session. @type {Map<string, ((method: string, params: any) => void)[]>} */
  const listeners = new Map();
  /** Sessions whose Runtime domain is on (console messages). */
  const runtimeOn = new Set();
  let buffered = '';
  fromBrowser.setEncoding('utf8');
  fromBrowser.on('data', (chunk) => {
    buffered += chunk;
    for (let end; (end = buffered.indexOf('\0')) >= 0;) {
      const message = JSON.parse(buffered.slice(0, end));
      buffered = buffered.slice(end + 1);
      if (message.method) {
        for (const listen of listeners.get(message.sessionId) ?? []) listen(message.method, message.params);
        continue;
      }
      const waiter = message.id !== undefined ? pending.get(message.id) : undefined;
      if (!waiter) continue;
      pending.delete(message.id);
      if (message.error) waiter.reject(new Error(`${message.error.message} ${message.error.data ?? ''}`));
      else waiter.resolve(message.result);
    }
  });
  proc.once('exit', () => {
    for (const w of pending.values()) w.reject(new Error(`chromium exited: ${errTail.slice(-500)}`));
    pending.clear();
  });
  /** @param {string} method @param {object} [params] @param {string} [sessionId] */
  const send = (method, params = {}, sessionId = undefined) => new Promise((resolve, reject) => {
    const id = ++nextId;
    pending.set(id, { resolve, reject });
    toBrowser.write(`${JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) })}\0`);
  });
  const evaluate = async (sessionId, expression) => {
    const r = await send('Runtime.evaluate', { expression, awaitPromise: true, returnByValue: true }, sessionId);
    if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
    return r.result.value;
  };
  const context = {
    async newPage() {
      const { targetId } = await send('Target.createTarget', { url: 'about:blank' });
      const { sessionId } = await send('Target.attachToTarget', { targetId, flatten: true });
      const size = async (/** @type {{width: number, height: number}} */ s) => send('Emulation.setDeviceMetricsOverride',
        { width: s.width, height: s.height, deviceScaleFactor: 1, mobile: false }, sessionId);
      await size(viewport);
      return {
        async goto(/** @type {string} */ url) {
          await send('Page.navigate', { url }, sessionId);
          for (let i = 0; i < 300; i++) {
            if (await evaluate(sessionId, `document.readyState === 'complete' && location.href !== 'about:blank'`).catch(() => false)) return;
            await sleep(50);
          }
          throw new Error(`${url} did not load in 15 s`);
        },
        /** @template T @param {(arg: any) => T} fn @param {any} [arg] @returns {Promise<Awaited<T>>} */
        evaluate: (fn, arg) => evaluate(sessionId, `(${fn})(${arg === undefined ? '' : JSON.stringify(arg)})`),
        setViewportSize: size,
        /**
         * 'console' (m.type(), m.text()) and 'pageerror' (e.message), through the Runtime domain.
         * @param {'console' | 'pageerror'} event
         * @param {(m: any) => void} cb
         */
        on(event, cb) {
          if (!runtimeOn.has(sessionId)) {
            runtimeOn.add(sessionId);
            send('Runtime.enable', {}, sessionId).catch(() => {});
          }
          if (!listeners.has(sessionId)) listeners.set(sessionId, []);
          /** @type {any[]} */ (listeners.get(sessionId)).push((/** @type {string} */ method, /** @type {any} */ params) => {
            if (event === 'console' && method === 'Runtime.consoleAPICalled') {
              const text = params.args.map((/** @type {any} */ a) => a.value ?? a.description ?? '').join(' ');
              cb({ type: () => params.type, text: () => text });
            } else if (event === 'pageerror' && method === 'Runtime.exceptionThrown') {
              const d = params.exceptionDetails;
              cb({ message: d.exception?.description ?? d.text });
            }
          });
        },
        /** A DevTools command on this page (startRecorder). @param {string} method @param {object} [params] */
        devtools: (method, params = {}) => send(method, params, sessionId),
        /** Every DevTools event of this page. @param {(method: string, params: any) => void} cb */
        onDevtools(cb) {
          if (!listeners.has(sessionId)) listeners.set(sessionId, []);
          /** @type {any[]} */ (listeners.get(sessionId)).push(cb);
        },
        close: () => send('Target.closeTarget', { targetId }),
      };
    },
  };
  return {
    context,
    profile: userDataDir,
    close: async () => {
      await send('Browser.close').catch(() => {});
      await new Promise((r) => { if (proc.exitCode !== null) r(); else { proc.once('exit', r); setTimeout(r, 5000); } });
      proc.kill('SIGKILL');
      live.delete(proc);
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}
