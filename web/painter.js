// The worker's canvas: every picture reaches the screen here, whole (decoded video frames and
// images, drawn) or by rectangles (the lossless path's pixels, put), and is read back here
// (sampled pixels for tests and tools). `paintPath` in the viewer's stats names the calls used.
//
// Where the page offers a <video> fed by a MediaStreamTrackGenerator (Chromium; the viewer's
// `paint` option), decoded video frames go there instead, transferred, not copied: the
// compositor's video layer shows them at about half the browser's CPU a frame of drawImage
// (tests/bench/paint.mjs). Pictures that only the canvas can show (lossless pixels, images,
// refine stills) still land on the canvas, and the page shows whichever surface was painted last.

import { bounds } from './tiles.js';

/**
 * Video frames handed to the page and not yet taken by it: past this the page's thread is busy
 * (a long task) and newer frames are dropped here rather than queued behind it, each holding a
 * decoded picture.
 */
export const MAX_VIDEO_IN_FLIGHT = 3;

/** @typedef {(ctx: OffscreenCanvasRenderingContext2D, width: number, height: number, streamWidth: number) => void} AfterPaint */

export class Painter {
  /**
   * @param {OffscreenCanvas} canvas the page's canvas, transferred to the worker
   * @param {(width: number, height: number, format?: import('./tiles.js').PixelFormat) => void} onResize
   *   the picture's size changed (the page lays itself out again)
   */
  constructor(canvas, onResize) {
    this.canvas = canvas;
    this.ctx = /** @type {OffscreenCanvasRenderingContext2D} */ (canvas.getContext('2d', { alpha: false }));
    this.onResize = onResize;
    /** Something was painted since the canvas was given. */
    this.painted = false;
    /** The picture's own size (the canvas's, unless painted smaller). */
    this.stream = { width: 0, height: 0 };
    /** @type {import('./tiles.js').PixelFormat | undefined} */
    this.format = undefined;
    /**
     * The canvas element's box in device pixels, as the page last said (null: not known), for
     * pictures larger than it (lossless.js paints those at the size shown).
     * @type {{width: number, height: number} | null}
     */
    this.display = null;
    /**
     * Opt-in benchmark hook (tests/bench): runs right after every paint when set.
     * @type {AfterPaint | null}
     */
    this.afterPaint = null;
    /**
     * Hands a video frame to the page's <video> (it owns the frame from then on); null: video
     * frames are drawn on the canvas.
     * @type {((frame: VideoFrame) => void) | null}
     */
    this.toVideo = null;
    /** The page shows the <video> (true) or the canvas (false); told through `onSurface`. */
    this.onVideo = false;
    /** @type {(video: boolean) => void} */
    this.onSurface = () => {};
    /** The frame handed to the <video> last (a clone: sample() reads it). @type {VideoFrame | null} */
    this.lastVideoFrame = null;
    /** Frames handed to the page that it has not taken yet (`taken()`). */
    this.videoInFlight = 0;
  }

  /**
   * Shows a decoded video frame and closes it (or hands it on): on the page's <video> when it has
   * one, else drawn on the canvas. False: dropped, the page has not taken the frames before it.
   * @param {VideoFrame} frame
   * @returns {boolean}
   */
  present(frame) {
    const width = frame.displayWidth;
    const height = frame.displayHeight;
    if (!this.toVideo) {
      this.draw(frame, width, height);
      frame.close();
      return true;
    }
    if (this.videoInFlight >= MAX_VIDEO_IN_FLIGHT) {
      frame.close();
      return false;
    }
    this.videoInFlight++;
    this.fit(width, height);
    this.lastVideoFrame?.close();
    this.lastVideoFrame = frame.clone();
    this.toVideo(frame);
    this.painted = true;
    this.surface(true);
    return true;
  }

  /** The page took a frame handed to it. */
  taken() {
    this.videoInFlight = Math.max(0, this.videoInFlight - 1);
  }

  /** @param {boolean} video */
  surface(video) {
    if (video === this.onVideo) return;
    this.onVideo = video;
    this.onSurface(video);
  }

  /** Lets go of the frame kept for sample() (the decoder is closing). */
  forget() {
    this.lastVideoFrame?.close();
    this.lastVideoFrame = null;
  }

  /**
   * Gives the canvas a size; true when it changed. `stream` is the picture's own size when the
   * canvas is smaller (the page maps input and lays itself out by the stream's size).
   * @param {number} width
   * @param {number} height
   * @param {import('./tiles.js').PixelFormat} [format]
   * @param {{width: number, height: number}} [stream]
   */
  fit(width, height, format, stream = { width, height }) {
    const { canvas } = this;
    const resized = canvas.width !== width || canvas.height !== height;
    if (resized) {
      canvas.width = width;
      canvas.height = height;
    }
    if (stream.width !== this.stream.width || stream.height !== this.stream.height || format !== this.format) {
      this.stream = { width: stream.width, height: stream.height };
      this.format = format;
      this.onResize(stream.width, stream.height, format);
    }
    return resized;
  }

  /**
   * Draws a whole picture (a VideoFrame, an ImageBitmap) at its own size.
   * @param {CanvasImageSource} source
   * @param {number} width
   * @param {number} height
   */
  draw(source, width, height) {
    this.fit(width, height);
    this.ctx.drawImage(source, 0, 0, width, height);
    this.done(width, height);
  }

  /**
   * Puts the rectangles of `image` (at the canvas's size) on the canvas: few, each on its own;
   * many, their bounding box in one call.
   * @param {ImageData} image
   * @param {import('./tiles.js').Rect[]} rects
   */
  put(image, rects) {
    if (rects.length <= 16) {
      for (const r of rects) this.ctx.putImageData(image, 0, 0, r.x, r.y, r.width, r.height);
    } else {
      const b = bounds(rects);
      this.ctx.putImageData(image, 0, 0, b.x, b.y, b.width, b.height);
    }
    this.done(image.width, image.height);
  }

  /**
   * @param {number} width
   * @param {number} height
   */
  done(width, height) {
    this.painted = true;
    this.surface(false);
    if (this.lastVideoFrame) this.forget();
    if (this.afterPaint) this.afterPaint(this.ctx, width, height, this.stream.width);
  }

  /** The size of the picture on the canvas, or null before the first one. */
  size() {
    return this.painted ? { ...this.stream } : null;
  }

  /**
   * RGBA at stream pixels, as painted (a picture painted smaller: the pixel painted for that
   * point); [0, 0, 0, 0] outside the picture or before the first one.
   * @param {[number, number][]} points
   * @returns {[number, number, number, number][]}
   */
  sample(points) {
    const { canvas, ctx, stream } = this;
    // The <video> shows the picture: draw its last frame on the (hidden) canvas to read it.
    if (this.onVideo && this.lastVideoFrame) ctx.drawImage(this.lastVideoFrame, 0, 0, canvas.width, canvas.height);
    return points.map(([x, y]) => {
      if (!this.painted) return [0, 0, 0, 0];
      if (!(x >= 0 && y >= 0 && x < stream.width && y < stream.height)) return [0, 0, 0, 0];
      const px = Math.min(canvas.width - 1, Math.floor((x * canvas.width) / stream.width));
      const py = Math.min(canvas.height - 1, Math.floor((y * canvas.height) / stream.height));
      const d = ctx.getImageData(px, py, 1, 1).data;
      return [d[0], d[1], d[2], d[3]];
    });
  }
}
