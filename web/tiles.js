// The lossless raw path in the browser: applies rfbsink's tile payloads (docs/protocol.md, "Raw
// frames") to a picture kept in the worker, and maps that picture to display pixels exactly (RGB
// as it is, opaque; gray through a window/level table). Pure: no DOM, no canvas; the worker
// paints the rectangles it returns.

export class TilesError extends Error {}

/** @typedef {'rgba8' | 'rgb8' | 'gray8' | 'gray16le'} PixelFormat */

/** @type {Record<number, PixelFormat>} */
const FORMAT_CODES = { 1: 'rgba8', 2: 'rgb8', 3: 'gray8', 4: 'gray16le' };
/** @type {Record<PixelFormat, number>} */
export const BYTES_PER_PIXEL = { rgba8: 4, rgb8: 3, gray8: 1, gray16le: 2 };
export const HEADER_LEN = 16;
export const RECORD_LEN = 12;
const ENCODING_RAW = 0;
const ENCODING_LZ4 = 1;
const ENCODING_LZ4_PLANES = 2;

/** @typedef {{x: number, y: number, width: number, height: number}} Rect */

/**
 * @param {Uint8Array} bytes
 * @returns {{format: PixelFormat, width: number, height: number, tile: number, count: number}}
 */
export function parseTilesHeader(bytes) {
  if (bytes.byteLength < HEADER_LEN || bytes[0] !== 0x52 || bytes[1] !== 0x54) throw new TilesError('not a tiles payload');
  if (bytes[2] !== 1) throw new TilesError(`tiles version ${bytes[2]} is not supported`);
  const format = FORMAT_CODES[bytes[3]];
  if (!format) throw new TilesError(`unknown pixel format ${bytes[3]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const width = view.getUint16(4, true);
  const height = view.getUint16(6, true);
  const tile = view.getUint16(8, true);
  if (!width || !height || !tile) throw new TilesError('zero picture or tile size');
  return { format, width, height, tile, count: view.getUint32(12, true) };
}

/**
 * Decompresses one LZ4 block (https://github.com/lz4/lz4/blob/dev/doc/lz4_Block_format.md) into
 * `dst`, which must be exactly the decompressed size. Every read and write is bounds-checked.
 * @param {Uint8Array} src
 * @param {Uint8Array} dst
 */
export function lz4Decompress(src, dst) {
  let s = 0;
  let d = 0;
  const end = src.length;
  while (s < end) {
    const token = src[s++];
    let literals = token >>> 4;
    if (literals === 15) {
      let b;
      do {
        if (s >= end) throw new TilesError('lz4: truncated literal length');
        b = src[s++];
        literals += b;
      } while (b === 255);
    }
    if (s + literals > end || d + literals > dst.length) throw new TilesError('lz4: literals out of bounds');
    dst.set(src.subarray(s, s + literals), d);
    s += literals;
    d += literals;
    if (s === end) break; // the last sequence has literals only
    if (s + 2 > end) throw new TilesError('lz4: truncated offset');
    const offset = src[s] | (src[s + 1] << 8);
    s += 2;
    if (offset === 0 || offset > d) throw new TilesError('lz4: bad match offset');
    let length = (token & 15) + 4;
    if ((token & 15) === 15) {
      let b;
      do {
        if (s >= end) throw new TilesError('lz4: truncated match length');
        b = src[s++];
        length += b;
      } while (b === 255);
    }
    if (d + length > dst.length) throw new TilesError('lz4: match out of bounds');
    let from = d - offset;
    if (offset >= length) {
      dst.copyWithin(d, from, from + length);
      d += length;
    } else {
      // Overlapping match (a run): byte by byte, as the format means.
      for (let i = 0; i < length; i++) dst[d++] = dst[from++];
    }
  }
  if (d !== dst.length) throw new TilesError(`lz4: ${d} bytes, expected ${dst.length}`);
}

/** A raw picture as decoded: wire pixels, rows without padding. */
export class RawPicture {
  /**
   * @param {PixelFormat} format
   * @param {number} width
   * @param {number} height
   * @param {number} tile
   */
  constructor(format, width, height, tile) {
    this.format = format;
    this.width = width;
    this.height = height;
    this.tile = tile;
    this.bpp = BYTES_PER_PIXEL[format];
    this.data = new Uint8Array(width * height * this.bpp);
    this.cols = Math.ceil(width / tile);
    this.rows = Math.ceil(height / tile);
    /** Per tile, for gray16: its smallest and largest value (the automatic window's range). */
    this.tileMin = new Uint16Array(this.cols * this.rows);
    this.tileMax = new Uint16Array(this.cols * this.rows);
    /** Whether a keyframe has filled every tile. */
    this.complete = false;
  }

  /** Gray16 samples (little-endian platforms: every browser rfbsink runs in). */
  samples16() {
    return new Uint16Array(this.data.buffer, this.data.byteOffset, this.width * this.height);
  }

  /**
   * The raw value at a pixel: [r, g, b, a], [r, g, b] or [v]; null outside.
   * @param {number} x
   * @param {number} y
   * @returns {number[] | null}
   */
  valueAt(x, y) {
    x = Math.floor(x);
    y = Math.floor(y);
    if (!(x >= 0 && y >= 0 && x < this.width && y < this.height)) return null;
    const i = y * this.width + x;
    if (this.format === 'gray16le') return [this.samples16()[i]];
    return Array.from(this.data.subarray(i * this.bpp, (i + 1) * this.bpp));
  }

  /** For gray16: the smallest and largest value in the picture. @returns {[number, number]} */
  range() {
    let lo = 65535;
    let hi = 0;
    for (let i = 0; i < this.tileMin.length; i++) {
      if (this.tileMin[i] < lo) lo = this.tileMin[i];
      if (this.tileMax[i] > hi) hi = this.tileMax[i];
    }
    return [lo, hi];
  }
}

/**
 * Applies a payload to `picture` (a new one for a keyframe or when the size or format changed).
 * Returns the picture and the rectangles that changed.
 * @param {Uint8Array} bytes
 * @param {RawPicture | null} picture
 * @param {boolean} key
 * @returns {{picture: RawPicture, rects: Rect[]}}
 */
export function applyTiles(bytes, picture, key) {
  const h = parseTilesHeader(bytes);
  if (!picture || picture.format !== h.format || picture.width !== h.width || picture.height !== h.height || picture.tile !== h.tile) {
    if (!key) throw new TilesError('a delta for a picture this client does not have');
    picture = new RawPicture(h.format, h.width, h.height, h.tile);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { bpp, width, data, tile } = picture;
  /** @type {Rect[]} */
  const rects = [];
  let scratch = new Uint8Array(tile * tile * bpp);
  /** Byte planes interleaved back (gray16): reused across the frame's tiles, not one per tile. */
  let planes = new Uint8Array(0);
  let at = HEADER_LEN;
  for (let n = 0; n < h.count; n++) {
    if (at + RECORD_LEN > bytes.length) throw new TilesError('truncated tile record');
    const col = view.getUint16(at, true);
    const row = view.getUint16(at + 2, true);
    const encoding = bytes[at + 4];
    const length = view.getUint32(at + 8, true);
    at += RECORD_LEN;
    if (at + length > bytes.length) throw new TilesError('truncated tile data');
    if (col >= picture.cols || row >= picture.rows) throw new TilesError(`tile (${col}, ${row}) outside the picture`);
    const x = col * tile;
    const y = row * tile;
    const w = Math.min(tile, picture.width - x);
    const th = Math.min(tile, picture.height - y);
    const size = w * th * bpp;
    const src = bytes.subarray(at, at + length);
    at += length;
    /** @type {Uint8Array} */
    let pixels;
    if (encoding === ENCODING_RAW) {
      if (length !== size) throw new TilesError(`tile (${col}, ${row}): ${length} bytes, expected ${size}`);
      pixels = src;
    } else if (encoding === ENCODING_LZ4 || encoding === ENCODING_LZ4_PLANES) {
      if (scratch.length !== size) scratch = new Uint8Array(size);
      lz4Decompress(src, scratch);
      pixels = scratch;
      if (encoding === ENCODING_LZ4_PLANES) {
        if (bpp !== 2) throw new TilesError('byte planes for a format that is not 16-bit');
        const half = size / 2;
        if (planes.length !== size) planes = new Uint8Array(size);
        const out = planes;
        for (let i = 0; i < half; i++) {
          out[2 * i + 1] = scratch[i];
          out[2 * i] = scratch[half + i];
        }
        pixels = out;
      }
    } else {
      throw new TilesError(`unknown tile encoding ${encoding}`);
    }
    const rowBytes = w * bpp;
    for (let r = 0; r < th; r++) {
      data.set(pixels.subarray(r * rowBytes, (r + 1) * rowBytes), ((y + r) * width + x) * bpp);
    }
    if (picture.format === 'gray16le') {
      let lo = 65535;
      let hi = 0;
      if (pixels.byteOffset % 2 === 0) {
        const samples = new Uint16Array(pixels.buffer, pixels.byteOffset, w * th);
        for (let i = 0; i < samples.length; i++) {
          const v = samples[i];
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      } else {
        // Stored raw at an odd offset in the message: no Uint16Array view there.
        for (let i = 0; i < w * th; i++) {
          const v = pixels[2 * i] | (pixels[2 * i + 1] << 8);
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
      picture.tileMin[row * picture.cols + col] = lo;
      picture.tileMax[row * picture.cols + col] = hi;
    }
    rects.push({ x, y, width: w, height: th });
  }
  if (at !== bytes.length) throw new TilesError('bytes after the last tile');
  if (key) picture.complete = true;
  return { picture, rects };
}

/**
 * A gray16 window: values at or below `low` are black, at or above `high` white, linear between.
 * @typedef {{low: number, high: number}} Window
 */

/**
 * The display table of a window: one opaque RGBA pixel (as a little-endian u32) per 16-bit value.
 * @param {Window} win
 * @returns {Uint32Array}
 */
export function windowTable(win) {
  const lut = new Uint32Array(65536);
  const low = Math.max(0, Math.min(65535, Math.round(win.low)));
  const high = Math.max(low + 1, Math.round(win.high));
  const span = high - low;
  for (let v = 0; v < 65536; v++) {
    const g = v <= low ? 0 : v >= high ? 255 : Math.round(((v - low) * 255) / span);
    lut[v] = 0xff000000 | (g << 16) | (g << 8) | g;
  }
  return lut;
}

/**
 * Writes the display pixels (opaque RGBA) of `rect` into `out` (the picture's size).
 * @param {RawPicture} picture
 * @param {Rect} rect
 * @param {Uint32Array} out one u32 per pixel, as an ImageData's buffer
 * @param {Uint32Array | null} lut for gray16
 */
export function toDisplay(picture, rect, out, lut) {
  const { width, data } = picture;
  for (let y = rect.y; y < rect.y + rect.height; y++) {
    let i = y * width + rect.x;
    const stop = i + rect.width;
    switch (picture.format) {
      case 'rgba8':
        // Painted opaque: a canvas stores premultiplied alpha, which would change RGB.
        for (; i < stop; i++) {
          const o = i * 4;
          out[i] = 0xff000000 | (data[o + 2] << 16) | (data[o + 1] << 8) | data[o];
        }
        break;
      case 'rgb8':
        for (; i < stop; i++) {
          const o = i * 3;
          out[i] = 0xff000000 | (data[o + 2] << 16) | (data[o + 1] << 8) | data[o];
        }
        break;
      case 'gray8':
        for (; i < stop; i++) {
          const g = data[i];
          out[i] = 0xff000000 | (g << 16) | (g << 8) | g;
        }
        break;
      case 'gray16le': {
        const table = /** @type {Uint32Array} */ (lut);
        for (; i < stop; i++) out[i] = table[data[2 * i] | (data[2 * i + 1] << 8)];
        break;
      }
    }
  }
}

/**
 * The size to paint a `width` x `height` picture at in a `display` box (device pixels): its own
 * size when it fits (exact, 1:1 or scaled up by CSS, pixelated), else the largest size of the same
 * aspect that fits. Painting a picture larger than the screen at its own size would cost the
 * conversion, the canvas and the compositor every pixel only to drop most of them when scaling down.
 * @param {number} width
 * @param {number} height
 * @param {{width: number, height: number} | null} display
 * @returns {{width: number, height: number}}
 */
export function paintSize(width, height, display) {
  if (!display || !(display.width >= 1 && display.height >= 1)) return { width, height };
  const scale = Math.min(display.width / width, display.height / height);
  if (scale >= 1) return { width, height };
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/**
 * Nearest-neighbour sampling from `size` source pixels to `to` painted ones: `at[i]` is the source
 * pixel painted at `i` (its centre's), `first[s]` the first painted pixel whose source is `s` or
 * later (`first[size]` = `to`), so a source span [a, b) is painted at [first[a], first[b]).
 * @param {number} size
 * @param {number} to
 * @returns {{at: Int32Array, first: Int32Array}}
 */
export function sampling(size, to) {
  const at = new Int32Array(to);
  for (let i = 0; i < to; i++) at[i] = Math.min(size - 1, Math.floor(((i + 0.5) * size) / to));
  const first = new Int32Array(size + 1);
  let i = 0;
  for (let s = 0; s <= size; s++) {
    while (i < to && at[i] < s) i++;
    first[s] = i;
  }
  return { at, first };
}

/**
 * `toDisplay` for a picture painted smaller than its size: writes the painted pixels of `rect`
 * (in painted coordinates) into `out` (`outWidth` wide), each the source pixel `xs`/`ys` name.
 * @param {RawPicture} picture
 * @param {Rect} rect
 * @param {Uint32Array} out
 * @param {number} outWidth
 * @param {Int32Array} xs source column of each painted column
 * @param {Int32Array} ys source row of each painted row
 * @param {Uint32Array | null} lut for gray16
 */
export function toDisplayScaled(picture, rect, out, outWidth, xs, ys, lut) {
  const { width, data } = picture;
  for (let y = rect.y; y < rect.y + rect.height; y++) {
    const row = ys[y] * width;
    let o = y * outWidth + rect.x;
    const stop = o + rect.width;
    let x = rect.x;
    switch (picture.format) {
      case 'rgba8':
        for (; o < stop; o++, x++) {
          const i = (row + xs[x]) * 4;
          out[o] = 0xff000000 | (data[i + 2] << 16) | (data[i + 1] << 8) | data[i];
        }
        break;
      case 'rgb8':
        for (; o < stop; o++, x++) {
          const i = (row + xs[x]) * 3;
          out[o] = 0xff000000 | (data[i + 2] << 16) | (data[i + 1] << 8) | data[i];
        }
        break;
      case 'gray8':
        for (; o < stop; o++, x++) {
          const g = data[row + xs[x]];
          out[o] = 0xff000000 | (g << 16) | (g << 8) | g;
        }
        break;
      case 'gray16le': {
        const table = /** @type {Uint32Array} */ (lut);
        for (; o < stop; o++, x++) {
          const i = (row + xs[x]) * 2;
          out[o] = table[data[i] | (data[i + 1] << 8)];
        }
        break;
      }
    }
  }
}

/**
 * The smallest rectangle that holds all of `rects`.
 * @param {Rect[]} rects
 * @returns {Rect}
 */
export function bounds(rects) {
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = 0;
  let y1 = 0;
  for (const r of rects) {
    x0 = Math.min(x0, r.x);
    y0 = Math.min(y0, r.y);
    x1 = Math.max(x1, r.x + r.width);
    y1 = Math.max(y1, r.y + r.height);
  }
  return { x: x0, y: y0, width: Math.max(0, x1 - x0), height: Math.max(0, y1 - y0) };
}
