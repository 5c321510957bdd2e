// Logical channels over one connection (docs/protocol.md, Channels). The rest of the viewer talks to a
// Transport: WebSocketTransport (one socket, channels multiplexed in JSON), WebTransportTransport
// (a control stream, a stream per group of pictures, datagrams for latest-wins messages), and
// AutoTransport, which prefers WebTransport and falls back to WebSocket. No DOM: runs in the
// decode worker.

import {
  AUDIO_CHANNEL,
  AUDIO_PARAM,
  CONTROL_CHANNEL,
  DOWNLINK_PARAM,
  ENVELOPES,
  EVENTS_CHANNEL,
  LengthPrefixedReader,
  MAIN_CHANNEL,
  MAX_CLIENT_MESSAGE_BYTES,
  MessageDecoder,
  ProtocolError,
  STATS_CHANNEL,
  hexToBytes,
  isAudioMessage,
  parseBinaryAudio,
  parseStreamMessage,
} from './protocol.js';

/**
 * @typedef {object} ChannelOptions
 * @property {boolean} [reliable] false: may be dropped (a datagram where the transport has them)
 */

/**
 * @typedef {object} SendOptions
 * @property {boolean} [ordered] keep this message in order with the reliable ones: never a
 *   datagram (a pointer move that must reach the server before the press that follows it)
 */

/**
 * A named logical channel. `rfb.main` delivers {@link import('./protocol.js').Frame}s, every other
 * channel JSON objects. A name ending in `.*` (like `app.*`) receives every channel with that prefix.
 * @typedef {object} Channel
 * @property {string} name
 * @property {(data: Uint8Array | object, options?: SendOptions) => Promise<void>} send rejects when it
 *   cannot be sent
 * @property {(cb: (data: any) => void) => () => void} onMessage returns the unsubscribe function
 * @property {() => void} close stops delivering to this channel's listeners
 */

/**
 * @typedef {{type: 'connecting', attempt: number}
 *   | {type: 'open'}
 *   | {type: 'closed', code: number, reason: string, retryInMs: number | null, refused?: boolean}
 *   | {type: 'error', error: Error}} TransportEvent
 * `retryInMs` null: the transport gives up (closed by its owner, or a close code that would repeat).
 * `refused`: the server refused this link (401/403, see accessRefusedText); it keeps retrying.
 * `error`: a message that broke the protocol; the connection carries on.
 */

/**
 * @typedef {object} Transport
 * @property {(name: string, options?: ChannelOptions) => Channel} openChannel
 * @property {(cb: (event: TransportEvent) => void) => () => void} onEvent
 * @property {() => void} start connects, and reconnects after each close
 * @property {() => void} close
 * @property {string} name 'websocket' or 'webtransport': what carries the session now
 */

/** Reconnect delays: `initialMs`, doubling up to `maxMs`. */
export class Backoff {
  /**
   * @param {number} [initialMs]
   * @param {number} [maxMs]
   */
  constructor(initialMs = 250, maxMs = 2000) {
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.nextMs = initialMs;
  }

  /** @returns {number} the delay to wait now */
  next() {
    const delay = this.nextMs;
    this.nextMs = Math.min(this.nextMs * 2, this.maxMs);
    return delay;
  }

  reset() {
    this.nextMs = this.initialMs;
  }
}

/** @param {unknown} e */
function errorText(e) {
  return e instanceof Error ? e.message : String(e);
}

/** Close codes after which reconnecting would be refused the same way (docs/protocol.md). */
const FINAL_CLOSE_CODES = new Set([1008 /* unknown envelope */]);

class ChannelImpl {
  /**
   * @param {string} name
   * @param {(name: string, data: Uint8Array | object, options?: SendOptions) => Promise<void>} sender
   * @param {(channel: ChannelImpl) => void} onClose
   */
  constructor(name, sender, onClose) {
    this.name = name;
    this.sender = sender;
    this.onClose = onClose;
    /** @type {Set<(data: any) => void>} */
    this.listeners = new Set();
  }

  /** @param {Uint8Array | object} data @param {SendOptions} [options] */
  send(data, options) {
    return this.sender(this.name, data, options);
  }

