// The viewer's worker: owns the connection, decodes with WebCodecs (video) or createImageBitmap
// (images) and paints every picture at once onto the OffscreenCanvas it was given.
// The main thread (rfb-viewer.js) talks to it with the messages typed below.

import { ack, CONTROL_CHANNEL, keyframeRequest, MAIN_CHANNEL, parseConfig, STATS_CHANNEL } from './protocol.js';
import { History, parseServerStats, StreamRates } from './stats.js';
import { noWebCodecsText, reconnectingText, unsupportedCodecText, WAITING_TEXT } from './explain.js';
import { applyTiles, bounds, toDisplay, windowTable } from './tiles.js';
import { createTransport } from './transport.js';

/**
 * Main thread -> worker.
 * @typedef {{type: 'init', canvas: OffscreenCanvas, url: string, envelope: import('./protocol.js').Envelope, transport?: 'auto' | 'ws' | 'wt'}
 *   | {type: 'stats', id: number}
 *   | {type: 'sample', id: number, points: [number, number][]}
 *   | {type: 'send', id: number, channel: string, message: object, ordered?: boolean}
 *   | {type: 'raw', id: number}
 *   | {type: 'probe', id: number, x: number, y: number}
 *   | {type: 'window', id: number, window: {low: number, high: number} | 'auto' | null}
 *   | {type: 'close'}} ToWorker
 */

/**
 * Worker -> main thread. `status` is the state of the stream; `notice` a message to show for a
 * while (a server `error`); `app` an `app.*` message from the server.
 * @typedef {{type: 'status', state: StatusState, text: string}
 *   | {type: 'notice', text: string}
 *   | {type: 'resize', width: number, height: number, format?: import('./tiles.js').PixelFormat}
 *   | {type: 'app', message: import('./protocol.js').Message}
 *   | {type: 'reply', id: number, ok: true, value: any}
 *   | {type: 'reply', id: number, ok: false, error: string}} FromWorker
 */

