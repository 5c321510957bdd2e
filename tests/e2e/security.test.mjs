// Access in a real browser (docs/security.md): a page of another origin gets nothing and injects
// nothing, with or without the token; the view link shows frames and its input arrives nowhere;
// the control link's input arrives; a reload without the token in the URL keeps working (cookie);
// HTTPS on the same port with a certificate file and in self-signed mode; an open viewer whose
// token went stale (the element restarted) says so on screen.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  Viewer, assertPluginBuilt, assertSmpteBars, launchBrowser, pollUntil, requireElements, sharedBrowser,
  startPipeline, withQuery,
} from './lib.mjs';

const SOURCE = 'videotestsrc pattern=smpte is-live=true ! video/x-raw,format=I420,width=640,height=480,framerate=30/1 '
  + '! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';

const browser = sharedBrowser();

/** The element's figures from its rfbsink-stats messages (stats-interval=200). */
async function figures(p) {
  return pollUntil(async () => p.stats(), (s) => s !== null, { what: 'an rfbsink-stats message', details: p.logs });
}

/** Serves one HTML page from another origin (another port of 127.0.0.1). */
async function foreignOrigin(html) {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

/**
 * What the attacking page does: open the WebSocket and send a key and a click, read /rfb.json,
 * open a WebTransport session; it reports what it got in window.results.
 */
const ATTACK = `<!doctype html><meta charset="utf-8"><body><script type="module">
const q = new URLSearchParams(location.search);
const port = q.get('port'), token = q.get('token') ?? '', hash = q.get('hash');
const results = window.results = { wsOpen: false, wsMessages: 0, wsClosed: null, json: null, jsonError: null, wtReady: false, wtError: null };
const ws = new WebSocket('ws://127.0.0.1:' + port + '/ws?envelope=binary&rfb_token=' + token);
ws.onopen = () => {
  results.wsOpen = true;
  ws.send(JSON.stringify({ channel: 'rfb.events', kind: 'key-down', key: 'x', code: 'KeyX' }));
  ws.send(JSON.stringify({ channel: 'rfb.events', kind: 'pointer-down', x: 10, y: 10, button: 0 }));
};
ws.onmessage = () => { results.wsMessages += 1; };
ws.onclose = (e) => { results.wsClosed = e.code; };
fetch('http://127.0.0.1:' + port + '/rfb.json?rfb_token=' + token)
  .then((r) => r.text()).then((t) => { results.json = t; }, (e) => { results.jsonError = String(e); });
try {
  const value = new Uint8Array(hash.match(/../g).map((h) => parseInt(h, 16)));
  const wt = new WebTransport('https://127.0.0.1:' + port + '/wt?rfb_token=' + token,
    { serverCertificateHashes: [{ algorithm: 'sha-256', value }] });
  wt.ready.then(() => { results.wtReady = true; }, (e) => { results.wtError = String(e); });
  wt.closed.catch(() => {});
} catch (e) { results.wtError = String(e); }
</script>`;

test('a page from another origin cannot watch or send input, with or without the token', { timeout: 90_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const p = await startPipeline(`${SOURCE} ! rfbsink port=0 stats-interval=200`);
  t.after(() => p.stop());
  const token = new URL(p.url).searchParams.get('rfb_token');
  const discovery = new URL(p.url);
  discovery.pathname = '/rfb.json';
  const info = await (await fetch(discovery)).json();
  const hash = info.webtransport.certificate_hashes[0].value;
  const site = await foreignOrigin(ATTACK);
  t.after(() => site.server.close());

  for (const presented of [token, '', 'wrong-token-123']) {
    const page = await browser.context.newPage();
    t.after(() => page.close());
    await page.goto(`${site.url}?${new URLSearchParams({ port: String(p.port), token: presented, hash })}`);
    // Everything the page tried has been answered: the WebSocket closed, the fetch and the
    // WebTransport session failed.
    const results = await pollUntil(() => page.evaluate(() => window.results),
      (r) => r && (r.wsClosed !== null || r.wsOpen) && (r.json !== null || r.jsonError !== null) && (r.wtReady || r.wtError !== null),
      { what: `the foreign page's attempts to finish (token ${JSON.stringify(presented)})`, timeoutMs: 20_000 });
    assert.equal(results.wsOpen, false, `the WebSocket opened from another origin: ${JSON.stringify(results)}`);
    assert.equal(results.wsMessages, 0, 'frames reached the foreign page');
    assert.equal(results.json, null, `the foreign page read /rfb.json: ${results.json}`);
    assert.equal(results.wtReady, false, 'WebTransport opened from another origin');
  }
  const s = await figures(p);
  assert.equal(s['input-events'], 0, 'input from the foreign page arrived upstream');
  assert.equal(s.clients, 0, 'the foreign page held a client');
});

test('the view link shows frames and its input arrives nowhere; the control link\'s does', { timeout: 90_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const p = await startPipeline(`${SOURCE} ! rfbsink port=0 stats-interval=200`);
  t.after(() => p.stop());
  assert.ok(p.viewUrl && p.viewUrl !== p.url, 'rfbsink posts a view link');

  const viewer = await Viewer.open(browser.context, p.viewUrl);
  t.after(() => viewer.close());
  await viewer.waitForFrames(5, { extra: p.logs });
  await assertSmpteBars(viewer, { extra: p.logs });
  const box = { x: 0, y: 0 };
  for (let i = 0; i < 5; i++) await viewer.page.mouse.click(box.x + 300 + i * 10, box.y + 300);
  await viewer.page.keyboard.press('x');
  const ignored = await pollUntil(() => figures(p), (s) => s['input-ignored'] > 0,
    { what: 'the view link\'s input counted as ignored', details: p.logs });
  assert.equal(ignored['input-events'], 0, 'input from the view link arrived upstream');
  await viewer.close();

  const control = await Viewer.open(browser.context, p.url);
  t.after(() => control.close());
  await control.waitForFrames(5, { extra: p.logs });
  const cbox = { x: 0, y: 0 };
  await control.page.mouse.click(cbox.x + 300, cbox.y + 300);
  await pollUntil(() => figures(p), (s) => s['input-events'] > 0,
    { what: 'the control link\'s click upstream', details: p.logs });
});

test('a reload without the token in the URL keeps working (cookie); a fresh browser is refused', { timeout: 90_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const p = await startPipeline(`${SOURCE} ! rfbsink port=0`);
  t.after(() => p.stop());
  const first = await Viewer.open(browser.context, p.url);
  await first.waitForFrames(3, { extra: p.logs });
  await first.close();
  const bare = new URL(p.url);
  bare.search = '';
  const again = await Viewer.open(browser.context, bare.href);
  t.after(() => again.close());
  await again.waitForFrames(5, { extra: p.logs });
  await assertSmpteBars(again, { extra: p.logs });

  const other = await launchBrowser();
  t.after(() => other.close());
  const page = await other.context.newPage();
  const res = await page.goto(bare.href);
  assert.equal(res.status(), 401, 'no token, no cookie: refused');
  assert.match(await page.textContent('body'), /rfb_token/, 'the refusal says where the token is');
});

test('an open viewer says why after the element restarted with a new token', { timeout: 90_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const first = await startPipeline(`${SOURCE} ! rfbsink port=0`);
  t.after(() => first.stop());
  const viewer = await Viewer.open(browser.context, first.url);
  t.after(() => viewer.close());
  await viewer.waitForFrames(3, { extra: first.logs });
  await first.stop();
  // Restarted on the same port: a new token, which the open page does not have.
  const second = await startPipeline(`${SOURCE} ! rfbsink port=${first.port}`);
  t.after(() => second.stop());
  const shown = await pollUntil(() => viewer.page.textContent('.rfb-status'),
    (text) => /Access refused \(HTTP 403\)/.test(text ?? ''),
    { what: 'the viewer to say its link was refused', timeoutMs: 30_000, details: () => viewer.logs() });
  assert.match(shown, /Open the URL rfbsink printed/);
  assert.equal(await viewer.page.isVisible('.rfb-status'), true, 'the explanation is on screen');
});

/** A certificate for 127.0.0.1 and localhost made with openssl, and its SPKI hash for Chromium. */
function makeCertificate(dir) {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-keyout', key, '-out', cert, '-days', '2', '-nodes', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `openssl req failed: ${r.stderr}`);
  const pub = spawnSync('openssl', ['x509', '-pubkey', '-noout', '-in', cert], { encoding: 'utf8' }).stdout;
  const der = spawnSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pub }).stdout;
  const spki = spawnSync('openssl', ['dgst', '-sha256', '-binary'], { input: der }).stdout.toString('base64');
  return { cert, key, spki, pem: readFileSync(cert, 'utf8') };
}

