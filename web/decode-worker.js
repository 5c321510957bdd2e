// The viewer's worker: a thin entry that wires its parts together. A Session (session.js) runs the
// connection (transport.js) and the protocol; its Media here, Pictures, sends each frame down its
// path (WebCodecs video or images: decoder.js; raw tiles and refine stills: lossless.js) and
// every picture at once onto the canvas (painter.js). The main thread (rfb-viewer.js) talks to it
// with the messages typed below.

import { ack, parseConfig, STATS_CHANNEL } from './protocol.js';
import { StreamRates } from './stats.js';
import { noWebCodecsText, unsupportedCodecText, WAITING_TEXT } from './explain.js';
import { createTransport } from './transport.js';
import { RelayTransport } from './relay.js';
import { Session } from './session.js';
import { Painter } from './painter.js';
import { errorMessage, ImageDecoding, unsupportedReason, VideoDecoding } from './decoder.js';
import { RawStream, Refine } from './lossless.js';
import { Sound } from './sound.js';

/**
 * Main thread -> worker.
 * `init` without a canvas: a WebRtcHost (webrtc.js), whose picture is a <video>.
 * `relay`: watch through a Media over QUIC relay instead of the element (view-only).
 * @typedef {{type: 'init', canvas: OffscreenCanvas, url: string, envelope: import('./protocol.js').Envelope, transport?: 'auto' | 'ws' | 'wt', rendition?: number | null, relay?: {url: string, broadcast: string, downlinkKbps?: number | null} | null, audio?: boolean, avSync?: boolean, paint?: 'canvas' | 'video'}
 *   | {type: 'init', canvas?: undefined, url: string, envelope: import('./protocol.js').Envelope, rendition?: number | null, audio?: boolean}
 *   | {type: 'stats', id: number}
 *   | {type: 'sample', id: number, points: [number, number][]}
 *   | {type: 'send', id: number, channel: string, message: object, ordered?: boolean}
 *   | {type: 'rendition', id: number, rendition: number | null}
 *   | {type: 'raw', id: number}
 *   | {type: 'probe', id: number, x: number, y: number}
 *   | {type: 'window', id: number, window: {low: number, high: number} | 'auto' | null}
 *   | {type: 'display', width: number, height: number}
 *   | {type: 'audio-port', port: MessagePort, askedEpochMs: number}
 *   | {type: 'audio-clock', contextEpochMs: number, outputLatencyMs: number, exact: boolean}
 *   | {type: 'audio-tap', id: number, ms: number}
 *   | {type: 'frame-taken'}
 *   | {type: 'close'}} ToWorker
 */

/**
 * Worker -> main thread. `status` is the state of the stream; `notice` a message to show for a
 * while (a server `error`); `app` an `app.*` message from the server.
 * @typedef {{type: 'status', state: StatusState, text: string}
 *   | {type: 'notice', text: string}
 *   | {type: 'resize', width: number, height: number, format?: import('./tiles.js').PixelFormat}
 *   | {type: 'app', message: import('./protocol.js').Message}
 *   | {type: 'audio', state: 'available', channels: number}
 *   | {type: 'frame', frame: VideoFrame}
 *   | {type: 'surface', video: boolean}
 *   | {type: 'reply', id: number, ok: true, value: any}
 *   | {type: 'reply', id: number, ok: false, error: string}} FromWorker
 */

/** @typedef {import('./session.js').StatusState} StatusState */

