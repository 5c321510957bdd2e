// examples/python/numpy_stream.py end to end: the example (system python3 with PyGObject and
// numpy) serves its heat map on a free port; the real viewer in headless Chromium shows it, the
// pointer moves its hot spot, a click switches the colour map, an app.params message round-trips,
// and with no input the stream stays still (sparse frames).
//
//   node --test tests/python/

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { REPO, Viewer, assertPluginBuilt, gstEnv, launchBrowser, pollUntil, requireElements } from '../e2e/lib.mjs';

const PYTHON = process.env.RFB_PYTHON ?? '/usr/bin/python3';
const EXAMPLE = path.join(REPO, 'examples', 'python', 'numpy_stream.py');
const WIDTH = 640;
const HEIGHT = 480;
const START_TIMEOUT_MS = 30_000;
const QUIET_MS = 2_000;

/** What the example needs from the system python; null when it has it. */
function pythonMissing() {
  const r = spawnSync(PYTHON, ['-c', [
    'import gi, numpy',
    "gi.require_version('Gst', '1.0')",
    "gi.require_version('GstVideo', '1.0')",
    'from gi.repository import Gst, GstVideo',
  ].join('\n')], { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? null : `${PYTHON} cannot import gi/numpy/Gst: ${(r.stderr || r.error?.message || '').trim().split('\n').pop()}`;
}

/**
 * Starts the example with `args`; resolves with {url, stop(), logs()} once it prints the URL.
 * @param {string[]} args
 */
function startExample(args) {
  const proc = spawn(PYTHON, [EXAMPLE, ...args], { env: gstEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const logs = () => `--- ${PYTHON} ${EXAMPLE} ${args.join(' ')}\n--- stdout\n${out.slice(-4000)}\n--- stderr (tail)\n${err.slice(-8000)}`;
  const exited = new Promise((resolve) => proc.once('close', (code, signal) => resolve({ code, signal })));
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGINT');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    return exited;
  };
  process.on('exit', () => proc.kill('SIGKILL'));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { stop(); reject(new Error(`no URL within ${START_TIMEOUT_MS} ms\n${logs()}`)); }, START_TIMEOUT_MS);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => { err = (err + chunk).slice(-32_000); });
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      const m = /(https?:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], stop, logs, exited });
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the example exited (code ${code}, signal ${signal}) before printing its URL\n${logs()}`));
    });
  });
}

// Records every app.* message from the moment the page creates window.rfbViewer, so that the
// hello sent right after connecting is not missed.
const RECORD_APP_MESSAGES = () => {
  window.__appMessages = [];
  let viewer;
  Object.defineProperty(window, 'rfbViewer', {
    configurable: true,
    get: () => viewer,
    set(value) {
      viewer = value;
      value.onMessage((m) => window.__appMessages.push(m));
    },
  });
};

const appMessages = (viewer) => viewer.page.evaluate(() => window.__appMessages);

const isHot = ([r, g]) => r > 200 && g > 200; // the peak: pale yellow (inferno) or white (gray)
const isCold = ([r, g, b]) => r < 60 && g < 60 && b < 60; // far from the peak: near black

/** @type {Awaited<ReturnType<typeof launchBrowser>>} */
let browser;

before(async () => {
  assertPluginBuilt();
  browser = await launchBrowser();
  await browser.context.addInitScript(RECORD_APP_MESSAGES);
});

after(async () => {
  await browser?.close();
});

test('numpy_stream.py: pointer, click, app.params round trip, sparse frames (H.264)', { timeout: 120_000 }, async (t) => {
  const missing = pythonMissing();
  if (missing) {
    t.skip(missing);
    return;
  }
  if (!requireElements(t, ['appsrc', 'videoconvert', 'x264enc'])) return;

  const example = await startExample(['--port', '0', '--codec', 'h264', '--size', `${WIDTH}x${HEIGHT}`]);
  t.after(() => example.stop());
  const viewer = await Viewer.open(browser.context, example.url);
  t.after(() => viewer.close());
  const details = () => `${viewer.logs()}\n${example.logs()}`;

  // The initial frame.
  const stats = await viewer.waitForFrames(1, { extra: example.logs });
  assert.equal(stats.codec, 'h264', details());
  assert.equal(stats.width, WIDTH, details());
  assert.equal(stats.height, HEIGHT, details());

  /** Polls the picture until `accept(pixels at points)`; the error says what was wanted. */
  const waitForPicture = (points, accept, what) => {
    let last;
    return pollUntil(() => viewer.samplePixels(points), (px) => { last = px; return accept(px); },
      { timeoutMs: 10_000, what, details: () => `points ${JSON.stringify(points)}: ${JSON.stringify(last)}\n${details()}` });
  };

  // The hot spot starts in the middle.
  const centre = [WIDTH / 2, HEIGHT / 2];
  const target = [160, 120];
  await waitForPicture([centre, target], ([c, f]) => isHot(c) && isCold(f), 'the hot spot in the middle');

  // Every new viewer is greeted on app.params.
  const hello = await pollUntil(() => appMessages(viewer), (ms) => ms.some((m) => m.kind === 'hello'),
    { timeoutMs: 5_000, what: 'the hello on app.params', details });
  t.diagnostic(`hello: ${JSON.stringify(hello.find((m) => m.kind === 'hello'))}`);

  // Input: real mouse events when the viewer captures input (it maps page to stream
  // coordinates), the documented rfb.events messages otherwise.
  const captures = await viewer.page.evaluate(() => Boolean(window.rfbViewer.input));
  const toPage = async ([x, y]) => {
    const box = await viewer.page.locator('canvas').first().boundingBox();
    const scale = Math.min(box.width / WIDTH, box.height / HEIGHT); // object-fit: contain
    return [box.x + (box.width - WIDTH * scale) / 2 + (x + 0.5) * scale,
      box.y + (box.height - HEIGHT * scale) / 2 + (y + 0.5) * scale];
  };
  const move = async (p) => {
    if (captures) {
      const [px, py] = await toPage(p);
      await viewer.page.mouse.move(px, py, { steps: 5 });
    } else {
      await viewer.page.evaluate(([x, y]) => window.rfbViewer.sendMessage('rfb.events', { kind: 'pointer-move', x, y }), p);
    }
  };
  const click = async (p) => {
    if (captures) {
      const [px, py] = await toPage(p);
      await viewer.page.mouse.click(px, py);
    } else {
      await viewer.page.evaluate(async ([x, y]) => {
        await window.rfbViewer.sendMessage('rfb.events', { kind: 'pointer-down', x, y, button: 0, buttons: 1 });
        await window.rfbViewer.sendMessage('rfb.events', { kind: 'pointer-up', x, y, button: 0, buttons: 0 });
      }, p);
    }
  };
  t.diagnostic(captures ? 'input: real mouse events through the viewer\'s capture'
    : 'input: the viewer has no input capture (rfbViewer.input): sent rfb.events messages');

  // The pointer moves the hot spot.
  await move(target);
  await waitForPicture([target, centre], ([h, c]) => isHot(h) && isCold(c), `the hot spot at the pointer ${target}`);

  // A left click switches the colour map: the peak turns from pale yellow (blue ~164) to white.
  await click(target);
  await waitForPicture([target], ([h]) => isHot(h) && h[2] > 230, 'the gray colour map after a click');

  // An app.params message round-trips, and the picture follows: at 40 px from the centre,
  // sigma 40 gives exp(-0.5) = 61 % of the peak, sigma 15 gives 3 %.
  const side = [target[0] + 40, target[1]];
  await viewer.page.evaluate(() => window.rfbViewer.sendMessage('app.params', { kind: 'set', sigma: 40 }));
  await waitForPicture([side], ([s]) => s[0] > 110, 'a wide peak (sigma 40)');
  await viewer.page.evaluate(() => window.rfbViewer.sendMessage('app.params', { kind: 'set', sigma: 15 }));
  const messages = await pollUntil(() => appMessages(viewer), (ms) => ms.some((m) => m.kind === 'ack' && m.sigma === 15),
    { timeoutMs: 5_000, what: 'the ack for sigma 15 on app.params', details });
  const ack = messages.find((m) => m.kind === 'ack' && m.sigma === 15);
  assert.equal(ack.channel, 'app.params', JSON.stringify(ack));
  assert.equal(ack.cmap, 'gray', JSON.stringify(ack));
  await waitForPicture([side, target], ([s, h]) => s[0] < 40 && isHot(h), 'a narrow peak (sigma 15)');

  // A bad value is refused with an error, and the picture stays.
  await viewer.page.evaluate(() => window.rfbViewer.sendMessage('app.params', { kind: 'set', sigma: 'wide' }));
  await pollUntil(() => appMessages(viewer), (ms) => ms.some((m) => m.kind === 'error'),
    { timeoutMs: 5_000, what: 'an error for sigma "wide"', details });

  // Sparse: nothing changes, nothing is sent. Let the last frame land, then watch for QUIET_MS.
  const settled = await pollUntil(async () => {
    const a = (await viewer.stats()).framesDecoded;
    await new Promise((r) => setTimeout(r, 300));
    return [a, (await viewer.stats()).framesDecoded];
  }, ([a, b]) => a === b, { timeoutMs: 10_000, what: 'the stream to settle', details });
  const before = settled[1];
  await new Promise((r) => setTimeout(r, QUIET_MS));
  const afterQuiet = (await viewer.stats()).framesDecoded;
  t.diagnostic(`${before} frames decoded in the whole test; ${afterQuiet - before} in ${QUIET_MS} ms without input`);
  assert.equal(afterQuiet, before, `frames kept coming without input (${before} -> ${afterQuiet})\n${details()}`);
  // A handful of frames for everything above, not a frame rate's worth.
  assert.ok(before < 200, `${before} frames for a few changes: the stream is not sparse\n${details()}`);

  const { code, signal } = await example.stop();
  assert.equal(code, 0, `the example did not exit cleanly on SIGINT (code ${code}, signal ${signal})\n${example.logs()}`);
});

test('numpy_stream.py --codec jpeg: the viewer shows the picture', { timeout: 60_000 }, async (t) => {
  const missing = pythonMissing();
  if (missing) {
    t.skip(missing);
    return;
  }
  if (!requireElements(t, ['appsrc', 'videoconvert', 'jpegenc'])) return;
  const example = await startExample(['--port', '0', '--codec', 'jpeg', '--size', '320x240']);
  t.after(() => example.stop());
  const viewer = await Viewer.open(browser.context, example.url);
  t.after(() => viewer.close());
  const stats = await viewer.waitForFrames(1, { extra: example.logs });
  assert.equal(stats.codec, 'jpeg');
  await pollUntil(() => viewer.samplePixels([[160, 120], [10, 10]]), ([c, f]) => isHot(c) && isCold(f),
    { timeoutMs: 10_000, what: 'the hot spot in the middle', details: () => `${viewer.logs()}\n${example.logs()}` });
});
