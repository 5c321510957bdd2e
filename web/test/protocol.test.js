import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  pageDownlinkKbps,
  withDownlink,
  ack,
  base64ToBytes,
  encodeBinaryFrame,
  keyframeRequest,
  MessageDecoder,
  parseBinaryFrame,
  parseConfig,
  parseRenditions,
  renditionChoice,
  parseTextMessage,
  ProtocolError,
  withEnvelope,
} from '../protocol.js';

/**
 * A binary-envelope frame built byte by byte from the table in docs/protocol.md.
 * @param {{flags: number, configId: number, frameId: bigint, timestampUs: bigint, payload: number[]}} f
 */
function handBuiltFrame(f) {
  const bytes = [0x52, 0x46, 0x01, f.flags];
  const le = (value, size) => {
    let v = BigInt.asUintN(size * 8, BigInt(value));
    for (let i = 0; i < size; i++) {
      bytes.push(Number(v & 0xffn));
      v >>= 8n;
    }
  };
  le(f.configId, 4);
  le(f.frameId, 8);
  le(f.timestampUs, 8);
  bytes.push(...f.payload);
  return new Uint8Array(bytes);
}

test('binary header: fields at the offsets of the doc table, little-endian', () => {
  const message = handBuiltFrame({
    flags: 0x01,
    configId: 0x01020304,
    frameId: 0x0000_0102_0304_0506n,
    timestampUs: 1_234_567n,
    payload: [0xde, 0xad, 0xbe, 0xef],
  });
  assert.equal(message.byteLength, 28);
  // Spot-check the hand-built bytes against the table so the builder itself is right.
  assert.deepEqual([...message.subarray(4, 8)], [0x04, 0x03, 0x02, 0x01]);
  assert.deepEqual([...message.subarray(8, 16)], [0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0, 0]);

  const frame = parseBinaryFrame(message.buffer);
  assert.equal(frame.key, true);
  assert.equal(frame.configId, 0x01020304);
  assert.equal(frame.frameId, 0x0102_0304_0506);
  assert.equal(frame.timestampUs, 1_234_567);
  assert.deepEqual([...frame.payload], [0xde, 0xad, 0xbe, 0xef]);
  // A view into the message, not a copy.
  assert.equal(frame.payload.buffer, message.buffer);
  assert.equal(frame.payload.byteOffset, 24);
});

test('binary header: delta flag, negative timestamp, empty payload', () => {
  const frame = parseBinaryFrame(
    handBuiltFrame({ flags: 0, configId: 7, frameId: 0n, timestampUs: -5n, payload: [] }),
  );
  assert.deepEqual(
    { key: frame.key, configId: frame.configId, frameId: frame.frameId, timestampUs: frame.timestampUs },
    { key: false, configId: 7, frameId: 0, timestampUs: -5 },
  );
  assert.equal(frame.payload.byteLength, 0);
});

test('binary header: a Uint8Array view with an offset parses too', () => {
  const inner = handBuiltFrame({ flags: 1, configId: 2, frameId: 9n, timestampUs: 10n, payload: [1, 2, 3] });
  const outer = new Uint8Array(inner.byteLength + 5);
  outer.set(inner, 5);
  const frame = parseBinaryFrame(outer.subarray(5));
  assert.equal(frame.frameId, 9);
  assert.deepEqual([...frame.payload], [1, 2, 3]);
});

test('encodeBinaryFrame matches the hand-built bytes and round-trips', () => {
  const payload = new Uint8Array([5, 6, 7]);
  const encoded = encodeBinaryFrame({ frameId: 42, timestampUs: 33_366, key: false, configId: 3, payload });
  const expected = handBuiltFrame({ flags: 0, configId: 3, frameId: 42n, timestampUs: 33_366n, payload: [5, 6, 7] });
  assert.deepEqual([...encoded], [...expected]);
  const back = parseBinaryFrame(encoded);
  assert.deepEqual({ ...back, payload: [...back.payload] }, {
    frameId: 42,
    timestampUs: 33_366,
    key: false,
    refine: false,
    configId: 3,
    payload: [5, 6, 7],
  });
});

test('refine flag: bit 1 of the binary header, type "refine" in a JSON header; never a keyframe', () => {
  const encoded = encodeBinaryFrame({ frameId: 7, timestampUs: 1, key: false, refine: true, configId: 3, payload: new Uint8Array() });
  assert.equal(encoded[3], 0x02);
  const back = parseBinaryFrame(encoded);
  assert.deepEqual([back.refine, back.key], [true, false]);
  const d = new MessageDecoder('json');
  d.decode(header({ type: 'refine', codec: 'raw', format: 'tiles', chunk_type: 'key', byte_length: 1 }));
  const { frame } = /** @type {any} */ (d.decode(new Uint8Array([1])));
  assert.deepEqual([frame.refine, frame.key], [true, false]);
});

