// WebKit: Debian's WebKitGTK (webkit2gtk-driver: WebKitWebDriver driving its MiniBrowser) under a
// private Xvfb display the test starts, through plain W3C WebDriver. It is the engine Tauri uses
// on Linux. WebKitGTK 2.50 has WebCodecs (H.264 through GStreamer) and no WebTransport: the
// viewer's documented fallback is WebSocket, which the test asserts. Frames, the colour bars and a
// click arriving upstream are checked as in the Chromium tests.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  SMPTE_BARS, assertPluginBuilt, freePort, pollUntil, requireElements, smptePoints, startPipeline } from './lib.mjs';
import { probeReady, startProbe } from './probe.mjs';

const DRIVER = process.env.RFB_WEBKIT_DRIVER ?? '/usr/bin/WebKitWebDriver';
const MINIBROWSER = process.env.RFB_WEBKIT_BROWSER ?? '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
const XVFB = '/usr/bin/Xvfb';
const SOURCE = 'videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=640,height=480,framerate=30/1';
const X264 = 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';
const STREAM = { width: 640, height: 480 };

const children = [];
process.on('exit', () => { for (const c of children) { try { c.kill('SIGKILL'); } catch { /* gone */ } } });

/** Starts Xvfb on a free display (it writes the number to fd 3). */
function startXvfb() {
  const x = spawn(XVFB, ['-displayfd', '3', '-screen', '0', '1280x800x24', '-nolisten', 'tcp'], { stdio: ['ignore', 'ignore', 'pipe', 'pipe'] });
  children.push(x);
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('Xvfb did not report its display')), 15_000);
    /** @type {import('node:stream').Readable} */ (x.stdio[3]).on('data', (c) => {
      out += c;
      if (out.includes('\n')) {
        clearTimeout(timer);
        resolve({ proc: x, display: `:${out.trim()}` });
      }
    });
    x.once('exit', (code) => reject(new Error(`Xvfb exited (${code})`)));
  });
}

/** A minimal W3C WebDriver client (fetch). */
class WebDriver {
  constructor(base) { this.base = base; this.id = ''; }

  async cmd(method, path, body) {
    const res = await fetch(`${this.base}${path}`, {
      method, headers: { 'Content-Type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (json.value?.error) throw new Error(`WebDriver ${path}: ${json.value.error}: ${json.value.message}`);
    return json.value;
  }

  async start() {
    const v = await this.cmd('POST', '/session', {
      capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] } } },
    });
    this.id = v.sessionId;
    return v.capabilities;
  }

  s(path) { return `/session/${this.id}${path}`; }
  go(url) { return this.cmd('POST', this.s('/url'), { url }); }
  /** Runs `body` (an async function body, `done` resolves it) in the page. */
  run(body, ...args) {
    return this.cmd('POST', this.s('/execute/async'), { script: `const done = arguments[arguments.length - 1]; (async () => { ${body} })().then(done, (e) => done({ error: String(e) }));`, args });
  }
  setWindow(width, height) { return this.cmd('POST', this.s('/window/rect'), { width, height }); }
  click(x, y) {
    return this.cmd('POST', this.s('/actions'), {
      actions: [{
        type: 'pointer', id: 'mouse', parameters: { pointerType: 'mouse' },
        actions: [
          { type: 'pointerMove', duration: 0, x: Math.round(x), y: Math.round(y), origin: 'viewport' },
          { type: 'pointerDown', button: 0 }, { type: 'pause', duration: 50 }, { type: 'pointerUp', button: 0 },
        ],
      }],
    });
  }
  stop() { return this.id ? this.cmd('DELETE', this.s('')).catch(() => {}) : Promise.resolve(); }
}