  /** @param {(data: any) => void} cb */
  onMessage(cb) {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** @param {any} data */
  deliver(data) {
    for (const cb of this.listeners) cb(data);
  }

  close() {
    this.listeners.clear();
    this.onClose(this);
  }
}

/**
 * The channels of a session and who listens on them; shared by the backends of an AutoTransport
 * so that listeners survive a switch of transport.
 */
export class ChannelRouter {
  /** @param {(name: string, data: Uint8Array | object, options?: SendOptions) => Promise<void>} sender */
  constructor(sender) {
    this.sender = sender;
    /** @type {Map<string, ChannelImpl>} */
    this.channels = new Map();
    /** @type {Set<(event: TransportEvent) => void>} */
    this.listeners = new Set();
  }

  /** @param {string} name */
  open(name) {
    let channel = this.channels.get(name);
    if (!channel) {
      channel = new ChannelImpl(name, (n, d, o) => this.sender(n, d, o), (c) => this.channels.delete(c.name));
      this.channels.set(name, channel);
    }
    return channel;
  }

  /** @param {import('./protocol.js').Frame} frame */
  frame(frame) {
    this.channels.get(MAIN_CHANNEL)?.deliver(frame);
  }

  /** @param {import('./protocol.js').AudioPacket} packet */
  audio(packet) {
    this.channels.get(AUDIO_CHANNEL)?.deliver(packet);
  }

  /**
   * Delivers a message to its channel and to every wildcard channel (`app.*`) that covers it.
   * @param {import('./protocol.js').Message} message
   */
  route(message) {
    for (const [name, channel] of this.channels) {
      if (name === message.channel || (name.endsWith('.*') && message.channel.startsWith(name.slice(0, -1)))) {
        channel.deliver(message);
      }
    }
  }

  /** @param {(event: TransportEvent) => void} cb */
  onEvent(cb) {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** @param {TransportEvent} event */
  emit(event) {
    for (const cb of this.listeners) cb(event);
  }

  clear() {
    for (const channel of this.channels.values()) channel.listeners.clear();
    this.channels.clear();
    this.listeners.clear();
  }
}

/**
 * @param {string} channel
 * @param {Uint8Array | object} data
 * @returns {string} the JSON text to send
 */
export function encodeMessage(channel, data) {
  if (data instanceof Uint8Array || data instanceof ArrayBuffer) {
    // The server closes a client that sends binary messages (1003).
    throw new ProtocolError(`channel ${channel}: clients send JSON objects only`);
  }
  if (channel.endsWith('.*')) throw new ProtocolError(`cannot send on the wildcard channel ${channel}`);
  const text = JSON.stringify({ ...data, channel });
  if (text.length * 3 > MAX_CLIENT_MESSAGE_BYTES && new TextEncoder().encode(text).byteLength > MAX_CLIENT_MESSAGE_BYTES) {
    throw new ProtocolError(`channel ${channel}: message is over ${MAX_CLIENT_MESSAGE_BYTES} bytes`);
  }
  return text;
}

/**
 * One WebSocket; JSON text messages carry their `channel`, frames are `rfb.main` in the
 * connection's envelope (docs/protocol.md).
 * @implements {Transport}
 */
export class WebSocketTransport {
  /**
   * @param {string} url ws:// or wss://, with `?envelope=`
   * @param {{envelope: import('./protocol.js').Envelope, backoff?: Backoff, WebSocketImpl?: typeof WebSocket,
   *   router?: ChannelRouter, onClosed?: (close: {code: number, reason: string, opened: boolean}) => void}} options
   *   `onClosed`: the owner (an AutoTransport) reconnects; this transport then does not
   */
  constructor(url, options) {
    this.name = 'websocket';
    this.onClosed = options.onClosed ?? null;
    this.opened = false;
    this.url = url;
    this.envelope = options.envelope;
    this.backoff = options.backoff ?? new Backoff();
    this.WebSocketImpl = options.WebSocketImpl ?? globalThis.WebSocket;
    this.router = options.router ?? new ChannelRouter((n, d) => this.send(n, d));
    /** @type {WebSocket | null} */
    this.socket = null;
    /** @type {MessageDecoder | null} */
    this.decoder = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retryTimer = null;
    this.attempt = 0;
    this.closed = false;
  }

  /**
   * @param {string} name
   * @param {ChannelOptions} [_options] all channels are reliable on a WebSocket
   * @returns {Channel}
   */
  openChannel(name, _options) {
    return this.router.open(name);
  }

