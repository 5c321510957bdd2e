// The Python package in a real JupyterLab: a notebook that makes rfbsink.Streams and displays
// them runs in headless Chromium; its cells show the pictures pushed from Python (colours checked),
// a click in a cell arrives in the Python callback (which answers the page), a page message
// arrives in Python, and a 12-bit uint16 picture is visible at once (the window follows the data).
// With JupyterLab on this machine's loopback (in Chromium and in Firefox ESR), then on a "server" reachable only through an
// SSH tunnel to Jupyter's port (sshd in a second network namespace; the streams' own ports are
// on that server's loopback, out of the browser's reach), so the widget must go through Jupyter.
//
// JupyterLab, anywidget and jupyter-server-proxy come from PyPI into target/pyenv
// (scripts/python-env.sh, run by install-deps).
//
//   node --test tests/python/jupyter.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { REPO, Viewer, assertPluginBuilt, freePort, gstEnv, launchBrowser, outPath, pollUntil, streamToPage } from '../e2e/lib.mjs';
import { SERVER_ADDRESS, runInPrivateNetns, serverNamespace, sshTunnel } from '../e2e/netns.mjs';

runInPrivateNetns('jupyter.test');

const PYENV = path.join(REPO, 'target', 'pyenv');
const JUPYTER = path.join(PYENV, 'bin', 'jupyter');
const FIREFOX = process.env.RFB_FIREFOX ?? '/usr/bin/firefox-esr';

// The notebook a scientist would write. The RGB stream: four quadrants; a click is answered on
// app.notebook with where Python saw it; a page message is echoed. The detector stream: a 12-bit
// ramp (0..4095 left to right) as uint16, sent losslessly.
const CELLS = [
  `import numpy as np, rfbsink
stream = rfbsink.Stream(320, 240)
frame = np.zeros((240, 320, 3), np.uint8)
frame[:120, :160] = (255, 0, 0); frame[:120, 160:] = (0, 255, 0)
frame[120:, :160] = (0, 0, 255); frame[120:, 160:] = (255, 255, 255)
clicks = []

@stream.on_input
def clicked(event):
    if event.kind == "pointer-down":
        clicks.append((event.x, event.y))
        stream.send("app.notebook", {"kind": "clicked", "x": event.x, "y": event.y, "n": len(clicks)})

@stream.on_message
def echo(channel, message, client_id):
    stream.send("app.notebook", {"kind": "echo", "got": message}, client_id)

stream.push(frame)
stream`,
  `detector = rfbsink.Stream(256, 128, dtype=np.uint16)
detector.push(np.tile(np.linspace(0, 4095, 256).astype(np.uint16), (128, 1)))
detector`,
  // Directly, not through Jupyter: the stream does not let the Jupyter page's origin in, and the
  // cell says so (with the fix) instead of staying blank.
  `import rfbsink.widget
rfbsink.widget.StreamWidget(stream, mode="direct")`,
];

function notebook() {
  return JSON.stringify({
    cells: CELLS.map((source) => ({ cell_type: 'code', execution_count: null, metadata: {}, outputs: [], source })),
    metadata: { kernelspec: { display_name: 'Python 3', language: 'python', name: 'python3' } },
    nbformat: 4,
    nbformat_minor: 5,
  });
}

/** Why this machine cannot run the test, or null. */
function missing() {
  if (!existsSync(JUPYTER)) return `${JUPYTER} is missing: run scripts/python-env.sh (make deps does)`;
  return null;
}

/**
 * Starts JupyterLab on 127.0.0.1 (in the namespace `wrap` enters, if any) with a notebook of
 * CELLS; resolves with {port, token, logs()} once it answers. Stopped when the test ends.
 */
