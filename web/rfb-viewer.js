// The rfbsink viewer: mount it into an element and it shows the stream. It owns the DOM (canvas,
// status line, overlay); the session runs in decode-worker.js (connection, decoding, painting),
// or for WebRTC in a WebRtcHost on the page (webrtc.js), which answers the same messages.
//
//   import { mountViewer } from 'http://127.0.0.1:8080/rfb-viewer.js';
//   const viewer = mountViewer(document.getElementById('view'), { url: 'ws://127.0.0.1:8080/ws' });

import { InputCapture, mapToStream } from './input.js';
import { Overlay } from './overlay.js';
import { AudioOutput } from './audio-output.js';
import { EVENTS_CHANNEL, pageDownlinkKbps, withAudio, withDownlink, withEnvelope } from './protocol.js';
import { WebRtcHost } from './webrtc.js';
import { FrameVideo, videoPaintAvailable } from './frame-video.js';

/** @typedef {import('./decode-worker.js').ViewerStats} ViewerStats */
/** @typedef {import('./decode-worker.js').FromWorker} FromWorker */
/** @typedef {import('./decode-worker.js').ToWorker} ToWorker */

/**
 * @typedef {object} ViewerOptions
 * @property {string} [url] ws:// or wss:// URL of the stream; default: /ws on the server this
 *   module came from
 * @property {'binary' | 'json'} [envelope] used when `url` has no `?envelope=`; default binary
 * @property {'auto' | 'ws' | 'wt' | 'webrtc'} [transport] 'auto' (default): WebTransport when the
 *   server offers it and the browser has it, else WebSocket; 'ws' or 'wt' forces one; 'webrtc':
 *   WHEP and a <video> (webrtc.js), for viewers behind NAT
 * @property {boolean} [overlay] show the stats overlay at start
 * @property {boolean} [status] show the status line (connecting…, stream ended); default true
 * @property {boolean} [input] send pointer, wheel, keyboard, touch and the view's size to the
 *   server (input.js); default true
 * @property {boolean} [viewOnly] capture no input (wins over `input`)
 * @property {{url: string, broadcast: string} | null} [relay] watch through a Media over QUIC relay
 *   that the element publishes to (its relay-url and relay-broadcast; docs/protocol.md "Relays"):
 *   view-only, `url` and `transport` are not used
 * @property {number | null} [rendition] the rendition to show when the server has several
 *   (docs/protocol.md, "Renditions"); default null: the server moves the viewer to what its link
 *   carries
 * @property {boolean | 'datagram'} [audio] play the stream's sound (docs/protocol.md, "Audio");
 *   default true. Browsers play sound only after a click or key on the page: the viewer shows
 *   "Click for sound" until then. false: the server sends none. 'datagram': over WebTransport,
 *   its packets come as datagrams (a lost one is skipped, never waited for)
 * @property {boolean} [avSync] while sound plays, hold each picture until its sound is heard
 *   (lip sync, at the cost of the sound's extra latency on the picture); default true
 * @property {'auto' | 'canvas' | 'video'} [paint] how decoded video reaches the screen: 'video'
 *   (and 'auto', the default) transfers each frame to a <video> where the browser has a
 *   MediaStreamTrackGenerator (Chromium; about half the browser's CPU a frame), else falls back
 *   to the canvas; 'canvas' draws it on the worker's canvas. Lossless pictures, images and refine
 *   stills always use the canvas
 * @property {(message: import('./protocol.js').Message) => void} [onMessage] same as calling
 *   onMessage() at once, but sees the messages that come right after connecting too
 */

const OVERLAY_REFRESH_MS = 500;
/** Alt+drag on a gray16 stream: window width and level change by this many values per CSS pixel, times the range shown. */
const WINDOW_DRAG_GAIN = 1 / 256;
const NOTICE_MS = 8000;

/** The stream's WebSocket URL on the server that served this module. */
export function defaultUrl() {
  const url = new URL('ws', import.meta.url);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  return url.href;
}

