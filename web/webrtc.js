// WebRTC as the viewer's third transport (?transport=webrtc, docs/protocol.md "WebRTC"): for
// viewers that reach rfbsink only through NAT, a TURN relay, or a network that carries no
// WebSocket. WebRtcTransport is a Transport like the other two (transport.js): it offers a
// recvonly video transceiver and the `rfb` data channel to the element's WHEP endpoint, and the
// protocol's text messages (control, stats, app, input) travel on the data channel, parsed by
// protocol.js and routed by the same ChannelRouter, with the same backoff. The picture is the
// browser's own: the track plays in a <video>. WebRtcHost runs the same Session (session.js) on
// the page, where RTCPeerConnection lives, and answers the viewer's requests as the decode
// worker does. On a direct connection WebSocket and WebTransport are faster: no jitter buffer
// between frame and paint.

import { DOWNLINK_PARAM, MAIN_CHANNEL, parseTextMessage, ProtocolError } from './protocol.js';
import { accessRefusedText, Backoff, ChannelRouter, discoveryUrl, encodeMessage, TOKEN_PARAM } from './transport.js';
import { Session } from './session.js';

/** The data channel's label (the element ignores any other). */
export const CHANNEL_LABEL = 'rfb';
/** ICE gathering in the browser: host candidates come at once; what is late is left out. */
const GATHERING_TIMEOUT_MS = 2000;

/**
 * The WHEP endpoint next to the page's stream URL (`ws://host/prefix/ws?...` ->
 * `http://host/prefix/whep`), with what the page measured of its link (`downlink`) where the
 * stream URL says it, and the token the stream URL carries (sent as a header, not in the URL).
 * @param {string} streamUrl
 * @returns {{whep: string, token: string | null}}
 */
export function whepUrl(streamUrl) {
  const u = new URL(streamUrl);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  const token = u.searchParams.get(TOKEN_PARAM);
  const whep = new URL('whep', u);
  const downlink = u.searchParams.get(DOWNLINK_PARAM);
  if (downlink) whep.searchParams.set(DOWNLINK_PARAM, downlink);
  return { whep: whep.href, token };
}

/**
 * What a refused offer means for the viewer: `final` when asking again would be refused the same
 * way (the reason is shown and the viewer stops), else a refusal of access (it keeps trying, as
 * the other transports do). The server does not know which browser this is; the one thing
 * Firefox users need to know is added here.
 * @param {number} status the WHEP endpoint's HTTP status
 * @param {string} body its text
 * @param {string} userAgent
 * @returns {{refused: true, reason: string} | {final: true, reason: string} | null} null: try again
 */
export function offerRefusal(status, body, userAgent) {
  if (status === 401 || status === 403) return { refused: true, reason: accessRefusedText(status) };
  if (status === 400 || status === 413 || status === 415) {
    const firefox = status === 415 && /\bH264\b/.test(body) && /Firefox\//.test(userAgent)
      ? ' (Firefox receives H.264 over WebRTC only with its OpenH264 plugin)' : '';
    return { final: true, reason: `WebRTC refused (HTTP ${status}): ${body.trim()}${firefox}` };
  }
  return null;
}

/**
 * One WebRTC peer at a time, offered again after each failure.
 * @implements {Transport}
 */
export class WebRtcTransport {
  /**
   * @param {string} streamUrl the viewer's stream URL (its host, path prefix and token are used)
   * @param {{onTrack: (stream: MediaStream, kind: string) => void, audio?: boolean, backoff?: Backoff}} options
   *   `audio`: offer to receive sound too (the element sends it when it has an audio pad)
   */
  constructor(streamUrl, options) {
    const { whep, token } = whepUrl(streamUrl);
    this.whep = whep;
    this.token = token;
    this.onTrack = options.onTrack;
    this.audio = options.audio ?? false;
    this.discovery = discoveryUrl(streamUrl);
    this.backoff = options.backoff ?? new Backoff();
    this.router = new ChannelRouter((name, data) => this.send(name, data));
    this.name = 'webrtc';
    /** @type {RTCPeerConnection | null} */
    this.pc = null;
    /** @type {RTCDataChannel | null} */
    this.channel = null;
    /** The session's URL, for DELETE. @type {string | null} */
    this.session = null;
    this.closed = false;
    this.attempt = 0;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retryTimer = null;
  }

