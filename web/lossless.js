// The lossless path in the viewer (docs/protocol.md, "Raw frames" and "Refine"): raw tiles
// applied to the picture they change and only the changed rectangles painted, exact (RGB as it
// is; gray16 through the window/level), and the refine still, the exact picture painted over the
// lossy one once that is on screen.

import { applyTiles, toDisplay, windowTable } from './tiles.js';

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
   * Paints `rects` of the picture, or all of it (null). Exact: RGB as it is, opaque, at the
   * stream's size; gray16 through the window's table.
   * @param {import('./tiles.js').Rect[] | null} rects
   */
  paint(rects) {
    const picture = this.picture;
    if (!picture) return;
    const { width, height } = picture;
    if (this.painter.fit(width, height, picture.format)) rects = null;
    if (!this.image || this.image.width !== width || this.image.height !== height) {
      this.image = new ImageData(width, height);
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
    const todo = rects ?? [{ x: 0, y: 0, width, height }];
    const out = new Uint32Array(this.image.data.buffer);
    for (const r of todo) toDisplay(picture, r, out, this.table);
    this.painter.put(this.image, todo);
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