/**
 * Starts the decode worker. A module worker must be same-origin with the page, so when this module
 * was imported from another origin (Tauri, Electron, Jupyter) the worker is a same-origin blob
 * that imports the real one (which needs CORS: the server sends Access-Control-Allow-Origin: *).
 * @returns {Worker}
 */
function startWorker() {
  const workerUrl = new URL('./decode-worker.js', import.meta.url);
  if (workerUrl.origin === location.origin) return new Worker(workerUrl, { type: 'module', name: 'rfb-decode' });
  const source = `import ${JSON.stringify(workerUrl.href)};\n`;
  const blobUrl = URL.createObjectURL(new Blob([source], { type: 'text/javascript' }));
  const worker = new Worker(blobUrl, { type: 'module', name: 'rfb-decode' });
  // The worker has fetched its script once it runs; revoking later would leak nothing but a URL.
  setTimeout(() => URL.revokeObjectURL(blobUrl), 10000);
  return worker;
}

export class RfbViewer {
  /**
   * @param {HTMLElement} container the viewer fills it; give it a size
   * @param {ViewerOptions} [options]
   */
  constructor(container, options = {}) {
    // Through a relay too: the broadcast carries the sound on its own track (relay.js).
    const withSound = options.audio !== false;
    const chosen = withEnvelope(options.url ?? defaultUrl(), options.envelope ?? 'binary');
    const sounding = withSound && !options.relay
      ? withAudio(chosen.url, options.audio === 'datagram' ? 'datagram' : 'stream')
      : chosen.url;
    // With renditions, the server (or, through a relay, relay.js) starts it on the one its link
    // fits (docs/protocol.md).
    const downlinkKbps = pageDownlinkKbps(performance, new URL(import.meta.url).origin);
    const url = options.relay ? sounding : withDownlink(sounding, downlinkKbps);
    const relay = options.relay ? { ...options.relay, downlinkKbps } : null;
    const envelope = chosen.envelope;
    this.url = url;
    this.envelope = envelope;
    this.container = container;
    /** The stream's size in pixels once the first picture is painted. */
    this.streamSize = { width: 0, height: 0 };
    this.closed = false;

    const doc = container.ownerDocument;
    this.root = doc.createElement('div');
    this.root.className = 'rfb-viewer';
    Object.assign(this.root.style, {
      position: 'relative',
      width: '100%',
      height: '100%',
      overflow: 'hidden',
      background: '#000',
    });
    this.canvas = doc.createElement('canvas');
    this.canvas.className = 'rfb-canvas';
    // The canvas's pixels are the stream's pixels; CSS scales it to fit, keeping the aspect ratio.
    Object.assign(this.canvas.style, {
      display: 'block',
      width: '100%',
      height: '100%',
      objectFit: 'contain',
    });
    this.statusLine = doc.createElement('div');
    this.statusLine.className = 'rfb-status';
    Object.assign(this.statusLine.style, {
      position: 'absolute',
      left: '0',
      right: '0',
      bottom: '12px',
      textAlign: 'center',
      font: '13px/1.4 system-ui, sans-serif',
      color: '#bbb',
      textShadow: '0 0 3px #000',
      pointerEvents: 'none',
      zIndex: '1',
    });
    this.showStatus = options.status ?? true;
    this.statusText = 'connecting…';
    /** @type {import('./decode-worker.js').StatusState} */
    this.statusState = 'connecting';
    this.noticeText = '';
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.noticeTimer = null;
    this.webrtc = options.transport === 'webrtc';
    /** The WebRTC mode's picture (the browser's own decoder and jitter buffer). */
    this.video = doc.createElement('video');
    if (this.webrtc) {
      this.video.className = 'rfb-video';
      this.video.muted = true;
      this.video.autoplay = true;
      this.video.playsInline = true;
      Object.assign(this.video.style, { display: 'block', width: '100%', height: '100%', objectFit: 'contain' });
      this.root.append(this.video, this.statusLine);
    } else {
      this.root.append(this.canvas, this.statusLine);
    }
    const paint = options.paint ?? 'auto';
    /** The `video` paint path's <video> over the canvas, or null. @type {FrameVideo | null} */
    this.frameVideo = !this.webrtc && paint !== 'canvas' && videoPaintAvailable() ? new FrameVideo(doc) : null;
    if (this.frameVideo) this.canvas.after(this.frameVideo.element);
    container.append(this.root);
    /** The element input is captured on and mapped from. */
    this.surface = this.webrtc ? this.video : this.canvas;

    /** Input capture on the canvas, or null when view-only. @type {InputCapture | null} */
    this.input = null;
    if ((options.input ?? true) && !options.viewOnly && !options.relay) {
      this.input = new InputCapture(this.surface, {
        send: (message, ordered) => this.request({ type: 'send', channel: EVENTS_CHANNEL, message, ordered }),
        streamSize: () => this.streamSize,
      });
    }

    /** @type {Set<(message: import('./protocol.js').Message) => void>} */
    this.messageListeners = new Set();
    if (options.onMessage) this.messageListeners.add(options.onMessage);
    /** @type {Map<number, {resolve: (value: any) => void, reject: (error: Error) => void}>} */
    this.requests = new Map();
    this.nextRequestId = 1;

    /**
     * Where the session runs: the decode worker, or for WebRTC a host on the page that answers
     * the same messages.
     * @type {Worker | WebRtcHost}
     */
    this.worker = this.webrtc ? new WebRtcHost(this.video) : startWorker();
    this.worker.onmessage = (/** @type {{data: FromWorker}} */ event) => this.fromWorker(event.data);
    if (this.worker instanceof Worker) {
      this.worker.onerror = (event) => {
        const why = event.message || 'could not load decode-worker.js';
        console.error(`rfb: worker failed: ${why}`);
        this.setStatus('error', `viewer failed: ${why}`);
      };
      const offscreen = this.canvas.transferControlToOffscreen();
      const transport = /** @type {'auto' | 'ws' | 'wt'} */ (options.transport ?? 'auto');
      this.post({ type: 'init', canvas: offscreen, url, envelope, transport, rendition: options.rendition ?? null, relay, audio: withSound, avSync: options.avSync ?? true, paint: this.frameVideo ? 'video' : 'canvas' }, [offscreen]);
      // The canvas's box in device pixels: a lossless picture larger than it is painted at the
      // size shown (lossless.js).
      this.displayObserver = new ResizeObserver((entries) => {
        const entry = entries[entries.length - 1];
        const box = entry?.devicePixelContentBoxSize?.[0];
        const dpr = globalThis.devicePixelRatio || 1;
        const size = box
          ? { width: Math.round(box.inlineSize), height: Math.round(box.blockSize) }
          : { width: Math.round((entry?.contentRect.width ?? 0) * dpr), height: Math.round((entry?.contentRect.height ?? 0) * dpr) };
        this.post({ type: 'display', ...size });
      });
      try {
        this.displayObserver.observe(this.canvas, { box: 'device-pixel-content-box' });
      } catch {
        this.displayObserver.observe(this.canvas); // no device-pixel-content-box (Safari): contentRect x DPR
      }
    } else {
      this.post({ type: 'init', url, envelope, rendition: options.rendition ?? null, audio: withSound });
    }

    /** The sound's page side, when the viewer plays sound. @type {AudioOutput | null} */
    this.audio = withSound
      ? new AudioOutput(this.root, {
        post: (m, transfer) => this.post(m, transfer),
        notice: (text) => this.notice(text),
        media: this.webrtc ? this.video : undefined,
      })
      : null;

    /** @type {ReturnType<typeof setInterval> | null} */
    this.overlayTimer = null;
    this.overlay = new Overlay(this.root, {
      visible: options.overlay ?? false,
      onToggle: (visible) => this.overlayToggled(visible),
    });
    this.renderStatus();

    /** Whether the stream is raw gray16 (window/level applies), from the worker's resize. */
    this.gray16 = false;
    /** The stream pixel under the pointer, for the overlay's raw value. @type {{x: number, y: number} | null} */
    this.pointer = null;
    this.windowDrag = /** @type {{x: number, y: number, low: number, high: number} | null} */ (null);
    this.listenWindowControls();
  }

