// End-to-end helpers: a real gst-launch-1.0 pipeline ending in rfbsink, and the real viewer page
// in headless Debian Chromium driven by playwright-core.
//
// Synchronisation is always "poll a condition until a deadline", never a fixed sleep.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { chromium } from 'playwright-core';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const PLUGIN_DIR = process.env.RFB_PLUGIN_DIR ?? path.join(REPO, 'target', 'release');
export const OUT_DIR = path.join(REPO, 'tests', 'e2e', 'out');
export const CHROMIUM = process.env.RFB_CHROMIUM ?? '/usr/bin/chromium';

const PIPELINE_START_TIMEOUT_MS = 30_000;
const PIPELINE_STOP_TIMEOUT_MS = 5_000;
const LOG_TAIL_CHARS = 16_000;

// One registry file per test process, so that a stale ~/.cache registry never hides the plugin
// (or an old build of it). gst-inspect-1.0 and gst-launch-1.0 share it, so the plugin scan
// happens once per test file.
const registryDir = mkdtempSync(path.join(tmpdir(), 'rfbsink-e2e-registry-'));

/** The environment for every GStreamer tool these tests start. */
export function gstEnv() {
  return {
    ...process.env,
    GST_PLUGIN_PATH: PLUGIN_DIR,
    GST_REGISTRY: path.join(registryDir, 'registry.bin'),
    GST_DEBUG: process.env.GST_DEBUG ?? '*:2,rfbsink:4',
    GST_DEBUG_NO_COLOR: '1',
  };
}

/** Pipelines still running: killed if the test process goes away without stopping them. */
const live = new Set();
function killAll() {
  for (const proc of live) {
    try { proc.kill('SIGKILL'); } catch { /* already gone */ }
  }
  live.clear();
  rmSync(registryDir, { recursive: true, force: true });
}
process.on('exit', killAll);
process.once('SIGTERM', () => { killAll(); process.exit(143); });

const elementCache = new Map();

/** Whether `gst-inspect-1.0 name` finds the element (with the plugin path and registry above). */
export function hasElement(name) {
  if (!elementCache.has(name)) {
    const r = spawnSync('gst-inspect-1.0', [name], { env: gstEnv(), stdio: 'ignore', timeout: 60_000 });
    elementCache.set(name, r.status === 0);
  }
  return elementCache.get(name);
}

/**
 * Skips the test `t` with a printed reason when one of `names` is not installed.
 * @returns {boolean} true when all are present (go on), false when the test was skipped.
 */
export function requireElements(t, names) {
  const missing = names.filter((n) => !hasElement(n));
  if (missing.length === 0) return true;
  const reason = `missing GStreamer element(s): ${missing.join(', ')} (gst-inspect-1.0 failed)`;
  t.skip(reason);
  return false;
}

/** Fails with a useful message when the plugin is not built (that is an error, not a skip). */
export function assertPluginBuilt() {
  // The first run also builds this process's registry: keep the scan's warnings about other
  // plugins out of the message, but not why a plugin failed to load.
  const env = { ...gstEnv(), GST_DEBUG: '*:1,GST_PLUGIN_LOADING:2' };
  const r = spawnSync('gst-inspect-1.0', ['rfbsink'], { env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0,
    `rfbsink not found in ${PLUGIN_DIR} (run \`make build\` first)\n${r.stdout ?? ''}${r.stderr ?? ''}`);
}

/** Keeps the last `LOG_TAIL_CHARS` characters of a stream. */
class Tail {
  text = '';
  push(chunk) {
    this.text += chunk;
    if (this.text.length > 2 * LOG_TAIL_CHARS) this.text = this.text.slice(-LOG_TAIL_CHARS);
  }
  toString() { return this.text.slice(-LOG_TAIL_CHARS); }
}

/**
 * Splits a launch line into arguments the way a shell would for gst-launch-1.0 (which escapes
 * the spaces inside each argument, so the line cannot be passed as one). Quotes group words.
 * @param {string} line
 */
export function splitLaunchLine(line) {
  const args = [];
  let cur = null;
  let quote = null;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      cur ??= '';
    } else if (/\s/.test(ch)) {
      if (cur !== null) args.push(cur);
      cur = null;
    } else {
      cur = (cur ?? '') + ch;
    }
  }
  if (quote) throw new Error(`unbalanced ${quote} in launch line: ${line}`);
  if (cur !== null) args.push(cur);
  return args;
}