  /** @param {(event: TransportEvent) => void} cb */
  onEvent(cb) {
    return this.router.onEvent(cb);
  }

  start() {
    if (this.closed || this.socket) return;
    this.attempt++;
    this.router.emit({ type: 'connecting', attempt: this.attempt });
    const socket = new this.WebSocketImpl(this.url);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.decoder = new MessageDecoder(this.envelope);
    socket.onopen = () => {
      this.opened = true;
      this.router.emit({ type: 'open' });
    };
    socket.onmessage = (event) => {
      if (socket === this.socket) this.receive(event.data);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.decoder = null;
      if (this.onClosed) {
        this.onClosed({ code: event.code, reason: event.reason, opened: this.opened });
        return;
      }
      let retryInMs = null;
      if (!this.closed && !FINAL_CLOSE_CODES.has(event.code)) {
        retryInMs = this.backoff.next();
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.start();
        }, retryInMs);
      }
      this.router.emit({ type: 'closed', code: event.code, reason: event.reason, retryInMs });
    };
  }

  /** @param {string | ArrayBuffer} data */
  receive(data) {
    // Connected for real (not refused right after the upgrade): start the backoff over.
    this.backoff.reset();
    const result = /** @type {MessageDecoder} */ (this.decoder).decode(data);
    switch (result.type) {
      case 'frame':
        this.router.frame(result.frame);
        break;
      case 'audio':
        this.router.audio(result.packet);
        break;
      case 'message': {
        const message = result.message;
        if (
          message.channel === CONTROL_CHANNEL &&
          message.kind === 'hello' &&
          ENVELOPES.includes(message.envelope) &&
          message.envelope !== this.decoder?.envelope
        ) {
          // The server says which envelope it speaks; believe it over our URL.
          this.decoder = new MessageDecoder(message.envelope);
        }
        this.router.route(message);
        break;
      }
      case 'error':
        this.router.emit({ type: 'error', error: result.error });
        break;
    }
  }

  /**
   * @param {string} channel
   * @param {Uint8Array | object} data
   * @returns {Promise<void>}
   */
  async send(channel, data) {
    const text = encodeMessage(channel, data);
    const socket = this.socket;
    if (!socket || socket.readyState !== this.WebSocketImpl.OPEN) {
      throw new Error(`channel ${channel}: not connected`);
    }
    socket.send(text);
  }

  /** Stops without clearing the router's listeners (an AutoTransport may go on with them). */
  stop() {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const socket = this.socket;
    this.socket = null;
    this.decoder = null;
    if (socket) {
      socket.onclose = null;
      socket.close(1000, 'viewer closed');
    }
  }

  close() {
    this.stop();
    this.router.clear();
  }
}

/**
 * Messages that go as datagrams on WebTransport: latest-wins traffic, where a lost one is replaced
 * by the next (docs/protocol.md).
 * @param {string} channel
 * @param {{kind?: string}} data
 */
function isDatagram(channel, data) {
  return channel === STATS_CHANNEL || (channel === EVENTS_CHANNEL && data.kind === 'pointer-move');
}

/**
 * @typedef {{port: number, path: string, certificate_hashes: {algorithm: string, value: string}[]}} WebTransportInfo
 * what the server's /rfb.json says under `webtransport`
 */

/**
 * A WebTransport session (docs/protocol.md, "WebTransport"): the server opens the control stream
 * and one unidirectional stream per group of pictures; pointer moves and acks go as datagrams.
 * @implements {Transport}
 */
