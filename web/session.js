// One viewer session, whatever carries it (docs/protocol.md, "Channels"): the connection's life
// (connecting, the countdown to the next try, refused, ended), the control messages (hello,
// config, eos, window, error), the server's stats and the app messages, keyframe requests and
// what the viewer sends. The picture side is a Media: the decode worker's WebCodecs and canvas
// over WebSocket and WebTransport, a <video> over WebRTC. No DOM: runs in the worker and on the
// page.

import { AUDIO_CHANNEL, CONTROL_CHANNEL, ENVELOPES, keyframeRequest, MAIN_CHANNEL, parseRenditions, renditionChoice, STATS_CHANNEL } from './protocol.js';
import { reconnectingText, WAITING_TEXT } from './explain.js';
import { History, parseServerStats } from './stats.js';

/** @typedef {'connecting' | 'waiting' | 'playing' | 'ended' | 'reconnecting' | 'refused' | 'error'} StatusState */

/**
 * The picture side of a session.
 * @typedef {object} Media
 * @property {(message: import('./protocol.js').Message) => void} configure a `config` message
 * @property {(frame: import('./protocol.js').Frame) => void} frame an `rfb.main` frame
 * @property {() => void} ended the stream ended (`eos`)
 * @property {(win: {low: number, high: number} | null) => void} window the pipeline's gray16
 *   window; null: automatic
 * @property {() => void} reset the connection is gone: forget the stream, keep the picture
 * @property {() => void} protocolError a message broke the protocol (it may have been a frame)
 */

/**
 * The sound side of a session (sound.js): `audio-config` and `rfb.audio` packets.
 * @typedef {object} SoundSink
 * @property {(message: import('./protocol.js').Message) => void} configure
 * @property {(packet: import('./protocol.js').AudioPacket) => void} packet
 * @property {() => void} reset the connection is gone
 */

/**
 * What a session tells its owner.
 * @typedef {object} SessionOutput
 * @property {(state: StatusState, text: string) => void} status
 * @property {(text: string) => void} notice a server `error` to show for a while
 * @property {(message: import('./protocol.js').Message) => void} app an `app.*` message
 */

/** The server sends its stats every second: older than this, they no longer describe the stream. */
const SERVER_STATS_STALE_MS = 3000;
/** How far back the overlay's latency graph goes. */
const LATENCY_HISTORY_MS = 60_000;

export class Session {
  /**
   * @param {import('./transport.js').Transport} transport
   * @param {Media} media
   * @param {SessionOutput} output
   * @param {{envelope?: import('./protocol.js').Envelope, rendition?: number | null, sound?: SoundSink | null}} [options]
   *   `rendition`: the one this viewer chooses (sent on every connection), null: the server's
   *   choice
   */
  constructor(transport, media, output, options = {}) {
    this.transport = transport;
    this.media = media;
    this.output = output;
    /** @type {import('./protocol.js').Envelope} */
    this.envelope = options.envelope ?? 'binary';
    /** @type {StatusState} */
    this.status = 'connecting';
    this.connected = false;
    /** Connections opened so far. */
    this.opens = 0;
    /** @type {number | null} */
    this.clientId = null;
    this.counters = { protocolErrors: 0, keyframeRequests: 0, reconnects: 0 };
    /** @type {import('./stats.js').ServerStats | null} */
    this.serverStats = null;
    this.serverStatsAt = 0;
    /** @type {History<{p50Us: number, p95Us: number}>} */
    this.latencyHistory = new History(LATENCY_HISTORY_MS, 128);
    /** @type {ReturnType<typeof setInterval> | null} */
    this.countdown = null;
    /** @type {number | null} */
    this.chosenRendition = options.rendition ?? null;
    /** The server's last `renditions` message. @type {{current: number, renditions: import('./protocol.js').Rendition[]} | null} */
    this.renditions = null;
    /** @type {SoundSink | null} */
    this.sound = options.sound ?? null;
  }

  start() {
    const t = this.transport;
    t.onEvent((event) => this.onTransportEvent(event));
    t.openChannel(MAIN_CHANNEL).onMessage((frame) => this.media.frame(frame));
    if (this.sound) {
      const sound = this.sound;
      t.openChannel(AUDIO_CHANNEL).onMessage((packet) => sound.packet(packet));
    }
    t.openChannel(CONTROL_CHANNEL).onMessage((message) => this.onControl(message));
    t.openChannel(STATS_CHANNEL).onMessage((message) => this.onServerStats(message));
    t.openChannel('app.*').onMessage((message) => this.output.app(message));
    t.start();
  }

  close() {
    this.stopCountdown();
    this.transport.close();
  }

  /**
   * Says the stream's state; 'playing' again is not repeated (it comes with every picture).
   * @param {StatusState} state
   * @param {string} text
   */
  setStatus(state, text) {
    if (state === this.status && state === 'playing') return;
    this.status = state;
    this.output.status(state, text);
  }

