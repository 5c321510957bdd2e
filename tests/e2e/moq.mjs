// Media over QUIC for the tests (docs/protocol.md, "Relays"): the real relay, moq-relay from
// crates.io (built once per version by scripts/moq-relay.sh into a cache outside the clone), and
// the reference player, @moq/watch from npm, unchanged, on a page of its own.
//
// The player's page defines `window.rfbViewer` with the two calls the tests' Viewer uses
// (stats().framesDecoded from the player's own decoder counter, samplePixels() from its canvas),
// so the same assertions (assertSmpteBars, waitForFrames) judge what it shows.

import { execFileSync, spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import * as esbuild from 'esbuild';
import { REPO, freePort, onLines, pollUntil, startPipeline } from './lib.mjs';

/** The moq-relay binary: built on first use (minutes), then cached. */
let relayBinary;
export function relayBin() {
  relayBinary ??= process.env.RFB_MOQ_RELAY ?? execFileSync('bash', [path.join(REPO, 'scripts', 'moq-relay.sh')],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 3_600_000 }).trim();
  return relayBinary;
}

const relays = new Set();
process.on('exit', () => {
  for (const p of relays) {
    try { p.kill('SIGKILL'); } catch { /* gone */ }
  }
});

/**
 * Starts moq-relay on `address:port` (UDP for QUIC, TCP for its HTTP side: /certificate.sha256,
 * /announced) with a generated certificate, anonymous access under `anon/` (watching only, with
 * `anonymousPublish: false`), or every session asked of the auth server at `authUrl` (moq-relay's
 * --auth-url contract). `args`: more flags (e.g. clustering). Resolves once it serves its
 * certificate's fingerprint.
 * @returns {Promise<{url: string, http: string, stop: () => Promise<void>, logs: () => string}>}
 */
export async function startRelay({ address = '127.0.0.1', port, args = [], wrap = [], anonymousPublish = true, authUrl = null }) {
  const auth = authUrl ? ['--auth-url', authUrl] : [anonymousPublish ? '--auth-public' : '--auth-public-subscribe', 'anon/**'];
  const [cmd, ...rest] = [...wrap, relayBin(), '--listen', `${address}:${port}`, '--listen-tls-generate', 'localhost',
    '--web-http-listen', `${address}:${port}`, ...auth, ...args];
  const proc = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', RUST_LOG: 'info' } });
  relays.add(proc);
  let out = '';
  const keep = (line) => { out = `${out}${line}\n`.slice(-12_000); };
  onLines(proc.stdout, keep);
  onLines(proc.stderr, keep);
  const exited = new Promise((resolve) => proc.once('close', (code, signal) => {
    relays.delete(proc);
    resolve({ code, signal });
  }));
  const base = `http://${address}:${port}`;
  const logs = () => `--- moq-relay ${rest.join(' ')}\n${out}`;
  const stop = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    await exited;
  };
  try {
    await pollUntil(() => fetch(`${base}/certificate.sha256`).then((r) => r.ok, () => false), (ok) => ok,
      { timeoutMs: 20_000, what: 'moq-relay serving /certificate.sha256', details: logs });
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `${base}/anon`, http: base, stop, logs, proc };
}

/**
 * A relay on a free port and rfbsink's launch `line` (without relay-url) publishing `broadcast`
 * to it, once the relay announces it: {relay, port, pipeline, details(), stop()}.
 * @param {string} line
 * @param {string} broadcast
 */
export async function publishToNewRelay(line, broadcast) {
  const port = await freePort();
  const relay = await startRelay({ port });
  /** @type {Awaited<ReturnType<typeof startPipeline>> | undefined} */
  let pipeline;
  const details = () => `${relay.logs()}\n${pipeline?.logs() ?? ''}`;
  const stop = async () => {
    await pipeline?.stop();
    await relay.stop();
  };
  try {
    pipeline = await startPipeline(`${line} relay-url=${relay.url}`);
    await pollUntil(() => announced(relay), (names) => names.includes(broadcast),
      { timeoutMs: 20_000, what: `${relay.url} announcing ${broadcast}`, details });
  } catch (e) {
    await stop();
    throw e;
  }
  return { relay, port, pipeline, details, stop };
}