export class WebTransportTransport {
  /**
   * @param {string} url https://host:port/wt
   * @param {{hashes?: {algorithm: string, value: string}[], backoff?: Backoff, router?: ChannelRouter,
   *   onClosed?: (close: {code: number, reason: string, opened: boolean}) => void}} options
   *   `onClosed`: the owner (an AutoTransport) reconnects; this transport then does not
   */
  constructor(url, options) {
    this.name = 'webtransport';
    this.url = url;
    this.hashes = options.hashes ?? [];
    this.backoff = options.backoff ?? new Backoff();
    this.router = options.router ?? new ChannelRouter((n, d) => this.send(n, d));
    this.onClosed = options.onClosed ?? null;
    // Per session: streams may be surfaced out of order, so only newer frames and configs pass.
    this.lastFrameId = -1;
    this.lastConfigId = 0;
    /** Sound's packets may come as datagrams, in any order: only newer ones pass. */
    this.lastAudioSeq = -1;
    /** @type {WebTransport | null} */
    this.session = null;
    /** @type {WritableStreamDefaultWriter<Uint8Array> | null} */
    this.control = null;
    /** @type {WritableStreamDefaultWriter<Uint8Array> | null} */
    this.datagrams = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retryTimer = null;
    this.attempt = 0;
    this.everOpened = false;
    this.closed = false;
    this.encoder = new TextEncoder();
  }

  /** @param {string} name @param {ChannelOptions} [_options] */
  openChannel(name, _options) {
    return this.router.open(name);
  }

  /** @param {(event: TransportEvent) => void} cb */
  onEvent(cb) {
    return this.router.onEvent(cb);
  }

  start() {
    if (this.closed || this.session) return;
    this.attempt++;
    this.router.emit({ type: 'connecting', attempt: this.attempt });
    let session;
    try {
      session = new WebTransport(this.url, {
        serverCertificateHashes: this.hashes.map((h) => ({ algorithm: h.algorithm, value: hexToBytes(h.value) })),
        requireUnreliable: true,
      });
    } catch (e) {
      this.ended(null, 0, `cannot open WebTransport: ${errorText(e)}`);
      return;
    }
    this.session = session;
    this.lastFrameId = -1;
    this.lastConfigId = 0;
    this.lastAudioSeq = -1;
    session.ready.then(() => {
      if (session !== this.session) return;
      this.everOpened = true;
      this.backoff.reset();
      this.datagrams = session.datagrams.writable.getWriter();
      this.router.emit({ type: 'open' });
      this.readControl(session);
      this.readVideo(session);
      this.drainDatagrams(session);
    }, () => {});
    session.closed.then(
      (info) => this.ended(session, info.closeCode ?? 0, info.reason ?? ''),
      (e) => this.ended(session, 0, e.message),
    );
  }