/**
 * @typedef {object} ViewerStats
 * @property {boolean} connected
 * @property {import('./protocol.js').Envelope} envelope
 * @property {string} transport
 * @property {number | null} clientId
 * @property {string | null} codec
 * @property {string | null} codecString
 * @property {number} width
 * @property {number} height
 * @property {number} framesReceived
 * @property {number} framesDecoded
 * @property {number} framesDropped
 * @property {number} decodeErrors
 * @property {number} protocolErrors
 * @property {number} keyframeRequests
 * @property {number} fps
 * @property {number} bitrateBps
 * @property {number} decodeLatencyMs
 * @property {number | null} lastFrameId
 * @property {number} reconnects
 * @property {number} refines lossless stills painted over the lossy picture
 * @property {boolean} exact the canvas shows the exact picture: a raw stream, or a refine still
 * @property {string | null} paintPath how pictures reach the screen (the overlay shows it):
 *   `video element (MediaStreamTrackGenerator)` (WebCodecs frames transferred to a <video>, where
 *   the page has the generator: Chromium), `2d drawImage VideoFrame` (elsewhere, or `paint:
 *   'canvas'`; at the frame's size: drawing at the display size was measured no cheaper, the
 *   frame's colour conversion dominates), `2d drawImage ImageBitmap` (images), `2d putImageData`
 *   (raw tiles)
 * @property {StatusState} status
 * @property {import('./stats.js').ServerStats | null} server the server's last `stats` message
 *   (its figures for this viewer), null when none came in the last SERVER_STATS_STALE_MS
 * @property {import('./stats.js').LatencySample[]} latencyHistory the server's render() -> decoded
 *   p50/p95 over the last LATENCY_HISTORY_MS, oldest first
 * @property {WindowState | null} window the gray16 window in use (raw gray16 streams only)
 * @property {import('./sound.js').AudioStats} audio the sound's figures (docs/protocol.md, "Audio")
 * @property {{current: number, chosen: number | null, renditions: import('./protocol.js').Rendition[]} | null} renditions
 *   the stream's renditions when the server has several: the one shown (`current`), the one
 *   this viewer chose (null: the server chooses by its link)
 */

/** @typedef {import('./lossless.js').WindowState} WindowState */
/** @typedef {import('./decoder.js').FrameMeta} FrameMeta */
/** @typedef {import('./session.js').Media} Media */
/** @typedef {{frame: VideoFrame, meta: FrameMeta | undefined, decodedAt: number, timer: ReturnType<typeof setTimeout> | undefined}} HeldFrame */

/** Pictures held for their sound at most (MAX_SYNC_HOLD_MS at 60 fps is 9): the decoder's frames are few. */
const HELD_MAX = 6;

const scope = /** @type {DedicatedWorkerGlobalScope} */ (/** @type {unknown} */ (self));

/** @param {FromWorker} message */
function post(message) {
  scope.postMessage(message);
}

/**
 * The picture side of the worker's session: each frame to its path, each picture to the canvas
 * once, acknowledged when painted.
 * @implements {Media}
 */
class Pictures {
  /** @param {OffscreenCanvas} canvas */
  constructor(canvas) {
    this.painter = new Painter(canvas, (width, height, format) => post({ type: 'resize', width, height, format }));
    /** @type {Session | null} set once the session exists */
    this.session = null;
    /** The sound beside the picture: told when each picture is painted (A/V offset). @type {Sound | null} */
    this.sound = null;
    /** The viewer asked for sound (not ?audio=0). */
    this.wantsSound = true;
    /** Decoded pictures waiting for their sound (A/V sync). @type {HeldFrame[]} */
    this.held = [];
    /** @type {import('./protocol.js').StreamConfig | null} */
    this.config = null;
    /** Why the current config cannot be decoded, or null. @type {string | null} */
    this.unsupported = null;
    /** True from a (re)configure or a loss until the next keyframe. */
    this.needKey = true;
    /** The timestamp of the picture painted last (video and images). */
    this.paintedTimestampUs = -Infinity;
    this.counters = { framesReceived: 0, framesDecoded: 0, framesDropped: 0, decodeErrors: 0, refines: 0 };
    /** @type {number | null} */
    this.lastFrameId = null;
    this.rates = new StreamRates(1000);
    this.video = new VideoDecoding({
      frame: (frame, meta) => this.onVideoFrame(frame, meta),
      error: (e) => this.onDecoderError(e),
    });
    this.images = new ImageDecoding({
      image: (bitmap, meta, waiting, decodedAt) => {
        this.painter.draw(bitmap, bitmap.width, bitmap.height);
        this.paintedTimestampUs = meta.timestampUs;
        this.decoded(meta, waiting, decodedAt);
        this.refine.painted(this.paintedTimestampUs);
      },
      failed: (frame, why) => {
        this.counters.decodeErrors++;
        console.warn(`rfb: cannot decode ${this.config?.codecString} frame ${frame.frameId}: ${why}`);
      },
      drop: (why) => this.drop(why),
    });
    this.raw = new RawStream(this.painter);
    this.refine = new Refine(this.painter, this.raw, {
      painted: (meta, decodedAt) => {
        this.counters.refines++;
        this.decoded(meta, 0, decodedAt);
      },
      drop: (why) => this.drop(why),
    });
  }

  get sessionNow() {
    return /** @type {Session} */ (this.session);
  }