test('binary header: rejects short messages, bad magic, other versions, huge frame ids', () => {
  assert.throws(() => parseBinaryFrame(new Uint8Array(23)), /shorter than the 24-byte header/);
  const good = () => handBuiltFrame({ flags: 1, configId: 1, frameId: 1n, timestampUs: 1n, payload: [] });
  const badMagic = good();
  badMagic[0] = 0x00;
  assert.throws(() => parseBinaryFrame(badMagic), (e) => e instanceof ProtocolError && /magic/.test(e.message));
  const badVersion = good();
  badVersion[2] = 2;
  assert.throws(() => parseBinaryFrame(badVersion), /version 2/);
  const huge = handBuiltFrame({ flags: 0, configId: 1, frameId: 1n << 60n, timestampUs: 0n, payload: [] });
  assert.throws(() => parseBinaryFrame(huge), /beyond 2\^53/);
});

const header = (fields) =>
  JSON.stringify({
    type: 'video',
    channel: 'rfb.main',
    codec: 'h264',
    format: 'annexb',
    timestamp_us: 1234567,
    frame_id: 42,
    chunk_type: 'key',
    byte_length: 3,
    config_id: 1,
    ...fields,
  });

test('json envelope: header then payload makes a frame', () => {
  const d = new MessageDecoder('json');
  assert.deepEqual(d.decode(header({})), { type: 'pending' });
  const payload = new Uint8Array([9, 8, 7]).buffer;
  const result = d.decode(payload);
  assert.equal(result.type, 'frame');
  const { frame } = /** @type {any} */ (result);
  assert.deepEqual({ ...frame, payload: [...frame.payload] }, {
    frameId: 42,
    timestampUs: 1234567,
    key: true,
    refine: false,
    configId: 1,
    payload: [9, 8, 7],
  });
  // Then the next pair works too, as a delta.
  d.decode(header({ frame_id: 43, chunk_type: 'delta', byte_length: 1 }));
  const next = /** @type {any} */ (d.decode(new Uint8Array([1]).buffer));
  assert.equal(next.frame.frameId, 43);
  assert.equal(next.frame.key, false);
});

test('json envelope: control messages pass through, also between a header and its payload', () => {
  const d = new MessageDecoder('json');
  const hello = d.decode('{"channel":"rfb.control","kind":"hello","protocol":1,"client_id":3}');
  assert.deepEqual(hello, {
    type: 'message',
    message: { channel: 'rfb.control', kind: 'hello', protocol: 1, client_id: 3 },
  });
  d.decode(header({}));
  assert.equal(d.decode('{"channel":"app.x","kind":"note"}').type, 'message');
  assert.equal(d.decode(new Uint8Array(3).buffer).type, 'frame');
});

test('json envelope: byte_length mismatch is an error and the pairing starts over', () => {
  const d = new MessageDecoder('json');
  d.decode(header({ byte_length: 10 }));
  const result = /** @type {any} */ (d.decode(new Uint8Array(9).buffer));
  assert.equal(result.type, 'error');
  assert.ok(result.error instanceof ProtocolError);
  assert.match(result.error.message, /frame 42: payload is 9 bytes, header said byte_length 10/);
  // The next binary message has no header: an error too, not a frame.
  assert.match(/** @type {any} */ (d.decode(new Uint8Array(10).buffer)).error.message, /without a frame header/);
  d.decode(header({ frame_id: 50, byte_length: 2 }));
  assert.equal(/** @type {any} */ (d.decode(new Uint8Array(2).buffer)).frame.frameId, 50);
});

test('json envelope: a header whose payload never came is reported, the new header is kept', () => {
  const d = new MessageDecoder('json');
  d.decode(header({ frame_id: 1 }));
  const result = /** @type {any} */ (d.decode(header({ frame_id: 2, byte_length: 4 })));
  assert.equal(result.type, 'error');
  assert.match(result.error.message, /frame 1: expected its 3-byte payload, got the header of frame 2/);
  const frame = /** @type {any} */ (d.decode(new Uint8Array(4).buffer));
  assert.equal(frame.frame.frameId, 2);
});

