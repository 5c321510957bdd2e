// examples/python/detector.py end to end: a simulated 12-bit camera streamed losslessly as uint16
// by the rfbsink Python package; its control page (served by the example, importing the viewer
// from the stream's server) in headless Chromium. The picture arrives as raw gray16 with 12-bit
// counts, the exposure slider reaches Python as an app message (and the picture gets brighter),
// and a click is answered with the raw count at that pixel.
//
//   node --test tests/python/detector.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { REPO, Viewer, assertPluginBuilt, gstEnv, launchBrowser, outPath, pollUntil, streamToPage } from '../e2e/lib.mjs';

const PYTHON = path.join(REPO, 'target', 'pyenv', 'bin', 'python');
const EXAMPLE = path.join(REPO, 'examples', 'python', 'detector.py');

/** Starts the example; resolves with {url, stop(), logs()} once it prints its page's URL. */
function startExample(t, args) {
  const proc = spawn(PYTHON, [EXAMPLE, ...args], { env: gstEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => { err = (err + c).slice(-16_000); });
  const logs = () => `--- ${EXAMPLE} ${args.join(' ')}\n--- stdout\n${out.slice(-4000)}\n--- stderr (tail)\n${err}`;
  const exited = new Promise((resolve) => proc.once('close', (code, signal) => resolve({ code, signal })));
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGINT');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      const { code } = await exited;
      clearTimeout(timer);
      assert.equal(code, 0, `the example ends cleanly on SIGINT\n${logs()}`);
    }
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no URL within 30 s\n${logs()}`)), 30_000);
    proc.stdout.on('data', (c) => {
      out += c;
      const m = /detector: open (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], logs });
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the example exited (code ${code}, signal ${signal}) before printing its URL\n${logs()}`));
    });
  });
}

/** Mean of the raw gray16 picture the page decoded. */
const rawMean = (viewer) => viewer.page.evaluate(async () => {
  const raw = await /** @type {any} */ (window).rfbViewer.readRaw();
  if (!raw || raw.format !== 'gray16le') return null;
  const values = new Uint16Array(raw.data.buffer, raw.data.byteOffset, raw.width * raw.height);
  let sum = 0;
  let max = 0;
  for (const v of values) { sum += v; if (v > max) max = v; }
  return { mean: sum / values.length, max };
});

/** @type {Awaited<ReturnType<typeof launchBrowser>> | undefined} */
let browser;
before(async () => {
  assertPluginBuilt();
  browser = await launchBrowser();
});
after(async () => { await browser?.close(); });

test('detector.py: 12-bit uint16 frames losslessly, the exposure slider reaches Python, a click gets the raw count', { timeout: 120_000 }, async (t) => {
  if (!existsSync(PYTHON)) return t.skip(`${PYTHON} is missing: run scripts/python-env.sh (make deps does)`);
  const example = await startExample(t, ['--port', '0', '--page-port', '0', '--size', '320x240', '--fps', '15']);
  const viewer = await Viewer.open(/** @type {any} */ (browser).context, example.url, { viewport: { width: 900, height: 700 } });
  t.after(() => viewer.close());
  const details = () => `${viewer.logs()}\n${example.logs()}`;

  const stats = await viewer.waitForFrames(5, { extra: example.logs });
  assert.equal(stats.codec, 'raw', details());
  assert.equal(stats.codecString, 'gray16le', details());
  assert.equal(stats.width, 320);
  await pollUntil(() => viewer.page.textContent('#state'), (s) => /exposure 20 ms/.test(s ?? ''),
    { what: 'the state from Python (get on connect)', details });
  const before20 = await rawMean(viewer);
  assert.ok(before20 && before20.max <= 4095 && before20.max > 1000, `12-bit counts: ${JSON.stringify(before20)}`);

  // The slider: an app message to Python, which changes the camera and tells every page.
  await viewer.page.evaluate(() => {
    const slider = /** @type {HTMLInputElement} */ (document.getElementById('exposure'));
    slider.value = '150';
    slider.dispatchEvent(new Event('input', { bubbles: true }));
  });
  await pollUntil(() => viewer.page.textContent('#state'), (s) => /exposure 150 ms/.test(s ?? ''),
    { what: 'Python confirming exposure 150 ms', details });
  const from = (await viewer.stats()).framesDecoded;
  await viewer.waitForFrames(3, { from, extra: example.logs });
  const after150 = await rawMean(viewer);
  assert.ok(after150 && after150.mean > 1.8 * before20.mean,
    `7.5x the exposure makes the picture brighter: mean ${before20.mean.toFixed(0)} -> ${after150?.mean.toFixed(0)}`);

  // A click: Python answers with the raw count at that pixel of its frame.
  const target = await streamToPage(viewer.page, 'canvas.rfb-canvas', { width: 320, height: 240 }, 100, 50);
  await viewer.page.mouse.click(target.x, target.y);
  const pixel = await pollUntil(() => viewer.page.textContent('#pixel'), (s) => /^\(\d+, \d+\): \d+$/.test(s ?? ''),
    { what: 'the raw count at the clicked pixel', details });
  const [, x, y, value] = /** @type {RegExpMatchArray} */ (/^\((\d+), (\d+)\): (\d+)$/.exec(/** @type {string} */ (pixel)));
  assert.ok(Math.abs(Number(x) - 100) <= 1 && Math.abs(Number(y) - 50) <= 1, `clicked (100, 50), Python saw (${x}, ${y})`);
  assert.ok(Number(value) >= 100 && Number(value) <= 4095, `a 12-bit count with the dark offset: ${value}`);
  await viewer.page.screenshot({ path: outPath('detector.png') });
  t.diagnostic(`mean count ${before20.mean.toFixed(0)} at 20 ms, ${after150.mean.toFixed(0)} at 150 ms; pixel (${x}, ${y}) = ${value}`);
});