  /**
   * @param {string} why
   * @param {FrameMeta} [meta] the frame was decoded (it is acknowledged)
   */
  drop(why, meta) {
    const n = ++this.counters.framesDropped;
    if (n <= 3 || n % 100 === 0) console.debug(`rfb: dropped a frame (${why}), ${n} so far`);
    // Decoded but not shown: acknowledged all the same, without paint_us (docs/protocol.md). The
    // server counts what is in flight by acks: frames never acknowledged would make this viewer
    // look behind for good, and it would get nothing more to acknowledge.
    if (meta) this.sessionNow.send(STATS_CHANNEL, ack(meta.frameId, this.video.queueSize)).catch(() => {});
  }

  // --- Media --------------------------------------------------------------------------------

  /** @param {import('./protocol.js').Message} message */
  configure(message) {
    let next;
    try {
      next = parseConfig(message);
    } catch (e) {
      this.sessionNow.counters.protocolErrors++;
      console.error(`rfb: ${errorMessage(e)}`);
      this.sessionNow.setStatus('error', errorMessage(e));
      return;
    }
    this.closeDecoders();
    this.config = next;
    this.unsupported = null;
    this.needKey = true;
    if (next.type === 'video') {
      this.checkSupport(next);
      this.openDecoder();
    }
    // Not over the explanation of why it cannot be decoded.
    if (this.sessionNow.status !== 'playing' && !this.unsupported) this.sessionNow.setStatus('waiting', WAITING_TEXT);
  }

  ended() {
    this.video.flush();
    this.needKey = true;
  }

  /** @param {{low: number, high: number} | null} win */
  window(win) {
    this.raw.setWindow(win && { ...win, source: 'server' });
  }

  /** Forgets everything about the stream (the connection is gone); keeps the picture. */
  reset() {
    this.closeDecoders();
    this.config = null;
    this.unsupported = null;
    this.needKey = true;
    this.rates.clear();
  }

  protocolError() {
    // The message that broke may have been a frame: resynchronise on a keyframe.
    if (this.config && this.config.type !== 'image' && !this.needKey) {
      this.needKey = true;
      this.sessionNow.requestKeyframe('protocol-error');
    }
  }

  /** @param {import('./protocol.js').Frame} frame */
  frame(frame) {
    const receivedAt = performance.now();
    this.counters.framesReceived++;
    this.rates.frameReceived(receivedAt, frame.payload.byteLength);
    const config = this.config;
    if (!config) return this.drop('no config yet');
    if (frame.configId !== null && frame.configId !== config.configId) {
      return this.drop(`config_id ${frame.configId}, current is ${config.configId}`);
    }
    const meta = { frameId: frame.frameId, receivedAt, timestampUs: frame.timestampUs };
    if (frame.refine) return this.onRefineFrame(frame, meta);
    this.refine.supersede();
    if (config.type === 'image') return this.images.decode(frame, meta, config.codecString);
    if (config.type === 'raw') return this.onRawFrame(frame, meta);
    if (this.unsupported) return this.drop('codec not supported');
    if (this.needKey && !frame.key) return this.drop('waiting for a keyframe');
    if (!this.video.ready) this.openDecoder();
    if (!this.video.ready) return this.drop('no VideoDecoder');
    if (this.video.behind(performance.now())) {
      if (!frame.key) {
        this.needKey = true;
        this.sessionNow.requestKeyframe('decoder-behind');
        return this.drop('decoder behind');
      }
      // A keyframe while behind: start over from it, the backlog is older (latest wins).
      this.counters.framesDropped += this.video.queueSize;
      this.openDecoder();
    }
    this.needKey = false;
    try {
      this.video.decode(frame, meta);
    } catch (e) {
      this.onDecoderError(e instanceof Error ? e : new Error(String(e)));
    }
  }

  // --- video --------------------------------------------------------------------------------

  /** @param {import('./protocol.js').StreamConfig} c */
  async checkSupport(c) {
    const why = await unsupportedReason(c);
    if (why !== null) this.markUnsupported(c, why);
  }

  /**
   * @param {import('./protocol.js').StreamConfig} c
   * @param {string} why '': there is no WebCodecs at all
   */
  markUnsupported(c, why) {
    if (this.config !== c || this.unsupported) return;
    this.unsupported = why === ''
      ? noWebCodecsText({ secureContext: scope.isSecureContext, host: pageHost() })
      : unsupportedCodecText(c, why);
    console.error(`rfb: ${this.unsupported}`);
    this.closeDecoders();
    this.sessionNow.setStatus('error', this.unsupported);
  }

