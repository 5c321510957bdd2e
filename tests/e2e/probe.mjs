// nav-probe.py from the tests: a pipeline that reports what rfbsink pushes upstream (navigation
// events), its bus messages and its client-message signal, one JSON object a line.

import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { REPO, gstEnv, onLines, pollUntil, requireElements } from './lib.mjs';

// Debian's python3 (python3-gi), not whatever python3 comes first on PATH.
const PYTHON = process.env.RFB_PYTHON ?? '/usr/bin/python3';
const PROBE = path.join(REPO, 'tests', 'e2e', 'nav-probe.py');

// --- nav-probe.py -------------------------------------------------------------------------------

const probes = new Set();
process.on('exit', () => {
  for (const p of probes) {
    try { p.kill('SIGKILL'); } catch { /* gone */ }
  }
});

/** Why nav-probe.py cannot run here, or null. */
export function probeMissing() {
  const r = spawnSync(PYTHON, ['-c', 'import gi; gi.require_version("Gst", "1.0"); gi.require_version("GstVideo", "1.0"); from gi.repository import Gst, GstVideo'],
    { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? null : `${PYTHON} cannot import gi (Gst, GstVideo): ${(r.stderr || r.error?.message || '').trim()}`;
}

/**
 * Whether a probe test can run: skips `t` (and returns false) when one of `elements` or
 * nav-probe.py's Python is missing.
 * @param {import('node:test').TestContext} t
 * @param {string[]} elements
 */
export function probeReady(t, elements) {
  if (!requireElements(t, elements)) return false;
  const missing = probeMissing();
  if (missing) {
    t.skip(missing);
    return false;
  }
  return true;
}

/**
 * Starts nav-probe.py on `launchLine`; resolves once rfbsink listens.
 * `lines` is every JSON object it printed, in order.
 */
export function startProbe(launchLine, { timeoutMs = 30_000, wrap = [] } = {}) {
  // `wrap`: a command to run it under (e.g. nsenter into another network namespace).
  const [cmd, ...args] = [...wrap, PYTHON, PROBE, launchLine];
  const proc = spawn(cmd, args, { env: gstEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  probes.add(proc);
  /** @type {any[]} */
  const lines = [];
  let stderr = '';
  const exited = new Promise((resolve) => proc.once('close', (code, signal) => {
    probes.delete(proc);
    resolve({ code, signal });
  }));
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => { stderr = (stderr + c).slice(-16_000); });
  onLines(proc.stdout, (line) => {
    try {
      lines.push(JSON.parse(line));
    } catch {
      stderr += `[not JSON on stdout] ${line}\n`;
    }
  });

  const logs = () => {
    const shown = lines.filter((l) => !l.stats).slice(-60).map((l) => JSON.stringify(l)).join('\n');
    const stats = lines.filter((l) => l.stats).slice(-1).map((l) => JSON.stringify(l)).join('\n');
    return `--- nav-probe.py ${launchLine}\n--- its reports (last 60, and the last stats)\n${shown}\n${stats}\n--- stderr (tail)\n${stderr.slice(-8000)}`;
  };
  let stopping = null;
  const stop = () => {
    stopping ??= (async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      return exited;
    })();
    return stopping;
  };

  /**
   * Waits until a line from index `from` on satisfies `accept`; returns it.
   * @param {(line: any) => boolean} accept
   */
  const waitFor = (accept, what, { from = 0, timeoutMs: t = 10_000 } = {}) => pollUntil(
    async () => lines.slice(from).find(accept),
    (found) => found !== undefined,
    { timeoutMs: t, intervalMs: 50, what, details: logs },
  );
  const events = (from = 0) => lines.slice(from).filter((l) => l.event);
  const lastStats = () => lines.filter((l) => l.stats).at(-1)?.stats;

  return (async () => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const listening = lines.find((l) => l.listening);
      if (listening) return { url: listening.listening, lines, waitFor, events, lastStats, stop, logs };
      const error = lines.find((l) => l.error);
      if (error || proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
        await stop();
        throw new Error(`nav-probe.py did not report rfbsink-listening${error ? `: ${error.error}` : ''}\n${logs()}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
}