async function startJupyter(t, { wrap = [], probe = (url) => fetch(url) } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'rfbsink-jupyter-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'notebooks');
  mkdirSync(root);
  writeFileSync(path.join(root, 'rfb.ipynb'), notebook());
  const port = await freePort();
  const token = randomBytes(16).toString('hex');
  const env = {
    ...gstEnv(),
    // Nothing from this machine's user configuration.
    JUPYTER_CONFIG_DIR: path.join(dir, 'config'),
    JUPYTER_RUNTIME_DIR: path.join(dir, 'runtime'),
    JUPYTERLAB_SETTINGS_DIR: path.join(dir, 'settings'),
    JUPYTERLAB_WORKSPACES_DIR: path.join(dir, 'workspaces'),
    IPYTHONDIR: path.join(dir, 'ipython'),
  };
  const args = ['lab', '--allow-root', '--no-browser', '--ip=127.0.0.1', `--port=${port}`, '--port-retries=0',
    `--IdentityProvider.token=${token}`, `--ServerApp.root_dir=${root}`,
    // window.jupyterapp, to run the notebook's cells as a person's Run All does.
    '--LabApp.expose_app_in_browser=True', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate'];
  const [cmd, ...pre] = [...wrap, JUPYTER];
  const proc = spawn(cmd, [...pre, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const keep = (c) => { log = (log + c).slice(-20_000); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      proc.kill('SIGKILL');
    }
  });
  const logs = () => `--- jupyter lab (tail)\n${log}`;
  return { port, token, logs, proc };
}

/** Opens the notebook at `base` (http://host:port/), runs all cells; resolves with the page. */
async function runNotebook(t, context, base, token, logs) {
  const page = await context.newPage();
  // playwright's setViewportSize; puppeteer's setViewport (Firefox).
  await (page.setViewportSize ? page.setViewportSize({ width: 1200, height: 1000 }) : page.setViewport({ width: 1200, height: 1000 }));
  const viewer = new Viewer(page, `${base}lab/tree/rfb.ipynb`);
  t.after(() => page.close().catch(() => {}));
  const details = () => `${viewer.logs()}\n${logs()}`;
  await page.goto(`${base}lab/tree/rfb.ipynb?token=${token}`);
  await pollUntil(() => page.evaluate(() => {
    const panel = /** @type {any} */ (window).jupyterapp?.shell?.currentWidget;
    return panel?.sessionContext?.session?.kernel?.status ?? null;
  }), (s) => s === 'idle', { timeoutMs: 60_000, what: 'the notebook open with an idle kernel', details });
  await page.evaluate(() => /** @type {any} */ (window).jupyterapp.commands.execute('notebook:run-all-cells'));
  await pollUntil(() => page.evaluate(() => [...document.querySelectorAll('.rfbsink-widget')]
    .map((box) => /** @type {any} */ (box).rfbViewer ? /** @type {HTMLElement} */ (box).dataset.rfbVia
      : /neither through Jupyter/.test(box.textContent ?? '') ? 'refused' : 'mounting')),
  (vias) => vias.length === 3 && vias.every((v) => v !== 'mounting'),
  { timeoutMs: 60_000, what: 'the cells showing their viewer (or why not)', details });
  return { page, viewer, details };
}

/** Makes the `index`th cell's viewer window.rfbViewer (for the Viewer helpers). */
async function pick(page, index) {
  await page.evaluate((i) => {
    const box = /** @type {any} */ (document.querySelectorAll('.rfbsink-widget')[i]);
    box.scrollIntoView();
    /** @type {any} */ (window).rfbViewer = box.rfbViewer;
  }, index);
}

/** The checks a person would make, on a notebook already run. Returns figures for the log. */
async function checkCells(page, viewer, details) {
  // The RGB cell: frames, the four quadrants' colours.
  await pick(page, 0);
  const stats = await viewer.waitForFrames(1, { timeoutMs: 30_000, extra: details });
  const want = [[[80, 60], [255, 0, 0]], [[240, 60], [0, 255, 0]], [[80, 180], [0, 0, 255]], [[240, 180], [255, 255, 255]]];
  let got;
  await pollUntil(async () => (got = await viewer.samplePixels(want.map(([p]) => p))),
    (px) => want.every(([, rgb], i) => rgb.every((c, k) => Math.abs(px[i][k] - c) <= 40)),
    { timeoutMs: 10_000, what: 'the four quadrants red, green, blue, white', details: () => `${JSON.stringify(got)}\n${details()}` });

  // A click in the cell: Python's callback sees it at the array coordinates and answers.
  await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    w.rfbMessages = [];
    w.rfbViewer.onMessage((m) => w.rfbMessages.push(m));
  });
  const target = await streamToPage(page, '.rfbsink-widget canvas.rfb-canvas', { width: 320, height: 240 }, 250, 190);
  await page.mouse.click(target.x, target.y);
  const clicked = await pollUntil(() => page.evaluate(() => /** @type {any} */ (window).rfbMessages.find((m) => m.kind === 'clicked')),
    (m) => Boolean(m), { timeoutMs: 15_000, what: 'the Python callback\'s answer to the click', details });
  assert.equal(clicked.channel, 'app.notebook');
  assert.ok(Math.abs(clicked.x - 250) <= 2 && Math.abs(clicked.y - 190) <= 2, `Python saw the click at (${clicked.x}, ${clicked.y}), want (250, 190)`);

  // A message from the page reaches Python (on_message), which answers it.
  await page.evaluate(() => /** @type {any} */ (window).rfbViewer.sendMessage('app.notebook', { kind: 'hello', n: 42 }));
  const echo = await pollUntil(() => page.evaluate(() => /** @type {any} */ (window).rfbMessages.find((m) => m.kind === 'echo')),
    (m) => Boolean(m), { timeoutMs: 15_000, what: 'the echo of a page message', details });
  assert.deepEqual(echo.got, { kind: 'hello', n: 42 });

  // The 12-bit detector cell: lossless gray16, shown black to white at once (auto window).
  await pick(page, 1);
  const raw = await viewer.waitForFrames(1, { timeoutMs: 30_000, extra: details });
  assert.equal(raw.codec, 'raw', JSON.stringify(raw));
  let ramp;
  await pollUntil(async () => (ramp = await viewer.samplePixels([[0, 64], [128, 64], [255, 64]])),
    (px) => px[0][0] <= 5 && Math.abs(px[1][0] - 128) <= 5 && px[2][0] >= 250,
    { timeoutMs: 10_000, what: 'the 12-bit ramp black -> mid gray -> white', details: () => `${JSON.stringify(ramp)}\n${details()}` });
  const value = await page.evaluate(() => /** @type {any} */ (window).rfbViewer.rawValueAt(255, 10));
  assert.deepEqual(value, [4095], 'the exact 16-bit value arrives');
  return { transport: stats.transport };
}

