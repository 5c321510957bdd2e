// The worker's canvas: every picture reaches the screen here, whole (decoded video frames and
// images, drawn) or by rectangles (the lossless path's pixels, put), and is read back here
// (sampled pixels for tests and tools). `paintPath` in the viewer's stats names the calls used.

import { bounds } from './tiles.js';

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