test('json envelope: garbage text and bad headers are clear errors', () => {
  const d = new MessageDecoder('json');
  const error = (text) => /** @type {any} */ (d.decode(text)).error.message;
  assert.match(error('not json {'), /text message is not JSON/);
  assert.match(error('[1,2]'), /not a JSON object/);
  assert.match(error('null'), /not a JSON object/);
  assert.match(error('{"kind":"hello"}'), /no string "channel"/);
  assert.match(error('{"channel":"rfb.control"}'), /on "rfb.control" has no string "kind"/);
  assert.match(error(header({ chunk_type: 'intra' })), /"chunk_type" must be "key" or "delta", got "intra"/);
  assert.match(error(header({ frame_id: -1 })), /"frame_id" must be an unsigned integer, got -1/);
  assert.match(error(header({ byte_length: undefined })), /"byte_length" must be an unsigned integer, got nothing/);
  assert.match(error(header({ timestamp_us: 1.5 })), /"timestamp_us" must be an integer/);
  // None of that left a header pending.
  assert.match(/** @type {any} */ (d.decode(new Uint8Array(3).buffer)).error.message, /without a frame header/);
});

test('json envelope: config_id is optional in a frame header', () => {
  const d = new MessageDecoder('json');
  d.decode(header({ config_id: undefined }));
  assert.equal(/** @type {any} */ (d.decode(new Uint8Array(3).buffer)).frame.configId, null);
});

test('binary envelope: text frame headers are errors, binary messages are frames', () => {
  const d = new MessageDecoder('binary');
  assert.match(/** @type {any} */ (d.decode(header({}))).error.message, /envelope=binary/);
  const bytes = handBuiltFrame({ flags: 1, configId: 4, frameId: 5n, timestampUs: 6n, payload: [1] });
  const result = /** @type {any} */ (d.decode(bytes.buffer));
  assert.equal(result.frame.frameId, 5);
  assert.equal(result.frame.configId, 4);
  assert.match(/** @type {any} */ (d.decode(new Uint8Array(4).buffer)).error.message, /shorter/);
  assert.throws(() => new MessageDecoder(/** @type {any} */ ('xml')), /unknown envelope "xml"/);
});

test('parseTextMessage returns the object', () => {
  assert.deepEqual(parseTextMessage('{"channel":"rfb.control","kind":"eos"}'), { channel: 'rfb.control', kind: 'eos' });
});

test('base64 decodes to bytes, with and without padding', () => {
  assert.deepEqual([...base64ToBytes('')], []);
  assert.deepEqual([...base64ToBytes('AQ==')], [1]);
  assert.deepEqual([...base64ToBytes('AQI=')], [1, 2]);
  assert.deepEqual([...base64ToBytes('AQID')], [1, 2, 3]);
  assert.deepEqual([...base64ToBytes('AQI')], [1, 2]);
  // An avcC record start: version 1, profile 0x42, compat 0xC0, level 0x1E.
  assert.deepEqual([...base64ToBytes('AULAHv/h')], [0x01, 0x42, 0xc0, 0x1e, 0xff, 0xe1]);
  assert.deepEqual([...base64ToBytes('+/8=')], [0xfb, 0xff]);
  assert.deepEqual([...base64ToBytes('AQ ID\n')], [1, 2, 3]);
});

test('base64 rejects what is not base64', () => {
  for (const bad of ['A', 'AQ=I', '!!!!', 'AQ==AQ==', 'AQ===', '-_8=']) {
    assert.throws(() => base64ToBytes(bad), ProtocolError, `accepted ${JSON.stringify(bad)}`);
  }
  assert.throws(() => base64ToBytes(/** @type {any} */ (null)), /expected a string/);
});

const config = {
  channel: 'rfb.control',
  kind: 'config',
  config_id: 1,
  type: 'video',
  codec: 'h264',
  codec_string: 'avc1.64001f',
  format: 'avc',
  width: 1280,
  height: 720,
  description: 'AWQAH//h',
};

test('parseConfig validates and decodes the description', () => {
  const c = parseConfig(config);
  assert.equal(c.configId, 1);
  assert.equal(c.type, 'video');
  assert.equal(c.codecString, 'avc1.64001f');
  assert.equal(c.width, 1280);
  assert.equal(c.height, 720);
  assert.deepEqual([...c.description], [0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1]);
  assert.equal(parseConfig({ ...config, description: null }).description, null);
  const image = parseConfig({ ...config, type: 'image', codec: 'jpeg', codec_string: 'image/jpeg', format: 'jpeg', description: null });
  assert.equal(image.type, 'image');
  assert.equal(image.codecString, 'image/jpeg');
});