/** @typedef {'connecting' | 'waiting' | 'playing' | 'ended' | 'reconnecting' | 'refused' | 'error'} StatusState */

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
 * @property {string | null} paintPath how pictures reach the canvas (the overlay shows it):
 *   `2d drawImage VideoFrame` (WebCodecs, at the frame's size: drawing at the display size was
 *   measured no cheaper, the frame's colour conversion dominates), `2d drawImage ImageBitmap`
 *   (images), `2d putImageData` (raw tiles)
 * @property {StatusState} status
 * @property {import('./stats.js').ServerStats | null} server the server's last `stats` message
 *   (its figures for this viewer), null when none came in the last SERVER_STATS_STALE_MS
 * @property {import('./stats.js').LatencySample[]} latencyHistory the server's render() -> decoded
 *   p50/p95 over the last LATENCY_HISTORY_MS, oldest first
 * @property {WindowState | null} window the gray16 window in use (raw gray16 streams only)
 */

/**
 * The gray16 window/level: `auto` follows the picture's range; `server` was set by the pipeline
 * (`rfb.control` `window`), `user` by the person watching (viewer API, Alt+drag).
 * @typedef {{low: number, high: number, source: 'auto' | 'server' | 'user'}} WindowState
 */

/** Deltas are dropped (and a keyframe asked for) when the decoder has more than this queued. */
const MAX_DECODE_QUEUE = 8;
/**
 * The decoder counts as behind only when its queue stays over MAX_DECODE_QUEUE this long: a late
 * joiner's burst (the cached group of pictures) fills it for a moment and drains at decode speed.
 */
const BEHIND_AFTER_MS = 1000;
/** @type {number | null} since when the decoder's queue has been over MAX_DECODE_QUEUE */
let queueHighSince = null;

/** @typedef {{frameId: number, receivedAt: number, timestampUs: number}} FrameMeta */

/** @type {VideoColorSpaceInit} */
const BT601 = { primaries: 'smpte170m', transfer: 'smpte170m', matrix: 'smpte170m', fullRange: false };

const scope = /** @type {DedicatedWorkerGlobalScope} */ (/** @type {unknown} */ (self));

/** @type {OffscreenCanvas | null} */
let canvas = null;
/** @type {OffscreenCanvasRenderingContext2D | null} */
let ctx = null;
/** @type {import('./transport.js').Transport | null} */
let transport = null;
/** @type {import('./protocol.js').Envelope} */
let envelope = 'binary';

/** @type {import('./protocol.js').StreamConfig | null} */
let config = null;
/** Why the current config cannot be decoded, or null. */
let unsupported = /** @type {string | null} */ (null);
/** @type {VideoDecoder | null} */
let decoder = null;
/** Bumped whenever the decoder (or the image pipeline) is replaced: late callbacks check it. */
let generation = 0;
/** True from a (re)configure or a loss until the next keyframe. */
let needKey = true;
/** @type {Map<number, FrameMeta>} by chunk timestamp */
const pendingMeta = new Map();

/** The raw path's picture, its display pixels and the gray16 window. */
/** @type {import('./tiles.js').RawPicture | null} */
let rawPicture = null;
/** @type {ImageData | null} */
let rawImage = null;
/** @type {WindowState} */
let rawWindow = { low: 0, high: 65535, source: 'auto' };
/** @type {Uint32Array | null} */
let rawTable = null;

/**
 * Refine: the lossless still of the stream's last picture (docs/protocol.md, "Refine"). It waits
 * until the picture it refines (its timestamp) is painted, and is forgotten when a newer frame
 * arrives first.
 * @type {import('./tiles.js').RawPicture | null}
 */
let refinePicture = null;
/** @type {ImageData | null} */
let refineImage = null;
/** @type {{meta: FrameMeta} | null} */
let refinePending = null;
/** The canvas shows a refine still (exact) rather than the lossy picture. */
let showingRefine = false;
/** The timestamp of the picture painted last (video and images). */
let paintedTimestampUs = -Infinity;

let imageBusy = false;
/** @type {{frame: import('./protocol.js').Frame, meta: FrameMeta} | null} */
let imagePending = null;

/** @type {StatusState} */
let status = 'connecting';
let connected = false;
let opens = 0;
let painted = false;
const counters = {
  framesReceived: 0,
  framesDecoded: 0,
  framesDropped: 0,
  decodeErrors: 0,
  protocolErrors: 0,
  keyframeRequests: 0,
  reconnects: 0,
  refines: 0,
};
/** @type {number | null} */
let clientId = null;
/** @type {number | null} */
let lastFrameId = null;
const rates = new StreamRates(1000);

/** The server sends its stats every second: older than this, they no longer describe the stream. */
const SERVER_STATS_STALE_MS = 3000;
/** How far back the overlay's latency graph goes. */
const LATENCY_HISTORY_MS = 60_000;
/** @type {import('./stats.js').ServerStats | null} */
let serverStats = null;
let serverStatsAt = 0;
/** @type {History<{p50Us: number, p95Us: number}>} */
const latencyHistory = new History(LATENCY_HISTORY_MS, 128);

/** @param {FromWorker} message */
function post(message) {
  scope.postMessage(message);
}

/**
 * @param {StatusState} state
 * @param {string} text
 */
function setStatus(state, text) {
  if (state === status && state === 'playing') return;
  status = state;
  post({ type: 'status', state, text });
}

/**
 * @param {string} channel
 * @param {object} message
 */
/**
 * @param {string} channel
 * @param {object} message
 * @param {boolean} [ordered] in order with the reliable messages (see transport.js SendOptions)
 */
function send(channel, message, ordered = false) {
  if (!transport) return Promise.reject(new Error('not started'));
  return transport.openChannel(channel).send(message, { ordered });
}

/** @param {string} reason */
function requestKeyframe(reason) {
  counters.keyframeRequests++;
  send(CONTROL_CHANNEL, keyframeRequest(reason)).catch(() => {
    // Not connected: the next connection starts with a keyframe anyway.
  });
}

/** @param {string} why */
function drop(why) {
  counters.framesDropped++;
  if (counters.framesDropped <= 3 || counters.framesDropped % 100 === 0) {
    console.debug(`rfb: dropped a frame (${why}), ${counters.framesDropped} so far`);
  }
}

// --- connection -------------------------------------------------------------------------------

/** @type {ReturnType<typeof setInterval> | null} */
let countdown = null;

/**
 * Says that the server cannot be reached and when the next try is, every second until then.
 * @param {'connecting' | 'reconnecting'} state
 * @param {number} retryInMs
 * @param {string} why
 */
function startCountdown(state, retryInMs, why) {
  const at = performance.now() + retryInMs;
  const show = () => setStatus(state, reconnectingText(at - performance.now(), { why: why.trim(), first: state === 'connecting' }));
  show();
  countdown = setInterval(() => {
    show();
    if (performance.now() >= at) stopCountdown();
  }, 1000);
}

function stopCountdown() {
  if (countdown !== null) clearInterval(countdown);
  countdown = null;
}

/** @param {{url: string, envelope: import('./protocol.js').Envelope, transport?: 'auto' | 'ws' | 'wt'}} options */
function start(options) {
  envelope = options.envelope;
  transport = createTransport(options.url, { envelope, mode: options.transport ?? 'auto' });
  transport.onEvent((event) => {
    switch (event.type) {
      case 'connecting':
        if (opens === 0) setStatus('connecting', 'connecting…');
        break;
      case 'open':
        stopCountdown();
        connected = true;
        opens++;
        if (opens > 1) counters.reconnects++;
        break;
      case 'closed': {
        connected = false;
        resetStream();
        const why = event.reason ? ` (${event.code} ${event.reason})` : '';
        stopCountdown();
        if (event.refused) setStatus('refused', event.reason);
        else if (event.retryInMs === null) setStatus('error', `disconnected${why}`);
        else startCountdown(opens === 0 ? 'connecting' : 'reconnecting', event.retryInMs, why);
        break;
      }
      case 'error':
        counters.protocolErrors++;
        console.warn(`rfb: ${event.error.message}`);
        // The message that broke may have been a frame: resynchronise on a keyframe.
        if (config && config.type !== 'image' && !needKey) {
          needKey = true;
          requestKeyframe('protocol-error');
        }
        break;
    }
  });
  transport.openChannel(MAIN_CHANNEL).onMessage(onFrame);
  transport.openChannel(CONTROL_CHANNEL).onMessage(onControl);
  transport.openChannel(STATS_CHANNEL).onMessage(onServerStats);
  transport.openChannel('app.*').onMessage((message) => post({ type: 'app', message }));
  transport.start();
}

/** @param {import('./protocol.js').Message} message */
function onControl(message) {
  switch (message.kind) {
    case 'hello':
      if (typeof message.client_id === 'number') clientId = message.client_id;
      if (message.envelope === 'binary' || message.envelope === 'json') envelope = message.envelope;
      if (status !== 'playing') setStatus('waiting', WAITING_TEXT);
      break;
    case 'config':
      onConfig(message);
      break;
    case 'eos':
      if (decoder && decoder.state === 'configured') decoder.flush().catch(() => {});
      needKey = true;
      setStatus('ended', 'stream ended');
      break;
    case 'window':
      // The pipeline's window (rfbsink's gray-window property): null bounds mean automatic.
      if (typeof message.low === 'number' && typeof message.high === 'number' && message.high > message.low) {
        setWindow({ low: message.low, high: message.high, source: 'server' });
      } else {
        setWindow(null);
      }
      break;
    case 'error':
      console.warn(`rfb: server error: ${message.message}`);
      post({ type: 'notice', text: String(message.message ?? 'server error') });
      break;
    default:
    // Unknown kinds are for newer clients (docs/protocol.md).
  }
}

/** @param {import('./protocol.js').Message} message */
function onServerStats(message) {
  const s = parseServerStats(message);
  if (!s) return; // other kinds are for newer clients
  const now = performance.now();
  serverStats = s;
  serverStatsAt = now;
  if (s.latency_p50_us !== null && s.latency_p95_us !== null) {
    latencyHistory.push(now, { p50Us: s.latency_p50_us, p95Us: s.latency_p95_us });
  }
}

/** Forgets everything about the stream (the connection is gone); keeps the picture. */
function resetStream() {
  closeDecoder();
  config = null;
  unsupported = null;
  needKey = true;
  rates.clear();
}

function closeDecoder() {
  generation++;
  rawPicture = null;
  refinePending = null;
  paintedTimestampUs = -Infinity;
  pendingMeta.clear();
  imagePending = null;
  if (decoder && decoder.state !== 'closed') decoder.close();
  decoder = null;
}

// --- configuration ----------------------------------------------------------------------------

/** @param {import('./protocol.js').Message} message */
function onConfig(message) {
  let next;
  try {
    next = parseConfig(message);
  } catch (e) {
    counters.protocolErrors++;
    console.error(`rfb: ${e.message}`);
    setStatus('error', e.message);
    return;
  }
  closeDecoder();
  config = next;
  unsupported = null;
  needKey = true;
  if (next.type === 'video') {
    checkSupport(next);
    openDecoder();
  }
  // Not over the explanation of why it cannot be decoded.
  if (status !== 'playing' && !unsupported) setStatus('waiting', WAITING_TEXT);
}

/** @param {import('./protocol.js').StreamConfig} c */
function decoderConfig(c) {
  /** @type {VideoDecoderConfig} */
  const out = { codec: c.codecString, codedWidth: c.width, codedHeight: c.height, optimizeForLatency: true };
  if (c.description) out.description = c.description;
  // VP8 carries no colour description and Chromium assumes BT.709; take GStreamer's default for
  // the size instead (BT.601 up to 576 lines), which is what the encoder was most likely fed.
  if (c.codec === 'vp8' && c.height <= 576) out.colorSpace = BT601;
  return out;
}

/** @param {import('./protocol.js').StreamConfig} c */
function checkSupport(c) {
  if (typeof VideoDecoder === 'undefined') {
    markUnsupported(c, null);
    return;
  }
  VideoDecoder.isConfigSupported(decoderConfig(c)).then(
    (support) => {
      if (!support.supported) markUnsupported(c, 'VideoDecoder.isConfigSupported says no');
    },
    (e) => markUnsupported(c, e.message),
  );
}

/**
 * @param {import('./protocol.js').StreamConfig} c
 * @param {string | null} why null: there is no WebCodecs at all
 */
function markUnsupported(c, why) {
  if (config !== c || unsupported) return;
  unsupported = why === null
    ? noWebCodecsText({ secureContext: scope.isSecureContext, host: pageHost() })
    : unsupportedCodecText(c, why);
  console.error(`rfb: ${unsupported}`);
  closeDecoder();
  setStatus('error', unsupported);
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

function openDecoder() {
  const c = /** @type {import('./protocol.js').StreamConfig} */ (config);
  if (typeof VideoDecoder === 'undefined') return;
  closeDecoder();
  const mine = generation;
  decoder = new VideoDecoder({
    output: (frame) => onVideoFrame(frame, mine),
    error: (e) => onDecoderError(e, mine),
  });
  try {
    decoder.configure(decoderConfig(c));
  } catch (e) {
    markUnsupported(c, e.message);
  }
}

/**
 * @param {Error} e
 * @param {number} mine the decoder's generation
 */
function onDecoderError(e, mine) {
  if (mine !== generation || !config) return;
  counters.decodeErrors++;
  if (e.name === 'NotSupportedError') {
    markUnsupported(config, e.message);
    return;
  }
  console.warn(`rfb: decoder error, restarting at the next keyframe: ${e.name}: ${e.message}`);
  openDecoder();
  needKey = true;
  requestKeyframe('decoder-error');
}

// --- frames -----------------------------------------------------------------------------------

/** @param {import('./protocol.js').Frame} frame */
function onFrame(frame) {
  const receivedAt = performance.now();
  counters.framesReceived++;
  rates.frameReceived(receivedAt, frame.payload.byteLength);
  if (!config) return drop('no config yet');
  if (frame.configId !== null && frame.configId !== config.configId) {
    return drop(`config_id ${frame.configId}, current is ${config.configId}`);
  }
  const meta = { frameId: frame.frameId, receivedAt, timestampUs: frame.timestampUs };
  if (frame.refine) return onRefineFrame(frame, meta);
  // A newer picture: a still still waiting refines an older one.
  if (refinePending) drop('a newer frame came before the refined picture was painted');
  refinePending = null;
  if (config.type === 'image') return onImageFrame(frame, meta);
  if (config.type === 'raw') return onRawFrame(frame, meta);
  if (unsupported) return drop('codec not supported');
  if (needKey && !frame.key) return drop('waiting for a keyframe');
  if (!decoder || decoder.state === 'closed') openDecoder();
  if (!decoder) return drop('no VideoDecoder');
  const now = performance.now();
  if (decoder.decodeQueueSize <= MAX_DECODE_QUEUE) queueHighSince = null;
  else queueHighSince ??= now;
  if (queueHighSince !== null && now - queueHighSince > BEHIND_AFTER_MS) {
    queueHighSince = null;
    if (!frame.key) {
      needKey = true;
      requestKeyframe('decoder-behind');
      return drop('decoder behind');
    }
    // A keyframe while behind: start over from it, the backlog is older (latest wins).
    counters.framesDropped += decoder.decodeQueueSize;
    openDecoder();
  }
  needKey = false;
  pendingMeta.set(frame.timestampUs, meta);
  try {
    /** @type {VideoDecoder} */ (decoder).decode(
      new EncodedVideoChunk({ type: frame.key ? 'key' : 'delta', timestamp: frame.timestampUs, data: frame.payload }),
    );
  } catch (e) {
    onDecoderError(e, generation);
  }
}

/**
 * @param {VideoFrame} frame
 * @param {number} mine the decoder's generation
 */
function onVideoFrame(frame, mine) {
  if (mine !== generation) {
    frame.close();
    return;
  }
  const decodedAt = performance.now();
  const meta = pendingMeta.get(frame.timestamp);
  pendingMeta.delete(frame.timestamp);
  paint(frame, frame.displayWidth, frame.displayHeight);
  paintedTimestampUs = frame.timestamp;
  frame.close();
  // Acknowledged once painted, saying how long painting took: the server gets both render() ->
  // decoded and render() -> painted from one message.
  if (meta) decoded(meta, decoder ? decoder.decodeQueueSize : 0, decodedAt);
  if (refinePending && paintedTimestampUs >= refinePending.meta.timestampUs) paintRefine();
}

/**
 * A lossless still of the stream's last picture: decoded at once, painted over the lossy
 * picture as soon as that is on the canvas (the decoder may still hold it).
 * @param {import('./protocol.js').Frame} frame
 * @param {FrameMeta} meta
 */
function onRefineFrame(frame, meta) {
  if (config?.type === 'raw') return drop('refine on a lossless stream');
  if (needKey) return drop('refine before the picture it refines');
  try {
    ({ picture: refinePicture } = applyTiles(frame.payload, refinePicture, true));
  } catch (e) {
    counters.decodeErrors++;
    console.warn(`rfb: bad refine frame ${frame.frameId}: ${e.message}`);
    refinePicture = null;
    return;
  }
  if (refinePending) drop('a newer refine');
  refinePending = { meta };
  if (painted && paintedTimestampUs >= meta.timestampUs) paintRefine();
}

function paintRefine() {
  const pending = refinePending;
  const picture = refinePicture;
  refinePending = null;
  if (!pending || !picture || !canvas || !ctx) return;
  const { width, height } = picture;
  if (canvas.width !== width || canvas.height !== height) {
    return drop(`refine of ${width}x${height} over a ${canvas.width}x${canvas.height} picture`);
  }
  if (!refineImage || refineImage.width !== width || refineImage.height !== height) {
    refineImage = new ImageData(width, height);
  }
  let table = null;
  if (picture.format === 'gray16le') {
    const [low, high] = picture.range();
    table = windowTable(rawWindow.source === 'auto' ? { low, high } : rawWindow);
  }
  const decodedAt = performance.now();
  toDisplay(picture, { x: 0, y: 0, width, height }, new Uint32Array(refineImage.data.buffer), table);
  ctx.putImageData(refineImage, 0, 0);
  showingRefine = true;
  counters.refines++;
  if (afterPaint) afterPaint(ctx, width, height);
  decoded(pending.meta, 0, decodedAt);
}

/**
 * Raw tiles: applied to the picture at once (no decoder queue), then only the changed
 * rectangles are painted.
 * @param {import('./protocol.js').Frame} frame
 * @param {FrameMeta} meta
 */
function onRawFrame(frame, meta) {
  if (needKey && !frame.key) return drop('waiting for a keyframe');
  let rects;
  try {
    // A keyframe of the same size fills the picture it replaces (no 16 MB allocation per frame).
    ({ picture: rawPicture, rects } = applyTiles(frame.payload, rawPicture, frame.key));
  } catch (e) {
    counters.decodeErrors++;
    console.warn(`rfb: bad raw frame ${frame.frameId}, restarting at the next keyframe: ${e.message}`);
    rawPicture = null;
    needKey = true;
    requestKeyframe('decoder-error');
    return;
  }
  needKey = false;
  const decodedAt = performance.now();
  paintRaw(frame.key ? null : rects);
  decoded(meta, 0, decodedAt);
}

/**
 * Paints the raw picture: `rects` only, or all of it (null). Exact: RGB as it is, opaque, at the
 * stream's size; gray16 through the window's table.
 * @param {import('./tiles.js').Rect[] | null} rects
 */
function paintRaw(rects) {
  const picture = rawPicture;
  if (!canvas || !ctx || !picture) return;
  const { width, height } = picture;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
    post({ type: 'resize', width, height, format: picture.format });
    rects = null;
  }
  if (!rawImage || rawImage.width !== width || rawImage.height !== height) {
    rawImage = new ImageData(width, height);
    rects = null;
  }
  if (picture.format === 'gray16le') {
    if (rawWindow.source === 'auto') {
      const [low, high] = picture.range();
      if (low !== rawWindow.low || high !== rawWindow.high || !rawTable) {
        rawWindow = { low, high, source: 'auto' };
        rawTable = null;
      }
    }
    if (!rawTable) {
      rawTable = windowTable(rawWindow);
      rects = null;
    }
  }
  const all = { x: 0, y: 0, width, height };
  const todo = rects ?? [all];
  const out = new Uint32Array(rawImage.data.buffer);
  for (const r of todo) toDisplay(picture, r, out, rawTable);
  // Few rectangles: each on its own; many: their bounding box in one call.
  if (todo.length <= 16) {
    for (const r of todo) ctx.putImageData(rawImage, 0, 0, r.x, r.y, r.width, r.height);
  } else {
    const b = bounds(todo);
    ctx.putImageData(rawImage, 0, 0, b.x, b.y, b.width, b.height);
  }
  painted = true;
  if (afterPaint) afterPaint(ctx, width, height);
}

/**
 * Sets the gray16 window (null: automatic, following the picture's range) and repaints.
 * @param {WindowState | null} win
 */
function setWindow(win) {
  rawWindow = win ?? { low: 0, high: 65535, source: 'auto' };
  rawTable = null;
  if (rawPicture?.format === 'gray16le') paintRaw(null);
}

/** A copy of the raw picture as decoded, or of the refine still on screen (viewer API: readRaw). */
function rawSnapshot() {
  const picture = rawPicture ?? (showingRefine ? refinePicture : null);
  if (!picture) return null;
  const { format, width, height, data } = picture;
  return { format, width, height, data: data.slice() };
}

/**
 * Images decode one at a time; a frame that arrives meanwhile waits, replacing the one that was
 * waiting (latest wins: an older picture is never painted after a newer one).
 * @param {import('./protocol.js').Frame} frame
 * @param {FrameMeta} meta
 */
function onImageFrame(frame, meta) {
  if (imageBusy) {
    if (imagePending) drop('a newer image arrived');
    imagePending = { frame, meta };
    return;
  }
  decodeImage(frame, meta);
}

/**
 * @param {import('./protocol.js').Frame} frame
 * @param {FrameMeta} meta
 */
async function decodeImage(frame, meta) {
  const c = /** @type {import('./protocol.js').StreamConfig} */ (config);
  const mine = generation;
  imageBusy = true;
  try {
    const bitmap = await createImageBitmap(new Blob([/** @type {BlobPart} */ (frame.payload)], { type: c.codecString }));
    const decodedAt = performance.now();
    if (mine === generation) {
      paint(bitmap, bitmap.width, bitmap.height);
      paintedTimestampUs = meta.timestampUs;
      decoded(meta, imagePending ? 1 : 0, decodedAt);
      if (refinePending && paintedTimestampUs >= refinePending.meta.timestampUs) paintRefine();
    }
    bitmap.close();
  } catch (e) {
    if (mine === generation) {
      counters.decodeErrors++;
      console.warn(`rfb: cannot decode ${c.codecString} frame ${frame.frameId}: ${e.message}`);
    }
  }
  imageBusy = false;
  const next = imagePending;
  imagePending = null;
  if (next && config?.type === 'image') decodeImage(next.frame, next.meta);
}

/**
 * @param {CanvasImageSource} source
 * @param {number} width
 * @param {number} height
 */
function paint(source, width, height) {
  if (!canvas || !ctx) return;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
    post({ type: 'resize', width, height });
  }
  ctx.drawImage(source, 0, 0, width, height);
  painted = true;
  showingRefine = false;
  if (afterPaint) afterPaint(ctx, width, height);
}

