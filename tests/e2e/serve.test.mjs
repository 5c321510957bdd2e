// `rfb serve` end to end: for each codec it offers, the program serves its test source, the real
// viewer page in headless Chromium decodes it and shows a picture, and Ctrl-C (SIGINT) stops the
// program cleanly (EOS, exit status 0).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  REPO, Viewer, gstEnv, hasElement, launchBrowser, outPath, pollUntil, withQuery } from './lib.mjs';
import { click, record } from './audio.mjs';

const RFB = process.env.RFB_PROGRAM ?? path.join(REPO, 'target', 'release', 'rfb');
const WIDTH = 320;
const HEIGHT = 240;
const START_TIMEOUT_MS = 20_000;
const DECODE_TIMEOUT_MS = 20_000;
// rfb waits up to 5 s for EOS after the first Ctrl-C before it gives up (exit 130).
const STOP_TIMEOUT_MS = 10_000;
const LOG_TAIL_CHARS = 16_000;

// The encoder each codec needs (any one of them): rfb serve builds the pipeline with it.
const CODECS = [
  ['h264', ['x264enc', 'openh264enc']],
  ['vp8', ['vp8enc']],
  ['vp9', ['vp9enc']],
  ['av1', ['av1enc']],
  ['jpeg', ['jpegenc']],
  ['png', ['pngenc']],
  ['webp', ['webpenc']],
];

// rfb prints `rfb: viewer at http://127.0.0.1:PORT/` once rfbsink listens.
const VIEWER_RE = /^rfb: viewer at (\S+)/m;

// videotestsrc pattern=ball (rfb's default test source): a white ball, radius 20 px, moving over
// black. A grid finer than the ball's diameter always has a point inside it.
const GRID_STEP = 16;
const SAMPLE_POINTS = (() => {
  /** @type {Array<[number, number]>} */
  const points = [];
  for (let y = GRID_STEP / 2; y < HEIGHT; y += GRID_STEP) {
    for (let x = GRID_STEP / 2; x < WIDTH; x += GRID_STEP) points.push([x, y]);
  }
  return points;
})();
const BRIGHT = 160;

/** rfb registers rfbsink itself: keep the .so out of its registry (one registry a test file). */
const registryDir = mkdtempSync(path.join(tmpdir(), 'rfbsink-e2e-serve-registry-'));
function rfbEnv() {
  const { GST_PLUGIN_PATH: _unused, ...env } = gstEnv();
  return { ...env, GST_REGISTRY: path.join(registryDir, 'registry.bin') };
}

/** Keeps the last `LOG_TAIL_CHARS` characters of a stream. */
class Tail {
  text = '';
  /** @param {string} chunk */
  push(chunk) {
    this.text += chunk;
    if (this.text.length > 2 * LOG_TAIL_CHARS) this.text = this.text.slice(-LOG_TAIL_CHARS);
  }
  toString() { return this.text.slice(-LOG_TAIL_CHARS); }
}

/**
 * Starts `rfb serve ...args`; resolves once it prints the viewer URL, with {url, proc, exited,
 * interrupt(), kill(), logs()}. Rejects (and kills it) when it exits first or prints no URL in time.
 * @param {string[]} args
 */
function startServe(args) {
  const proc = spawn(RFB, ['serve', ...args], { env: rfbEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const output = new Tail();
  const exited = new Promise((resolve) => {
    proc.once('close', (code, signal) => resolve({ code, signal }));
  });
  const logs = () => `--- rfb serve ${args.join(' ')}\n--- output (tail)\n${output}`;
  const running = () => proc.exitCode === null && proc.signalCode === null;
  const kill = async () => {
    if (running()) proc.kill('SIGKILL');
    return exited;
  };
  const interrupt = () => {
    if (running()) proc.kill('SIGINT');
    return exited;
  };

  return new Promise((resolve, reject) => {
    let done = false;
    let seen = '';
    const finish = (err, value) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) kill().finally(() => reject(err));
      else resolve(value);
    };
    const timer = setTimeout(() => finish(new Error(
      `rfb serve printed no viewer URL within ${START_TIMEOUT_MS} ms\n${logs()}`)), START_TIMEOUT_MS);
    const onData = (chunk) => {
      output.push(chunk);
      seen += chunk;
      const m = VIEWER_RE.exec(seen);
      if (m) finish(null, { url: m[1], proc, exited, interrupt, kill, logs });
    };
    proc.stdout.setEncoding('utf8');
    proc.stderr.setEncoding('utf8');
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('error', (err) => finish(new Error(`cannot start ${RFB}: ${err.message}\n${logs()}`)));
    exited.then(({ code, signal }) => finish(new Error(
      `rfb serve exited (code ${code}, signal ${signal}) before it printed the viewer URL\n${logs()}`)));
  });
}

/** Rec. 601 luma of an RGBA sample. @param {number[]} p */
const luma = (p) => 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];

