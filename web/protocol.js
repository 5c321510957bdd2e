// rfbsink wire protocol, version 1 (docs/protocol.md). Pure: no DOM, no I/O, runs in node too.

/** The protocol's version (the server's `hello` says it; docs/protocol.md). */
export const PROTOCOL_VERSION = 1;
/** The `envelope=binary` frame header's version byte. */
export const BINARY_VERSION = 1;
/** Size of the `envelope=binary` frame header in bytes. */
export const BINARY_HEADER_LEN = 24;
export const MAGIC_0 = 0x52; // 'R'
export const MAGIC_1 = 0x46; // 'F'
/** An audio packet's second magic byte: `RA` (docs/protocol.md, "Audio"). */
export const AUDIO_MAGIC_1 = 0x41; // 'A'
export const FLAG_KEY = 0x01;
/** A lossless still (raw tiles) that refines the picture shown (docs/protocol.md, "Refine"). */
export const FLAG_REFINE = 0x02;
/** The server closes a client whose message is bigger than this. */
export const MAX_CLIENT_MESSAGE_BYTES = 65536;
export const MAIN_CHANNEL = 'rfb.main';
export const CONTROL_CHANNEL = 'rfb.control';
export const STATS_CHANNEL = 'rfb.stats';
export const EVENTS_CHANNEL = 'rfb.events';
export const AUDIO_CHANNEL = 'rfb.audio';
/** The connection URL's parameter that asks for sound: `audio=1`. */
export const AUDIO_PARAM = 'audio';
/** @type {readonly Envelope[]} */
export const ENVELOPES = Object.freeze(['binary', 'json']);

/** @typedef {'binary' | 'json'} Envelope */

/**
 * One encoded frame, whichever envelope carried it.
 * @typedef {object} Frame
 * @property {number} frameId
 * @property {number} timestampUs
 * @property {boolean} key
 * @property {boolean} [refine] a lossless still in tiles, painted over the stream's picture
 * @property {number | null} configId null when a JSON header had no `config_id`
 * @property {Uint8Array} payload a view into the received message, not a copy
 */

/**
 * A JSON message on any channel but `rfb.main`.
 * @typedef {{channel: string, kind: string, [field: string]: any}} Message
 */

/**
 * A validated `config` message.
 * @typedef {object} StreamConfig
 * @property {number} configId
 * @property {'video' | 'image' | 'raw'} type
 * @property {string} codec
 * @property {string} codecString WebCodecs codec string, or the MIME type for images
 * @property {string} format
 * @property {number} width
 * @property {number} height
 * @property {Uint8Array | null} description
 */

/**
 * One Opus packet (`rfb.audio`), whichever envelope carried it.
 * @typedef {object} AudioPacket
 * @property {number} seq increasing by one per packet the element took
 * @property {number} timestampUs running time, the video's clock
 * @property {number} configId the `audio-config` it belongs to
 * @property {Uint8Array} payload
 * @property {boolean} [datagram] it came as a WebTransport datagram (`audio=datagram`)
 */

/**
 * A validated `audio-config` message.
 * @typedef {object} AudioConfig
 * @property {number} configId
 * @property {'opus'} codec
 * @property {number} sampleRate
 * @property {number} channels
 */

/**
 * What one received WebSocket message turned into.
 * @typedef {{type: 'frame', frame: Frame}
 *   | {type: 'audio', packet: AudioPacket}
 *   | {type: 'message', message: Message}
 *   | {type: 'pending'}
 *   | {type: 'error', error: ProtocolError}} DecodeResult
 */

/** A message that does not follow docs/protocol.md. */
export class ProtocolError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/**
 * @param {unknown} value
 * @returns {value is number}
 */
