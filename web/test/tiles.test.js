import assert from 'node:assert/strict';
import { test } from 'node:test';

import { applyTiles, bounds, HEADER_LEN, lz4Decompress, paintSize, parseTilesHeader, RECORD_LEN, sampling, TilesError, toDisplay, toDisplayScaled, windowTable } from '../tiles.js';

/**
 * A payload as rfbsink builds it (docs/protocol.md, "Raw frames").
 * @param {number} format 1 rgba8, 2 rgb8, 3 gray8, 4 gray16le
 * @param {number} width
 * @param {number} height
 * @param {number} tile
 * @param {{col: number, row: number, encoding: number, data: Uint8Array}[]} tiles
 */
function payload(format, width, height, tile, tiles) {
  const size = HEADER_LEN + tiles.reduce((n, t) => n + RECORD_LEN + t.data.length, 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  out.set([0x52, 0x54, 1, format]);
  view.setUint16(4, width, true);
  view.setUint16(6, height, true);
  view.setUint16(8, tile, true);
  view.setUint32(12, tiles.length, true);
  let at = HEADER_LEN;
  for (const t of tiles) {
    view.setUint16(at, t.col, true);
    view.setUint16(at + 2, t.row, true);
    out[at + 4] = t.encoding;
    view.setUint32(at + 8, t.data.length, true);
    out.set(t.data, at + RECORD_LEN);
    at += RECORD_LEN + t.data.length;
  }
  return out;
}

test('lz4: literals, an overlapping match (a run) and the final literals', () => {
  // 'a', then a match of 4 at offset 1 ("aaaa"), then 5 literals: 10 x 'a'.
  const src = new Uint8Array([0x10, 0x61, 0x01, 0x00, 0x50, 0x61, 0x61, 0x61, 0x61, 0x61]);
  const dst = new Uint8Array(10);
  lz4Decompress(src, dst);
  assert.deepEqual([...dst], Array(10).fill(0x61));
});

test('lz4: hostile blocks are errors, never writes out of bounds', () => {
  const dst = new Uint8Array(8);
  assert.throws(() => lz4Decompress(new Uint8Array([0x10, 0x61, 0x05, 0x00]), dst), TilesError, 'offset past the start');
  assert.throws(() => lz4Decompress(new Uint8Array([0x10, 0x61, 0x00, 0x00]), dst), TilesError, 'offset 0');
  assert.throws(() => lz4Decompress(new Uint8Array([0xf0, 0xff, 0xff]), dst), TilesError, 'literal length runs off');
  assert.throws(() => lz4Decompress(new Uint8Array([0x10, 0x61, 0x01, 0x00, 0x0f, 0xff]), dst), TilesError, 'match too long');
  assert.throws(() => lz4Decompress(new Uint8Array([0x20, 0x61, 0x61]), dst), TilesError, 'short output');
});

test('header: magic, version, format and sizes are checked', () => {
  const ok = payload(3, 10, 5, 64, []);
  assert.deepEqual(parseTilesHeader(ok), { format: 'gray8', width: 10, height: 5, tile: 64, count: 0 });
  assert.throws(() => parseTilesHeader(ok.subarray(0, 10)), TilesError);
  const bad = ok.slice();
  bad[3] = 9;
  assert.throws(() => parseTilesHeader(bad), /unknown pixel format 9/);
  const zero = ok.slice();
  zero[8] = 0;
  assert.throws(() => parseTilesHeader(zero), /zero/);
});

test('applyTiles: a keyframe of edge tiles, then a delta, exact bytes and changed rectangles', () => {
  // 5x3 gray8 with 4-pixel tiles: tiles (0,0) 4x3 and (1,0) 1x3.
  const a = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const b = new Uint8Array([13, 14, 15]);
  const key = payload(3, 5, 3, 4, [{ col: 0, row: 0, encoding: 0, data: a }, { col: 1, row: 0, encoding: 0, data: b }]);
  const { picture, rects } = applyTiles(key, null, true);
  assert.deepEqual([...picture.data], [1, 2, 3, 4, 13, 5, 6, 7, 8, 14, 9, 10, 11, 12, 15]);
  assert.deepEqual(rects, [{ x: 0, y: 0, width: 4, height: 3 }, { x: 4, y: 0, width: 1, height: 3 }]);
  const delta = payload(3, 5, 3, 4, [{ col: 1, row: 0, encoding: 0, data: new Uint8Array([7, 7, 7]) }]);
  const next = applyTiles(delta, picture, false);
  assert.equal(next.picture, picture, 'applied in place');
  assert.deepEqual([...picture.data.subarray(0, 5)], [1, 2, 3, 4, 7]);
  assert.deepEqual(next.rects, [{ x: 4, y: 0, width: 1, height: 3 }]);
  assert.deepEqual(picture.valueAt(4, 2), [7]);
  assert.equal(picture.valueAt(5, 0), null);
});

test('applyTiles: gray16 byte planes, per-tile range, and odd offsets of raw tiles', () => {
  // 2x1 gray16, values 0x0102 and 0x0fff: planes = high bytes [01, 0f], low bytes [02, ff].
  const planes = new Uint8Array([0x01, 0x0f, 0x02, 0xff]);
  // As an LZ4 block: one sequence of 4 literals.
  const block = new Uint8Array([0x40, ...planes]);
  const { picture } = applyTiles(payload(4, 2, 1, 64, [{ col: 0, row: 0, encoding: 2, data: block }]), null, true);
  assert.deepEqual([...picture.samples16()], [0x0102, 0x0fff]);
  assert.deepEqual(picture.range(), [0x0102, 0x0fff]);
  // Raw gray16 behind a 1-byte... record: the data sits at an even offset here; the range is right either way.
  const raw = applyTiles(payload(4, 2, 1, 64, [{ col: 0, row: 0, encoding: 0, data: new Uint8Array([5, 0, 9, 0]) }]), picture, false);
  assert.deepEqual(raw.picture.range(), [5, 9]);
});

test('applyTiles: bad payloads are errors', () => {
  const tile = { col: 0, row: 0, encoding: 0, data: new Uint8Array(4) };
  assert.throws(() => applyTiles(payload(3, 2, 2, 64, [tile]), null, false), /delta/, 'a delta without a picture');
  assert.throws(() => applyTiles(payload(3, 2, 2, 64, [{ ...tile, col: 1 }]), null, true), /outside/);
  assert.throws(() => applyTiles(payload(3, 2, 2, 64, [{ ...tile, data: new Uint8Array(3) }]), null, true), /3 bytes/);
  assert.throws(() => applyTiles(payload(3, 2, 2, 64, [{ ...tile, encoding: 7 }]), null, true), /encoding 7/);
  const good = payload(3, 2, 2, 64, [tile]);
  assert.throws(() => applyTiles(good.subarray(0, good.length - 1), null, true), /truncated/);
  const extra = new Uint8Array(good.length + 1);
  extra.set(good);
  assert.throws(() => applyTiles(extra, null, true), /after the last tile/);
});

test('display: RGB exact and opaque, gray through the window table', () => {
  const rgba = applyTiles(payload(1, 1, 1, 64, [{ col: 0, row: 0, encoding: 0, data: new Uint8Array([10, 20, 30, 40]) }]), null, true).picture;
  const out = new Uint32Array(1);
  toDisplay(rgba, { x: 0, y: 0, width: 1, height: 1 }, out, null);
  assert.deepEqual([...new Uint8Array(out.buffer)], [10, 20, 30, 255]);
  const lut = windowTable({ low: 100, high: 200 });
  const g = (/** @type {number} */ v) => lut[v] & 0xff;
  assert.equal(g(0), 0);
  assert.equal(g(100), 0);
  assert.equal(g(150), 128);
  assert.equal(g(200), 255);
  assert.equal(g(65535), 255);
  assert.equal(lut[150] >>> 24, 255, 'opaque');
  assert.deepEqual(bounds([{ x: 4, y: 0, width: 1, height: 3 }, { x: 0, y: 2, width: 2, height: 2 }]), { x: 0, y: 0, width: 5, height: 4 });
});

test('paint size: the picture\'s own when it fits, else the largest of its aspect that fits', () => {
  assert.deepEqual(paintSize(640, 480, { width: 1280, height: 800 }), { width: 640, height: 480 });
  assert.deepEqual(paintSize(640, 480, null), { width: 640, height: 480 });
  assert.deepEqual(paintSize(640, 480, { width: 0, height: 0 }), { width: 640, height: 480 }, 'not laid out yet');
  assert.deepEqual(paintSize(4096, 4096, { width: 1280, height: 720 }), { width: 720, height: 720 });
  assert.deepEqual(paintSize(4000, 10, { width: 100, height: 100 }), { width: 100, height: 1 }, 'never 0');
});

test('sampling: each painted pixel the source pixel under its centre; source spans map to painted spans', () => {
  const { at, first } = sampling(10, 4);
  assert.deepEqual([...at], [1, 3, 6, 8]);
  assert.deepEqual([...first], [0, 0, 1, 1, 2, 2, 2, 3, 3, 4, 4]);
  // Source [4, 6) holds no painted pixel's source: nothing to repaint there.
  assert.equal(first[6] - first[4], 0);
  const same = sampling(5, 5);
  assert.deepEqual([...same.at], [0, 1, 2, 3, 4]);
  assert.deepEqual([...same.first], [0, 1, 2, 3, 4, 5]);
});

test('display scaled: the sampled pixels, exact, for every format', () => {
  const w = 4;
  const h = 2;
  const xs = sampling(w, 2).at; // columns 1, 3
  const ys = sampling(h, 1).at; // row 1
  const gray = { format: 'gray8', width: w, height: h, data: new Uint8Array([0, 1, 2, 3, 10, 11, 12, 13]) };
  const out = new Uint32Array(2);
  toDisplayScaled(/** @type {any} */ (gray), { x: 0, y: 0, width: 2, height: 1 }, out, 2, xs, ys, null);
  assert.deepEqual([...out], [0xff0b0b0b, 0xff0d0d0d]);
  const rgba = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) rgba.set([i, 100 + i, 200 + i, 7], i * 4);
  toDisplayScaled(/** @type {any} */ ({ format: 'rgba8', width: w, height: h, data: rgba }), { x: 0, y: 0, width: 2, height: 1 }, out, 2, xs, ys, null);
  // Pixel (1, 1) = 5 and (3, 1) = 7, opaque, R in the low byte.
  assert.deepEqual([...out], [(0xff000000 | (205 << 16) | (105 << 8) | 5) >>> 0, (0xff000000 | (207 << 16) | (107 << 8) | 7) >>> 0]);
  const rgb = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) rgb.set([i, 50 + i, 150 + i], i * 3);
  toDisplayScaled(/** @type {any} */ ({ format: 'rgb8', width: w, height: h, data: rgb }), { x: 1, y: 0, width: 1, height: 1 }, out, 2, xs, ys, null);
  assert.equal(out[1], (0xff000000 | (157 << 16) | (57 << 8) | 7) >>> 0);
  const g16 = new Uint8Array(w * h * 2);
  new DataView(g16.buffer).setUint16(2 * 7, 1000, true);
  const lut = windowTable({ low: 0, high: 1000 });
  toDisplayScaled(/** @type {any} */ ({ format: 'gray16le', width: w, height: h, data: g16 }), { x: 0, y: 0, width: 2, height: 1 }, out, 2, xs, ys, lut);
  assert.deepEqual([...out], [0xff000000, 0xffffffff]);
});