  /**
   * @param {WebTransport | null} session
   * @param {number} code
   * @param {string} reason
   */
  ended(session, code, reason) {
    if (session && session !== this.session) return;
    this.session = null;
    this.control = null;
    this.datagrams = null;
    if (this.onClosed) {
      if (!this.closed) this.onClosed({ code, reason, opened: this.everOpened });
      return;
    }
    let retryInMs = null;
    if (!this.closed && !FINAL_CLOSE_CODES.has(code)) {
      retryInMs = this.backoff.next();
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.start();
      }, retryInMs);
    }
    this.router.emit({ type: 'closed', code, reason, retryInMs });
  }

  /** @param {WebTransport} session */
  async readControl(session) {
    const streams = session.incomingBidirectionalStreams.getReader();
    const { value: stream, done } = await streams.read().catch(() => ({ value: undefined, done: true }));
    streams.releaseLock();
    if (done || !stream || session !== this.session) return;
    this.control = stream.writable.getWriter();
    await this.readMessages(session, stream.readable);
  }

  /**
   * Groups of pictures, one stream each, read as they come, side by side: the browser may surface
   * a newer group's stream before an older one ends. Only frames newer than the last one
   * delivered pass (latest wins), so a late tail of an old group is dropped rather than decoded
   * after a newer keyframe. The server resets a stale group when the viewer fell behind.
   * @param {WebTransport} session
   */
  async readVideo(session) {
    const streams = session.incomingUnidirectionalStreams.getReader();
    for (;;) {
      const { value: stream, done } = await streams.read().catch(() => ({ value: undefined, done: true }));
      if (done || !stream || session !== this.session) return;
      this.readMessages(session, stream);
    }
  }

  /**
   * @param {WebTransport} session
   * @param {ReadableStream<Uint8Array>} readable
   */
  async readMessages(session, readable) {
    const reader = readable.getReader();
    const messages = new LengthPrefixedReader();
    /** This group's config: it passes with the group's first frame that passes, when it differs. */
    let config = null;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || session !== this.session) return;
        for (const bytes of messages.push(value)) {
          let decoded;
          try {
            decoded = parseStreamMessage(bytes);
          } catch (e) {
            this.router.emit({ type: 'error', error: e instanceof Error ? e : new ProtocolError(String(e)) });
            continue;
          }
          if (decoded.type === 'audio') {
            // Sound's own stream (docs/protocol.md, "Audio"): in order, every packet.
            this.audio(decoded.packet);
            continue;
          }
          if (decoded.type === 'frame') {
            if (decoded.frame.frameId <= this.lastFrameId) continue;
            this.lastFrameId = decoded.frame.frameId;
            // Every group's stream repeats its config: it passes once, in frame order (an older
            // group read late never brings back its config), and again after another one (a
            // rendition switch back, docs/protocol.md "Renditions").
            if (config && config.config_id !== this.lastConfigId) {
              this.lastConfigId = config.config_id;
              this.router.route(config);
            }
            config = null;
            this.router.frame(decoded.frame);
          } else {
            const m = decoded.message;
            if (m.kind === 'config' && typeof m.config_id === 'number') {
              config = m;
              continue;
            }
            this.router.route(m);
          }
        }
      }
    } catch {
      // Reset by the server (a stale group) or the session ended.
    } finally {
      reader.releaseLock();
    }
  }

  /**
   * A sound packet, from its stream or a datagram: it passes if newer than the last one.
   * @param {import('./protocol.js').AudioPacket} packet
   */
  audio(packet) {
    if (packet.seq <= this.lastAudioSeq) return;
    this.lastAudioSeq = packet.seq;
    this.router.audio(packet);
  }

  /**
   * Sound's packets with `audio=datagram` (docs/protocol.md, "Audio"); anything else is
   * ignored. The browser keeps one incoming datagram by default: read them as they come.
   * @param {WebTransport} session
   */
  async drainDatagrams(session) {
    const reader = session.datagrams.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || session !== this.session) return;
        if (!value || !isAudioMessage(value)) continue;
        let packet;
        try {
          packet = parseBinaryAudio(value);
        } catch (e) {
          this.router.emit({ type: 'error', error: e instanceof Error ? e : new ProtocolError(String(e)) });
          continue;
        }
        this.audio({ ...packet, datagram: true });
      }
    } catch {
      // the session ended
    }
  }

  /**
   * @param {string} channel
   * @param {Uint8Array | object} data
   * @param {SendOptions} [options]
   * @returns {Promise<void>}
   */
  async send(channel, data, options) {
    const bytes = this.encoder.encode(encodeMessage(channel, data));
    const session = this.session;
    if (!session) throw new Error(`channel ${channel}: not connected`);
    const max = session.datagrams.maxDatagramSize ?? 0;
    if (this.datagrams && !options?.ordered && isDatagram(channel, /** @type {{kind?: string}} */ (data))
      && bytes.byteLength <= max) {
      // Latest wins: a datagram is not waited on, and one the browser cannot queue is dropped.
      this.datagrams.write(bytes).catch(() => {});
      return;
    }
    if (!this.control) throw new Error(`channel ${channel}: the control stream is not open yet`);
    const framed = new Uint8Array(4 + bytes.byteLength);
    new DataView(framed.buffer).setUint32(0, bytes.byteLength, true);
    framed.set(bytes, 4);
    await this.control.write(framed);
  }

  stop() {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const session = this.session;
    this.session = null;
    if (session) {
      try {
        session.close({ closeCode: 1000, reason: 'viewer closed' });
      } catch {
        // already closing
      }
    }
  }

  close() {
    this.stop();
    this.router.clear();
  }
}

/** How long a first WebTransport attempt may take before the viewer falls back to WebSocket. */
export const WEBTRANSPORT_TIMEOUT_MS = 1000;

/** The query parameter that carries the access token (docs/security.md). */
export const TOKEN_PARAM = 'rfb_token';

/**
 * The http(s) URL of the server's /rfb.json, from the WebSocket URL (its token travels along).
 * @param {string} wsUrl
 */
export function discoveryUrl(wsUrl) {
  const u = new URL(wsUrl);
  const token = u.searchParams.get(TOKEN_PARAM);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  // Next to the stream's path: /ws -> /rfb.json, /rfb/ws -> /rfb/rfb.json (under a reverse
  // proxy's prefix).
  u.pathname = new URL('rfb.json', u).pathname;
  u.search = '';
  if (token) u.searchParams.set(TOKEN_PARAM, token);
  return u.toString();
}