// gst-launch-1.0 -m prints, for the element message rfbsink posts once it listens:
//   Got message #12 from element "rfbsink0" (element): rfbsink-listening, url=(string)http://127.0.0.1:39123/, port=(uint)39123;
// A string with unusual characters is quoted and backslash-escaped, as the URL with its token is:
//   url=(string)"http://127.0.0.1:39123/\?rfb_token\=0f1e...", view-url=(string)"...", ...
const LISTENING_RE = /rfbsink-listening,.*?\burl=\(string\)(?:"((?:[^"\\]|\\.)*)"|([^,;\s]+)).*?\bport=\(uint\)(\d+)/;
const VIEW_URL_RE = /\bview-url=\(string\)(?:"((?:[^"\\]|\\.)*)"|([^,;\s]+))/;
const unescape = (s) => s.replace(/\\(.)/g, '$1');

/**
 * The rfbsink-listening message in one line of `gst-launch-1.0 -m` output, or null.
 * @param {string} line
 * @returns {{url: string, port: number} | null}
 */
export function parseListening(line) {
  const m = LISTENING_RE.exec(line);
  if (!m) return null;
  const url = m[1] !== undefined ? unescape(m[1]) : m[2];
  const v = VIEW_URL_RE.exec(line);
  const viewUrl = v ? (v[1] !== undefined ? unescape(v[1]) : v[2]) : undefined;
  return viewUrl === undefined ? { url, port: Number(m[3]) } : { url, viewUrl, port: Number(m[3]) };
}

/**
 * The numeric fields of the last `rfbsink-stats` line that `gst-launch-1.0 -m` printed
 * (`clients`, `input-events`, `input-ignored`, ...), or null before the first one.
 * @param {string | null} line
 * @returns {Record<string, number> | null}
 */
export function parseStats(line) {
  if (!line) return null;
  /** @type {Record<string, number>} */
  const out = {};
  // Booleans read as 1 and 0.
  for (const m of line.matchAll(/\b([a-z-]+)=\((?:uint|guint64|int|gint64|boolean)\)(\d+|true|false)/g)) {
    // The element's own figures come before client-stats: keep the first of each name.
    if (!(m[1] in out)) out[m[1]] = m[2] === 'true' ? 1 : m[2] === 'false' ? 0 : Number(m[2]);
  }
  return out;
}

/**
 * `url` with the parameters of `query` ('?a=1&b=2', or '') added to its own (the viewer URL
 * already carries the token).
 * @param {string} url
 * @param {string | Record<string, string>} query
 */
export function withQuery(url, query) {
  const u = new URL(url);
  for (const [k, v] of new URLSearchParams(query)) u.searchParams.set(k, v);
  return u.href;
}

/**
 * Starts `gst-launch-1.0 -m <launchLine>`. Give rfbsink `port=0` so that the OS picks a free
 * port (or a port a previous pipeline reported, to test reconnection).
 *
 * Resolves once rfbsink reports that it listens, with {url, port, proc, stop(), logs()}.
 * Rejects with the process's output when it exits first or does not listen within 30 s.
 * @param {string} launchLine
 * @param {{timeoutMs?: number}} [opts]
 */
