// Late joiners of app-fed streams: a producer process that pushes frames from an application
// (appsrc with do-timestamp, or the Python package), viewers that open the page seconds later,
// and what they show in the seconds after joining.

import { spawn } from 'node:child_process';
import assert from 'node:assert/strict';
import { Viewer, gstEnv, onLines, pollUntil, withQuery } from './lib.mjs';

/**
 * Starts a producer that prints one JSON object a line (tests/bench/source.py, pyproducer.py):
 * resolves with {url, stop(), logs(), pushed(), fps()} once it prints `listening`. It stops when
 * its stdin closes; `pushed()` is the frame count of its last `source` report (source.py) or
 * counted from the time it started at `nominalFps` (pyproducer.py reports no count).
 * @param {string} python
 * @param {string[]} args
 * @param {{nominalFps: number}} opts
 */
export function startProducer(python, args, { nominalFps }) {
  const proc = spawn(python, args, { env: gstEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (c) => { err = (err + c).slice(-12_000); });
  const logs = () => `--- ${python} ${args.join(' ')}\n--- stdout (tail)\n${out.slice(-4000)}\n--- stderr (tail)\n${err}`;
  const exited = new Promise((r) => proc.once('close', r));
  const stop = async () => {
    proc.stdin.end();
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  const started = Date.now();
  /** @type {{pushed: number, at: number} | null} */
  let report = null;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { stop(); reject(new Error(`the producer did not listen within 30 s\n${logs()}`)); }, 30_000);
    exited.then((code) => { clearTimeout(timer); reject(new Error(`the producer exited (${code}) before it listened\n${logs()}`)); });
    onLines(proc.stdout, (line) => {
      out = (out + line + '\n').slice(-8000);
      let event;
      try { event = JSON.parse(line); } catch { return; }
      if (event.event === 'source') report = { pushed: event.pushed, at: Date.now() };
      if (event.event === 'listening') {
        clearTimeout(timer);
        resolve({
          url: event.url,
          stop,
          logs,
          pushed: () => report?.pushed ?? Math.floor(((Date.now() - started) / 1000) * nominalFps),
          /** Frames a second it really pushed so far (the machine may not keep up). */
          fps: () => (report ? report.pushed / ((report.at - started) / 1000) : nominalFps),
        });
      }
    });
  });
}

/**
 * Waits until the producer pushed `frames` frames, then opens one viewer per transport at once,
 * and counts for each the frames it decoded over `seconds` starting one second after its first
 * (the cached group of pictures is decoded by then). Returns per transport {decoded, expected,
 * perSecond, stats}: expected is what the stream sent in that window.
 * @param {import('playwright-core').BrowserContext} context
 * @param {Awaited<ReturnType<typeof startProducer>>} producer
 * @param {{frames: number, transports: string[], seconds?: number}} opts
 */
export async function joinLate(context, producer, { frames, transports, seconds = 6 }) {
  await pollUntil(async () => producer.pushed(), (n) => n >= frames,
    { timeoutMs: 60_000, intervalMs: 50, what: `${frames} frames pushed before the viewers join`, details: producer.logs });
  const viewers = await Promise.all(transports.map((tr) => Viewer.open(context, withQuery(producer.url, `?transport=${tr}`))));
  try {
    return await Promise.all(viewers.map(async (viewer, i) => {
      await viewer.waitForFrames(1, { extra: producer.logs });
      await new Promise((r) => setTimeout(r, 1000));
      const perSecond = [];
      let last = (await viewer.stats()).framesDecoded;
      const first = last;
      for (let s = 0; s < seconds; s++) {
        await new Promise((r) => setTimeout(r, 1000));
        const now = (await viewer.stats()).framesDecoded;
        perSecond.push(now - last);
        last = now;
      }
      const stats = await viewer.stats();
      return {
        transport: transports[i],
        actual: stats.transport,
        decoded: last - first,
        expected: Math.round(producer.fps() * seconds),
        perSecond,
        stats,
        logs: () => `${viewer.logs()}\n${producer.logs()}`,
      };
    }));
  } finally {
    await Promise.all(viewers.map((v) => v.close()));
  }
}

/**
 * Asserts that each late viewer decoded at least `share` of the stream's frames in its window,
 * on the transport it asked for.
 * @param {import('node:test').TestContext} t
 * @param {Awaited<ReturnType<typeof joinLate>>} results
 */
export function assertKeptUp(t, results, share = 0.8) {
  for (const r of results) {
    t.diagnostic(`${r.transport}: ${r.decoded} of ~${r.expected} frames in ${r.perSecond.length} s after joining (${r.perSecond.join(' ')} a second)`);
    assert.equal(r.actual, { wt: 'webtransport', ws: 'websocket' }[r.transport] ?? r.transport, r.logs());
    assert.ok(r.decoded >= share * r.expected,
      `a late ${r.transport} viewer decoded ${r.decoded} frames in ${r.perSecond.length} s (${r.perSecond.join(' ')} a second), want >= ${Math.round(share * 100)} % of ~${r.expected}\n${JSON.stringify(r.stats)}\n${r.logs()}`);
  }
}
