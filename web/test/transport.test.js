import assert from 'node:assert/strict';
import { test } from 'node:test';

import { encodeBinaryFrame } from '../protocol.js';
import { Backoff, WebSocketTransport } from '../transport.js';

test('backoff: 250 ms doubling up to 2 s, reset starts over', () => {
  const b = new Backoff();
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [250, 500, 1000, 2000, 2000, 2000]);
  b.reset();
  assert.equal(b.next(), 250);
});

/** A WebSocket stand-in driven by the test. */
class FakeSocket {
  static OPEN = 1;
  /** @type {FakeSocket[]} */
  static made = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.binaryType = 'blob';
    FakeSocket.made.push(this);
  }
  send(data) {
    this.sent.push(data);
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  message(data) {
    this.onmessage?.({ data });
  }
  closed(code, reason = '') {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

test('websocket transport routes frames, control and app messages; sends JSON with its channel', async () => {
  FakeSocket.made = [];
  const t = new WebSocketTransport('ws://h/ws?envelope=binary', {
    envelope: 'binary',
    WebSocketImpl: /** @type {any} */ (FakeSocket),
  });
  const got = { frames: [], control: [], app: [], events: [] };
  t.onEvent((e) => got.events.push(e.type));
  t.openChannel('rfb.main').onMessage((f) => got.frames.push(f.frameId));
  t.openChannel('rfb.control').onMessage((m) => got.control.push(m.kind));
  t.openChannel('app.*').onMessage((m) => got.app.push(m.channel));
  t.start();
  const ws = FakeSocket.made[0];
  assert.equal(ws.binaryType, 'arraybuffer');
  await assert.rejects(t.openChannel('rfb.stats').send({ kind: 'ack' }), /not connected/);
  ws.open();
  ws.message('{"channel":"rfb.control","kind":"hello","envelope":"binary"}');
  ws.message(encodeBinaryFrame({ frameId: 7, timestampUs: 0, key: true, configId: 1, payload: new Uint8Array(2) }).buffer);
  ws.message('{"channel":"app.chat","kind":"say"}');
  ws.message('{"channel":"other.thing","kind":"x"}');
  ws.message('garbage');
  assert.deepEqual(got.frames, [7]);
  assert.deepEqual(got.control, ['hello']);
  assert.deepEqual(got.app, ['app.chat']);
  assert.deepEqual(got.events, ['connecting', 'open', 'error']);
  await t.openChannel('rfb.stats').send({ kind: 'ack', frame_id: 7 });
  assert.deepEqual(JSON.parse(ws.sent[0]), { kind: 'ack', frame_id: 7, channel: 'rfb.stats' });
  await assert.rejects(t.openChannel('app.x').send(new Uint8Array(1)), /JSON objects only/);
  await assert.rejects(t.openChannel('app.x').send({ kind: 'big', data: 'x'.repeat(70000) }), /over 65536 bytes/);
  t.close();
});

test('websocket transport reconnects with backoff, except after 1008', async () => {
  FakeSocket.made = [];
  const t = new WebSocketTransport('ws://h/ws?envelope=json', {
    envelope: 'json',
    backoff: new Backoff(1, 4),
    WebSocketImpl: /** @type {any} */ (FakeSocket),
  });
  const closes = [];
  t.onEvent((e) => e.type === 'closed' && closes.push(e.retryInMs));
  t.start();
  FakeSocket.made[0].closed(1006);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(FakeSocket.made.length, 2);
  FakeSocket.made[1].closed(1006);
  await new Promise((r) => setTimeout(r, 20));
  FakeSocket.made[2].closed(1008, 'unknown envelope');
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(closes, [1, 2, null]);
  assert.equal(FakeSocket.made.length, 3);
  t.close();
});