  /**
   * Gray16 window/level by hand, before input capture sees the events (capture phase on the
   * root): Alt+drag (right/left: wider/narrower window, down/up: higher/lower level), Alt+A:
   * automatic again. Without Alt, or on other streams, events go to the stream as input.
   */
  listenWindowControls() {
    const opts = { capture: true };
    this.root.addEventListener('pointermove', (e) => {
      const rect = this.surface.getBoundingClientRect();
      const p = mapToStream(e.clientX, e.clientY, rect, this.streamSize.width, this.streamSize.height);
      this.pointer = p.inside ? { x: p.x, y: p.y } : null;
      const drag = this.windowDrag;
      if (!drag) return;
      e.stopPropagation();
      const range = Math.max(1, drag.high - drag.low);
      const width = Math.max(1, range * (1 + (e.clientX - drag.x) * WINDOW_DRAG_GAIN * 4));
      const centre = (drag.low + drag.high) / 2 + (e.clientY - drag.y) * range * WINDOW_DRAG_GAIN;
      this.setWindow(Math.round(centre - width / 2), Math.round(centre + width / 2)).catch(() => {});
    }, opts);
    this.root.addEventListener('pointerdown', (e) => {
      if (!e.altKey || !this.gray16) return;
      e.stopPropagation();
      e.preventDefault();
      this.getWindow().then((w) => {
        if (w) this.windowDrag = { x: e.clientX, y: e.clientY, low: w.low, high: w.high };
      }, () => {});
    }, opts);
    const endDrag = (/** @type {PointerEvent} */ e) => {
      if (!this.windowDrag) return;
      e.stopPropagation();
      this.windowDrag = null;
    };
    this.root.addEventListener('pointerup', endDrag, opts);
    this.root.addEventListener('pointercancel', endDrag, opts);
    this.root.addEventListener('keydown', (e) => {
      if (!e.altKey || !this.gray16 || e.code !== 'KeyA') return;
      e.stopPropagation();
      e.preventDefault();
      this.autoWindow().catch(() => {});
    }, opts);
  }