  /** @param {string} name */
  openChannel(name) {
    return this.router.open(name);
  }

  /** @param {(event: import('./transport.js').TransportEvent) => void} cb */
  onEvent(cb) {
    return this.router.onEvent(cb);
  }

  /** @returns {Record<string, string>} */
  headers() {
    return this.token ? { Authorization: `Bearer ${this.token}` } : {};
  }

  start() {
    if (this.closed || this.pc) return;
    this.attempt++;
    this.router.emit({ type: 'connecting', attempt: this.attempt });
    this.connect();
  }

  async connect() {
    const pc = new RTCPeerConnection({ iceServers: [] });
    this.pc = pc;
    pc.addTransceiver('video', { direction: 'recvonly' });
    // Sound only from an element that has it (/rfb.json says): webrtcbin answers an audio
    // m-line it has nothing for in a way Chromium never connects with (measured: no picture).
    if (this.audio && (await this.elementHasSound())) pc.addTransceiver('audio', { direction: 'recvonly' });
    if (pc !== this.pc) return;
    const channel = pc.createDataChannel(CHANNEL_LABEL);
    this.channel = channel;
    channel.onopen = () => {
      if (pc !== this.pc) return;
      this.backoff.reset();
      this.router.emit({ type: 'open' });
    };
    channel.onmessage = (event) => {
      if (pc === this.pc) this.receive(event.data);
    };
    // The picture and the sound in one stream, whatever streams the answer names: one <video>
    // plays both, in sync (the browser lines them up from their RTCP sender reports).
    const stream = new MediaStream();
    pc.ontrack = (event) => {
      stream.addTrack(event.track);
      this.onTrack(stream, event.track.kind);
    };
    pc.onconnectionstatechange = () => {
      if (pc === this.pc && (pc.connectionState === 'failed' || pc.connectionState === 'closed')) {
        this.ended('the WebRTC connection failed');
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
      if (pc !== this.pc) return;
      const refusal = offerRefusal(res.status, body, navigator.userAgent);
      if (refusal) {
        this.ended(refusal.reason, refusal);
        return;
      }
      if (res.status !== 201) throw new Error(`HTTP ${res.status}: ${body.trim()}`);
      const location = res.headers.get('Location');
      this.session = location ? new URL(location, this.whep).href : null;
      await pc.setRemoteDescription({ type: 'answer', sdp: body });
    } catch (e) {
      if (pc === this.pc) this.ended(e instanceof Error ? e.message : String(e));
    }
  }

  /**
   * The peer is gone: closed, then offered again after the backoff unless `final`.
   * @param {string} reason
   * @param {{refused?: boolean, final?: boolean}} [how]
   */
  ended(reason, how = {}) {
    this.stopPeer();
    if (this.closed) return;
    let retryInMs = null;
    if (!how.final) {
      retryInMs = this.backoff.next();
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.start();
      }, retryInMs);
    }
    this.router.emit({ type: 'closed', code: 0, reason, retryInMs, refused: how.refused ?? false });
  }

  /** @param {unknown} data a data channel message: the protocol's JSON text */
  receive(data) {
    if (typeof data !== 'string') {
      this.router.emit({ type: 'error', error: new ProtocolError('binary message on the data channel') });
      return;
    }
    let message;
    try {
      message = parseTextMessage(data);
    } catch (e) {
      this.router.emit({ type: 'error', error: e instanceof Error ? e : new ProtocolError(String(e)) });
      return;
    }
    if (message.channel === MAIN_CHANNEL) {
      // The picture is the video track's.
      this.router.emit({ type: 'error', error: new ProtocolError('a frame on the data channel') });
      return;
    }
    this.router.route(/** @type {import('./protocol.js').Message} */ (message));
  }

  /**
   * @param {string} channel
   * @param {Uint8Array | object} data
   */
  async send(channel, data) {
    const text = encodeMessage(channel, data);
    const dc = this.channel;
    if (!dc || dc.readyState !== 'open') throw new Error(`channel ${channel}: not connected`);
    dc.send(text);
  }

  /** Whether the element sends sound (its /rfb.json names it); false when that cannot be read. */
  async elementHasSound() {
    try {
      const res = await fetch(this.discovery, { cache: 'no-store' });
      return res.ok && Boolean((await res.json())?.audio);
    } catch {
      return false;
    }
  }

  /** The browser's own figures for the video and sound it receives (inbound-rtp, the codec). */
  async mediaStats() {
    /** @type {any} */
    let inbound = null;
    /** @type {any} */
    let audio = null;
    /** @type {any} */
    let codec = null;
    if (this.pc) {
      const report = await this.pc.getStats();
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && s.kind === 'video') inbound = s;
        if (s.type === 'inbound-rtp' && s.kind === 'audio') audio = s;
      });
      if (inbound?.codecId) codec = report.get(inbound.codecId);
    }
    return { inbound, audio, codec };
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
    this.router.clear();
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