/** What the relay announces under anon/ (its HTTP side), one name a line. */
export async function announced(relay) {
  const r = await fetch(`${relay.http}/announced/anon`);
  return (await r.text()).split('\n').map((s) => s.trim()).filter(Boolean);
}

let bundle;
/** @moq/watch's custom element, bundled for the browser as its README's bundler users do. */
async function watchBundle() {
  bundle ??= esbuild.build({
    entryPoints: ['@moq/watch/element'], bundle: true, format: 'esm', write: false, target: 'es2022',
    absWorkingDir: REPO, logLevel: 'warning',
  }).then((r) => r.outputFiles[0].text);
  return bundle;
}

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>@moq/watch</title>
<style>body { margin: 0; background: #000 } canvas { display: block }</style></head>
<body>
<moq-watch id="watch" muted><canvas id="canvas"></canvas></moq-watch>
<script type="module">
import '/watch.js';
const params = new URLSearchParams(location.search);
const watch = document.getElementById('watch');
watch.setAttribute('url', params.get('url'));
watch.setAttribute('name', params.get('name'));
const canvas = document.getElementById('canvas');
const probe = document.createElement('canvas');
window.rfbViewer = {
  // The player's own count of the frames it handed its VideoDecoder.
  stats: () => ({ framesDecoded: watch.video?.out?.stats?.peek()?.frameCount ?? 0, width: canvas.width, height: canvas.height }),
  samplePixels(points) {
    probe.width = canvas.width;
    probe.height = canvas.height;
    const g = probe.getContext('2d', { willReadFrequently: true });
    g.drawImage(canvas, 0, 0);
    return points.map(([x, y]) => Array.from(g.getImageData(x, y, 1, 1).data.slice(0, 3)));
  },
};
</script>
</body></html>`;

/**
 * Serves the reference player's page on loopback. `pageUrl(relayUrl, name)` is the page that
 * plays broadcast `name` from `relayUrl`.
 */
export async function startWatchServer() {
  const js = await watchBundle();
  const server = http.createServer((req, res) => {
    if (req.url === '/watch.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(js);
    } else if (req.url?.startsWith('/?') || req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(PAGE);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    pageUrl: (relayUrl, name) => `http://127.0.0.1:${port}/?url=${encodeURIComponent(relayUrl)}&name=${encodeURIComponent(name)}`,
    close: () => new Promise((resolve) => { server.close(() => resolve(undefined)); server.closeAllConnections(); }),
  };
}

/**
 * An auth server for moq-relay's --auth-url (moq-auth's contract: the relay POSTs each session's
 * `connect` with its path and query; 200 with a grant admits it, 401 refuses): a session that
 * presents `?jwt=<publishToken>` may publish and watch; with `viewerToken`, one that presents
 * that may only watch and any other is refused, else any other may only watch. Records what it
 * was asked. (moq's own `moq auth serve --key` checks signed JWTs the same way.)
 * @param {string} publishToken
 * @param {{viewerToken?: string}} [options]
 */
export async function startAuthServer(publishToken, { viewerToken } = {}) {
  const asked = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      let r = {};
      try { r = JSON.parse(body); } catch { /* answered below */ }
      asked.push(r);
      const jwt = new URLSearchParams(r.query ?? '').get('jwt');
      /** @type {[number, object]} */
      let answer = [200, { subscribe: ['**'] }];
      if (r.event !== 'connect') answer = [200, {}];
      else if (jwt === publishToken) answer = [200, { publish: ['**'], subscribe: ['**'] }];
      else if (viewerToken !== undefined && jwt !== viewerToken) answer = [401, {}];
      res.writeHead(answer[0], { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer[1]));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return { url: `http://127.0.0.1:${port}/`, asked, close: () => new Promise((resolve) => { server.close(() => resolve(undefined)); server.closeAllConnections(); }) };
}