/**
 * Opt-in benchmark hook (tests/bench): off, and one null check per frame, unless the page posts
 * {type: 'bench-hook', module: <URL of an ES module>}. Then the module's install(scope) returns a
 * function that runs right after every paint() (tests/bench/barcode.mjs reads the capture-time
 * barcode back from the canvas there); the reply is {type: 'bench-hook', ok, error?}.
 * @type {((ctx: OffscreenCanvasRenderingContext2D, width: number, height: number) => void) | null}
 */
let afterPaint = null;
scope.addEventListener('message', (event) => {
  const m = event.data;
  if (m?.type !== 'bench-hook' || typeof m.module !== 'string') return;
  import(m.module).then(
    (mod) => {
      afterPaint = mod.install(scope);
      scope.postMessage({ type: 'bench-hook', ok: true });
    },
    (e) => scope.postMessage({ type: 'bench-hook', ok: false, error: String(e) }),
  );
});

/**
 * Counts a decoded and painted frame and acknowledges it.
 * @param {FrameMeta} meta
 * @param {number} queueSize
 * @param {number} decodedAt when the decoder (or createImageBitmap) handed the picture over
 */
function decoded(meta, queueSize, decodedAt) {
  const paintedAt = performance.now();
  counters.framesDecoded++;
  lastFrameId = meta.frameId;
  rates.frameDecoded(paintedAt, decodedAt - meta.receivedAt);
  const paintUs = Math.max(0, Math.round((paintedAt - decodedAt) * 1000));
  send(STATS_CHANNEL, { ...ack(meta.frameId, queueSize), paint_us: paintUs }).catch(() => {});
  setStatus('playing', '');
}