/**
 * The picture side of a WebRTC session: the browser decodes and paints into the <video>; frames,
 * configurations and the gray16 window are not ours to handle.
 * @implements {Media}
 */
class VideoElementMedia {
  configure() {}
  frame() {}
  ended() {}
  window() {}
  reset() {}
  protocolError() {}
}

/** @typedef {import('./transport.js').Transport} Transport */
/** @typedef {import('./session.js').Media} Media */

/**
 * Runs a WebRTC viewer session on the page and speaks the decode worker's messages
 * (decode-worker.js ToWorker and FromWorker), so that the viewer has one way to talk to its
 * session whatever the transport.
 */
export class WebRtcHost {
  /** @param {HTMLVideoElement} video where the stream plays */
  constructor(video) {
    this.video = video;
    /** @type {((event: {data: import('./decode-worker.js').FromWorker}) => void) | null} */
    this.onmessage = null;
    /** @type {WebRtcTransport | null} */
    this.transport = null;
    /** @type {Session | null} */
    this.session = null;
    /** @type {{at: number, decoded: number} | undefined} */
    this.lastSample = undefined;
  }

  /** @param {import('./decode-worker.js').FromWorker} message */
  emit(message) {
    this.onmessage?.({ data: message });
  }

  /** @param {import('./decode-worker.js').ToWorker} message */
  postMessage(message) {
    if (message.type === 'init') {
      this.start(message.url, message.rendition ?? null, message.audio ?? false);
      return;
    }
    if (message.type === 'close') {
      this.session?.close();
      this.video.srcObject = null;
      return;
    }
    // The <video> scales the picture and plays the sound itself.
    if (message.type === 'display' || message.type === 'audio-port' || message.type === 'audio-clock' || message.type === 'frame-taken') return;
    const { id } = message;
    this.answer(message).then(
      (value) => this.emit({ type: 'reply', id, ok: true, value }),
      (e) => this.emit({ type: 'reply', id, ok: false, error: e instanceof Error ? e.message : String(e) }),
    );
  }

  terminate() {}

  /**
   * @param {string} url
   * @param {number | null} rendition the one chosen (ViewerOptions.rendition)
   * @param {boolean} audio receive the sound too, when the element has sound
   */
  start(url, rendition, audio) {
    const video = this.video;
    this.wantsSound = audio;
    const transport = new WebRtcTransport(url, {
      audio,
      onTrack: (stream, kind) => {
        if (video.srcObject !== stream) video.srcObject = stream;
        video.play().catch(() => {});
        // Muted until a click (autoplay rules): the viewer shows "Click for sound".
        if (kind === 'audio') this.emit({ type: 'audio', state: 'available', channels: 0 });
      },
    });
    const session = new Session(transport, new VideoElementMedia(), {
      status: (state, text) => this.emit({ type: 'status', state: state === 'waiting' && video.videoWidth ? 'playing' : state, text }),
      notice: (text) => this.emit({ type: 'notice', text }),
      app: (message) => this.emit({ type: 'app', message }),
    }, { rendition });
    video.addEventListener('resize', () => {
      this.emit({ type: 'resize', width: video.videoWidth, height: video.videoHeight });
      if (video.videoWidth) session.setStatus('playing', '');
    });
    this.transport = transport;
    this.session = session;
    session.start();
  }

  /**
   * @param {Exclude<import('./decode-worker.js').ToWorker, {type: 'init'} | {type: 'close'}>} message
   * @returns {Promise<any>}
   */
  async answer(message) {
    const session = /** @type {Session} */ (this.session);
    switch (message.type) {
      case 'stats':
        return this.stats();
      case 'send':
        return session.send(message.channel, message.message, message.ordered);
      case 'rendition':
        return session.chooseRendition(message.rendition);
      case 'sample':
        return this.sample(message.points);
      // The lossless reads and the gray16 window have nothing to work on.
      case 'window':
      case 'raw':
      case 'probe':
        return null;
      case 'audio-tap':
        throw new Error('over WebRTC the <video> plays the sound: there is no worklet to record');
    }
  }