/** @type {Awaited<ReturnType<typeof launchBrowser>>} */
let browser;

before(async () => {
  assert.ok(existsSync(RFB), `${RFB} is not built (run \`make build\` first)`);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  rmSync(registryDir, { recursive: true, force: true });
});

for (const [codec, encoders] of CODECS) {
  test(`rfb serve --codec ${codec}: the viewer shows frames, Ctrl-C exits 0`, { timeout: 60_000 }, async (t) => {
    if (!encoders.some((e) => hasElement(e))) {
      t.skip(`missing GStreamer element: ${encoders.join(' or ')} (gst-inspect-1.0 failed)`);
      return;
    }
    const args = ['--source', 'test', '--codec', codec, '--size', `${WIDTH}x${HEIGHT}`, '--fps', '15', '--port', '0'];
    const serve = await startServe(args);
    let viewer;
    try {
      viewer = await Viewer.open(browser.context, serve.url);
      const stats = await viewer.waitForStats((s) => s.framesDecoded >= 5 && s.codec === codec,
        `5 decoded ${codec} frames`, { timeoutMs: DECODE_TIMEOUT_MS, extra: serve.logs });
      const context = `stats: ${JSON.stringify(stats)}\n${viewer.logs()}\n${serve.logs()}`;
      assert.equal(stats.width, WIDTH, context);
      assert.equal(stats.height, HEIGHT, context);
      assert.equal(stats.decodeErrors ?? 0, 0, context);

      // Not a black picture: somewhere on the grid the ball shows. Polled, because the first
      // painted frames may still be on their way to the canvas.
      let brightest = 0;
      await pollUntil(() => viewer.samplePixels(SAMPLE_POINTS), (pixels) => {
        brightest = Math.max(0, ...pixels.map(luma));
        return brightest >= BRIGHT;
      }, {
        timeoutMs: 5_000,
        what: `a bright pixel (luma >= ${BRIGHT}) in the ${codec} picture`,
        details: () => `brightest luma: ${brightest.toFixed(0)}\n${context}`,
      });
      if (codec === 'h264') await viewer.page.screenshot({ path: outPath('serve-h264.png') });

      await viewer.close();
      viewer = null;
      const stopTimer = setTimeout(() => serve.kill(), STOP_TIMEOUT_MS);
      const { code, signal } = await serve.interrupt();
      clearTimeout(stopTimer);
      assert.equal(signal, null, `rfb serve was killed (${signal}) instead of stopping on SIGINT\n${serve.logs()}`);
      assert.equal(code, 0, `rfb serve should exit 0 after SIGINT (EOS)\n${serve.logs()}`);
    } finally {
      await viewer?.close();
      await serve.kill();
    }
  });
}

// The server's telemetry (docs/protocol.md, rfb.stats `stats`): the viewer acks after painting
// with `paint_us`, the server sends its figures every second, the overlay shows them and graphs
// the latency.
test('rfb serve: the overlay (?overlay=1) shows the server\'s latency figures and graph', { timeout: 60_000 }, async (t) => {
  if (!hasElement('x264enc') && !hasElement('openh264enc')) {
    t.skip('missing GStreamer element: x264enc or openh264enc (gst-inspect-1.0 failed)');
    return;
  }
  const serve = await startServe(['--source', 'test', '--codec', 'h264', '--size', '640x360', '--fps', '30', '--port', '0']);
  let viewer;
  try {
    viewer = await Viewer.open(browser.context, withQuery(serve.url, '?overlay=1'));
    // Eight stats messages (one a second) after frames were acknowledged: a graph of a few
    // points, past the server's 5 s latency window that starts with the start-up burst.
    const stats = await viewer.waitForStats(
      (s) => s.server !== null && s.server.latency_p50_us > 0 && s.latencyHistory.length >= 8,
      'the server\'s stats with latencies', { timeoutMs: 25_000, extra: serve.logs });
    const context = `stats: ${JSON.stringify(stats)}\n${viewer.logs()}\n${serve.logs()}`;
    const server = stats.server;
    assert.match(server.transport, /^(websocket|webtransport)$/, context);
    assert.ok(server.latency_p95_us >= server.latency_p50_us, context);
    assert.ok(server.latency_max_us >= server.latency_p95_us, context);
    // Painted comes after decoded: the acks carry paint_us.
    assert.ok(server.paint_p50_us >= server.latency_p50_us, context);
    assert.ok(server.fps > 0 && server.bitrate_bps > 0, context);

    const overlay = await pollUntil(
      () => viewer.page.evaluate(() => {
        const graph = document.querySelector('.rfb-overlay-graph');
        return {
          text: document.querySelector('.rfb-overlay')?.textContent ?? '',
          graph: graph ? { shown: getComputedStyle(graph).display !== 'none', width: graph.clientWidth, height: graph.clientHeight } : null,
        };
      }),
      (o) => o.text.includes('server: render→decoded') && o.graph?.shown === true,
      { timeoutMs: 5_000, what: 'the server line and the latency graph in the overlay', details: () => context });
    assert.match(overlay.text, /server: render→decoded p50 [\d.]+ ms p95 [\d.]+ ms max [\d.]+ ms, painted p50 [\d.]+ ms/, overlay.text);
    assert.deepEqual([overlay.graph.width, overlay.graph.height], [240, 48]);

    const file = outPath('overlay.png');
    await viewer.page.screenshot({ path: file });
    t.diagnostic(`screenshot: ${file}`);
  } finally {
    await viewer?.close();
    await serve.kill();
  }
});