  openDecoder() {
    const c = /** @type {import('./protocol.js').StreamConfig} */ (this.config);
    this.closeDecoders();
    try {
      this.video.open(c);
    } catch (e) {
      this.markUnsupported(c, errorMessage(e));
    }
  }

  /** @param {Error} e */
  onDecoderError(e) {
    const config = this.config;
    if (!config) return;
    this.counters.decodeErrors++;
    if (e.name === 'NotSupportedError') {
      this.markUnsupported(config, e.message);
      return;
    }
    console.warn(`rfb: decoder error, restarting at the next keyframe: ${e.name}: ${e.message}`);
    this.openDecoder();
    this.needKey = true;
    this.sessionNow.requestKeyframe('decoder-error');
  }

  /**
   * @param {VideoFrame} frame
   * @param {FrameMeta | undefined} meta
   */
  onVideoFrame(frame, meta) {
    const decodedAt = performance.now();
    const hold = this.sound?.videoHoldMs(frame.timestamp, performance.timeOrigin + decodedAt) ?? 0;
    if (hold > 0) {
      // A/V sync: it shows when its sound is heard. Held pictures keep their order; a queue
      // that grows past HELD_MAX (a stalled sound clock) drops its oldest.
      /** @type {HeldFrame} */
      const h = { frame, meta, decodedAt, timer: undefined };
      this.held.push(h);
      this.hold(h, hold);
      if (this.held.length > HELD_MAX) {
        const old = /** @type {HeldFrame} */ (this.held.shift());
        clearTimeout(old.timer);
        old.frame.close();
        this.drop('held for the sound too long', old.meta);
      }
      return;
    }
    this.paintVideoFrame(frame, meta, decodedAt);
  }

  /**
   * Paints a held picture `ms` from now (or at once), unless it was let go of before.
   * @param {HeldFrame} h
   * @param {number} ms
   */
  hold(h, ms) {
    clearTimeout(h.timer);
    const release = () => {
      const i = this.held.indexOf(h);
      if (i < 0) return;
      this.held.splice(i, 1);
      this.paintVideoFrame(h.frame, h.meta, h.decodedAt);
    };
    if (ms > 0) h.timer = setTimeout(release, ms);
    else release();
  }

  /**
   * The sound's timeline moved (an underrun's silence, sound cut out): each held picture
   * waits for its sound anew, oldest first, rather than show at the time the old timeline gave
   * it (measured under load: flashes 25-55 ms off the sound after such a move).
   */
  retime() {
    const now = performance.timeOrigin + performance.now();
    for (const h of [...this.held]) this.hold(h, this.sound?.videoHoldMs(h.frame.timestamp, now, false) ?? 0);
  }

  /**
   * @param {VideoFrame} frame
   * @param {FrameMeta | undefined} meta
   * @param {number} decodedAt
   */
  paintVideoFrame(frame, meta, decodedAt) {
    if (frame.timestamp < this.paintedTimestampUs) {
      // A newer picture is on the canvas already (the sound's clock stopped while this waited).
      frame.close();
      this.drop('replaced while held for the sound', meta);
      return;
    }
    const timestampUs = frame.timestamp; // the frame is closed or transferred by present()
    if (!this.painter.present(frame)) {
      this.drop('the page has not taken the frames before it', meta);
      return;
    }
    this.paintedTimestampUs = timestampUs;
    // Acknowledged once painted, saying how long painting took: the server gets both render() ->
    // decoded and render() -> painted from one message.
    if (meta) this.decoded(meta, this.video.queueSize, decodedAt);
    this.refine.painted(this.paintedTimestampUs);
  }

  closeDecoders() {
    for (const h of this.held) {
      clearTimeout(h.timer);
      h.frame.close();
    }
    this.held = [];
    this.video.close();
    this.images.close();
    this.raw.forget();
    this.refine.forget();
    this.painter.forget();
    this.paintedTimestampUs = -Infinity;
  }

  // --- lossless -----------------------------------------------------------------------------