  /** The viewer's stats (decode-worker.js ViewerStats), from the browser's WebRTC statistics. */
  async stats() {
    const session = /** @type {Session} */ (this.session);
    const { inbound, audio, codec } = await /** @type {WebRtcTransport} */ (this.transport).mediaStats();
    const now = performance.now();
    const decoded = inbound?.framesDecoded ?? 0;
    const last = this.lastSample;
    const fps = last && now > last.at ? ((decoded - last.decoded) * 1000) / (now - last.at) : 0;
    if (!last || now - last.at > 900) this.lastSample = { at: now, decoded };
    const common = session.stats();
    return {
      ...common,
      envelope: 'binary',
      codec: codec?.mimeType ? String(codec.mimeType).replace(/^video\//, '').toLowerCase() : null,
      codecString: codec?.sdpFmtpLine ?? null,
      width: this.video.videoWidth,
      height: this.video.videoHeight,
      framesReceived: inbound?.framesReceived ?? 0,
      framesDecoded: decoded,
      framesDropped: inbound?.framesDropped ?? 0,
      decodeErrors: 0,
      keyframeRequests: common.keyframeRequests + (inbound?.pliCount ?? 0) + (inbound?.firCount ?? 0),
      fps: Math.round(fps * 10) / 10,
      bitrateBps: 0,
      decodeLatencyMs: inbound?.framesDecoded ? (1000 * (inbound.totalDecodeTime ?? 0)) / inbound.framesDecoded : 0,
      jitterBufferMs: inbound?.jitterBufferEmittedCount ? (1000 * inbound.jitterBufferDelay) / inbound.jitterBufferEmittedCount : 0,
      lastFrameId: null,
      refines: 0,
      exact: false,
      paintPath: 'video element (WebRTC)',
      window: null,
      audio: this.audioStats(audio),
    };
  }

  /**
   * The sound's figures from the browser's inbound-rtp (the <video> plays it; the browser keeps
   * it in step with the picture itself).
   * @param {any} a
   * @returns {import('./sound.js').AudioStats}
   */
  audioStats(a) {
    /** @type {import('./sound.js').AudioStats['state']} */
    let state = 'none';
    if (!this.wantsSound) state = 'off';
    else if (a) state = this.video.muted ? 'waiting-for-click' : 'playing';
    const emitted = a?.jitterBufferEmittedCount ?? 0;
    return {
      state,
      channels: 0,
      packetsReceived: a?.packetsReceived ?? 0,
      packetsLost: a?.packetsLost ?? 0,
      datagrams: 0,
      lateP99Ms: null,
      framesDecoded: a?.packetsReceived ?? 0,
      decodeErrors: 0,
      underruns: a?.concealmentEvents ?? 0,
      depthMs: emitted ? (1000 * a.jitterBufferDelay) / emitted : null,
      targetMs: emitted && a.jitterBufferTargetDelay !== undefined ? (1000 * a.jitterBufferTargetDelay) / emitted : null,
      skippedMs: 0,
      latencyMs: emitted ? (1000 * a.jitterBufferDelay) / emitted : null,
      outputLatencyMs: null,
      avOffsetMs: null,
      startMs: null,
      videoHoldMs: null,
    };
  }

  /**
   * RGBA of the video's current picture at stream pixels.
   * @param {[number, number][]} points
   */
  sample(points) {
    const { videoWidth: w, videoHeight: h } = this.video;
    if (!w || !h) return points.map(() => [0, 0, 0, 0]);
    const canvas = new OffscreenCanvas(w, h);
    const ctx = /** @type {OffscreenCanvasRenderingContext2D} */ (canvas.getContext('2d', { willReadFrequently: true }));
    ctx.drawImage(this.video, 0, 0);
    return points.map(([x, y]) => {
      if (!(x >= 0 && y >= 0 && x < w && y < h)) return [0, 0, 0, 0];
      return Array.from(ctx.getImageData(Math.floor(x), Math.floor(y), 1, 1).data);
    });
  }
}
