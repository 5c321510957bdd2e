// GStreamer's own WHEP client, gst-plugins-rs' whepclientsrc (gst-plugin-webrtc from crates.io,
// built once by scripts/whepclientsrc.sh into a cache outside the clone), pulling a stream in
// tests/e2e/whep-pull.py: a pipeline as a media engineer writes it.

import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { REPO, gstEnv, onLines } from './lib.mjs';

/** The folder with whepclientsrc's plugin: built on first use (minutes), then cached. */
let whepPluginDir;
export function whepPlugin() {
  whepPluginDir ??= execFileSync('bash', [path.join(REPO, 'scripts', 'whepclientsrc.sh')],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 3_600_000 }).trim();
  return whepPluginDir;
}

/**
 * Runs whep-pull.py against `endpoint`: `frames` frames, then the last one's pixels at `points`;
 * or with `seconds`, each second's frames for that long from the first (`onEvent` sees each
 * report as it comes, e.g. the first `frame`). Resolves with its `done` report, its `first`
 * frame and its `seconds`; rejects with its error and output.
 * @param {string} endpoint
 * @param {string} token
 * @param {{points?: number[][], frames?: number, seconds?: number, timeoutS?: number, onEvent?: (e: any) => void}} [options]
 */
export function pull(endpoint, token, { points = [], frames = 60, seconds = 0, timeoutS = 40, onEvent = () => {} } = {}) {
  const env = { ...gstEnv(), GST_PLUGIN_PATH: `${gstEnv().GST_PLUGIN_PATH}:${whepPlugin()}` };
  const args = [path.join(REPO, 'tests', 'e2e', 'whep-pull.py'), '--endpoint', endpoint, '--token', token,
    '--frames', String(frames), '--timeout', String(timeoutS)];
  if (seconds) args.push('--seconds', String(seconds));
  if (points.length) args.push('--points', ...points.map(([x, y]) => `${x},${y}`));
  const proc = spawn('/usr/bin/python3', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  /** @type {any[]} */
  const events = [];
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => { err = (err + c).slice(-8000); });
  onLines(proc.stdout, (line) => {
    let e;
    try { e = JSON.parse(line); } catch { err += `${line}\n`; return; }
    events.push(e);
    onEvent(e);
  });
  return new Promise((resolve, reject) => {
    proc.once('close', (code) => {
      const done = events.find((e) => e.event === 'done');
      if (code === 0 && done) {
        resolve({ ...done, first: events.find((e) => e.event === 'frame'), seconds: events.filter((e) => e.event === 'second').map((e) => e.frames) });
      } else {
        reject(new Error(`whepclientsrc pulled no stream (exit ${code}): ${JSON.stringify(events.slice(-40))}\n--- stderr\n${err}`));
      }
    });
  });
}