// --- requests from the main thread ------------------------------------------------------------

/** @returns {ViewerStats} */
function stats() {
  const now = performance.now();
  const snapshot = rates.snapshot(now);
  return {
    connected,
    envelope,
    transport: transport?.name ?? 'none',
    clientId,
    codec: config?.codec ?? null,
    codecString: config?.codecString ?? null,
    width: painted && canvas ? canvas.width : config?.width ?? 0,
    height: painted && canvas ? canvas.height : config?.height ?? 0,
    ...counters,
    fps: snapshot.fps,
    bitrateBps: snapshot.bitrateBps,
    decodeLatencyMs: snapshot.decodeLatencyMs,
    lastFrameId,
    status,
    server: serverStats && now - serverStatsAt <= SERVER_STATS_STALE_MS ? serverStats : null,
    latencyHistory: latencyHistory.entries(now).map(({ ageMs, value }) => ({ ageMs, ...value })),
    window: rawPicture?.format === 'gray16le' ? { ...rawWindow } : null,
    exact: config?.type === 'raw' ? rawPicture !== null : showingRefine,
    paintPath: !config ? null
      : config.type === 'raw' ? '2d putImageData'
        : config.type === 'image' ? '2d drawImage ImageBitmap' : '2d drawImage VideoFrame',
  };
}