  /**
   * @param {ToWorker} message
   * @param {Transferable[]} [transfer]
   */
  post(message, transfer = []) {
    if (this.closed) return;
    if (this.worker instanceof Worker) this.worker.postMessage(message, transfer);
    else this.worker.postMessage(message);
  }

  /**
   * @param {{type: 'stats'} | {type: 'sample', points: [number, number][]} | {type: 'send', channel: string, message: object, ordered?: boolean}
   *   | {type: 'raw'} | {type: 'probe', x: number, y: number} | {type: 'window', window: {low: number, high: number} | 'auto' | null}
   *   | {type: 'rendition', rendition: number | null} | {type: 'audio-tap', ms: number}} message
   * @returns {Promise<any>}
   */
  request(message) {
    if (this.closed) return Promise.reject(new Error('viewer closed'));
    const id = this.nextRequestId++;
    return new Promise((resolve, reject) => {
      this.requests.set(id, { resolve, reject });
      this.post(/** @type {ToWorker} */ ({ ...message, id }));
    });
  }

  /** @param {FromWorker} message */
  fromWorker(message) {
    switch (message.type) {
      case 'reply': {
        const pending = this.requests.get(message.id);
        this.requests.delete(message.id);
        if (!pending) break;
        if ('error' in message) pending.reject(new Error(message.error));
        else pending.resolve(message.value);
        break;
      }
      case 'status':
        this.setStatus(message.state, message.text);
        break;
      case 'notice':
        this.notice(message.text);
        break;
      case 'resize':
        this.streamSize = { width: message.width, height: message.height };
        this.gray16 = message.format === 'gray16le';
        // Lossless pictures: no smoothing when the view scales them (1:1 is exact anyway).
        this.surface.style.imageRendering = message.format ? 'pixelated' : '';
        break;
      case 'audio':
        this.audio?.available();
        break;
      case 'frame':
        if (this.frameVideo) this.frameVideo.show(message.frame);
        else message.frame.close();
        // The worker hands over a few at a time: a page busy for long drops frames there.
        this.post({ type: 'frame-taken' });
        break;
      case 'surface':
        this.frameVideo?.visible(message.video);
        break;
      case 'app':
        for (const cb of this.messageListeners) {
          try {
            cb(message.message);
          } catch (e) {
            console.error('rfb: onMessage callback failed', e);
          }
        }
        break;
    }
  }

