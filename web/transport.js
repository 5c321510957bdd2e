// Logical channels over one connection (seed 004, section 2). The rest of the viewer talks to a
// Transport; WebSocketTransport is the first backend, a WebTransport one can follow without
// changing its users. No DOM: runs in the decode worker.

import {
  CONTROL_CHANNEL,
  ENVELOPES,
  MAIN_CHANNEL,
  MAX_CLIENT_MESSAGE_BYTES,
  MessageDecoder,
  ProtocolError,
} from './protocol.js';

/**
 * @typedef {object} ChannelOptions
 * @property {boolean} [reliable] false: may be dropped (a datagram where the transport has them)
 */

/**
 * A named logical channel. `rfb.main` delivers {@link import('./protocol.js').Frame}s, every other
 * channel JSON objects. A name ending in `.*` (like `app.*`) receives every channel with that prefix.
 * @typedef {object} Channel
 * @property {string} name
 * @property {(data: Uint8Array | object) => Promise<void>} send rejects when it cannot be sent
 * @property {(cb: (data: any) => void) => () => void} onMessage returns the unsubscribe function
 * @property {() => void} close stops delivering to this channel's listeners
 */

/**
 * @typedef {{type: 'connecting', attempt: number}
 *   | {type: 'open'}
 *   | {type: 'closed', code: number, reason: string, retryInMs: number | null}
 *   | {type: 'error', error: Error}} TransportEvent
 * `retryInMs` null: the transport gives up (closed by its owner, or a close code that would repeat).
 * `error`: a message that broke the protocol; the connection carries on.
 */

/**
 * @typedef {object} Transport
 * @property {(name: string, options?: ChannelOptions) => Channel} openChannel
 * @property {(cb: (event: TransportEvent) => void) => () => void} onEvent
 * @property {() => void} start connects, and reconnects after each close
 * @property {() => void} close
 * @property {(kind: string, data: Uint8Array) => void} [sendDatagram]
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

/** Close codes after which reconnecting would be refused the same way (docs/protocol.md). */
const FINAL_CLOSE_CODES = new Set([1008 /* unknown envelope */]);

class ChannelImpl {
  /**
   * @param {string} name
   * @param {(name: string, data: Uint8Array | object) => Promise<void>} sender
   * @param {(channel: ChannelImpl) => void} onClose
   */
  constructor(name, sender, onClose) {
    this.name = name;
    this.sender = sender;
    this.onClose = onClose;
    /** @type {Set<(data: any) => void>} */
    this.listeners = new Set();
  }

  /** @param {Uint8Array | object} data */
  send(data) {
    return this.sender(this.name, data);
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
 * One WebSocket; JSON text messages carry their `channel`, frames are `rfb.main` in the
 * connection's envelope (docs/protocol.md).
 * @implements {Transport}
 */
export class WebSocketTransport {
  /**
   * @param {string} url ws:// or wss://, with `?envelope=`
   * @param {{envelope: import('./protocol.js').Envelope, backoff?: Backoff, WebSocketImpl?: typeof WebSocket}} options
   */
  constructor(url, options) {
    this.url = url;
    this.envelope = options.envelope;
    this.backoff = options.backoff ?? new Backoff();
    this.WebSocketImpl = options.WebSocketImpl ?? globalThis.WebSocket;
    /** @type {Map<string, ChannelImpl>} */
    this.channels = new Map();
    /** @type {Set<(event: TransportEvent) => void>} */
    this.listeners = new Set();
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
    let channel = this.channels.get(name);
    if (!channel) {
      channel = new ChannelImpl(name, (n, d) => this.send(n, d), (c) => this.channels.delete(c.name));
      this.channels.set(name, channel);
    }
    return channel;
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

  start() {
    if (this.closed || this.socket) return;
    this.attempt++;
    this.emit({ type: 'connecting', attempt: this.attempt });
    const socket = new this.WebSocketImpl(this.url);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.decoder = new MessageDecoder(this.envelope);
    socket.onopen = () => this.emit({ type: 'open' });
    socket.onmessage = (event) => {
      if (socket === this.socket) this.receive(event.data);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.decoder = null;
      let retryInMs = null;
      if (!this.closed && !FINAL_CLOSE_CODES.has(event.code)) {
        retryInMs = this.backoff.next();
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.start();
        }, retryInMs);
      }
      this.emit({ type: 'closed', code: event.code, reason: event.reason, retryInMs });
    };
  }

  /** @param {string | ArrayBuffer} data */
  receive(data) {
    // Connected for real (not refused right after the upgrade): start the backoff over.
    this.backoff.reset();
    const result = /** @type {MessageDecoder} */ (this.decoder).decode(data);
    switch (result.type) {
      case 'frame':
        this.channels.get(MAIN_CHANNEL)?.deliver(result.frame);
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
        this.route(message);
        break;
      }
      case 'error':
        this.emit({ type: 'error', error: result.error });
        break;
    }
  }

  /** @param {import('./protocol.js').Message} message */
  route(message) {
    const exact = this.channels.get(message.channel);
    if (exact) {
      exact.deliver(message);
      return;
    }
    for (const [name, channel] of this.channels) {
      if (name.endsWith('.*') && message.channel.startsWith(name.slice(0, -1))) channel.deliver(message);
    }
  }

  /**
   * @param {string} channel
   * @param {Uint8Array | object} data
   * @returns {Promise<void>}
   */
  async send(channel, data) {
    if (data instanceof Uint8Array || data instanceof ArrayBuffer) {
      // The server closes a client that sends binary messages (1003).
      throw new ProtocolError(`channel ${channel}: the WebSocket transport sends JSON objects only`);
    }
    if (channel.endsWith('.*')) throw new ProtocolError(`cannot send on the wildcard channel ${channel}`);
    const text = JSON.stringify({ ...data, channel });
    if (text.length * 3 > MAX_CLIENT_MESSAGE_BYTES && new TextEncoder().encode(text).byteLength > MAX_CLIENT_MESSAGE_BYTES) {
      throw new ProtocolError(`channel ${channel}: message is over ${MAX_CLIENT_MESSAGE_BYTES} bytes`);
    }
    const socket = this.socket;
    if (!socket || socket.readyState !== this.WebSocketImpl.OPEN) {
      throw new Error(`channel ${channel}: not connected`);
    }
    socket.send(text);
  }

  close() {
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
    for (const channel of this.channels.values()) channel.listeners.clear();
    this.channels.clear();
  }
}

/**
 * The transport for a URL: ws:// and wss:// are WebSocket.
 * @param {string} url
 * @param {{envelope: import('./protocol.js').Envelope}} options
 * @returns {Transport}
 */
export function createTransport(url, options) {
  const scheme = new URL(url).protocol;
  if (scheme === 'ws:' || scheme === 'wss:') return new WebSocketTransport(url, options);
  throw new Error(`no transport for ${scheme} URLs (${url}); use ws:// or wss://`);
}