/**
 * RGBA at stream pixels; [0, 0, 0, 0] outside the picture.
 * @param {[number, number][]} points
 * @returns {[number, number, number, number][]}
 */
function samplePixels(points) {
  return points.map(([x, y]) => {
    if (!canvas || !ctx || !painted) return [0, 0, 0, 0];
    const px = Math.floor(x);
    const py = Math.floor(y);
    if (!(px >= 0 && py >= 0 && px < canvas.width && py < canvas.height)) return [0, 0, 0, 0];
    const d = ctx.getImageData(px, py, 1, 1).data;
    return [d[0], d[1], d[2], d[3]];
  });
}

scope.onmessage = (event) => {
  const message = /** @type {ToWorker} */ (event.data);
  switch (message.type) {
    case 'init':
      canvas = message.canvas;
      ctx = /** @type {OffscreenCanvasRenderingContext2D} */ (canvas.getContext('2d', { alpha: false }));
      start(message);
      break;
    case 'stats':
      post({ type: 'reply', id: message.id, ok: true, value: stats() });
      break;
    case 'sample':
      post({ type: 'reply', id: message.id, ok: true, value: samplePixels(message.points) });
      break;
    case 'raw': {
      const value = rawSnapshot();
      post({ type: 'reply', id: message.id, ok: true, value });
      break;
    }
    case 'probe':
      post({ type: 'reply', id: message.id, ok: true, value: (rawPicture ?? (showingRefine ? refinePicture : null))?.valueAt(message.x, message.y) ?? null });
      break;
    case 'window':
      if (message.window !== null) {
        setWindow(message.window === 'auto' ? null : { low: message.window.low, high: message.window.high, source: 'user' });
      }
      post({ type: 'reply', id: message.id, ok: true, value: { ...rawWindow } });
      break;
    case 'send':
      send(message.channel, message.message, message.ordered).then(
        () => post({ type: 'reply', id: message.id, ok: true, value: undefined }),
        (e) => post({ type: 'reply', id: message.id, ok: false, error: e.message }),
      );
      break;
    case 'close':
      transport?.close();
      transport = null;
      closeDecoder();
      scope.close();
      break;
  }
};