// --audio: the sound of the test source (a tick a second) and of a file reach the listener.

/**
 * `rfb serve ...args` with a viewer that saw pictures and the "click for sound", clicked, and
 * hears at least `packets` decoded packets.
 */
async function servedWithSound(t, args, packets) {
  const serve = await startServe(args);
  t.after(() => serve.kill());
  const viewer = await Viewer.open(browser.context, serve.url);
  t.after(() => viewer.close());
  await viewer.waitForStats((s) => s.audio.state === 'waiting-for-click' && s.framesDecoded >= 5, 'pictures and sound announced',
    { timeoutMs: DECODE_TIMEOUT_MS, extra: serve.logs });
  await click(viewer);
  await viewer.waitForStats((s) => s.audio.state === 'playing' && s.audio.framesDecoded >= packets, 'sound playing', { extra: serve.logs });
  return { serve, viewer };
}
test('rfb serve --audio test: ticks a second apart are heard after a click, Ctrl-C exits 0', { timeout: 60_000 }, async (t) => {
  if (!hasElement('opusenc') || !hasElement('x264enc')) return t.skip('needs opusenc and x264enc');
  // Past the start (where the jitter buffer may still grow after an underrun, shifting a tick).
  const { serve, viewer } = await servedWithSound(t, ['--source', 'test', '--size', `${WIDTH}x${HEIGHT}`, '--port', '0', '--audio', 'test'], 200);
  // A recording in which the jitter buffer adapted (an underrun grows it, a burst is cut back)
  // has a tick moved by that, by design: recorded again, up to five times, to get a steady one
  // (under CI's load one spell of underruns spanned three 3.5 s recordings, once in seven runs).
  const ATTEMPTS = 5;
  let ticks = [];
  const adapted = [];
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const before = (await viewer.stats()).audio;
    ({ ticks } = await record(viewer, 3500));
    const after = (await viewer.stats()).audio;
    if (after.underruns === before.underruns && after.skippedMs === before.skippedMs) break;
    adapted.push(`${after.underruns - before.underruns} underruns, ${after.skippedMs - before.skippedMs} ms skipped`);
  }
  assert.ok(adapted.length < ATTEMPTS, `the jitter buffer adapted in every recording: ${adapted.join('; ')}`);
  assert.ok(ticks.length >= 3, `ticks heard at ${ticks}`);
  for (let i = 1; i < ticks.length; i++) {
    assert.ok(Math.abs(ticks[i] - ticks[i - 1] - 1000) < 15, `ticks ${ticks[i - 1]} and ${ticks[i]} are not a second apart`);
  }
  await viewer.close();
  const { code, signal } = await serve.interrupt();
  assert.equal(signal, null, serve.logs());
  assert.equal(code, 0, serve.logs());
});

test('rfb serve --source file:PATH --audio file: the file\'s own sound plays', { timeout: 90_000 }, async (t) => {
  if (!['opusenc', 'x264enc', 'matroskamux', 'vorbisenc'].every(hasElement)) return t.skip('needs opusenc, x264enc, matroskamux, vorbisenc');
  const dir = mkdtempSync(path.join(tmpdir(), 'rfbsink-e2e-serve-file-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'tone.mkv');
  // Ten seconds of a picture and a 660 Hz tone (Vorbis, so that rfb re-encodes it to Opus).
  const make = spawn('gst-launch-1.0', ['-q', 'videotestsrc', 'num-buffers=300', '!', 'video/x-raw,width=320,height=240,framerate=30/1', '!',
    'x264enc', '!', 'mux.', 'audiotestsrc', 'num-buffers=470', 'freq=660', 'volume=0.5', '!', 'audioconvert', '!', 'vorbisenc', '!', 'mux.',
    'matroskamux', 'name=mux', '!', 'filesink', `location=${file}`], { env: gstEnv(), stdio: 'ignore' });
  assert.equal(await new Promise((r) => make.once('close', r)), 0, 'could not make the test file');
  const { serve, viewer } = await servedWithSound(t, ['--source', `file:${file}`, '--port', '0', '--audio', 'file'], 25);
  const { pitch: heard } = await record(viewer, 1000);
  assert.ok(Math.abs(heard - 660) < 6, `heard ${heard.toFixed(1)} Hz, expected the file's 660 Hz\n${serve.logs()}`);
});