export function startPipeline(launchLine, { timeoutMs = PIPELINE_START_TIMEOUT_MS } = {}) {
  const proc = spawn('gst-launch-1.0', ['-m', ...splitLaunchLine(launchLine)], {
    env: gstEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(proc);
  const stdout = new Tail();
  const stderr = new Tail();
  const exited = new Promise((resolve) => {
    // 'close', not 'exit': by then all of its output has been read.
    proc.once('close', (code, signal) => { live.delete(proc); resolve({ code, signal }); });
  });
  const logs = () => `--- gst-launch-1.0 -m ${launchLine}\n--- stdout (tail)\n${stdout}\n--- stderr (tail)\n${stderr}`;

  /** @type {string | null} the last rfbsink-stats line (with stats-interval set) */
  let lastStats = null;
  let stopping = null;
  const stop = () => {
    stopping ??= (async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGINT');
        const timer = setTimeout(() => proc.kill('SIGKILL'), PIPELINE_STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    })();
    return stopping;
  };

  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) {
        stop().finally(() => reject(err));
      } else {
        resolve(value);
      }
    };
    const timer = setTimeout(() => finish(new Error(
      `rfbsink did not report rfbsink-listening within ${timeoutMs} ms\n${logs()}`)), timeoutMs);

    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => stderr.push(chunk));
    onLines(proc.stdout, (line) => {
      if (line.includes('rfbsink-stats,')) lastStats = line;
      const listening = parseListening(line);
      if (listening) finish(null, { ...listening, proc, stop, logs, exited, stats: () => parseStats(lastStats) });
    });
    proc.stdout.on('data', (chunk) => stdout.push(chunk));
    proc.once('error', (err) => finish(new Error(`cannot start gst-launch-1.0: ${err.message}\n${logs()}`)));
    exited.then(({ code, signal }) => finish(new Error(
      `gst-launch-1.0 exited (code ${code}, signal ${signal}) before rfbsink listened\n${logs()}`)));
  });
}

/**
 * Calls `cb` with each complete line that `stream` (a child's stdout or stderr) prints.
 * @param {import('node:stream').Readable} stream
 * @param {(line: string) => void} cb
 */
export function onLines(stream, cb) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      cb(line);
    }
  });
}

/**
 * One headless Chromium shared by the tests of a file: launched before them (after checking the
 * plugin is built), closed after them. `browser.context` is its context.
 */
export function sharedBrowser() {
  /** @type {Awaited<ReturnType<typeof launchBrowser>> | undefined} */
  let browser;
  before(async () => {
    assertPluginBuilt();
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
  });
  return {
    get context() {
      if (!browser) throw new Error('the shared browser is not launched yet');
      return browser.context;
    },
  };
}

/**
 * Launches headless Chromium with a fresh profile. Returns {context, close()}.
 */
export async function launchBrowser({ args = [], ignoreHTTPSErrors = false } = {}) {
  const userDataDir = mkdtempSync(path.join(tmpdir(), 'rfbsink-e2e-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      ignoreHTTPSErrors,
      viewport: { width: 1280, height: 800 },
      args: [
        ...args,
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  } catch (err) {
    rmSync(userDataDir, { recursive: true, force: true });
    throw err;
  }
  // playwright-core kills the browsers it launched if this process exits without closing them.
  let closing = null;
  const close = () => {
    closing ??= (async () => {
      try { await context.close(); } finally {
        rmSync(userDataDir, { recursive: true, force: true });
      }
    })();
    return closing;
  };
  return { context, close, userDataDir };
}

/**
 * Polls `probe()` until `accept(value)` is true or the deadline passes.
 * @template T
 * @param {() => Promise<T>} probe
 * @param {(value: T) => boolean} accept
 * @param {{timeoutMs?: number, intervalMs?: number, what?: string, details?: () => string}} [opts]
 * @returns {Promise<T>}
 */
export async function pollUntil(probe, accept, { timeoutMs = 20_000, intervalMs = 100, what = 'condition', details } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await probe();
      lastErr = undefined;
      if (accept(last)) return last;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() >= deadline) {
      const seen = lastErr ? `error: ${lastErr.message}` : `last value: ${JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${seen}${details ? `\n${details()}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * `page.goto(url)`, once more when the browser saw the machine's network change under it
 * (ERR_NETWORK_CHANGED: an interface of a test's network namespace came up or got an address as
 * the page loaded). A person would reload; anything else fails at once.
 * @param {{goto: (url: string) => Promise<unknown>}} page playwright's or puppeteer's
 * @param {string} url
 */
export async function gotoSettled(page, url) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await page.goto(url);
    } catch (err) {
      if (attempt >= 3 || !/ERR_NETWORK_CHANGED/.test(String(/** @type {Error} */ (err)?.message))) throw err;
      await new Promise((r) => setTimeout(r, 200 * attempt));
    }
  }
}