test('HTTPS and WSS on the same port with a certificate file', { timeout: 90_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  assertPluginBuilt();
  const dir = mkdtempSync(path.join(tmpdir(), 'rfbsink-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const { cert, key, spki } = makeCertificate(dir);
  const p = await startPipeline(`${SOURCE} ! rfbsink port=0 certificate-file=${cert} private-key-file=${key}`);
  t.after(() => p.stop());
  assert.match(p.url, /^https:\/\/127\.0\.0\.1:\d+\/\?rfb_token=/, 'the posted URL is https');
  // The browser trusts this certificate as it would one from a CA (pinned by its key).
  const b = await launchBrowser({ args: [`--ignore-certificate-errors-spki-list=${spki}`] });
  t.after(() => b.close());
  const viewer = await Viewer.open(b.context, withQuery(p.url, '?transport=ws'));
  t.after(() => viewer.close());
  await viewer.waitForFrames(5, { extra: p.logs });
  await assertSmpteBars(viewer, { extra: p.logs });
  assert.equal(await viewer.page.evaluate(() => window.isSecureContext), true);
  // Plain http on that port is not served.
  const plain = await fetch(p.url.replace('https:', 'http:')).then((r) => r.status, (e) => String(e));
  assert.notEqual(plain, 200, 'plain http answered on the TLS port');
});

test('HTTPS in self-signed mode (the browser accepts the certificate once)', { timeout: 90_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const p = await startPipeline(`${SOURCE} ! rfbsink port=0 https=true`);
  t.after(() => p.stop());
  assert.match(p.url, /^https:/);
  const b = await launchBrowser({ ignoreHTTPSErrors: true });
  t.after(() => b.close());
  const viewer = await Viewer.open(b.context, p.url);
  t.after(() => viewer.close());
  await viewer.waitForFrames(5, { extra: p.logs });
  await assertSmpteBars(viewer, { extra: p.logs });
});