/** @type {Awaited<ReturnType<typeof launchBrowser>> | undefined} */
let browser;
before(async () => {
  assertPluginBuilt();
  if (!missing()) browser = await launchBrowser();
});
after(async () => { await browser?.close(); });

/**
 * JupyterLab on this machine's loopback, the notebook run in `context` (a browser's): the cells
 * show the streams through Jupyter's proxy, the direct widget explains its refusal, and checkCells.
 */
async function onLoopback(t, context, name) {
  const why = missing();
  if (why) return t.skip(why);
  const jupyter = await startJupyter(t);
  const base = `http://127.0.0.1:${jupyter.port}/`;
  await pollUntil(() => fetch(`${base}api/status?token=${jupyter.token}`).then((r) => r.status, () => 0), (s) => s === 200,
    { timeoutMs: 60_000, what: 'JupyterLab answering', details: jupyter.logs });
  const t0 = Date.now();
  const { page, viewer, details } = await runNotebook(t, context, base, jupyter.token, jupyter.logs);
  const vias = await page.evaluate(() => [...document.querySelectorAll('.rfbsink-widget')].map((b) => /** @type {HTMLElement} */ (b).dataset.rfbVia));
  assert.deepEqual(vias.slice(0, 2), ['proxy', 'proxy'], 'through Jupyter\'s own server (jupyter-server-proxy)');
  // mode="direct" from a page of another origin: refused, and the cell explains the fix.
  const refusal = await page.evaluate(() => document.querySelectorAll('.rfbsink-widget')[2].textContent);
  assert.match(refusal ?? '', /nor directly \(http:\/\/127\.0\.0\.1:\d+\/: .+\).*allowed_origins=\("http:\/\/127\.0\.0\.1:\d+",\)/s, refusal ?? '');
  const { transport } = await checkCells(page, viewer, details);
  assert.equal(transport, 'websocket');
  await page.screenshot({ path: outPath(`jupyter-notebook-${name}.png`) });
  t.diagnostic(`${name}, loopback: via ${vias[0]}, ${transport}, notebook opened and checked in ${Date.now() - t0} ms`);
}

test('JupyterLab on loopback: the cells show the streams, a click reaches Python, messages both ways', { timeout: 240_000 }, (t) =>
  onLoopback(t, /** @type {any} */ (browser).context, 'chromium'));

test('JupyterLab on loopback in Firefox ESR: the same', { timeout: 240_000 }, async (t) => {
  if (!existsSync(FIREFOX)) return t.skip(`${FIREFOX} is missing: install Debian's firefox-esr (scripts/install-deps.sh does)`);
  const profile = mkdtempSync(path.join(tmpdir(), 'rfbsink-jupyter-firefox-'));
  const firefox = await puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX, headless: true, userDataDir: profile });
  t.after(async () => {
    await firefox.close();
    rmSync(profile, { recursive: true, force: true });
  });
  return onLoopback(t, { newPage: () => firefox.newPage() }, 'firefox');
});

test('only Jupyter\'s port reachable, through an SSH tunnel: the same, through Jupyter\'s proxy', { timeout: 300_000 }, async (t) => {
  const why = missing();
  if (why) return t.skip(why);
  const pid = serverNamespace(t);
  const jupyter = await startJupyter(t, { wrap: ['nsenter', '-t', pid, '-n', '--'] });
  const tunnel = await sshTunnel(t, pid, jupyter.port);
  const logs = () => `${jupyter.logs()}\n${tunnel.logs()}`;
  const base = `http://127.0.0.1:${tunnel.port}/`;
  await pollUntil(() => fetch(`${base}api/status?token=${jupyter.token}`).then((r) => r.status, () => 0), (s) => s === 200,
    { timeoutMs: 60_000, what: 'JupyterLab answering through the tunnel', details: logs });
  const { page, viewer, details } = await runNotebook(t, /** @type {any} */ (browser).context, base, jupyter.token, logs);
  // The streams' own ports are on the server's loopback: the direct way is closed.
  const direct = await page.evaluate(async () => {
    const box = /** @type {any} */ (document.querySelector('.rfbsink-widget'));
    const root = box.rfbViewer.url.replace(/^ws/, 'http');
    return { root, via: box.dataset.rfbVia };
  });
  assert.equal(direct.via, 'proxy', JSON.stringify(direct));
  const port = Number(new URL(direct.root).pathname.split('/')[2]);
  const reach = await fetch(`http://${SERVER_ADDRESS}:${port}/`).then(() => 'reached', (e) => e.cause?.code ?? 'failed');
  assert.notEqual(reach, 'reached', 'the stream\'s port must not be reachable but through Jupyter');
  const { transport } = await checkCells(page, viewer, details);
  assert.equal(transport, 'websocket');
  t.diagnostic(`SSH tunnel to Jupyter only: via proxy, ${transport}`);
});