/** The viewer page in one browser tab, with its console kept for failure messages. */
export class Viewer {
  /** @param {import('playwright-core').Page} page */
  constructor(page, url) {
    this.page = page;
    this.url = url;
    this.console = new Tail();
    page.on('console', (msg) => this.console.push(`[${msg.type()}] ${msg.text()}\n`));
    page.on('pageerror', (err) => this.console.push(`[pageerror] ${err.stack ?? err.message}\n`));
    page.on('crash', () => this.console.push('[crash] the page crashed\n'));
    page.on('response', (res) => {
      if (res.status() >= 400) this.console.push(`[http ${res.status()}] ${res.url()}\n`);
    });
    // Not with puppeteer's Firefox (WebDriver BiDi): listening for failed requests there hangs
    // the page for good once it loads an AudioWorklet module (measured: even `1 + 1` never
    // returns after the viewer starts its sound). Playwright's pages have setViewportSize.
    if (typeof page.setViewportSize === 'function') {
      page.on('requestfailed', (req) => this.console.push(`[requestfailed] ${req.url()}: ${req.failure()?.errorText}\n`));
    }
  }

  /**
   * Opens `url` in a new tab of `context` (at `viewport` CSS pixels, when given) and waits for
   * `window.rfbViewer`.
   */
  static async open(context, url, { timeoutMs = 20_000, viewport } = {}) {
    const page = await context.newPage();
    // playwright's setViewportSize; puppeteer's setViewport (the Firefox tests).
    if (viewport) await (page.setViewportSize ? page.setViewportSize(viewport) : page.setViewport(viewport));
    const viewer = new Viewer(page, url);
    await gotoSettled(page, url);
    await page.waitForFunction(() => typeof window.rfbViewer === 'object' && window.rfbViewer !== null,
      undefined, { timeout: timeoutMs })
      .catch((err) => { throw new Error(`${err.message}\n${viewer.logs()}`); });
    return viewer;
  }

  logs() { return `--- viewer ${this.url} console (tail)\n${this.console}`; }

  /** The viewer's stats(); when the page cannot answer (it crashed), the error holds its console. */
  async stats() {
    try {
      return await this.page.evaluate(() => window.rfbViewer.stats());
    } catch (err) {
      throw new Error(`${/** @type {Error} */ (err).message}\n${this.logs()}`);
    }
  }

  /**
   * Watches for `ms`: frames decoded a second, the element's render()-to-decoded p50 for this
   * viewer (the median of its per-second readings; null without any), and the last stats.
   * @param {number} ms
   */
  async measure(ms) {
    const first = await this.stats();
    const p50s = [];
    let last = first;
    for (let waited = 0; waited < ms; waited += 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      last = await this.stats();
      if (last.server?.latency_p50_us != null) p50s.push(last.server.latency_p50_us / 1000);
    }
    p50s.sort((a, b) => a - b);
    return { fps: ((last.framesDecoded - first.framesDecoded) * 1000) / ms, p50: p50s.length ? p50s[p50s.length >> 1] : null, last };
  }

  /** @param {Array<[number, number]>} points stream pixel coordinates */
  samplePixels(points) { return this.page.evaluate((p) => window.rfbViewer.samplePixels(p), points); }

  /**
   * Waits until the viewer's stats satisfy `accept`; the error names `what`, shows the last
   * stats, the viewer's console and `extra()` (e.g. the pipeline's logs).
   */
  waitForStats(accept, what, { timeoutMs = 20_000, extra } = {}) {
    return pollUntil(() => this.stats(), accept, {
      timeoutMs,
      what: `${what} (${this.url})`,
      details: () => `${this.logs()}${extra ? `\n${extra()}` : ''}`,
    });
  }

  /** Waits until at least `n` frames are decoded (counting from `from`). */
  waitForFrames(n, { from = 0, ...opts } = {}) {
    return this.waitForStats((s) => s.framesDecoded >= from + n, `${n} decoded frames`, opts);
  }

  async close() { await this.page.close().catch(() => {}); }
}

// videotestsrc pattern=smpte: the seven top bars, left to right. They are 100 % bars (255), not
// the 75 % of broadcast SMPTE bars (that is pattern=smpte75): measured through videoconvert to
// RGB. jpegenc keeps the limited-range levels, so a JPEG shows ~235/~16, within the tolerance.
export const SMPTE_BARS = [
  ['white', [255, 255, 255]],
  ['yellow', [255, 255, 0]],
  ['cyan', [0, 255, 255]],
  ['green', [0, 255, 0]],
  ['magenta', [255, 0, 255]],
  ['red', [255, 0, 0]],
  ['blue', [0, 0, 255]],
];

