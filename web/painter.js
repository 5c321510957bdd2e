// The worker's canvas: every picture reaches the screen here, whole (decoded video frames and
// images, drawn) or by rectangles (the lossless path's pixels, put), and is read back here
// (sampled pixels for tests and tools). `paintPath` in the viewer's stats names the calls used.

import { bounds } from './tiles.js';

/** @typedef {(ctx: OffscreenCanvasRenderingContext2D, width: number, height: number) => void} AfterPaint */

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
    /**
     * Opt-in benchmark hook (tests/bench): runs right after every paint when set.
     * @type {AfterPaint | null}
     */
    this.afterPaint = null;
  }

  /**
   * Gives the canvas the picture's size; true when it changed.
   * @param {number} width
   * @param {number} height
   * @param {import('./tiles.js').PixelFormat} [format]
   */
  fit(width, height, format) {
    const { canvas } = this;
    if (canvas.width === width && canvas.height === height) return false;
    canvas.width = width;
    canvas.height = height;
    this.onResize(width, height, format);
    return true;
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
    if (this.afterPaint) this.afterPaint(this.ctx, width, height);
  }

  /** The size of what is on the canvas, or null before the first picture. */
  size() {
    return this.painted ? { width: this.canvas.width, height: this.canvas.height } : null;
  }

  /**
   * RGBA at stream pixels; [0, 0, 0, 0] outside the picture or before the first one.
   * @param {[number, number][]} points
   * @returns {[number, number, number, number][]}
   */
  sample(points) {
    const { canvas, ctx } = this;
    return points.map(([x, y]) => {
      if (!this.painted) return [0, 0, 0, 0];
      const px = Math.floor(x);
      const py = Math.floor(y);
      if (!(px >= 0 && py >= 0 && px < canvas.width && py < canvas.height)) return [0, 0, 0, 0];
      const d = ctx.getImageData(px, py, 1, 1).data;
      return [d[0], d[1], d[2], d[3]];
    });
  }
}