  /**
   * @param {import('./protocol.js').Frame} frame
   * @param {FrameMeta} meta
   */
  onRawFrame(frame, meta) {
    if (this.needKey && !frame.key) return this.drop('waiting for a keyframe');
    try {
      this.raw.apply(frame);
    } catch (e) {
      this.counters.decodeErrors++;
      console.warn(`rfb: bad raw frame ${frame.frameId}, restarting at the next keyframe: ${errorMessage(e)}`);
      this.needKey = true;
      this.sessionNow.requestKeyframe('decoder-error');
      return;
    }
    this.needKey = false;
    this.decoded(meta, 0, performance.now());
  }

  /**
   * A lossless still of the stream's last picture: decoded at once, painted over the lossy
   * picture as soon as that is on the canvas (the decoder may still hold it).
   * @param {import('./protocol.js').Frame} frame
   * @param {FrameMeta} meta
   */
  onRefineFrame(frame, meta) {
    if (this.config?.type === 'raw') return this.drop('refine on a lossless stream');
    if (this.needKey) return this.drop('refine before the picture it refines');
    try {
      this.refine.take(frame, meta, this.paintedTimestampUs);
    } catch (e) {
      this.counters.decodeErrors++;
      console.warn(`rfb: bad refine frame ${frame.frameId}: ${errorMessage(e)}`);
    }
  }

  /** A copy of the raw picture as decoded, or of the refine still on screen (viewer API: readRaw). */
  snapshot() {
    const picture = this.exactPicture();
    if (!picture) return null;
    const { format, width, height, data } = picture;
    return { format, width, height, data: data.slice() };
  }

  exactPicture() {
    return this.raw.picture ?? this.refine.shown();
  }

  /**
   * The canvas element was laid out at another size: a raw picture larger than it is painted
   * again at the size now shown.
   * @param {{width: number, height: number} | null} display
   */
  displayChanged(display) {
    this.painter.display = display;
    if (this.config?.type === 'raw' && this.raw.picture) this.raw.paint(null);
  }

  // --- acks and stats -----------------------------------------------------------------------

  /**
   * Counts a decoded and painted frame and acknowledges it.
   * @param {FrameMeta} meta
   * @param {number} queueSize
   * @param {number} decodedAt when the decoder (or createImageBitmap) handed the picture over
   */
  decoded(meta, queueSize, decodedAt) {
    const paintedAt = performance.now();
    this.counters.framesDecoded++;
    this.lastFrameId = meta.frameId;
    this.rates.frameDecoded(paintedAt, decodedAt - meta.receivedAt);
    this.sound?.painted(meta.timestampUs, performance.timeOrigin + paintedAt);
    const paintUs = Math.max(0, Math.round((paintedAt - decodedAt) * 1000));
    this.sessionNow.send(STATS_CHANNEL, ack(meta.frameId, queueSize, paintUs)).catch(() => {});
    this.sessionNow.setStatus('playing', '');
  }

  /** @returns {ViewerStats} */
  stats() {
    const snapshot = this.rates.snapshot(performance.now());
    const config = this.config;
    const size = this.painter.size();
    const session = this.sessionNow.stats();
    return {
      ...session,
      audio: /** @type {Sound} */ (this.sound).stats(this.wantsSound),
      codec: config?.codec ?? null,
      codecString: config?.codecString ?? null,
      width: size ? size.width : config?.width ?? 0,
      height: size ? size.height : config?.height ?? 0,
      ...this.counters,
      fps: snapshot.fps,
      bitrateBps: snapshot.bitrateBps,
      decodeLatencyMs: snapshot.decodeLatencyMs,
      lastFrameId: this.lastFrameId,
      window: this.raw.windowInUse(),
      exact: config?.type === 'raw' ? this.raw.picture !== null : this.refine.showing,
      paintPath: !config ? null
        : config.type === 'raw' ? '2d putImageData'
          : config.type === 'image' ? '2d drawImage ImageBitmap'
            : this.painter.toVideo ? 'video element (MediaStreamTrackGenerator)' : '2d drawImage VideoFrame',
    };
  }
}

/** The page's host, also from a blob worker (a viewer imported from another origin). */
function pageHost() {
  const { host, origin } = scope.location;
  if (host) return host;
  try {
    return new URL(origin).host;
  } catch {
    return '';
  }
}

/** @type {Session | null} */
let session = null;
/** @type {Pictures | null} */
let pictures = null;
/** The canvas element's box in device pixels (the page's `display` message). @type {{width: number, height: number} | null} */
let display = null;