/** Centres of the seven top bars of a `width`-wide SMPTE picture, at height `y`. */
export function smptePoints(width, y = 100) {
  return SMPTE_BARS.map((_, i) => [Math.floor(((i + 0.5) * width) / 7), y]);
}

/**
 * Asserts that the viewer shows the SMPTE top bars: each bar centre within `tolerance` per
 * channel. Polls (the first decoded frames may still be in flight to the canvas).
 */
export async function assertSmpteBars(viewer, { width = 640, y = 100, tolerance = 40, timeoutMs = 10_000, extra } = {}) {
  const points = smptePoints(width, y);
  const mismatches = (pixels) => SMPTE_BARS.flatMap(([name, want], i) => {
    const got = pixels?.[i];
    const ok = Array.isArray(got) && want.every((c, k) => Math.abs(got[k] - c) <= tolerance);
    return ok ? [] : [`${name} at (${points[i]}): want ~${want}, got ${JSON.stringify(got)}`];
  });
  let last;
  try {
    await pollUntil(() => viewer.samplePixels(points), (pixels) => {
      last = pixels;
      return mismatches(pixels).length === 0;
    }, { timeoutMs, what: 'the SMPTE colour bars' });
  } catch (err) {
    const why = last ? mismatches(last).join('\n  ') : err.message;
    assert.fail(`the viewer does not show the SMPTE bars (tolerance ${tolerance}):\n  ${why}\n${viewer.logs()}${extra ? `\n${extra()}` : ''}`);
  }
}

/** tests/e2e/out/<name>, creating the folder. */
export function outPath(name) {
  mkdirSync(OUT_DIR, { recursive: true });
  return path.join(OUT_DIR, name);
}

/**
 * Decodes a PNG as Chromium's screenshots write it (8-bit RGB or RGBA, not interlaced) into RGBA.
 * Enough to compare what a page shows pixel by pixel, with no dependency.
 * @param {Buffer} png
 * @returns {{width: number, height: number, rgba: Uint8Array}}
 */
export function decodePng(png) {
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  const [depth, colour, , , interlace] = png.subarray(24, 29);
  const channels = { 2: 3, 6: 4 }[colour];
  if (depth !== 8 || !channels || interlace !== 0) throw new Error(`unsupported PNG: depth ${depth}, colour type ${colour}, interlace ${interlace}`);
  const idat = [];
  for (let at = 8; at < png.length;) {
    const len = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    if (type === 'IDAT') idat.push(png.subarray(at + 8, at + 8 + len));
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const cur = new Uint8Array(stride);
  let prev = new Uint8Array(stride);
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? cur[i - channels] : 0;
      const b = prev[i];
      const c = i >= channels ? prev[i - channels] : 0;
      let v = line[i];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      cur[i] = v & 0xff;
    }
    for (let x = 0; x < width; x++) {
      rgba.set(cur.subarray(x * channels, x * channels + 3), (y * width + x) * 4);
      rgba[(y * width + x) * 4 + 3] = channels === 4 ? cur[x * channels + 3] : 255;
    }
    prev = cur.slice();
  }
  return { width, height, rgba };
}

/**
 * Where stream pixel (x, y) is on the page, for the element `selector` that shows the stream with
 * object-fit: contain (computed here, not with the viewer's own mapping, so that a wrong mapping
 * fails). Works with playwright's and puppeteer's pages.
 */
export async function streamToPage(page, selector, stream, x, y) {
  const rect = await page.evaluate((sel) => {
    const r = /** @type {HTMLElement} */ (document.querySelector(sel)).getBoundingClientRect();
    return { left: r.left, top: r.top, width: r.width, height: r.height };
  }, selector);
  const scale = Math.min(rect.width / stream.width, rect.height / stream.height);
  return {
    x: rect.left + (rect.width - stream.width * scale) / 2 + x * scale,
    y: rect.top + (rect.height - stream.height * scale) / 2 + y * scale,
  };
}

/** A free TCP port on 127.0.0.1 (for a server whose port another must know first). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}