test('parseConfig rejects bad configs with what was wrong', () => {
  assert.throws(() => parseConfig({ ...config, type: 'audio' }), /config: "type" must be "video", "image" or "raw", got "audio"/);
  assert.throws(() => parseConfig({ ...config, codec: 'jpeg' }), /"codec" for type video must be one of h264, vp8, vp9, av1/);
  assert.throws(() => parseConfig({ ...config, codec_string: '' }), /"codec_string"/);
  assert.throws(() => parseConfig({ ...config, width: 0.5 }), /"width" and "height"/);
  assert.throws(() => parseConfig({ ...config, config_id: undefined }), /"config_id"/);
  assert.throws(() => parseConfig({ ...config, description: '!!' }), /base64/);
});

test('message constructors build the doc messages', () => {
  assert.equal(
    JSON.stringify(keyframeRequest('decoder-error')),
    '{"channel":"rfb.control","kind":"keyframe-request","reason":"decoder-error"}',
  );
  assert.equal(
    JSON.stringify(ack(42, 0)),
    '{"channel":"rfb.stats","kind":"ack","frame_id":42,"decode_queue_size":0}',
  );
});

test('withEnvelope adds ?envelope= unless the URL names one', () => {
  assert.deepEqual(withEnvelope('ws://127.0.0.1:8080/ws'), {
    url: 'ws://127.0.0.1:8080/ws?envelope=binary',
    envelope: 'binary',
  });
  assert.deepEqual(withEnvelope('ws://h/ws?envelope=json', 'binary'), { url: 'ws://h/ws?envelope=json', envelope: 'json' });
  assert.deepEqual(withEnvelope('wss://h/ws?a=1', 'json'), { url: 'wss://h/ws?a=1&envelope=json', envelope: 'json' });
  assert.throws(() => withEnvelope('ws://h/ws?envelope=xml'), /unknown envelope "xml"/);
});

test('renditions: the announcement parses; what is not an id or a size is refused or null', () => {
  assert.deepEqual(
    parseRenditions({
      kind: 'renditions', current: 2,
      renditions: [{ id: 0, codec: 'vp8', width: 1280, height: 720, bitrate_bps: 900 }, { id: 2, codec: 7, width: -1, bitrate_bps: null }],
    }),
    {
      current: 2,
      renditions: [
        { id: 0, codec: 'vp8', width: 1280, height: 720, bitrateBps: 900 },
        { id: 2, codec: null, width: null, height: null, bitrateBps: null },
      ],
    },
  );
  assert.equal(parseRenditions({ current: -1, renditions: [] }), null);
  assert.equal(parseRenditions({ current: 0, renditions: [{ id: 'a' }] }), null);
  assert.equal(parseRenditions({ current: 0 }), null);
  assert.deepEqual(renditionChoice(3), { channel: 'rfb.control', kind: 'rendition', id: 3 });
  assert.deepEqual(renditionChoice(null), { channel: 'rfb.control', kind: 'rendition', id: null });
});

test("the page's own files measure its link: bytes over the time they were arriving", () => {
  const origin = 'http://127.0.0.1:8080';
  /** @param {Record<string, Array<Partial<PerformanceResourceTiming>>>} entries */
  const perf = (entries) => ({ getEntriesByType: (/** @type {string} */ type) => /** @type {any} */ (entries[type] ?? []) });
  const at = (/** @type {string} */ name, /** @type {number} */ bytes, /** @type {number} */ start, /** @type {number} */ end) =>
    ({ name: `${origin}/${name}`, transferSize: bytes, requestStart: start, responseEnd: end });
  // 40 kB over 400 ms (two files together, then one after a gap that counts for nothing): 800 kbit/s.
  const slow = perf({
    navigation: [at('', 10000, 100, 200)],
    resource: [at('a.js', 10000, 150, 300), at('b.js', 20000, 1000, 1200), at('other', 50000, 1, 2), at('c.js', 0, 0, 0)],
  });
  slow.getEntriesByType('resource')[2].name = 'https://cdn.example/other.js';
  assert.equal(pageDownlinkKbps(slow, origin), 800);
  // A cached page (nothing over the network, or too little) tells nothing.
  assert.equal(pageDownlinkKbps(perf({ resource: [at('a.js', 0, 10, 12), at('b.js', 300, 10, 11)] }), origin), null);
  assert.equal(pageDownlinkKbps(perf({}), origin), null);
  assert.equal(withDownlink('ws://h/ws?envelope=binary', 800), 'ws://h/ws?envelope=binary&downlink=800');
  assert.equal(withDownlink('ws://h/ws', null), 'ws://h/ws');
});
