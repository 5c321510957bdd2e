// The lossless path in the viewer (docs/protocol.md, "Raw frames" and "Refine"): raw tiles
// applied to the picture they change and only the changed rectangles painted, exact (RGB as it
// is; gray16 through the window/level), and the refine still, the exact picture painted over the
// lossy one once that is on screen.

import { applyTiles, bounds, paintSize, sampling, toDisplay, toDisplayScaled, windowTable } from './tiles.js';

/**
 * The gray16 window/level: `auto` follows the picture's range; `server` was set by the pipeline
 * (`rfb.control` `window`), `user` by the person watching (viewer API, Alt+drag).
 * @typedef {{low: number, high: number, source: 'auto' | 'server' | 'user'}} WindowState
 */

const AUTO_WINDOW = /** @type {WindowState} */ ({ low: 0, high: 65535, source: 'auto' });

/** A raw stream's picture, as decoded, and its display. */
export class RawStream {
  /** @param {import('./painter.js').Painter} painter */
  constructor(painter) {
    this.painter = painter;
    /** @type {import('./tiles.js').RawPicture | null} */
    this.picture = null;
    /** The display pixels, at the picture's size. @type {ImageData | null} */
    this.image = null;
    /** @type {WindowState} */
    this.window = { ...AUTO_WINDOW };
    /** gray16 -> display, for the window in use. @type {Uint32Array | null} */
    this.table = null;
    /** Which pixels are painted when the picture is painted smaller (paint). */
    this.samplingKey = '';
    /** @type {{at: Int32Array, first: Int32Array} | null} */
    this.xs = null;
    /** @type {{at: Int32Array, first: Int32Array} | null} */
    this.ys = null;
  }

  /**
   * Applies a raw frame's tiles (a keyframe of the same size fills the picture it replaces: no
   * 16 MB allocation per frame) and paints the rectangles that changed. Throws on a bad frame,
   * and the picture is forgotten (the next one must be a keyframe).
   * @param {import('./protocol.js').Frame} frame
   */
  apply(frame) {
    let rects;
    try {
      ({ picture: this.picture, rects } = applyTiles(frame.payload, this.picture, frame.key));
    } catch (e) {
      this.picture = null;
      throw e;
    }
    this.paint(frame.key ? null : rects);
  }

  /**
   * Paints `rects` of the picture, or all of it (null). Exact: RGB as it is, opaque; gray16 through
   * the window's table. At the stream's size when the view shows it whole (1:1 or larger), else at
   * the size shown, each painted pixel the picture's pixel under its centre (what a pixelated
   * scale-down shows), so that a picture larger than the screen costs what the screen shows.
   * @param {import('./tiles.js').Rect[] | null} rects
   */
  paint(rects) {
    const picture = this.picture;
    if (!picture) return;
    const { width, height } = picture;
    const size = paintSize(width, height, this.painter.display);
    if (this.painter.fit(size.width, size.height, picture.format, { width, height })) rects = null;
    if (!this.image || this.image.width !== size.width || this.image.height !== size.height) {
      this.image = new ImageData(size.width, size.height);
      rects = null;
    }
    if (picture.format === 'gray16le') {
      if (this.window.source === 'auto') {
        const [low, high] = picture.range();
        if (low !== this.window.low || high !== this.window.high || !this.table) {
          this.window = { low, high, source: 'auto' };
          this.table = null;
        }
      }
      if (!this.table) {
        this.table = windowTable(this.window);
        rects = null;
      }
    }
    const out = new Uint32Array(this.image.data.buffer);
    if (size.width === width && size.height === height) {
      const todo = rects ?? [{ x: 0, y: 0, width, height }];
      for (const r of todo) toDisplay(picture, r, out, this.table);
      this.painter.put(this.image, todo);
      return;
    }
    const key = `${width}x${height}>${size.width}x${size.height}`;
    if (this.samplingKey !== key) {
      this.samplingKey = key;
      this.xs = sampling(width, size.width);
      this.ys = sampling(height, size.height);
    }
    const xs = /** @type {{at: Int32Array, first: Int32Array}} */ (this.xs);
    const ys = /** @type {{at: Int32Array, first: Int32Array}} */ (this.ys);
    // The changed rectangles where they are painted: many become their bounding box, as put does.
    const changed = rects === null ? null : rects.length <= 16 ? rects : [bounds(rects)];
    /** @type {import('./tiles.js').Rect[]} */
    const todo = [];
    for (const r of changed ?? [{ x: 0, y: 0, width, height }]) {
      const x = xs.first[r.x];
      const y = ys.first[r.y];
      const w = xs.first[r.x + r.width] - x;
      const h = ys.first[r.y + r.height] - y;
      // A rectangle between painted pixels changes nothing on screen.
      if (w > 0 && h > 0) todo.push({ x, y, width: w, height: h });
    }
    for (const r of todo) toDisplayScaled(picture, r, out, size.width, xs.at, ys.at, this.table);
    if (todo.length) this.painter.put(this.image, todo);
  }