/**
 * Opt-in benchmark hook (tests/bench): off, and one null check per frame, unless the page posts
 * {type: 'bench-hook', module: <URL of an ES module>}. Then the module's install(scope) returns a
 * function that runs right after every paint (tests/bench/barcode.mjs reads the capture-time
 * barcode back from the canvas there); the reply is {type: 'bench-hook', ok, error?}.
 * @type {import('./painter.js').AfterPaint | null}
 */
let afterPaint = null;
scope.addEventListener('message', (event) => {
  const m = event.data;
  if (m?.type !== 'bench-hook' || typeof m.module !== 'string') return;
  import(m.module).then(
    (mod) => {
      afterPaint = mod.install(scope);
      if (pictures) pictures.painter.afterPaint = afterPaint;
      scope.postMessage({ type: 'bench-hook', ok: true });
    },
    (e) => scope.postMessage({ type: 'bench-hook', ok: false, error: String(e) }),
  );
});

/** @param {ToWorker & {type: 'init'}} message */
function start(message) {
  if (!message.canvas) throw new Error('the decode worker needs a canvas');
  const media = new Pictures(message.canvas);
  media.painter.afterPaint = afterPaint;
  media.painter.display = display;
  if (message.paint === 'video') {
    media.painter.toVideo = (frame) => scope.postMessage({ type: 'frame', frame }, [frame]);
    media.painter.onSurface = (video) => post({ type: 'surface', video });
  }
  const transport = message.relay
    ? new RelayTransport({ ...message.relay, audio: message.audio ?? true })
    : createTransport(message.url, { envelope: message.envelope, mode: message.transport ?? 'auto' });
  const sound = new Sound(post);
  sound.onSyncMoved = () => media.retime();
  media.sound = sound;
  media.wantsSound = message.audio ?? true;
  sound.sync = message.avSync ?? true;
  const s = new Session(transport, media, {
    status: (state, text) => post({ type: 'status', state, text }),
    notice: (text) => post({ type: 'notice', text }),
    app: (m) => post({ type: 'app', message: m }),
  }, { envelope: message.envelope, rendition: message.rendition ?? null, sound });
  media.session = s;
  pictures = media;
  session = s;
  s.start();
}

scope.onmessage = (/** @type {MessageEvent} */ event) => {
  const message = /** @type {ToWorker} */ (event.data);
  if (message.type === 'init') {
    start(message);
    return;
  }
  if (message.type === 'frame-taken') {
    pictures?.painter.taken();
    return;
  }
  if (message.type === 'display') {
    display = message.width >= 1 && message.height >= 1 ? { width: message.width, height: message.height } : null;
    if (pictures) pictures.displayChanged(display);
    return;
  }
  const p = pictures;
  const s = session;
  if (!p || !s) return;
  /** @param {number} id @param {any} value */
  const reply = (id, value) => post({ type: 'reply', id, ok: true, value });
  switch (message.type) {
    case 'stats':
      reply(message.id, p.stats());
      break;
    case 'sample':
      reply(message.id, p.painter.sample(message.points));
      break;
    case 'raw':
      reply(message.id, p.snapshot());
      break;
    case 'probe':
      reply(message.id, p.exactPicture()?.valueAt(message.x, message.y) ?? null);
      break;
    case 'window':
      if (message.window !== null) {
        p.raw.setWindow(message.window === 'auto' ? null : { low: message.window.low, high: message.window.high, source: 'user' });
      }
      reply(message.id, { ...p.raw.window });
      break;
    case 'audio-port':
      p.sound?.connect(message.port, message.askedEpochMs);
      break;
    case 'audio-clock':
      p.sound?.clock(message.contextEpochMs, message.outputLatencyMs, message.exact);
      break;
    case 'audio-tap':
      if (!p.sound) break;
      p.sound.tap(message.ms).then(
        (value) => post({ type: 'reply', id: message.id, ok: true, value }),
        (e) => post({ type: 'reply', id: message.id, ok: false, error: errorMessage(e) }),
      );
      break;
    case 'rendition':
      s.chooseRendition(message.rendition).then(
        () => reply(message.id, undefined),
        (e) => post({ type: 'reply', id: message.id, ok: false, error: errorMessage(e) }),
      );
      break;
    case 'send':
      s.send(message.channel, message.message, message.ordered).then(
        () => reply(message.id, undefined),
        (e) => post({ type: 'reply', id: message.id, ok: false, error: errorMessage(e) }),
      );
      break;
    case 'close':
      s.close();
      p.closeDecoders();
      session = null;
      pictures = null;
      scope.close();
      break;
  }
};