/** @type {WebDriver | undefined} */
let driver;
let capabilities;
before(async () => {
  assertPluginBuilt();
  for (const f of [DRIVER, MINIBROWSER, XVFB]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: install webkit2gtk-driver and xvfb (scripts/install-deps.sh does)`);
  }
  const { display } = await startXvfb();
  const port = await freePort();
  const wd = spawn(DRIVER, [`--port=${port}`], { env: { ...process.env, DISPLAY: display }, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(wd);
  driver = new WebDriver(`http://127.0.0.1:${port}`);
  await pollUntil(() => fetch(`http://127.0.0.1:${port}/status`).then((r) => r.ok, () => false), (ok) => ok, { what: 'WebKitWebDriver up' });
  capabilities = await driver.start();
});
after(async () => {
  await driver?.stop();
  for (const c of children) c.kill('SIGTERM');
});

const wd = () => /** @type {WebDriver} */ (driver);
const stats = () => wd().run('return await window.rfbViewer.stats();');

async function waitFrames(n, logs) {
  return pollUntil(() => stats().catch((e) => ({ error: String(e) })), (s) => s?.framesDecoded >= n,
    { timeoutMs: 30_000, what: `${n} frames decoded in WebKitGTK`, details: logs });
}

test('WebKitGTK: the page shows the H.264 stream (WebCodecs, WebSocket: no WebTransport here)', { timeout: 90_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const pipeline = await startPipeline(`${SOURCE} ! ${X264} ! rfbsink port=0`);
  t.after(() => pipeline.stop());
  const t0 = Date.now();
  await wd().go(pipeline.url);
  const first = await waitFrames(1, pipeline.logs);
  const firstMs = Date.now() - t0;
  const s = await waitFrames(30, pipeline.logs);
  const ctx = JSON.stringify(s);
  assert.equal(s.codec, 'h264', ctx);
  assert.equal(s.width, STREAM.width, ctx);
  assert.equal(s.decodeErrors ?? 0, 0, ctx);
  assert.equal(s.transport, 'websocket', `the fallback where WebTransport is missing: ${ctx}`);
  const points = smptePoints(640, 100);
  const got = await wd().run('return await window.rfbViewer.samplePixels(arguments[0]);', points);
  SMPTE_BARS.forEach(([name, rgb], i) => {
    const px = got[i];
    assert.ok(rgb.every((v, k) => Math.abs(v - px[k]) <= 40), `${name} bar at ${points[i]}: got ${px}, want ${rgb}`);
  });
  // Its acks reach the element: the server's figures for this viewer have a latency.
  const acked = await pollUntil(stats, (v) => v?.server?.latency_p50_us > 0, { what: 'the element\'s latency from WebKitGTK\'s acks', details: pipeline.logs });
  t.diagnostic(`WebKitGTK ${capabilities?.browserVersion}: ${s.transport}, ${s.paintPath}, first picture ${firstMs} ms after load (${first.framesDecoded} decoded), `
    + `render() -> decoded p50 ${(acked.server.latency_p50_us / 1000).toFixed(1)} ms, painted p50 ${(acked.server.paint_p50_us / 1000).toFixed(1)} ms`);
});

test('WebKitGTK: a click arrives upstream at the stream coordinates it was made at', { timeout: 90_000 }, async (t) => {
  if (!probeReady(t, ['navigationtest', 'x264enc'])) return;
  const probe = await startProbe(`${SOURCE} ! navigationtest ! videoconvert ! ${X264} ! rfbsink name=sink port=0`);
  t.after(() => probe.stop());
  await wd().go(probe.url);
  await waitFrames(10, probe.logs);
  const rect = await wd().run('const r = document.querySelector("canvas.rfb-canvas").getBoundingClientRect(); return { left: r.left, top: r.top, width: r.width, height: r.height };');
  const scale = Math.min(rect.width / STREAM.width, rect.height / STREAM.height);
  const from = probe.lines.length;
  await wd().click(rect.left + (rect.width - STREAM.width * scale) / 2 + 480 * scale, rect.top + (rect.height - STREAM.height * scale) / 2 + 360 * scale);
  const press = await probe.waitFor((l) => l.event === 'mouse-button-press', 'the click upstream', { from });
  // WebDriver moves to whole CSS pixels: a pixel of the view is 1/scale stream pixels.
  const tol = 2 + 1 / scale;
  assert.ok(Math.abs(press.x - 480) <= tol && Math.abs(press.y - 360) <= tol, `click at (480, 360) arrived at (${press.x}, ${press.y})`);
});