/**
 * The WebTransport URL for a server's /rfb.json answer, on the host the page used, with the
 * WebSocket URL's token.
 * @param {string} wsUrl
 * @param {WebTransportInfo} info
 */
export function webTransportUrl(wsUrl, info) {
  const ws = new URL(wsUrl);
  const u = new URL(`https://${ws.host}`);
  u.port = String(info.port);
  u.pathname = info.path;
  const token = ws.searchParams.get(TOKEN_PARAM);
  if (token) u.searchParams.set(TOKEN_PARAM, token);
  for (const name of [AUDIO_PARAM, DOWNLINK_PARAM]) {
    const value = ws.searchParams.get(name);
    if (value) u.searchParams.set(name, value);
  }
  return u.toString();
}

/**
 * What the viewer says when the server refuses its link (docs/security.md): a missing or wrong
 * token (a restarted element makes a new one unless its token property is set) or a page origin
 * that is not allowed.
 * @param {number} status the HTTP status of /rfb.json
 */
export function accessRefusedText(status) {
  const why = status === 401
    ? 'this link has no token'
    : 'the token is wrong (rfbsink makes a new one each time it starts, unless its token property is set) or this page\'s origin is not allowed';
  return `Access refused (HTTP ${status}): ${why}. Open the URL rfbsink printed when it started.`;
}

/**
 * WebTransport first, WebSocket when WebTransport is missing, not offered, or fails (`mode`
 * 'auto'); or one of them forced ('wt', 'ws'). It owns reconnection: before every attempt it asks
 * the server again (/rfb.json), since a restarted server has a new certificate and maybe a new
 * port. After two WebTransport failures in a row it stays on WebSocket.
 * @implements {Transport}
 */
export class AutoTransport {
  /**
   * @param {string} wsUrl
   * @param {{envelope: import('./protocol.js').Envelope, mode?: 'auto' | 'ws' | 'wt', fetchImpl?: typeof fetch,
   *   backoff?: Backoff}} options
   */
  constructor(wsUrl, options) {
    this.wsUrl = wsUrl;
    this.envelope = options.envelope;
    this.mode = options.mode ?? 'auto';
    this.fetchImpl = options.fetchImpl ?? globalThis.fetch?.bind(globalThis);
    this.backoff = options.backoff ?? new Backoff();
    this.router = new ChannelRouter((n, d) => this.send(n, d));
    /** @type {WebSocketTransport | WebTransportTransport | null} */
    this.current = null;
    this.name = 'none';
    this.closed = false;
    this.attempt = 0;
    this.wtFailures = 0;
    /** why WebTransport is not in use, when it is not */
    this.fallbackReason = '';
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retryTimer = null;
    /** accessRefusedText() of the last /rfb.json answer, or '' */
    this.refused = '';
  }

  /** @param {string} name @param {ChannelOptions} [_options] */
  openChannel(name, _options) {
    return this.router.open(name);
  }

  /** @param {(event: TransportEvent) => void} cb */
  onEvent(cb) {
    return this.router.onEvent(cb);
  }

  /**
   * @param {string} channel
   * @param {Uint8Array | object} data
   * @param {SendOptions} [options]
   */
  send(channel, data, options) {
    if (!this.current) return Promise.reject(new Error(`channel ${channel}: not connected`));
    return this.current.send(channel, data, options);
  }

  start() {
    if (this.closed || this.current || this.retryTimer) return;
    this.connect();
  }

  async connect() {
    this.attempt++;
    this.router.emit({ type: 'connecting', attempt: this.attempt });
    /** @type {WebTransportInfo | null} */
    let info = null;
    let why = '';
    // /rfb.json answers first, whatever the transport: it says whether this link is refused.
    let offered = null;
    this.refused = '';
    try {
      offered = await this.discover();
    } catch (e) {
      const status = /** @type {{status?: number}} */ (e).status;
      why = `cannot ask the server about WebTransport: ${errorText(e)}`;
      if (status === 401 || status === 403) this.refused = accessRefusedText(status);
    }
    if (this.closed) return;
    if (this.mode === 'ws') {
      why = 'WebSocket requested';
    } else if (this.mode === 'auto' && this.wtFailures >= 2) {
      why = `WebTransport failed ${this.wtFailures} times`;
    } else if (typeof WebTransport === 'undefined') {
      why = 'this browser has no WebTransport';
    } else if (!why) {
      info = offered;
      if (!info) why = 'the server does not offer WebTransport';
    }
    if (this.closed) return;
    if (info) {
      this.useWebTransport(info);
    } else if (this.mode === 'wt') {
      this.router.emit({ type: 'error', error: new Error(`WebTransport was requested (?transport=wt) but ${why}`) });
      this.retry(0, why);
    } else {
      this.useWebSocket(why);
    }
  }

