// The worker's decoders for encoded pictures: WebCodecs' VideoDecoder for video (H.264, VP8,
// VP9, AV1), createImageBitmap for still images (JPEG, PNG, WebP). Each hands decoded pictures
// over in order and never after it was closed or replaced: a late callback of an old decoder is
// dropped here, not painted.

/** @typedef {{frameId: number, receivedAt: number, timestampUs: number}} FrameMeta */

/** Deltas are dropped (and a keyframe asked for) when the decoder has more than this queued. */
export const MAX_DECODE_QUEUE = 8;
/**
 * The decoder counts as behind only when its queue stays over MAX_DECODE_QUEUE this long: a late
 * joiner's burst (the cached group of pictures) fills it for a moment and drains at decode speed.
 */
export const BEHIND_AFTER_MS = 1000;

/** @type {VideoColorSpaceInit} */
const BT601 = { primaries: 'smpte170m', transfer: 'smpte170m', matrix: 'smpte170m', fullRange: false };

/**
 * The VideoDecoder configuration for a stream configuration.
 * @param {import('./protocol.js').StreamConfig} c
 * @returns {VideoDecoderConfig}
 */
export function decoderConfig(c) {
  /** @type {VideoDecoderConfig} */
  const out = { codec: c.codecString, codedWidth: c.width, codedHeight: c.height, optimizeForLatency: true };
  if (c.description) out.description = c.description;
  // VP8 carries no colour description and Chromium assumes BT.709; take GStreamer's default for
  // the size instead (BT.601 up to 576 lines), which is what the encoder was most likely fed.
  if (c.codec === 'vp8' && c.height <= 576) out.colorSpace = BT601;
  return out;
}

/**
 * Why this browser cannot decode `c`: null when it can; '' when there is no WebCodecs at all.
 * @param {import('./protocol.js').StreamConfig} c
 * @returns {Promise<string | null>}
 */
export async function unsupportedReason(c) {
  if (typeof VideoDecoder === 'undefined') return '';
  try {
    const support = await VideoDecoder.isConfigSupported(decoderConfig(c));
    return support.supported ? null : 'VideoDecoder.isConfigSupported says no';
  } catch (e) {
    return errorMessage(e);
  }
}

/** @param {unknown} e */
export function errorMessage(e) {
  return e instanceof Error ? e.message : String(e);
}

/**
 * @typedef {object} VideoOutput
 * @property {(frame: VideoFrame, meta: FrameMeta | undefined) => void} frame a decoded frame, in
 *   order; the receiver closes it
 * @property {(e: Error) => void} error the decoder failed (it is closed; open() starts over)
 */

/** One VideoDecoder at a time, replaced by open(); its frames keep their FrameMeta. */
export class VideoDecoding {
  /** @param {VideoOutput} output */
  constructor(output) {
    this.output = output;
    /** @type {VideoDecoder | null} */
    this.decoder = null;
    /** Bumped whenever the decoder is replaced or closed: late callbacks check it. */
    this.generation = 0;
    /** @type {Map<number, FrameMeta>} by chunk timestamp */
    this.pendingMeta = new Map();
    /** @type {number | null} since when the decoder's queue has been over MAX_DECODE_QUEUE */
    this.queueHighSince = null;
  }

  /**
   * A new decoder for `c` (the old one's queue is dropped). Throws when the browser refuses the
   * configuration at once.
   * @param {import('./protocol.js').StreamConfig} c
   */
  open(c) {
    this.close();
    if (typeof VideoDecoder === 'undefined') return;
    const mine = this.generation;
    const decoder = new VideoDecoder({
      output: (frame) => {
        if (mine !== this.generation) {
          frame.close();
          return;
        }
        const meta = this.pendingMeta.get(frame.timestamp);
        this.pendingMeta.delete(frame.timestamp);
        this.output.frame(frame, meta);
      },
      error: (e) => {
        if (mine === this.generation) this.output.error(e);
      },
    });
    this.decoder = decoder;
    decoder.configure(decoderConfig(c));
  }

