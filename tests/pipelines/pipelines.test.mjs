// Runs every pipeline of the catalogue (pipelines/*.sh) for a few frames, as a user would run
// it, with two changes: rfbsink listens on a free port and posts its stats every 200 ms, and
// files are written to a temporary folder. A pipeline passes once rfbsink has rendered 5 frames
// and, after Ctrl-C (SIGINT: -e turns it into end-of-stream), it wrote the files it names.
// A pipeline whose elements are not installed (or that needs an X display) is skipped by name.
//
//   node --test tests/pipelines/

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { assertPluginBuilt, gstEnv, hasElement, onLines, parseListening } from '../e2e/lib.mjs';
import { readCatalogue, testVariant } from './catalogue.mjs';

const FRAMES = 5;
const RUN_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 10_000;
const LOG_TAIL_CHARS = 6_000;

// gst-launch-1.0 -m prints each rfbsink-stats message as
//   Got message #40 from element "rfbsink0" (element): rfbsink-stats, clients=(uint)0, frames=(guint64)7,
//   frames-rendered=(guint64)7, ...
// frames-rendered, not frames: raw video with nobody watching is kept, not sent.
const STATS_RE = /rfbsink-stats,.*?\bframes-rendered=\(g?u?int(?:64)?\)(\d+)/;
// Opus packets the audio pad took (pipelines that link `sink.audio`).
const AUDIO_RE = /rfbsink-stats,.*?\baudio-packets=\(g?u?int(?:64)?\)(\d+)/;

const outRoot = mkdtempSync(path.join(tmpdir(), 'rfbsink-pipelines-'));
after(() => rmSync(outRoot, { recursive: true, force: true }));

const catalogue = readCatalogue();
let pluginChecked = false;

/** Whether `program` is on PATH. */
function hasProgram(program) {
  return spawnSync('sh', ['-c', `command -v "$1"`, 'sh', program], { stdio: 'ignore' }).status === 0;
}

/**
 * A short H.264-in-Matroska file, what the ffmpeg line's producer writes, for when ffmpeg is not
 * installed: the gst-launch-1.0 half then reads it from stdin, as it would read ffmpeg's output.
 */