  /**
   * @param {string} channel
   * @param {object} message
   * @param {boolean} [ordered] in order with the reliable messages (see transport.js SendOptions)
   */
  send(channel, message, ordered = false) {
    return this.transport.openChannel(channel).send(message, { ordered });
  }

  /**
   * Chooses this viewer's rendition (null: the server's choice, by its link); kept for the next
   * connections too.
   * @param {number | null} id
   */
  chooseRendition(id) {
    this.chosenRendition = id;
    return this.send(CONTROL_CHANNEL, renditionChoice(id), true);
  }

  /** @param {string} reason why the picture needs a keyframe (docs/protocol.md) */
  requestKeyframe(reason) {
    this.counters.keyframeRequests++;
    this.send(CONTROL_CHANNEL, keyframeRequest(reason)).catch(() => {
      // Not connected: the next connection starts with a keyframe anyway.
    });
  }

  /** @param {import('./transport.js').TransportEvent} event */
  onTransportEvent(event) {
    switch (event.type) {
      case 'connecting':
        if (this.opens === 0) this.setStatus('connecting', 'connecting…');
        break;
      case 'open':
        this.stopCountdown();
        this.connected = true;
        this.opens++;
        if (this.opens > 1) this.counters.reconnects++;
        break;
      case 'closed': {
        this.connected = false;
        this.media.reset();
        this.sound?.reset();
        const why = event.reason ? ` (${event.code} ${event.reason})` : '';
        this.stopCountdown();
        if (event.refused) this.setStatus('refused', event.reason);
        else if (event.retryInMs === null) this.setStatus('error', event.code ? `disconnected${why}` : event.reason || 'disconnected');
        else this.startCountdown(this.opens === 0 ? 'connecting' : 'reconnecting', event.retryInMs, why);
        break;
      }
      case 'error':
        this.counters.protocolErrors++;
        console.warn(`rfb: ${event.error.message}`);
        this.media.protocolError();
        break;
    }
  }

  /** @param {import('./protocol.js').Message} message */
  onControl(message) {
    switch (message.kind) {
      case 'hello':
        if (typeof message.client_id === 'number') this.clientId = message.client_id;
        if (ENVELOPES.includes(message.envelope)) this.envelope = message.envelope;
        if (this.status !== 'playing') this.setStatus('waiting', WAITING_TEXT);
        this.renditions = null;
        if (this.chosenRendition !== null) {
          this.send(CONTROL_CHANNEL, renditionChoice(this.chosenRendition), true).catch(() => {});
        }
        break;
      case 'renditions':
        this.renditions = parseRenditions(message);
        break;
      case 'config':
        this.media.configure(message);
        break;
      case 'audio-config':
        this.sound?.configure(message);
        break;
      case 'eos':
        this.media.ended();
        this.setStatus('ended', 'stream ended');
        break;
      case 'window':
        // The pipeline's window (rfbsink's gray-window property): null bounds mean automatic.
        if (typeof message.low === 'number' && typeof message.high === 'number' && message.high > message.low) {
          this.media.window({ low: message.low, high: message.high });
        } else {
          this.media.window(null);
        }
        break;
      case 'error':
        console.warn(`rfb: server error: ${message.message}`);
        this.output.notice(String(message.message ?? 'server error'));
        break;
      default:
      // Unknown kinds are for newer clients (docs/protocol.md).
    }
  }

  /** @param {import('./protocol.js').Message} message */
  onServerStats(message) {
    const s = parseServerStats(message);
    if (!s) return; // other kinds are for newer clients
    const now = performance.now();
    this.serverStats = s;
    this.serverStatsAt = now;
    if (s.latency_p50_us !== null && s.latency_p95_us !== null) {
      this.latencyHistory.push(now, { p50Us: s.latency_p50_us, p95Us: s.latency_p95_us });
    }
  }

  /**
   * Says that the server cannot be reached and when the next try is, every second until then.
   * @param {'connecting' | 'reconnecting'} state
   * @param {number} retryInMs
   * @param {string} why
   */
  startCountdown(state, retryInMs, why) {
    const at = performance.now() + retryInMs;
    const show = () => this.setStatus(state, reconnectingText(at - performance.now(), { why: why.trim(), first: state === 'connecting' }));
    show();
    this.countdown = setInterval(() => {
      show();
      if (performance.now() >= at) this.stopCountdown();
    }, 1000);
  }

  stopCountdown() {
    if (this.countdown !== null) clearInterval(this.countdown);
    this.countdown = null;
  }

  /** The session's part of the viewer's stats (the media adds the picture's). */
  stats() {
    const now = performance.now();
    const server = this.serverStats && now - this.serverStatsAt <= SERVER_STATS_STALE_MS ? this.serverStats : null;
    return {
      connected: this.connected,
      envelope: this.envelope,
      transport: this.transport.name,
      clientId: this.clientId,
      ...this.counters,
      status: this.status,
      server,
      latencyHistory: this.latencyHistory.entries(now).map(({ ageMs, value }) => ({ ageMs, ...value })),
      renditions: this.renditions && { ...this.renditions, chosen: this.chosenRendition },
    };
  }
}
