// Network positions other than loopback, in a private network namespace this file makes
// (netns.mjs): a viewer on another address of the machine over https (LAN), and a viewer that
// reaches the element only through an SSH tunnel (a real sshd on a private address in a second
// namespace, where the element listens on its own loopback). In a real browser: frames, the
// colour bars and input upstream.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Viewer, assertPluginBuilt, assertSmpteBars, launchBrowser, pollUntil, streamToPage } from './lib.mjs';
import { ADDRESS_A, runInPrivateNetns, serverNamespace, sshTunnel } from './netns.mjs';
import { probeReady, startProbe } from './probe.mjs';

runInPrivateNetns('network.test');

const SOURCE = 'videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=640,height=480,framerate=30/1';
const X264 = 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';
const PIPELINE = `${SOURCE} ! navigationtest ! videoconvert ! ${X264} ! rfbsink name=sink port=0`;
const STREAM = { width: 640, height: 480 };

/** @type {Awaited<ReturnType<typeof launchBrowser>> | undefined} */
let browser;
before(async () => {
  assertPluginBuilt();
  // The LAN test's certificate is the element's self-signed one (https=true): accepted as a
  // person accepts it once; WebTransport checks it by its hash from /rfb.json.
  browser = await launchBrowser({ ignoreHTTPSErrors: true });
});
after(async () => { await browser?.close(); });

/** Opens `url`, waits for frames, checks the bars and a click at stream (480, 360) upstream. */
async function watchAndClick(t, probe, url) {
  const t0 = Date.now();
  const viewer = await Viewer.open(/** @type {any} */ (browser).context, url, { viewport: { width: 1000, height: 500 } });
  t.after(() => viewer.close());
  const first = await viewer.waitForFrames(1, { extra: probe.logs, timeoutMs: 30_000 });
  const firstMs = Date.now() - t0;
  const stats = await viewer.waitForFrames(20, { extra: probe.logs });
  await assertSmpteBars(viewer, { width: 640, y: 100, tolerance: 40, extra: probe.logs });
  const target = await streamToPage(viewer.page, 'canvas.rfb-canvas', STREAM, 480, 360);
  const from = probe.lines.length;
  await viewer.page.mouse.click(target.x, target.y);
  const press = await probe.waitFor((l) => l.event === 'mouse-button-press', 'the click upstream', { from });
  assert.ok(Math.abs(press.x - 480) <= 2 && Math.abs(press.y - 360) <= 2, `click at (480, 360) arrived at (${press.x}, ${press.y})`);
  return { stats, first, firstMs, viewer };
}

test('LAN over https: a viewer on another address of the machine gets frames over WebTransport, and its input', { timeout: 90_000 }, async (t) => {
  if (!probeReady(t, ['navigationtest', 'x264enc'])) return;
  const probe = await startProbe(PIPELINE.replace('port=0', `port=0 address=${ADDRESS_A} https=true`));
  t.after(() => probe.stop());
  assert.match(probe.url, new RegExp(`^https://${ADDRESS_A.replace(/\./g, '\\.')}:\\d+/\\?rfb_token=`), 'the URL it prints is https on the LAN address');
  const { stats, firstMs } = await watchAndClick(t, probe, probe.url);
  assert.equal(stats.transport, 'webtransport', JSON.stringify(stats));
  t.diagnostic(`LAN https: ${stats.transport}, first picture ${firstMs} ms after load`);
});

test('through an SSH tunnel: the only way in is sshd on a private address; WebSocket through the tunnel, frames and input', { timeout: 120_000 }, async (t) => {
  if (!probeReady(t, ['navigationtest', 'x264enc'])) return;
  const pid = serverNamespace(t);
  // The element on the server's own loopback, as by default.
  const probe = await startProbe(PIPELINE, { wrap: ['nsenter', '-t', pid, '-n', '--'] });
  t.after(() => probe.stop());
  const elementPort = Number(new URL(probe.url).port);
  // Not reachable from here: only sshd is.
  const direct = await fetch(`http://10.79.0.2:${elementPort}/`).then(() => 'reached', (e) => e.cause?.code ?? 'failed');
  assert.notEqual(direct, 'reached', 'the element must not be reachable but through the tunnel');

  const tunnel = await sshTunnel(t, pid, elementPort);
  const localPort = tunnel.port;
  const logs = () => `${probe.logs()}\n${tunnel.logs()}`;
  await pollUntil(() => fetch(`http://127.0.0.1:${localPort}/`).then((r) => r.status, () => 0), (s) => s === 401,
    { what: 'the tunnel up (the element answering 401 without the token)', details: logs });

  // The URL the element printed, with the tunnel's local port: what a person types.
  const url = new URL(probe.url);
  url.port = String(localPort);
  const { stats, firstMs } = await watchAndClick(t, probe, url.href);
  // The tunnel carries TCP only: WebTransport (UDP) to the element's port cannot work, and the
  // viewer gives up on it and falls back to WebSocket.
  assert.equal(stats.transport, 'websocket', JSON.stringify(stats));
  t.diagnostic(`SSH tunnel: ${stats.transport}, first picture ${firstMs} ms after load`);
});
