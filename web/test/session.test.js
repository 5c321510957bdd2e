import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Session } from '../session.js';
import { ChannelRouter } from '../transport.js';

/** A transport driven by the test: the real ChannelRouter, what was sent kept. */
class ScriptedTransport {
  constructor() {
    this.sent = [];
    this.router = new ChannelRouter(async (channel, data) => {
      if (!this.open) throw new Error(`channel ${channel}: not connected`);
      this.sent.push({ ...data, channel });
    });
    this.name = 'scripted';
    this.open = false;
    this.started = 0;
    this.closed = false;
  }
  openChannel(name) {
    return this.router.open(name);
  }
  onEvent(cb) {
    return this.router.onEvent(cb);
  }
  start() {
    this.started++;
  }
  close() {
    this.closed = true;
  }
  emit(event) {
    if (event.type === 'open') this.open = true;
    if (event.type === 'closed') this.open = false;
    this.router.emit(event);
  }
}

/** A Media that records what the session asks of it. */
function recordingMedia() {
  const calls = [];
  const media = {};
  for (const name of ['configure', 'frame', 'ended', 'window', 'reset', 'protocolError']) {
    media[name] = (...args) => calls.push([name, ...args]);
  }
  return { media, calls };
}

function setUp() {
  const transport = new ScriptedTransport();
  const { media, calls } = recordingMedia();
  const out = { status: [], notices: [], app: [] };
  const session = new Session(transport, media, {
    status: (state, text) => out.status.push([state, text]),
    notice: (text) => out.notices.push(text),
    app: (m) => out.app.push(m),
  });
  session.start();
  return { transport, session, calls, out };
}

test('a session says connecting, then waiting on hello, and takes the envelope and client id the server names', () => {
  const { transport, session, out } = setUp();
  assert.equal(transport.started, 1);
  transport.emit({ type: 'connecting', attempt: 1 });
  transport.emit({ type: 'open' });
  transport.router.route({ channel: 'rfb.control', kind: 'hello', client_id: 7, envelope: 'json' });
  assert.deepEqual(out.status.map(([s]) => s), ['connecting', 'waiting']);
  const stats = session.stats();
  assert.equal(stats.clientId, 7);
  assert.equal(stats.envelope, 'json');
  assert.equal(stats.transport, 'scripted');
  assert.equal(stats.connected, true);
  assert.equal(stats.reconnects, 0);
});

test('control messages go to the media: config, eos (then ended), the window; errors become notices', () => {
  const { transport, calls, out } = setUp();
  transport.emit({ type: 'open' });
  transport.router.route({ channel: 'rfb.control', kind: 'config', config_id: 1 });
  transport.router.route({ channel: 'rfb.control', kind: 'window', low: 10, high: 20 });
  transport.router.route({ channel: 'rfb.control', kind: 'window', low: null, high: null });
  transport.router.route({ channel: 'rfb.control', kind: 'eos' });
  transport.router.route({ channel: 'rfb.control', kind: 'error', message: 'too many clients' });
  transport.router.route({ channel: 'rfb.control', kind: 'from-the-future' });
  transport.router.route({ channel: 'app.detector', kind: 'message', boxes: [] });
  assert.deepEqual(calls.map(([n]) => n), ['configure', 'window', 'window', 'ended']);
  assert.deepEqual(calls[1][1], { low: 10, high: 20 });
  assert.equal(calls[2][1], null);
  assert.deepEqual(out.status.at(-1), ['ended', 'stream ended']);
  assert.deepEqual(out.notices, ['too many clients']);
  assert.deepEqual(out.app.map((m) => m.channel), ['app.detector']);
});

test('a lost connection resets the media and counts down to the next try; a reopen counts a reconnect', () => {
  const { transport, session, calls, out } = setUp();
  transport.emit({ type: 'open' });
  transport.emit({ type: 'closed', code: 1006, reason: '', retryInMs: 500 });
  assert.deepEqual(calls.map(([n]) => n), ['reset']);
  const [state, text] = out.status.at(-1);
  assert.equal(state, 'reconnecting');
  assert.match(text, /in 1 s/);
  transport.emit({ type: 'open' });
  assert.equal(session.stats().reconnects, 1);
  assert.equal(session.countdown, null, 'the countdown stops when the connection is back');
  session.close();
  assert.equal(transport.closed, true);
});

