// WebKitGTK for tests and benches: Debian's WebKitWebDriver driving its MiniBrowser under a
// private Xvfb display, through plain W3C WebDriver (tests/e2e/webkit.test.mjs,
// tests/bench/paint.mjs).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { freePort, pollUntil } from './lib.mjs';

export const DRIVER = process.env.RFB_WEBKIT_DRIVER ?? '/usr/bin/WebKitWebDriver';
export const MINIBROWSER = process.env.RFB_WEBKIT_BROWSER ?? '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
export const XVFB = '/usr/bin/Xvfb';

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
export class WebDriver {
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


/** Why WebKitGTK cannot run here, or null. */
export function webkitMissing() {
  const gone = [DRIVER, MINIBROWSER, XVFB].filter((f) => !existsSync(f));
  return gone.length ? `${gone.join(', ')} missing: install webkit2gtk-driver and xvfb (scripts/install-deps.sh does)` : null;
}

/**
 * Xvfb, WebKitWebDriver on a free port and a session: {driver, capabilities, pids (Xvfb's and the
 * driver's: the browser's processes are the driver's children), close()}.
 */
export async function launchWebKit() {
  const missing = webkitMissing();
  if (missing) throw new Error(missing);
  const { proc: xvfb, display } = await startXvfb();
  const port = await freePort();
  const wd = spawn(DRIVER, [`--port=${port}`], { env: { ...process.env, DISPLAY: display }, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(wd);
  const driver = new WebDriver(`http://127.0.0.1:${port}`);
  await pollUntil(() => fetch(`http://127.0.0.1:${port}/status`).then((r) => r.ok, () => false), (ok) => ok, { what: 'WebKitWebDriver up' });
  const capabilities = await driver.start();
  return {
    driver,
    capabilities,
    pids: [xvfb.pid, wd.pid],
    close: async () => {
      await driver.stop();
      wd.kill('SIGTERM');
      xvfb.kill('SIGTERM');
    },
  };
}
