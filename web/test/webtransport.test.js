// Pure pieces of the WebTransport path: stream framing, routing, discovery URLs.
import test from 'node:test';
import assert from 'node:assert/strict';

import { LengthPrefixedReader, encodeBinaryFrame, hexToBytes, parseStreamMessage, ProtocolError } from '../protocol.js';
import { ChannelRouter, accessRefusedText, discoveryUrl, webTransportUrl } from '../transport.js';

/** @param {Uint8Array[]} messages */
function frameAll(messages) {
  const total = messages.reduce((n, m) => n + 4 + m.byteLength, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const m of messages) {
    new DataView(out.buffer).setUint32(at, m.byteLength, true);
    out.set(m, at + 4);
    at += 4 + m.byteLength;
  }
  return out;
}

test('length-prefixed messages come out whole whatever the chunking', () => {
  const messages = [new TextEncoder().encode('{"channel":"rfb.control","kind":"config"}'), new Uint8Array(0), new Uint8Array(300).fill(7)];
  const wire = frameAll(messages);
  for (const size of [1, 2, 3, 4, 5, 17, 64, wire.byteLength]) {
    const reader = new LengthPrefixedReader();
    const got = [];
    for (let i = 0; i < wire.byteLength; i += size) got.push(...reader.push(wire.subarray(i, i + size)));
    assert.deepEqual(got.map((m) => Array.from(m)), messages.map((m) => Array.from(m)), `chunk size ${size}`);
    assert.equal(reader.buffered, 0);
  }
  const small = new LengthPrefixedReader(16);
  assert.throws(() => small.push(frameAll([new Uint8Array(17)])), ProtocolError);
});

test('stream messages are frames (RF) or JSON control messages', () => {
  const bytes = encodeBinaryFrame({ key: true, configId: 2, frameId: 9, timestampUs: 1000, payload: new Uint8Array([1, 2, 3]) });
  const f = parseStreamMessage(bytes);
  assert.equal(f.type, 'frame');
  assert.equal(f.frame.frameId, 9);
  assert.equal(f.frame.key, true);
  const m = parseStreamMessage(new TextEncoder().encode('{"channel":"rfb.control","kind":"config","config_id":2}'));
  assert.equal(m.type, 'message');
  assert.equal(m.message.kind, 'config');
  assert.throws(() => parseStreamMessage(new TextEncoder().encode('nonsense')), ProtocolError);
});

test('the router delivers to the exact channel and to the wildcards that cover it', () => {
  const router = new ChannelRouter(async () => {});
  const exact = [];
  const wild = [];
  router.open('app.test').onMessage((m) => exact.push(m));
  router.open('app.*').onMessage((m) => wild.push(m));
  router.route({ channel: 'app.test', kind: 'reply' });
  router.route({ channel: 'app.other', kind: 'x' });
  assert.deepEqual(exact.map((m) => m.kind), ['reply']);
  assert.deepEqual(wild.map((m) => m.kind), ['reply', 'x']);
});

test('discovery and WebTransport URLs follow the page host', () => {
  assert.equal(discoveryUrl('ws://127.0.0.1:8080/ws?envelope=binary'), 'http://127.0.0.1:8080/rfb.json');
  assert.equal(discoveryUrl('wss://example.org/ws'), 'https://example.org/rfb.json');
  // Under a reverse proxy's path prefix, next to the stream's path; the root WebSocket too.
  assert.equal(discoveryUrl('wss://example.org/rfb/ws?envelope=binary'), 'https://example.org/rfb/rfb.json');
  assert.equal(discoveryUrl('ws://127.0.0.1:8080/'), 'http://127.0.0.1:8080/rfb.json');
  const info = { port: 9000, path: '/wt', certificate_hashes: [] };
  assert.equal(webTransportUrl('ws://localhost:8080/ws', info), 'https://localhost:9000/wt');
  assert.equal(webTransportUrl('ws://[::1]:8080/ws', info), 'https://[::1]:9000/wt');
  // The token travels to /rfb.json and /wt, nothing else of the query does.
  assert.equal(discoveryUrl('ws://127.0.0.1:8080/ws?envelope=binary&rfb_token=abc123'),
    'http://127.0.0.1:8080/rfb.json?rfb_token=abc123');
  assert.equal(webTransportUrl('ws://127.0.0.1:8080/ws?envelope=binary&rfb_token=a%2Bb', info),
    'https://127.0.0.1:9000/wt?rfb_token=a%2Bb');
  // And what the page measured of its link (the server places the viewer by it).
  assert.equal(webTransportUrl('ws://127.0.0.1:8080/ws?envelope=binary&audio=1&downlink=700', info),
    'https://127.0.0.1:9000/wt?audio=1&downlink=700');
  assert.deepEqual(Array.from(hexToBytes('00ff10')), [0, 255, 16]);
  assert.throws(() => hexToBytes('zz'), ProtocolError);
});

test('a refused link is explained: no token (401), wrong token or origin (403)', () => {
  assert.match(accessRefusedText(401), /^Access refused \(HTTP 401\): this link has no token\. Open the URL rfbsink printed/);
  assert.match(accessRefusedText(403), /token is wrong .* new one each time it starts.* origin is not allowed/);
});