test('refused links say why; a final close says its reason, without a countdown', () => {
  const { transport, session, out } = setUp();
  transport.emit({ type: 'closed', code: 0, reason: 'the token is wrong', retryInMs: 250, refused: true });
  assert.deepEqual(out.status.at(-1), ['refused', 'the token is wrong']);
  transport.emit({ type: 'closed', code: 0, reason: 'WebRTC refused (HTTP 415): no H264', retryInMs: null });
  assert.deepEqual(out.status.at(-1), ['error', 'WebRTC refused (HTTP 415): no H264']);
  transport.emit({ type: 'closed', code: 1008, reason: 'unknown envelope', retryInMs: null });
  assert.deepEqual(out.status.at(-1), ['error', 'disconnected (1008 unknown envelope)']);
  assert.equal(session.countdown, null);
});

test('keyframe requests and protocol errors are counted; a broken message asks the media to resynchronise', async () => {
  const { transport, session, calls } = setUp();
  transport.emit({ type: 'open' });
  session.requestKeyframe('decoder-error');
  transport.emit({ type: 'error', error: new Error('bad frame') });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(transport.sent, [{ channel: 'rfb.control', kind: 'keyframe-request', reason: 'decoder-error' }]);
  assert.deepEqual(calls.map(([n]) => n), ['protocolError']);
  const stats = session.stats();
  assert.equal(stats.keyframeRequests, 1);
  assert.equal(stats.protocolErrors, 1);
});

test('server stats are kept while fresh and feed the latency history', () => {
  const { transport, session } = setUp();
  transport.router.route({ channel: 'rfb.stats', kind: 'stats', transport: 'websocket', latency_p50_us: 12000, latency_p95_us: 30000 });
  const stats = session.stats();
  assert.equal(stats.server?.transport, 'websocket');
  assert.equal(stats.latencyHistory.length, 1);
  assert.equal(stats.latencyHistory[0].p50Us, 12000);
  session.serverStatsAt -= 10_000;
  assert.equal(session.stats().server, null, 'stale stats describe no stream');
});

test('playing is said once, not with every picture', () => {
  const { session, out } = setUp();
  session.setStatus('playing', '');
  session.setStatus('playing', '');
  assert.equal(out.status.filter(([s]) => s === 'playing').length, 1);
});

test('renditions: the announcement is kept for stats; a chosen rendition is sent on every hello and on choosing', async () => {
  const { transport, session } = setUp();
  transport.emit({ type: 'open' });
  const control = (m) => transport.router.route({ channel: 'rfb.control', ...m });
  control({ kind: 'hello', client_id: 1, envelope: 'binary' });
  control({
    kind: 'renditions',
    current: 0,
    renditions: [
      { id: 0, codec: 'h264', width: 1280, height: 720, bitrate_bps: 1500000 },
      { id: 1, codec: null, width: null, height: null, bitrate_bps: 0 },
    ],
  });
  assert.deepEqual(session.stats().renditions, {
    current: 0,
    chosen: null,
    renditions: [
      { id: 0, codec: 'h264', width: 1280, height: 720, bitrateBps: 1500000 },
      { id: 1, codec: null, width: null, height: null, bitrateBps: 0 },
    ],
  });
  assert.deepEqual(transport.sent, [], 'nothing chosen: nothing sent');
  await session.chooseRendition(1);
  control({ kind: 'hello', client_id: 2, envelope: 'binary' });
  await new Promise((r) => setImmediate(r));
  assert.equal(session.stats().renditions, null, 'a new connection forgets the old announcement');
  assert.deepEqual(transport.sent, [
    { channel: 'rfb.control', kind: 'rendition', id: 1 },
    { channel: 'rfb.control', kind: 'rendition', id: 1 },
  ]);
  await session.chooseRendition(null);
  assert.deepEqual(transport.sent.at(-1), { channel: 'rfb.control', kind: 'rendition', id: null });
  control({ kind: 'renditions', current: 'x', renditions: [] });
  assert.equal(session.stats().renditions, null, 'a broken announcement is not kept');
});