  /**
   * @param {import('./decode-worker.js').StatusState} state
   * @param {string} text
   */
  setStatus(state, text) {
    const before = this.statusState;
    // Out of connecting/reconnecting: a new connection (the worker says so on `hello`).
    if ((state === 'waiting' || state === 'playing') && ['connecting', 'reconnecting', 'refused', 'error'].includes(before)) {
      this.input?.connected();
    }
    this.statusState = state;
    this.statusText = text;
    this.renderStatus();
  }

  /** Shows `text` for a while, over the status. @param {string} text */
  notice(text) {
    this.noticeText = text;
    if (this.noticeTimer) clearTimeout(this.noticeTimer);
    this.noticeTimer = setTimeout(() => {
      this.noticeText = '';
      this.renderStatus();
    }, NOTICE_MS);
    this.renderStatus();
  }

  renderStatus() {
    const text = this.noticeText || (this.statusState === 'playing' ? '' : this.statusText);
    this.statusLine.textContent = text;
    this.statusLine.style.display = this.showStatus && text ? 'block' : 'none';
  }

  /** @param {boolean} visible */
  overlayToggled(visible) {
    if (this.overlayTimer) clearInterval(this.overlayTimer);
    this.overlayTimer = null;
    if (!visible || this.closed) return;
    const refresh = () =>
      this.stats().then(
        async (s) => {
          const p = this.pointer;
          const value = p && s.codec === 'raw' ? await this.rawValueAt(p.x, p.y).catch(() => null) : null;
          this.overlay.update(s, value && p ? { x: Math.floor(p.x), y: Math.floor(p.y), value } : null);
        },
        () => {},
      );
    refresh();
    this.overlayTimer = setInterval(refresh, OVERLAY_REFRESH_MS);
  }

  /** Shows or hides the stats overlay. @param {boolean} [force] @returns {boolean} visible now */
  toggleOverlay(force) {
    return this.overlay.toggle(force);
  }

  /** @returns {Promise<ViewerStats>} */
  stats() {
    return this.request({ type: 'stats' });
  }

  /**
   * RGBA of the painted picture at stream pixel coordinates ([0,0,0,0] outside it).
   * @param {[number, number][]} points
   * @returns {Promise<[number, number, number, number][]>}
   */
  samplePixels(points) {
    if (!Array.isArray(points)) return Promise.reject(new TypeError('samplePixels: expected [[x, y], ...]'));
    return this.request({ type: 'sample', points: points.map(([x, y]) => [Number(x), Number(y)]) });
  }

  /**
   * The raw picture as decoded, for lossless streams (`codec` raw): `data` holds the wire pixels
   * row by row (rgba8: 4 bytes, rgb8: 3, gray8: 1, gray16le: 2 little-endian). Exact: what the
   * server sent, whatever the window shows. Null for other streams or before the first picture.
   * @returns {Promise<{format: import('./tiles.js').PixelFormat, width: number, height: number, data: Uint8Array} | null>}
   */
  readRaw() {
    return this.request({ type: 'raw' });
  }

  /**
   * The raw value at stream pixel (`x`, `y`): [r, g, b, a], [r, g, b] or [v]; null outside or
   * for other streams.
   * @param {number} x
   * @param {number} y
   * @returns {Promise<number[] | null>}
   */
  rawValueAt(x, y) {
    return this.request({ type: 'probe', x: Number(x), y: Number(y) });
  }

  /**
   * Shows gray16 values `low`..`high` as black..white (the data is unchanged).
   * @param {number} low
   * @param {number} high
   * @returns {Promise<import('./decode-worker.js').WindowState>}
   */
  setWindow(low, high) {
    if (!(Number.isFinite(low) && Number.isFinite(high) && high > low)) {
      return Promise.reject(new RangeError('setWindow: expected low < high'));
    }
    return this.request({ type: 'window', window: { low, high } });
  }