function isUint(value) {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Parses an `envelope=binary` frame: the 24-byte header, then the payload.
 * @param {ArrayBuffer | Uint8Array} message
 * @returns {Frame}
 */
export function parseBinaryFrame(message) {
  const bytes = message instanceof Uint8Array ? message : new Uint8Array(message);
  if (bytes.byteLength < BINARY_HEADER_LEN) {
    throw new ProtocolError(
      `binary frame of ${bytes.byteLength} bytes is shorter than the ${BINARY_HEADER_LEN}-byte header`,
    );
  }
  if (bytes[0] !== MAGIC_0 || (bytes[1] !== MAGIC_1 && bytes[1] !== AUDIO_MAGIC_1)) {
    throw new ProtocolError(
      `binary frame magic is 0x${hex(bytes[0])} 0x${hex(bytes[1])}, expected "RF" (0x52 0x46)`,
    );
  }
  if (bytes[2] !== BINARY_VERSION) {
    throw new ProtocolError(`binary frame version ${bytes[2]}, this client speaks ${BINARY_VERSION}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, BINARY_HEADER_LEN);
  const flags = view.getUint8(3);
  const frameId = view.getBigUint64(8, true);
  if (frameId > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ProtocolError(`frame_id ${frameId} is beyond 2^53`);
  }
  if (bytes[1] === AUDIO_MAGIC_1) {
    throw new ProtocolError('an audio packet ("RA") where a frame was expected');
  }
  return {
    frameId: Number(frameId),
    timestampUs: Number(view.getBigInt64(16, true)),
    key: (flags & FLAG_KEY) !== 0,
    refine: (flags & FLAG_REFINE) !== 0,
    configId: view.getUint32(4, true),
    payload: bytes.subarray(BINARY_HEADER_LEN),
  };
}

/**
 * Parses an `envelope=binary` audio packet: the frame header with the magic `RA`, then Opus.
 * @param {Uint8Array} bytes
 * @returns {AudioPacket}
 */
export function parseBinaryAudio(bytes) {
  if (bytes.byteLength < BINARY_HEADER_LEN) {
    throw new ProtocolError(`audio packet of ${bytes.byteLength} bytes is shorter than the ${BINARY_HEADER_LEN}-byte header`);
  }
  if (bytes[0] !== MAGIC_0 || bytes[1] !== AUDIO_MAGIC_1) throw new ProtocolError('audio packet magic is not "RA"');
  if (bytes[2] !== BINARY_VERSION) {
    throw new ProtocolError(`audio packet version ${bytes[2]}, this client speaks ${BINARY_VERSION}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, BINARY_HEADER_LEN);
  const seq = view.getBigUint64(8, true);
  if (seq > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProtocolError(`audio frame_id ${seq} is beyond 2^53`);
  return {
    seq: Number(seq),
    timestampUs: Number(view.getBigInt64(16, true)),
    configId: view.getUint32(4, true),
    payload: bytes.subarray(BINARY_HEADER_LEN),
  };
}

/**
 * Whether a binary-envelope message is an audio packet (`RA`) rather than a frame (`RF`).
 * @param {Uint8Array} bytes
 */
export function isAudioMessage(bytes) {
  return bytes.byteLength >= 2 && bytes[0] === MAGIC_0 && bytes[1] === AUDIO_MAGIC_1;
}

/**
 * Validates an `audio-config` message.
 * @param {{[field: string]: any}} message
 * @returns {AudioConfig}
 */
export function parseAudioConfig(message) {
  const fail = (/** @type {string} */ what) => new ProtocolError(`audio-config: ${what}`);
  if (!isUint(message.config_id)) throw fail(`"config_id" must be an unsigned integer, got ${json(message.config_id)}`);
  if (message.codec !== 'opus') throw fail(`"codec" must be "opus", got ${json(message.codec)}`);
  if (!isUint(message.sample_rate) || message.sample_rate < 8000 || message.sample_rate > 192000) {
    throw fail(`"sample_rate" must be 8000 to 192000, got ${json(message.sample_rate)}`);
  }
  if (!isUint(message.channels) || message.channels < 1 || message.channels > 2) {
    throw fail(`"channels" must be 1 or 2, got ${json(message.channels)}`);
  }
  return { configId: message.config_id, codec: 'opus', sampleRate: message.sample_rate, channels: message.channels };
}

/** The connection URL's parameter that says what the page's own files measured of the link. */
export const DOWNLINK_PARAM = 'downlink';
/** Fewer bytes than this over the network tell too little of a link (a cached page). */
const DOWNLINK_MIN_BYTES = 32 * 1024;

/**
 * What this page's own files measured of its link, in kbit/s (docs/protocol.md, "Renditions"):
 * the bytes of the resources from `origin` (the page, the viewer's modules) over the time they
 * were on their way (the union of each one's request to its last byte: files that come together
 * share the link; a gap while a module is parsed counts for none). From the first byte instead,
 * each file's first packet would look free: 1.8 times a 700 kbit/s link. It can still err high
 * (a token bucket's burst passes the first bytes at the wire's rate: 823-912 kbit/s on that
 * link) or low (a round trip per file): it only says where the viewer starts, and the ladder moves
 * it from there. Null when too few bytes came over the network to tell (a cached page), or
 * without timing (another origin).
 * @param {Pick<Performance, 'getEntriesByType'>} perf
 * @param {string} origin
 * @returns {number | null}
 */
export function pageDownlinkKbps(perf, origin) {
  /** @type {Array<[number, number]>} */
  const spans = [];
  let bytes = 0;
  for (const type of ['navigation', 'resource']) {
    for (const e of /** @type {PerformanceResourceTiming[]} */ (perf.getEntriesByType(type))) {
      let from;
      try {
        from = new URL(e.name).origin;
      } catch {
        continue;
      }
      if (from !== origin || !(e.transferSize > 0) || !(e.requestStart > 0) || !(e.responseEnd >= e.requestStart)) continue;
      bytes += e.transferSize;
      spans.push([e.requestStart, e.responseEnd]);
    }
  }
  if (bytes < DOWNLINK_MIN_BYTES) return null;
  spans.sort((a, b) => a[0] - b[0]);
  let busyMs = 0;
  let [start, end] = spans[0];
  for (const [s, e] of spans.slice(1)) {
    if (s > end) {
      busyMs += end - start;
      [start, end] = [s, e];
    } else {
      end = Math.max(end, e);
    }
  }
  busyMs += end - start;
  if (busyMs < 1) return null;
  // Bits per millisecond are kbit/s.
  return Math.max(1, Math.round((bytes * 8) / busyMs));
}

/**
 * Adds `downlink=<kbit/s>` to a connection URL when `kbps` is known.
 * @param {string} url
 * @param {number | null} kbps
 */
export function withDownlink(url, kbps) {
  if (kbps === null) return url;
  const parsed = new URL(url);
  parsed.searchParams.set(DOWNLINK_PARAM, String(kbps));
  return parsed.href;
}

/**
 * Adds `audio=1` to a connection URL: the server sends sound only to clients that ask.
 * `datagram`: `audio=datagram`, its packets as WebTransport datagrams (lost rather than late;
 * the WebSocket sends them in order all the same).
 * @param {string} url
 * @param {'stream' | 'datagram'} [how]
 */
export function withAudio(url, how = 'stream') {
  const parsed = new URL(url);
  parsed.searchParams.set(AUDIO_PARAM, how === 'datagram' ? 'datagram' : '1');
  return parsed.href;
}

/**
 * Builds an `envelope=binary` frame (the server's side; here for tests and tools).
 * @param {{frameId: number, timestampUs: number, key: boolean, refine?: boolean, configId: number, payload: Uint8Array}} frame
 * @returns {Uint8Array}
 */
export function encodeBinaryFrame(frame) {
  const out = new Uint8Array(BINARY_HEADER_LEN + frame.payload.byteLength);
  const view = new DataView(out.buffer);
  out[0] = MAGIC_0;
  out[1] = MAGIC_1;
  out[2] = PROTOCOL_VERSION;
  out[3] = (frame.key ? FLAG_KEY : 0) | (frame.refine ? FLAG_REFINE : 0);
  view.setUint32(4, frame.configId, true);
  view.setBigUint64(8, BigInt(frame.frameId), true);
  view.setBigInt64(16, BigInt(frame.timestampUs), true);
  out.set(frame.payload, BINARY_HEADER_LEN);
  return out;
}

/** @param {number} byte */
function hex(byte) {
  return byte.toString(16).padStart(2, '0');
}

/**
 * Parses a text message: a JSON object with a string `channel`, and a string `kind` unless it is
 * an `rfb.main` frame header or an `rfb.audio` header (which have none).
 * @param {string} text
 * @returns {{[field: string]: any, channel: string}}
 */
export function parseTextMessage(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ProtocolError(`text message is not JSON (${e instanceof Error ? e.message : e}): ${preview(text)}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ProtocolError(`text message is not a JSON object: ${preview(text)}`);
  }
  if (typeof value.channel !== 'string') {
    throw new ProtocolError(`text message has no string "channel": ${preview(text)}`);
  }
  if (value.channel !== MAIN_CHANNEL && value.channel !== AUDIO_CHANNEL && typeof value.kind !== 'string') {
    throw new ProtocolError(`text message on "${value.channel}" has no string "kind": ${preview(text)}`);
  }
  return value;
}

/** @param {string} text */
function preview(text) {
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

/**
 * Validates an `envelope=json` frame header and returns the frame it announces, without payload.
 * @param {{[field: string]: any}} header
 * @returns {Omit<Frame, 'payload'> & {byteLength: number}}
 */
export function parseFrameHeader(header) {
  if (!isUint(header.frame_id)) {
    throw new ProtocolError(`frame header: "frame_id" must be an unsigned integer, got ${json(header.frame_id)}`);
  }
  if (typeof header.timestamp_us !== 'number' || !Number.isSafeInteger(header.timestamp_us)) {
    throw new ProtocolError(`frame header: "timestamp_us" must be an integer, got ${json(header.timestamp_us)}`);
  }
  if (header.chunk_type !== 'key' && header.chunk_type !== 'delta') {
    throw new ProtocolError(`frame header: "chunk_type" must be "key" or "delta", got ${json(header.chunk_type)}`);
  }
  if (!isUint(header.byte_length)) {
    throw new ProtocolError(`frame header: "byte_length" must be an unsigned integer, got ${json(header.byte_length)}`);
  }
  if (header.config_id !== undefined && !isUint(header.config_id)) {
    throw new ProtocolError(`frame header: "config_id" must be an unsigned integer, got ${json(header.config_id)}`);
  }
  return {
    frameId: header.frame_id,
    timestampUs: header.timestamp_us,
    key: header.chunk_type === 'key' && header.type !== 'refine',
    refine: header.type === 'refine',
    configId: header.config_id ?? null,
    byteLength: header.byte_length,
  };
}

/**
 * Validates an `envelope=json` audio header.
 * @param {{[field: string]: any}} header
 * @returns {Omit<AudioPacket, 'payload'> & {byteLength: number}}
 */
function parseAudioHeader(header) {
  const fail = (/** @type {string} */ what) => new ProtocolError(`audio header: ${what}`);
  if (!isUint(header.frame_id)) throw fail(`"frame_id" must be an unsigned integer, got ${json(header.frame_id)}`);
  if (typeof header.timestamp_us !== 'number' || !Number.isSafeInteger(header.timestamp_us)) {
    throw fail(`"timestamp_us" must be an integer, got ${json(header.timestamp_us)}`);
  }
  if (!isUint(header.byte_length)) throw fail(`"byte_length" must be an unsigned integer, got ${json(header.byte_length)}`);
  if (!isUint(header.config_id)) throw fail(`"config_id" must be an unsigned integer, got ${json(header.config_id)}`);
  return { seq: header.frame_id, timestampUs: header.timestamp_us, configId: header.config_id, byteLength: header.byte_length };
}

/** @param {unknown} value */
function json(value) {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

/**
 * Turns received WebSocket messages into frames and messages for one connection. For
 * `envelope=json` it pairs each `rfb.main` text header with the binary message that follows it.
 * Make a new one per connection.
 */
export class MessageDecoder {
  /** @param {Envelope} envelope */
  constructor(envelope) {
    if (!ENVELOPES.includes(envelope)) {
      throw new ProtocolError(`unknown envelope ${json(envelope)}, expected "binary" or "json"`);
    }
    /** @type {Envelope} */
    this.envelope = envelope;
    /** @type {(Omit<Frame, 'payload'> & {byteLength: number}) | (Omit<AudioPacket, 'payload'> & {byteLength: number}) | null} */
    this.pendingHeader = null;
  }

  /**
   * @param {string | ArrayBuffer | Uint8Array} data one WebSocket message
   * @returns {DecodeResult}
   */
  decode(data) {
    try {
      return typeof data === 'string' ? this.decodeText(data) : this.decodeBinary(data);
    } catch (e) {
      if (e instanceof ProtocolError) return { type: 'error', error: e };
      throw e;
    }
  }

  /**
   * @param {string} text
   * @returns {DecodeResult}
   */
  decodeText(text) {
    const value = parseTextMessage(text);
    if (value.channel === AUDIO_CHANNEL && value.type === 'audio') {
      if (this.envelope !== 'json') throw new ProtocolError('got a JSON "rfb.audio" header with envelope=binary');
      const previous = this.pendingHeader;
      this.pendingHeader = null;
      this.pendingHeader = parseAudioHeader(value);
      if (previous) throw new ProtocolError(`audio packet ${this.pendingHeader.seq}: the previous header lost its payload`);
      return { type: 'pending' };
    }
    if (value.channel !== MAIN_CHANNEL) {
      // The payload is "the next binary message": a control message may come in between.
      return { type: 'message', message: /** @type {Message} */ (value) };
    }
    if (this.envelope !== 'json') {
      throw new ProtocolError('got a JSON "rfb.main" frame header with envelope=binary');
    }
    const previous = this.pendingHeader;
    this.pendingHeader = null;
    // A good header counts even when the one before it lost its payload.
    const header = parseFrameHeader(value);
    this.pendingHeader = header;
    if (previous) {
      const what = 'seq' in previous ? `audio packet ${previous.seq}` : `frame ${previous.frameId}`;
      throw new ProtocolError(
        `${what}: expected its ${previous.byteLength}-byte payload, got the header of frame ${header.frameId}`,
      );
    }
    return { type: 'pending' };
  }

  /**
   * @param {ArrayBuffer | Uint8Array} data
   * @returns {DecodeResult}
   */
  decodeBinary(data) {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    if (this.envelope === 'binary') {
      if (isAudioMessage(bytes)) return { type: 'audio', packet: parseBinaryAudio(bytes) };
      return { type: 'frame', frame: parseBinaryFrame(bytes) };
    }
    const header = this.pendingHeader;
    this.pendingHeader = null;
    if (!header) {
      throw new ProtocolError(`binary message of ${bytes.byteLength} bytes without a frame header before it`);
    }
    if ('seq' in header) {
      if (bytes.byteLength !== header.byteLength) {
        throw new ProtocolError(`audio packet ${header.seq}: payload is ${bytes.byteLength} bytes, header said ${header.byteLength}`);
      }
      const { byteLength, ...packet } = header;
      return { type: 'audio', packet: { ...packet, payload: bytes } };
    }
    if (bytes.byteLength !== header.byteLength) {
      throw new ProtocolError(
        `frame ${header.frameId}: payload is ${bytes.byteLength} bytes, header said byte_length ${header.byteLength}`,
      );
    }
    const { byteLength, ...frame } = header;
    return { type: 'frame', frame: { ...frame, payload: bytes } };
  }
}

/**
 * Decodes standard base64 (as `description` in `config`).
 * @param {string} text
 * @returns {Uint8Array}
 */
export function base64ToBytes(text) {
  if (typeof text !== 'string') throw new ProtocolError(`base64: expected a string, got ${json(text)}`);
  const clean = text.replace(/[\t\n\f\r ]+/g, '');
  if (clean.length % 4 === 1 || !/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || (clean.includes('=') && clean.length % 4 !== 0)) {
    throw new ProtocolError(`base64: not valid base64: ${preview(text)}`);
  }
  const binary = atob(clean);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

const VIDEO_CODECS = ['h264', 'vp8', 'vp9', 'av1'];
const IMAGE_CODECS = ['jpeg', 'png', 'webp'];
const RAW_CODECS = ['raw'];

/**
 * Validates a `config` message.
 * @param {{[field: string]: any}} message
 * @returns {StreamConfig}
 */
export function parseConfig(message) {
  const fail = (/** @type {string} */ what) => new ProtocolError(`config: ${what}`);
  if (!isUint(message.config_id)) throw fail(`"config_id" must be an unsigned integer, got ${json(message.config_id)}`);
  if (message.type !== 'video' && message.type !== 'image' && message.type !== 'raw') {
    throw fail(`"type" must be "video", "image" or "raw", got ${json(message.type)}`);
  }
  const codecs = message.type === 'video' ? VIDEO_CODECS : message.type === 'image' ? IMAGE_CODECS : RAW_CODECS;
  if (!codecs.includes(message.codec)) {
    throw fail(`"codec" for type ${message.type} must be one of ${codecs.join(', ')}, got ${json(message.codec)}`);
  }
  if (typeof message.codec_string !== 'string' || message.codec_string === '') {
    throw fail(`"codec_string" must be a non-empty string, got ${json(message.codec_string)}`);
  }
  if (typeof message.format !== 'string') throw fail(`"format" must be a string, got ${json(message.format)}`);
  if (!isUint(message.width) || !isUint(message.height)) {
    throw fail(`"width" and "height" must be unsigned integers, got ${json(message.width)}x${json(message.height)}`);
  }
  const description = message.description == null ? null : base64ToBytes(message.description);
  return {
    configId: message.config_id,
    type: message.type,
    codec: message.codec,
    codecString: message.codec_string,
    format: message.format,
    width: message.width,
    height: message.height,
    description,
  };
}

/**
 * @param {string} reason why the client lost its decoder state, e.g. "decoder-error"
 * @returns {Message}
 */
export function keyframeRequest(reason) {
  return { channel: CONTROL_CHANNEL, kind: 'keyframe-request', reason };
}

/**
 * The viewer chooses its rendition (docs/protocol.md, "Renditions"); null gives the choice back
 * to the server.
 * @param {number | null} id
 */
export function renditionChoice(id) {
  return { channel: CONTROL_CHANNEL, kind: 'rendition', id };
}

/**
 * One rendition of the stream, as the server announces it.
 * @typedef {object} Rendition
 * @property {number} id 0: the sink pad's stream
 * @property {string | null} codec null until its first keyframe
 * @property {number | null} width
 * @property {number | null} height
 * @property {number | null} bitrateBps what its stream sent lately
 */

/**
 * The renditions a viewer may get and the one it gets (a `renditions` control message), or null
 * when the message is not usable.
 * @param {{[field: string]: any}} message
 * @returns {{current: number, renditions: Rendition[]} | null}
 */
export function parseRenditions(message) {
  const uint = (/** @type {any} */ v) => (Number.isInteger(v) && v >= 0 ? v : null);
  const current = uint(message?.current);
  if (current === null || !Array.isArray(message.renditions) || message.renditions.length > 64) return null;
  /** @type {Rendition[]} */
  const renditions = [];
  for (const r of message.renditions) {
    const id = uint(r?.id);
    if (id === null) return null;
    renditions.push({
      id,
      codec: typeof r.codec === 'string' ? r.codec : null,
      width: uint(r.width),
      height: uint(r.height),
      bitrateBps: uint(r.bitrate_bps),
    });
  }
  return { current, renditions };
}

/**
 * The acknowledgement of a painted frame (docs/protocol.md, "Control messages"): every field the server reads.
 * @param {number} frameId the decoded frame
 * @param {number} decodeQueueSize frames waiting in the decoder
 * @param {number} [paintUs] how long painting took, from the decoder's hand-over
 * @returns {Message}
 */
export function ack(frameId, decodeQueueSize, paintUs) {
  /** @type {Message} */
  const message = { channel: STATS_CHANNEL, kind: 'ack', frame_id: frameId, decode_queue_size: decodeQueueSize };
  if (paintUs !== undefined) message.paint_us = paintUs;
  return message;
}

/**
 * Adds `?envelope=` to a WebSocket URL unless it already names one, and says which envelope the
 * URL asks for.
 * @param {string} url
 * @param {Envelope} [envelope] used when the URL names none
 * @returns {{url: string, envelope: Envelope}}
 */
export function withEnvelope(url, envelope = 'binary') {
  const parsed = new URL(url);
  const named = parsed.searchParams.get('envelope');
  if (named === null) {
    parsed.searchParams.set('envelope', envelope);
    return { url: parsed.href, envelope };
  }
  if (named !== 'binary' && named !== 'json') {
    throw new ProtocolError(`unknown envelope "${named}" in ${url}, expected "binary" or "json"`);
  }
  return { url: parsed.href, envelope: named };
}

/**
 * WebTransport streams carry messages with a 4-byte little-endian length prefix (docs/protocol.md):
 * JSON text (starts with `{`) or a binary-envelope frame (starts with `RF`). Feed it the chunks a
 * stream reader returns; it yields whole messages whatever the chunking.
 */
export class LengthPrefixedReader {
  /** @param {number} [maxBytes] a longer message is a protocol error */
  constructor(maxBytes = 256 * 1024 * 1024) {
    this.maxBytes = maxBytes;
    /** @type {Uint8Array[]} */
    this.chunks = [];
    this.buffered = 0;
  }

  /**
   * @param {Uint8Array} chunk
   * @returns {Uint8Array[]} the messages completed by this chunk, in order
   */
  push(chunk) {
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    /** @type {Uint8Array[]} */
    const out = [];
    for (;;) {
      if (this.buffered < 4) break;
      const len = new DataView(this.peek(4).buffer).getUint32(0, true);
      if (len > this.maxBytes) throw new ProtocolError(`message of ${len} bytes is over the limit of ${this.maxBytes}`);
      if (this.buffered < 4 + len) break;
      this.take(4);
      out.push(this.take(len));
    }
    return out;
  }

  /** @param {number} n @returns {Uint8Array} a copy of the first n buffered bytes */
  peek(n) {
    const out = new Uint8Array(n);
    let at = 0;
    for (const c of this.chunks) {
      const k = Math.min(c.byteLength, n - at);
      out.set(c.subarray(0, k), at);
      at += k;
      if (at === n) break;
    }
    return out;
  }

  /** @param {number} n @returns {Uint8Array} the first n bytes, removed (a view when they lie in one chunk) */
  take(n) {
    const first = this.chunks[0];
    let out;
    if (first && first.byteLength >= n) {
      out = first.subarray(0, n);
    } else {
      out = this.peek(n);
    }
    let left = n;
    while (left > 0) {
      const c = this.chunks[0];
      if (c.byteLength <= left) {
        left -= c.byteLength;
        this.chunks.shift();
      } else {
        this.chunks[0] = c.subarray(left);
        left = 0;
      }
    }
    this.buffered -= n;
    return out;
  }
}

/**
 * @param {string} hex
 * @returns {Uint8Array<ArrayBuffer>}
 */
export function hexToBytes(hex) {
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new ProtocolError(`not a hex string: ${hex.slice(0, 16)}`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * Decodes one message of a WebTransport stream: a frame or a JSON control message.
 * @param {Uint8Array} bytes
 * @returns {{type: 'frame', frame: Frame} | {type: 'audio', packet: AudioPacket} | {type: 'message', message: Message}}
 */
export function parseStreamMessage(bytes) {
  if (isAudioMessage(bytes)) return { type: 'audio', packet: parseBinaryAudio(bytes) };
  if (bytes.byteLength >= 2 && bytes[0] === MAGIC_0 && bytes[1] === MAGIC_1) {
    return { type: 'frame', frame: parseBinaryFrame(bytes) };
  }
  const message = /** @type {Message} */ (parseTextMessage(new TextDecoder().decode(bytes)));
  return { type: 'message', message };
}