  /**
   * Sets the gray16 window (null: automatic, following the picture's range) and repaints.
   * @param {WindowState | null} win
   */
  setWindow(win) {
    this.window = win ?? { ...AUTO_WINDOW };
    this.table = null;
    if (this.picture?.format === 'gray16le') this.paint(null);
  }

  /** The window in use, for a gray16 stream. */
  windowInUse() {
    return this.picture?.format === 'gray16le' ? { ...this.window } : null;
  }

  forget() {
    this.picture = null;
  }
}

/**
 * @typedef {object} RefineOutput
 * @property {(meta: import('./decoder.js').FrameMeta, decodedAt: number) => void} painted
 * @property {(why: string) => void} drop
 */

/**
 * The refine still of the stream's last picture: it waits until the picture it refines (its
 * timestamp) is painted, and is forgotten when a newer frame arrives first.
 */
export class Refine {
  /**
   * @param {import('./painter.js').Painter} painter
   * @param {RawStream} raw whose window a gray16 still is shown through
   * @param {RefineOutput} output
   */
  constructor(painter, raw, output) {
    this.painter = painter;
    this.raw = raw;
    this.output = output;
    /** @type {import('./tiles.js').RawPicture | null} */
    this.picture = null;
    /** @type {ImageData | null} */
    this.image = null;
    /** @type {import('./decoder.js').FrameMeta | null} the still waiting to be painted */
    this.pending = null;
    /** The canvas shows the still (exact) rather than the lossy picture. */
    this.showing = false;
  }

  /**
   * Decodes a still at once; it is painted when `paintedTimestampUs` reaches its picture. Throws
   * on a bad still (it is forgotten).
   * @param {import('./protocol.js').Frame} frame
   * @param {import('./decoder.js').FrameMeta} meta
   * @param {number} paintedTimestampUs the timestamp of the picture on the canvas
   */
  take(frame, meta, paintedTimestampUs) {
    try {
      ({ picture: this.picture } = applyTiles(frame.payload, this.picture, true));
    } catch (e) {
      this.picture = null;
      throw e;
    }
    if (this.pending) this.output.drop('a newer refine');
    this.pending = meta;
    if (this.painter.painted && paintedTimestampUs >= meta.timestampUs) this.paint();
  }

  /** A newer picture came: a still still waiting refines an older one. */
  supersede() {
    if (this.pending) this.output.drop('a newer frame came before the refined picture was painted');
    this.pending = null;
  }

  /**
   * A picture was painted: the still goes over it when it is the one it refines.
   * @param {number} paintedTimestampUs
   */
  painted(paintedTimestampUs) {
    this.showing = false;
    if (this.pending && paintedTimestampUs >= this.pending.timestampUs) this.paint();
  }

  paint() {
    const meta = this.pending;
    const picture = this.picture;
    this.pending = null;
    if (!meta || !picture) return;
    const { width, height } = picture;
    const { canvas } = this.painter;
    if (canvas.width !== width || canvas.height !== height) {
      this.output.drop(`refine of ${width}x${height} over a ${canvas.width}x${canvas.height} picture`);
      return;
    }
    if (!this.image || this.image.width !== width || this.image.height !== height) {
      this.image = new ImageData(width, height);
    }
    let table = null;
    if (picture.format === 'gray16le') {
      const [low, high] = picture.range();
      const win = this.raw.window;
      table = windowTable(win.source === 'auto' ? { low, high } : win);
    }
    const decodedAt = performance.now();
    const all = { x: 0, y: 0, width, height };
    toDisplay(picture, all, new Uint32Array(this.image.data.buffer), table);
    this.painter.put(this.image, [all]);
    this.showing = true;
    this.output.painted(meta, decodedAt);
  }

  /** The still on screen, or null. */
  shown() {
    return this.showing ? this.picture : null;
  }

  forget() {
    this.pending = null;
  }
}