  /** The gray16 window follows the picture's range again. */
  autoWindow() {
    return this.request({ type: 'window', window: 'auto' });
  }

  /** @returns {Promise<import('./decode-worker.js').WindowState>} */
  getWindow() {
    return this.request({ type: 'window', window: null });
  }

  /**
   * Chooses the rendition this viewer shows (its id, from `stats().renditions`), from its next
   * keyframe on; null gives the choice back to the server, which follows the viewer's link.
   * @param {number | null} id
   * @returns {Promise<void>}
   */
  setRendition(id) {
    if (id !== null && !(Number.isInteger(id) && id >= 0 && id <= 0xffffffff)) {
      return Promise.reject(new TypeError('setRendition: id must be a rendition id or null'));
    }
    return this.request({ type: 'rendition', rendition: id });
  }

  /**
   * Sends a JSON message to the server on `channel` (`rfb.events`, `app.<name>`, ...).
   * Rejects when not connected or when the message is over 64 KiB.
   * @param {string} channel
   * @param {object} message
   * @returns {Promise<void>}
   */
  sendMessage(channel, message) {
    if (typeof channel !== 'string' || channel === '') {
      return Promise.reject(new TypeError('sendMessage: channel must be a non-empty string'));
    }
    if (message === null || typeof message !== 'object' || Array.isArray(message)) {
      return Promise.reject(new TypeError('sendMessage: message must be a JSON object'));
    }
    return this.request({ type: 'send', channel, message });
  }

  /**
   * Calls `cb` with every `app.*` message from the server.
   * @param {(message: import('./protocol.js').Message) => void} cb
   * @returns {() => void} unsubscribes
   */
  onMessage(cb) {
    this.messageListeners.add(cb);
    return () => this.messageListeners.delete(cb);
  }

  /**
   * Starts the sound; call it from a click or key handler (browsers' autoplay rule). The viewer
   * does so itself on the first click or key on the page.
   * @returns {Promise<void>}
   */
  startAudio() {
    return this.audio?.start() ?? Promise.resolve();
  }

  /** @param {boolean} muted */
  setMuted(muted) {
    this.audio?.setMuted(muted);
  }

  /** @param {number} volume 0 to 1 */
  setVolume(volume) {
    this.audio?.setVolume(volume);
  }

  /**
   * Records the next `ms` of the sound as played (after the jitter buffer, before mute and
   * volume), first channel: for tests and level meters. `startEpochMs`: when the first sample
   * was heard (epoch ms); `clock`: from each `sample` index on, sample i was heard at `epochMs`
   * + (i - `sample`) / `sampleRate` s (the audio clock can slip on a busy machine).
   * @param {number} ms
   * @returns {Promise<{samples: Float32Array, sampleRate: number, startEpochMs: number | null, clock: {sample: number, epochMs: number}[]}>}
   */
  recordAudio(ms) {
    if (!this.audio) return Promise.reject(new Error('this viewer plays no sound'));
    return this.request({ type: 'audio-tap', ms });
  }

  /** Disconnects, stops the worker and removes the viewer's elements. */
  close() {
    if (this.closed) return;
    this.audio?.close();
    this.input?.close(); // its key-ups go out before the worker's close
    this.displayObserver?.disconnect();
    this.frameVideo?.close();
    this.post({ type: 'close' });
    this.closed = true;
    const worker = this.worker;
    // Let the worker send its WebSocket close before it goes.
    setTimeout(() => worker.terminate(), 200);
    if (this.overlayTimer) clearInterval(this.overlayTimer);
    if (this.noticeTimer) clearTimeout(this.noticeTimer);
    for (const { reject } of this.requests.values()) reject(new Error('viewer closed'));
    this.requests.clear();
    this.messageListeners.clear();
    this.root.remove();
  }
}

/**
 * @param {HTMLElement} container
 * @param {ViewerOptions} [options]
 * @returns {RfbViewer}
 */
export function mountViewer(container, options) {
  return new RfbViewer(container, options);
}