  /** @returns {Promise<WebTransportInfo | null>} */
  async discover() {
    const res = await this.fetchImpl(discoveryUrl(this.wsUrl), { cache: 'no-store' });
    if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}`), { status: res.status });
    const body = await res.json();
    return body?.webtransport ?? null;
  }

  /** @param {string} why */
  useWebSocket(why) {
    if (why !== this.fallbackReason) console.info(`rfb: using WebSocket: ${why}`);
    this.fallbackReason = why;
    this.name = 'websocket';
    const ws = new WebSocketTransport(this.wsUrl, {
      envelope: this.envelope,
      router: this.router,
      onClosed: ({ code, reason, opened }) => this.innerClosed(ws, code, reason, opened),
    });
    this.current = ws;
    ws.start();
  }

  /** @param {WebTransportInfo} info */
  useWebTransport(info) {
    this.name = 'webtransport';
    this.fallbackReason = '';
    const wt = new WebTransportTransport(webTransportUrl(this.wsUrl, info), {
      hashes: info.certificate_hashes,
      router: this.router,
      onClosed: ({ code, reason, opened }) => {
        clearTimeout(timer);
        this.innerClosed(wt, code, reason, opened);
      },
    });
    this.current = wt;
    const timer = setTimeout(() => {
      if (this.current !== wt || wt.everOpened) return;
      wt.stop();
      this.innerClosed(wt, 0, `did not connect within ${WEBTRANSPORT_TIMEOUT_MS} ms`, false);
    }, WEBTRANSPORT_TIMEOUT_MS);
    wt.start();
  }

  /**
   * @param {WebSocketTransport | WebTransportTransport} inner
   * @param {number} code
   * @param {string} reason
   * @param {boolean} opened
   */
  innerClosed(inner, code, reason, opened) {
    if (inner !== this.current || this.closed) return;
    this.current = null;
    if (inner.name === 'webtransport') {
      if (opened) {
        this.wtFailures = 0;
      } else {
        this.wtFailures++;
        if (this.mode === 'auto') {
          // WebTransport did not come up: WebSocket now, without waiting.
          this.useWebSocket(`WebTransport failed: ${reason || `code ${code}`}`);
          return;
        }
      }
    }
    if (opened) this.backoff.reset();
    if (FINAL_CLOSE_CODES.has(code)) {
      this.router.emit({ type: 'closed', code, reason, retryInMs: null });
      return;
    }
    this.retry(code, reason);
  }

  /**
   * @param {number} code
   * @param {string} reason
   */
  retry(code, reason) {
    const retryInMs = this.backoff.next();
    if (this.refused) {
      this.router.emit({ type: 'closed', code, reason: this.refused, retryInMs, refused: true });
    } else {
      this.router.emit({ type: 'closed', code, reason, retryInMs });
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.closed) this.connect();
    }, retryInMs);
  }

  stop() {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.current?.stop();
    this.current = null;
  }

  close() {
    this.stop();
    this.router.clear();
  }
}

/**
 * The transport for a URL: ws:// and wss:// are the server's WebSocket; `mode` picks WebTransport
 * first ('auto', the default), or forces one ('ws', 'wt').
 * @param {string} url
 * @param {{envelope: import('./protocol.js').Envelope, mode?: 'auto' | 'ws' | 'wt'}} options
 * @returns {Transport}
 */
export function createTransport(url, options) {
  const scheme = new URL(url).protocol;
  if (scheme !== 'ws:' && scheme !== 'wss:') {
    throw new Error(`no transport for ${scheme} URLs (${url}); use ws:// or wss://`);
  }
  return new AutoTransport(url, options);
}