  /** Whether there is a decoder to decode with. */
  get ready() {
    return this.decoder !== null && this.decoder.state !== 'closed';
  }

  get queueSize() {
    return this.decoder ? this.decoder.decodeQueueSize : 0;
  }

  /**
   * Whether the decoder's queue has stayed over MAX_DECODE_QUEUE for BEHIND_AFTER_MS (asked once
   * per frame; a true answer starts the measure over).
   * @param {number} now
   */
  behind(now) {
    if (this.queueSize <= MAX_DECODE_QUEUE) this.queueHighSince = null;
    else this.queueHighSince ??= now;
    if (this.queueHighSince !== null && now - this.queueHighSince > BEHIND_AFTER_MS) {
      this.queueHighSince = null;
      return true;
    }
    return false;
  }

  /**
   * Queues a frame; throws when the decoder refuses it.
   * @param {import('./protocol.js').Frame} frame
   * @param {FrameMeta} meta
   */
  decode(frame, meta) {
    const decoder = /** @type {VideoDecoder} */ (this.decoder);
    this.pendingMeta.set(frame.timestampUs, meta);
    decoder.decode(new EncodedVideoChunk({ type: frame.key ? 'key' : 'delta', timestamp: frame.timestampUs, data: frame.payload }));
  }

  /** Decodes what is queued (the stream ended). */
  flush() {
    if (this.decoder && this.decoder.state === 'configured') this.decoder.flush().catch(() => {});
  }

  close() {
    this.generation++;
    this.pendingMeta.clear();
    this.queueHighSince = null;
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = null;
  }
}

/**
 * @typedef {object} ImageOutput
 * @property {(bitmap: ImageBitmap, meta: FrameMeta, waiting: number, decodedAt: number) => void} image
 *   a decoded image; `waiting`: images queued behind it (0 or 1); the bitmap is closed after
 * @property {(frame: import('./protocol.js').Frame, why: string) => void} failed
 * @property {(why: string) => void} drop an image replaced before it was decoded
 */

/**
 * Still images, decoded one at a time; one that arrives meanwhile waits, replacing the one that
 * was waiting (latest wins: an older picture is never painted after a newer one).
 */
export class ImageDecoding {
  /** @param {ImageOutput} output */
  constructor(output) {
    this.output = output;
    this.busy = false;
    /** @type {{frame: import('./protocol.js').Frame, meta: FrameMeta, mime: string} | null} */
    this.pending = null;
    /** Bumped by close(): a decode in flight is then not handed over. */
    this.generation = 0;
  }

  /**
   * @param {import('./protocol.js').Frame} frame
   * @param {FrameMeta} meta
   * @param {string} mime the image's type (the configuration's codec string)
   */
  decode(frame, meta, mime) {
    if (this.busy) {
      if (this.pending) this.output.drop('a newer image arrived');
      this.pending = { frame, meta, mime };
      return;
    }
    this.run(frame, meta, mime);
  }

  /**
   * @param {import('./protocol.js').Frame} frame
   * @param {FrameMeta} meta
   * @param {string} mime
   */
  async run(frame, meta, mime) {
    const mine = this.generation;
    this.busy = true;
    try {
      const bitmap = await createImageBitmap(new Blob([/** @type {BlobPart} */ (frame.payload)], { type: mime }));
      const decodedAt = performance.now();
      if (mine === this.generation) this.output.image(bitmap, meta, this.pending ? 1 : 0, decodedAt);
      bitmap.close();
    } catch (e) {
      if (mine === this.generation) this.output.failed(frame, errorMessage(e));
    }
    this.busy = false;
    const next = this.pending;
    this.pending = null;
    // Queued after any close(): it belongs to the current stream.
    if (next) this.run(next.frame, next.meta, next.mime);
  }

  close() {
    this.generation++;
    this.pending = null;
  }
}
