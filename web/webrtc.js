// The viewer's WebRTC transport (?transport=webrtc, docs/protocol.md "WebRTC"): for viewers that
// reach rfbsink only through NAT, a TURN relay, or a network that carries no WebSocket. The page
// offers (a recvonly video transceiver and the `rfb` data channel), POSTs the offer to the
// element's WHEP endpoint and plays the answer's track in a <video>; input, acks-free stats and
// app messages travel on the data channel as on the other transports. On a direct connection the
// WebSocket and WebTransport transports are faster: no jitter buffer between frame and paint.

import { accessRefusedText, TOKEN_PARAM } from './transport.js';
import { reconnectingText, WAITING_TEXT } from './explain.js';

/** The data channel's label (the element ignores any other). */
export const CHANNEL_LABEL = 'rfb';
/** ICE gathering in the browser: host candidates come at once; what is late is left out. */
const GATHERING_TIMEOUT_MS = 2000;
/** First retry after a failure; doubles to RETRY_MAX_MS. */
const RETRY_MS = 1000;
const RETRY_MAX_MS = 8000;

/**
 * The WHEP endpoint next to the page's stream URL (`ws://host/prefix/ws?...` ->
 * `http://host/prefix/whep`), and the token the stream URL carries.
 * @param {string} streamUrl
 * @returns {{whep: string, token: string | null}}
 */