function matroskaSample(dir) {
  const file = path.join(dir, 'sample.mkv');
  const r = spawnSync('gst-launch-1.0', ['-q',
    'videotestsrc', 'num-buffers=90', 'pattern=ball',
    '!', 'video/x-raw,format=I420,width=640,height=360,framerate=30/1',
    '!', 'x264enc', 'tune=zerolatency', 'speed-preset=ultrafast', 'key-int-max=30',
    '!', 'h264parse', '!', 'matroskamux', '!', 'filesink', `location=${file}`,
  ], { env: gstEnv(), encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `could not make ${file}:\n${r.stdout}${r.stderr}`);
  return file;
}

/** Keeps the end of a stream for failure messages. */
function tail() {
  let text = '';
  return {
    push(chunk) { text = (text + chunk).slice(-2 * LOG_TAIL_CHARS); },
    toString() { return text.slice(-LOG_TAIL_CHARS); },
  };
}

/**
 * Runs `gst-launch-1.0 -m args` until rfbsink reports `FRAMES` rendered frames, then stops it
 * with SIGINT and waits for it to exit.
 * @param {string[]} args
 * With `audio`, it also waits for `FRAMES` Opus packets on the audio pad.
 * @param {{stdin?: 'ignore' | number | import('node:stream').Readable, audio?: boolean}} [opts]
 * @returns {Promise<{frames: number, audioPackets: number, url: string | null, code: number | null, signal: string | null, logs: () => string}>}
 */
function runUntilFrames(args, { stdin = 'ignore', audio = false } = {}) {
  const proc = spawn('gst-launch-1.0', ['-m', ...args], {
    env: gstEnv(),
    stdio: [typeof stdin === 'object' ? 'pipe' : stdin, 'pipe', 'pipe'],
  });
  if (typeof stdin === 'object') stdin.pipe(proc.stdin);
  const out = tail();
  const err = tail();
  const logs = () => `--- gst-launch-1.0 -m ${args.join(' ')}\n--- stdout (tail)\n${out}\n--- stderr (tail)\n${err}`;
  let frames = 0;
  let audioPackets = 0;
  let url = null;
  let stopTimer = null;
  let runTimer = null;

  const stop = () => {
    if (stopTimer || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGINT');
    stopTimer = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
  };

  return new Promise((resolve, reject) => {
    runTimer = setTimeout(() => {
      stop();
      reject(new Error(`rfbsink did not render ${FRAMES} frames within ${RUN_TIMEOUT_MS} ms (last count ${frames})\n${logs()}`));
    }, RUN_TIMEOUT_MS);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => err.push(chunk));
    onLines(proc.stdout, (line) => {
      url ??= parseListening(line)?.url ?? null;
      const m = STATS_RE.exec(line);
      const a = AUDIO_RE.exec(line);
      if (a) audioPackets = Math.max(audioPackets, Number(a[1]));
      if (m) {
        frames = Math.max(frames, Number(m[1]));
        if (frames >= FRAMES && (!audio || audioPackets >= FRAMES)) stop();
      }
    });
    proc.stdout.on('data', (chunk) => out.push(chunk));
    proc.once('error', (e) => reject(new Error(`cannot start gst-launch-1.0: ${e.message}`)));
    proc.once('close', (code, signal) => {
      clearTimeout(runTimer);
      clearTimeout(stopTimer);
      if (frames >= FRAMES) resolve({ frames, audioPackets, url, code, signal, logs });
      else reject(new Error(`gst-launch-1.0 exited (code ${code}, signal ${signal}) after ${frames} frames, before ${FRAMES}\n${logs()}`));
    });
  });
}

/** Asserts that `file` is a non-empty MP4 with its header (moov) and media (mdat/moof). */
function assertMp4(file, logs) {
  assert.ok(existsSync(file), `the recording ${file} was not written\n${logs()}`);
  const size = statSync(file).size;
  assert.ok(size > 0, `the recording ${file} is empty\n${logs()}`);
  const bytes = readFileSync(file);
  for (const box of ['ftyp', 'moov']) {
    assert.ok(bytes.includes(box), `the recording ${file} (${size} bytes) has no ${box} box\n${logs()}`);
  }
  assert.ok(bytes.includes('mdat'), `the recording ${file} (${size} bytes) has no media (mdat)\n${logs()}`);
}

test('the catalogue has pipelines', () => {
  assert.ok(catalogue.length >= 10, `only ${catalogue.length} pipelines in pipelines/`);
});

for (const entry of catalogue) {
  test(`pipeline ${entry.name}`, { timeout: 60_000 }, async (t) => {
    t.diagnostic(`elements: ${entry.elements.join(', ')}`);
    const missing = entry.elements.filter((e) => !hasElement(e));
    if (missing.length) {
      t.skip(`${entry.name}: missing GStreamer element(s): ${missing.join(', ')} (gst-inspect-1.0 failed)`);
      return;
    }
    if (entry.elements.includes('ximagesrc') && !process.env.DISPLAY) {
      t.skip(`${entry.name}: ximagesrc needs an X display and $DISPLAY is not set`);
      return;
    }
    if (!pluginChecked) {
      assertPluginBuilt();
      pluginChecked = true;
    }

    const outDir = mkdtempSync(path.join(outRoot, `${entry.name}-`));
    const { args, outputs } = testVariant(entry.gstArgs, { outDir });

    let stdin = 'ignore';
    let producer = null;
    let sampleFd = null;
    if (entry.producer) {
      const program = entry.producer[0];
      if (hasProgram(program)) {
        producer = spawn(program, entry.producer.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
        t.after(() => producer.kill('SIGKILL'));
        stdin = producer.stdout;
      } else {
        t.diagnostic(`${program} is not installed: gst-launch-1.0 reads a Matroska file made by GStreamer instead`);
        sampleFd = openSync(matroskaSample(outDir), 'r');
        stdin = sampleFd;
      }
    }

    let result;
    try {
      result = await runUntilFrames(args, { stdin, audio: args.includes('sink.audio') });
    } finally {
      if (sampleFd !== null) closeSync(sampleFd);
      producer?.kill('SIGTERM');
    }
    t.diagnostic(`${result.frames} frames rendered, served at ${result.url}`);
    assert.ok(result.url, `rfbsink never reported rfbsink-listening\n${result.logs()}`);
    assert.doesNotMatch(result.logs(), /^ERROR: from element/m, `the pipeline posted an error\n${result.logs()}`);
    if (args.includes('sink.audio')) {
      assert.ok(result.audioPackets >= FRAMES, `the audio pad took ${result.audioPackets} packets\n${result.logs()}`);
      t.diagnostic(`${result.audioPackets} Opus packets on the audio pad`);
    }
    for (const file of outputs) {
      if (file.endsWith('.mp4')) assertMp4(file, result.logs);
      else assert.ok(existsSync(file) && statSync(file).size > 0, `${file} was not written\n${result.logs()}`);
      t.diagnostic(`wrote ${path.basename(file)}: ${statSync(file).size} bytes`);
    }
  });
}
