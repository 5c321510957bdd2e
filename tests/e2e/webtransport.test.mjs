// WebTransport end to end: the viewer prefers it, the element's own stats say which transport
// each client really uses, both transports serve at once from one encode, and the viewer falls
// back to WebSocket when the UDP port is not available.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { test } from 'node:test';

import {
  assertSmpteBars,
  onLines,
  sharedBrowser,
  pollUntil,
  requireElements,
  startPipeline,
  Viewer, withQuery } from './lib.mjs';

const SOURCE = 'videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=640,height=480,framerate=30/1 '
  + '! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';

const browser = sharedBrowser();

/**
 * Follows the element's rfbsink-stats bus messages (stats-interval) printed by gst-launch -m.
 * @param {import('node:child_process').ChildProcess} proc
 * @returns {{transports: () => string[]}} the transports of the clients in the last message
 */
function followStats(proc) {
  let last = [];
  onLines(proc.stdout, (line) => {
    if (!line.includes('rfbsink-stats,')) return;
    const text = line.replace(/\\(.)/g, '$1');
    last = [...text.matchAll(/transport=\(string\)([a-z]+)/g)].map((m) => m[1]).sort();
  });
  return { transports: () => last };
}

test('the default page uses WebTransport: the element counts a webtransport client, the picture is right', async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const p = await startPipeline(`${SOURCE} ! rfbsink port=0 stats-interval=200`);
  const stats = followStats(p.proc);
  const viewer = await Viewer.open(browser.context, p.url);
  try {
    await viewer.waitForFrames(10, { extra: p.logs });
    assert.equal((await viewer.stats()).transport, 'webtransport');
    await pollUntil(async () => stats.transports(), (tr) => tr.length === 1 && tr[0] === 'webtransport', {
      what: 'the element to report one webtransport client',
      details: p.logs,
    });
    await assertSmpteBars(viewer, { width: 640, extra: p.logs });
  } finally {
    await viewer.close();
    await p.stop();
  }
});

test('WebTransport and WebSocket viewers watch the same stream at once', async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const p = await startPipeline(`${SOURCE} ! rfbsink port=0 stats-interval=200`);
  const stats = followStats(p.proc);
  const wt = await Viewer.open(browser.context, withQuery(p.url, '?transport=wt'));
  const ws = await Viewer.open(browser.context, withQuery(p.url, '?transport=ws'));
  try {
    await wt.waitForFrames(10, { extra: p.logs });
    await ws.waitForFrames(10, { extra: p.logs });
    assert.equal((await wt.stats()).transport, 'webtransport');
    assert.equal((await ws.stats()).transport, 'websocket');
    await pollUntil(async () => stats.transports(), (tr) => tr.join() === 'websocket,webtransport', {
      what: 'the element to report one client of each transport',
      details: p.logs,
    });
    await assertSmpteBars(wt, { width: 640, extra: p.logs });
    await assertSmpteBars(ws, { width: 640, extra: p.logs });
  } finally {
    await wt.close();
    await ws.close();
    await p.stop();
  }
});

test('localhost works over WebTransport (the element binds ::1 too)', async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const p = await startPipeline(`${SOURCE} ! rfbsink port=0 stats-interval=200`);
  const viewer = await Viewer.open(browser.context, p.url.replace('127.0.0.1', 'localhost'));
  try {
    await viewer.waitForFrames(10, { extra: p.logs });
    assert.equal((await viewer.stats()).transport, 'webtransport');
  } finally {
    await viewer.close();
    await p.stop();
  }
});

/** A UDP port taken by this process whose TCP number is free, so rfbsink's HTTP can use it. */
async function busyUdpPort() {
  for (let i = 0; i < 20; i++) {
    const sock = dgram.createSocket('udp4');
    await new Promise((resolve) => sock.bind(0, '127.0.0.1', resolve));
    const port = sock.address().port;
    const tcpFree = await new Promise((resolve) => {
      const srv = net.createServer();
      srv.once('error', () => resolve(false));
      srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
    });
    if (tcpFree) return { port, sock };
    sock.close();
  }
  throw new Error('no port with a free TCP number found');
}

test('falls back to WebSocket when the UDP port is not available', async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const { port, sock } = await busyUdpPort();
  const p = await startPipeline(`${SOURCE} ! rfbsink port=${port} stats-interval=200`);
  const stats = followStats(p.proc);
  const viewer = await Viewer.open(browser.context, p.url);
  try {
    await viewer.waitForFrames(10, { extra: p.logs });
    assert.equal((await viewer.stats()).transport, 'websocket');
    await pollUntil(async () => stats.transports(), (tr) => tr.join() === 'websocket', {
      what: 'the element to report one websocket client',
      details: p.logs,
    });
    assert.match(p.logs(), /WebTransport is off/, 'the element warned that WebTransport is off');
    await assertSmpteBars(viewer, { width: 640, extra: p.logs });
  } finally {
    await viewer.close();
    await p.stop();
    sock.close();
  }
});

// UDP silently dropped (a firewall, a tunnel that carries TCP only): the QUIC handshake gets no
// answer at all. /rfb.json is rewritten on the way to the page to name a UDP port held by this
// process that never answers; the viewer must give WebTransport up within a second and play over
// WebSocket (WEBTRANSPORT_TIMEOUT_MS).
test('falls back to WebSocket within a second when WebTransport gets no answer at all', async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const silent = dgram.createSocket('udp4');
  await new Promise((resolve) => silent.bind(0, '127.0.0.1', resolve));
  const silentPort = silent.address().port;
  let datagrams = 0;
  silent.on('message', () => { datagrams++; });
  t.after(() => silent.close());
  const p = await startPipeline(`${SOURCE} ! rfbsink port=0`);
  t.after(() => p.stop());
  const route = async (route) => {
    const res = await route.fetch();
    const info = await res.json();
    if (info.webtransport) info.webtransport.port = silentPort;
    await route.fulfill({ response: res, json: info });
  };
  await browser.context.route('**/rfb.json*', route);
  t.after(() => browser.context.unroute('**/rfb.json*', route));
  const t0 = Date.now();
  const viewer = await Viewer.open(browser.context, p.url);
  t.after(() => viewer.close());
  const first = await viewer.waitForFrames(1, { extra: p.logs });
  const firstMs = Date.now() - t0;
  assert.equal(first.transport, 'websocket', JSON.stringify(first));
  assert.ok(datagrams > 0, 'the viewer did try WebTransport (its QUIC packets reached the silent port)');
  // Page load, a 1 s WebTransport attempt, the WebSocket and the first picture (the element's
  // cached keyframe): well under the 3 s the attempt alone took before.
  assert.ok(firstMs < 2500, `first picture ${firstMs} ms after load`);
  t.diagnostic(`WebTransport unanswered: first picture over WebSocket ${firstMs} ms after load`);
  await assertSmpteBars(viewer, { width: 640, extra: p.logs });
});