export function whepUrl(streamUrl) {
  const u = new URL(streamUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  const token = u.searchParams.get(TOKEN_PARAM);
  const whep = new URL('whep', u);
  return { whep: whep.href, token };
}

/**
 * @typedef {object} WebRtcCallbacks
 * @property {(state: import('./decode-worker.js').StatusState, text: string) => void} status
 * @property {(width: number, height: number) => void} resize
 * @property {(message: any) => void} app an `app.*` message from the server
 */

export class WebRtcLink {
  /**
   * @param {HTMLVideoElement} video where the stream plays
   * @param {string} streamUrl the viewer's stream URL (its host, path prefix and token are used)
   * @param {WebRtcCallbacks} callbacks
   */
  constructor(video, streamUrl, callbacks) {
    this.video = video;
    this.callbacks = callbacks;
    const { whep, token } = whepUrl(streamUrl);
    this.whep = whep;
    this.token = token;
    /** The server's last stats message. @type {any} */
    this.server = null;
    /** @type {{at: number, decoded: number} | undefined} */
    this.lastSample = undefined;
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {RTCDataChannel | null} */
    this.channel = null;
    /** The session's URL, for DELETE. @type {string | null} */
    this.session = null;
    this.closed = false;
    this.reconnects = 0;
    this.retryMs = RETRY_MS;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retryTimer = null;
    this.clientId = /** @type {number | null} */ (null);
    this.connect();
  }

  /** @returns {Record<string, string>} */
  headers() {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  async connect() {
    if (this.closed) return;
    this.callbacks.status('connecting', 'connecting over WebRTC…');
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    const channel = pc.createDataChannel(CHANNEL_LABEL);
    this.channel = channel;
    channel.onmessage = (event) => this.onMessage(event.data);
    pc.ontrack = (event) => {
      this.video.srcObject = event.streams[0] ?? new MediaStream([event.track]);
      this.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      if (pc.connectionState === 'connected') {
        this.retryMs = RETRY_MS;
        this.callbacks.status(this.video.videoWidth ? 'playing' : 'waiting', WAITING_TEXT);
      } else if (pc.connectionState === 'failed' || pc.connectionState === 'closed') {
        this.retry('the WebRTC connection failed');
      }
    };
    try {
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const res = await fetch(this.whep, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp', ...this.headers() },
        body: pc.localDescription?.sdp ?? '',
      });
      const body = await res.text();
      if (res.status === 401 || res.status === 403) {
        this.callbacks.status('refused', accessRefusedText(res.status));
        this.stopPeer();
        return;
      }
      if (res.status === 400 || res.status === 413 || res.status === 415) {
        // The server will say the same again: no retry, its reason on screen. The server does
        // not know which browser this is; the one thing Firefox users need to know is here.
        const firefox = res.status === 415 && /\bH264\b/.test(body) && /Firefox\//.test(navigator.userAgent)
          ? ' (Firefox receives H.264 over WebRTC only with its OpenH264 plugin)' : '';
        this.callbacks.status('error', `WebRTC refused (HTTP ${res.status}): ${body.trim()}${firefox}`);
        this.stopPeer();
        return;
      }
      if (res.status !== 201) throw new Error(`HTTP ${res.status}: ${body.trim()}`);
      const location = res.headers.get('Location');
      this.session = location ? new URL(location, this.whep).href : null;
      if (pc !== this.pc) return;
      await pc.setRemoteDescription({ type: 'answer', sdp: body });
    } catch (e) {
      if (pc === this.pc) this.retry(/** @type {Error} */ (e).message);
    }
  }

  /** @param {string} why */
  retry(why) {
    if (this.closed || this.retryTimer) return;
    this.stopPeer();
    this.reconnects++;
    const wait = this.retryMs;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
    const until = Date.now() + wait;
    const tick = () => {
      const left = until - Date.now();
      if (left <= 0) {
        this.retryTimer = null;
        this.connect();
        return;
      }
      this.callbacks.status('reconnecting', reconnectingText(left, { why: `(${why})` }));
      this.retryTimer = setTimeout(tick, Math.min(left, 1000));
    };
    tick();
  }

  /** @param {any} data */
  onMessage(data) {
    if (typeof data !== 'string') return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (message === null || typeof message !== 'object' || typeof message.channel !== 'string') return;
    if (message.channel === 'rfb.control' && message.kind === 'hello') {
      this.clientId = typeof message.client_id === 'number' ? message.client_id : null;
    } else if (message.channel === 'rfb.control' && message.kind === 'error') {
      this.callbacks.status('error', String(message.message ?? 'error'));
    } else if (message.channel.startsWith('app.')) {
      this.callbacks.app(message);
    } else if (message.channel === 'rfb.stats') {
      this.server = message;
    }
  }

  /**
   * Sends a JSON message on `channel` over the data channel.
   * @param {string} channel
   * @param {object} message
   */
  async send(channel, message) {
    const dc = this.channel;
    if (!dc || dc.readyState !== 'open') throw new Error(`channel ${channel}: not connected`);
    dc.send(JSON.stringify({ ...message, channel }));
  }

  /** What the overlay and tests read, from the browser's own WebRTC statistics. */
  async stats() {
    const video = this.video;
    /** @type {any} */
    let inbound = null;
    /** @type {any} */
    let codec = null;
    if (this.pc) {
      const report = await this.pc.getStats();
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') inbound = s;
      });
      if (inbound?.codecId) codec = report.get(inbound.codecId);
    }
    const now = performance.now();
    const decoded = inbound?.framesDecoded ?? 0;
    const last = this.lastSample;
    const fps = last && now > last.at ? ((decoded - last.decoded) * 1000) / (now - last.at) : 0;
    if (!last || now - last.at > 900) this.lastSample = { at: now, decoded };
    const dropped = inbound?.framesDropped ?? 0;
    return {
      connected: this.pc?.connectionState === 'connected',
      envelope: 'binary',
      transport: 'webrtc',
      clientId: this.clientId,
      codec: codec?.mimeType ? String(codec.mimeType).replace(/^video\//, '').toLowerCase() : null,
      codecString: codec?.sdpFmtpLine ?? null,
      width: video.videoWidth,
      height: video.videoHeight,
      framesReceived: inbound?.framesReceived ?? 0,
      framesDecoded: decoded,
      framesDropped: dropped,
      decodeErrors: 0,
      protocolErrors: 0,
      keyframeRequests: (inbound?.pliCount ?? 0) + (inbound?.firCount ?? 0),
      fps: Math.round(fps * 10) / 10,
      bitrateBps: 0,
      decodeLatencyMs: inbound?.framesDecoded ? (1000 * (inbound.totalDecodeTime ?? 0)) / inbound.framesDecoded : 0,
      jitterBufferMs: inbound?.jitterBufferEmittedCount ? (1000 * inbound.jitterBufferDelay) / inbound.jitterBufferEmittedCount : 0,
      lastFrameId: null,
      reconnects: this.reconnects,
      refines: 0,
      exact: false,
      paintPath: 'video element (WebRTC)',
      status: this.pc?.connectionState === 'connected' ? 'playing' : 'connecting',
      server: null,
      latencyHistory: [],
      window: null,
    };
  }

  stopPeer() {
    const pc = this.pc;
    this.pc = null;
    this.channel = null;
    if (this.session) {
      // The element frees the peer at once rather than after its timeout.
      fetch(this.session, { method: 'DELETE', headers: this.headers(), keepalive: true }).catch(() => {});
      this.session = null;
    }
    pc?.close();
  }

  close() {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.stopPeer();
    this.video.srcObject = null;
  }
}

/**
 * Resolves once the browser's ICE gathering is complete (no trickle needed), or after
 * GATHERING_TIMEOUT_MS with what it has.
 * @param {RTCPeerConnection} pc
 */
function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, GATHERING_TIMEOUT_MS);
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') {
        clearTimeout(timer);
        resolve(undefined);
      }
    });
  });
}
