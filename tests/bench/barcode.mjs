// The capture-time barcode (drawn by tests/bench/source.py) read back from painted pixels.
//
// Layout, for a picture `width` pixels wide: cells of `cell` x `cell` pixels,
// cell = max(16, floor(width / 34 / 16) * 16) (floor(width / 34) below 544 pixels); two rows of 32 cells at the top (rows 0..cell and
// cell..2*cell), starting one cell from the left edge. White (Y 235) = 1, black (Y 16) = 0; MSB
// first: row 0 holds bits 63..32, row 1 bits 31..0 of a 64-bit word = (t48 << 16) | check16(t48),
// t48 = the low 48 bits of CLOCK_REALTIME in microseconds when the frame was made.
//
// Used in two places: the viewer's worker (install(), through the opt-in hook next to paint() in
// web/decode-worker.js) and the WebRTC baseline page (readStrip()).

const TWO48 = 2 ** 48;

/** @param {number} width */
export function cellSize(width) {
  // Narrower than 34 cells of 16: cells of whatever fits (512 wide: 15).
  return width >= 34 * 16 ? Math.max(16, Math.floor(width / 34 / 16) * 16) : Math.floor(width / 34);
}

/** @param {number} t48 */
export function check16(t48) {
  const lo = t48 % 65536;
  const mid = Math.floor(t48 / 65536) % 65536;
  const hi = Math.floor(t48 / 2 ** 32) % 65536;
  return (lo ^ mid ^ hi ^ 0xa5a5) & 0xffff;
}

/** CLOCK_REALTIME in microseconds, as this context sees it. */
export function nowUs() {
  return (performance.timeOrigin + performance.now()) * 1000;
}

/** Milliseconds from the barcode's time `t48` to `atUs` (both CLOCK_REALTIME), modulo 2^48 us. */
export function latencyMs(t48, atUs) {
  const now48 = ((Math.round(atUs) % TWO48) + TWO48) % TWO48;
  let d = now48 - t48;
  if (d < -TWO48 / 2) d += TWO48;
  if (d > TWO48 / 2) d -= TWO48;
  return d / 1000;
}

/**
 * Decodes the 64 cells from two pixel rows (RGBA, `width` wide, 4 rows each, taken around the
 * middle of each cell row). Returns t48, or null when the check fails (a misread).
 * @param {Uint8ClampedArray} row0
 * @param {Uint8ClampedArray} row1
 * @param {number} width
 * @param {number} rowsPerBand rows in each band (averaged)
 * @param {number} [streamWidth] the picture's own width, when it was painted `width` wide
 */
export function decodeBands(row0, row1, width, rowsPerBand, streamWidth = width) {
  const cell = cellSize(streamWidth);
  // A picture painted smaller than the stream (the viewer paints lossless pictures at the size
  // shown): cell centres scaled to the painted pixels.
  const scale = width / streamWidth;
  let hi = 0; // bits 63..32
  let lo = 0; // bits 31..0
  for (let r = 0; r < 2; r++) {
    const band = r === 0 ? row0 : row1;
    let word = 0;
    for (let i = 0; i < 32; i++) {
      const cx = Math.round((cell * (1 + i) + (cell >> 1)) * scale);
      let sum = 0;
      let n = 0;
      for (let y = 0; y < rowsPerBand; y++) {
        for (let x = cx - 2; x < cx + 2; x++) {
          const o = (y * width + x) * 4;
          sum += band[o] + band[o + 1] + band[o + 2];
          n += 3;
        }
      }
      word = word * 2 + (sum / n >= 128 ? 1 : 0);
    }
    if (r === 0) hi = word;
    else lo = word;
  }
  // t48 = hi (32 bits) << 16 | lo >>> 16; check = lo & 0xffff
  const t48 = hi * 65536 + Math.floor(lo / 65536);
  const check = lo % 65536;
  return check === check16(t48) ? t48 : null;
}

/**
 * Reads the barcode from a 2D context holding a `width` x `height` picture at (0, 0), painted
 * from a `streamWidth` wide one (the same, unless painted smaller).
 * @param {CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D} ctx
 * @param {number} width
 * @param {number} [streamWidth]
 * @returns {number | null} t48
 */
export function readStrip(ctx, width, streamWidth = width) {
  const cell = cellSize(streamWidth);
  const scale = width / streamWidth;
  const rows = 4;
  const b0 = ctx.getImageData(0, Math.round((cell >> 1) * scale) - 2, width, rows).data;
  const b1 = ctx.getImageData(0, Math.round((cell + (cell >> 1)) * scale) - 2, width, rows).data;
  return decodeBands(b0, b1, width, rows, streamWidth);
}

/**
 * Draws a barcode for `tUs` (CLOCK_REALTIME microseconds), for the self-check.
 * @param {CanvasRenderingContext2D | OffscreenCanvasRenderingContext2D} ctx
 * @param {number} width
 * @param {number} tUs
 */
export function drawStrip(ctx, width, tUs) {
  const cell = cellSize(width);
  const t48 = ((Math.round(tUs) % TWO48) + TWO48) % TWO48;
  const hi = Math.floor(t48 / 65536);
  const lo = (t48 % 65536) * 65536 + check16(t48);
  for (let r = 0; r < 2; r++) {
    const word = r === 0 ? hi : lo;
    for (let i = 0; i < 32; i++) {
      const bit = Math.floor(word / 2 ** (31 - i)) % 2;
      ctx.fillStyle = bit ? 'rgb(235,235,235)' : 'rgb(16,16,16)';
      ctx.fillRect(cell * (1 + i), r * cell, cell, cell);
    }
  }
  return t48;
}

/**
 * Reads the barcode of every frame a <video> presents (requestVideoFrameCallback draws the strip
 * into a canvas and reads it, as the viewer's worker does after painting): `sample(t48, atUs, meta)`
 * for each new picture, at the callback's time; `misread()` for one it could not read; `presented()`
 * on every callback. The WebRTC baseline's page and the viewer's <video> (bench viewer.html).
 * @param {HTMLVideoElement} video
 * @param {{sample: (t48: number, atUs: number, meta: VideoFrameCallbackMetadata) => void, misread: () => void, presented?: () => void}} on
 */
export function watchVideo(video, on) {
  const canvas = document.createElement('canvas');
  const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d', { alpha: false, willReadFrequently: true }));
  let lastT48 = -1;
  /** @type {VideoFrameRequestCallback} */
  const onFrame = (_now, meta) => {
    on.presented?.();
    const w = meta.width;
    const h = 2 * cellSize(w);
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    ctx.drawImage(video, 0, 0, w, h, 0, 0, w, h);
    const atUs = nowUs();
    const t48 = readStrip(ctx, w);
    if (t48 === null) on.misread();
    else if (t48 !== lastT48) {
      lastT48 = t48;
      on.sample(t48, atUs, meta);
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

/**
 * The worker side. web/decode-worker.js calls install(scope) when the page opts in (a
 * {type: 'bench-hook', module} message); the function returned runs right after every paint().
 * The page reads (and clears) the samples with {type: 'bench-read', id}; the reply is
 * {type: 'bench-data', id, samples: [{latencyMs, frameLatencyMs, t48}], misreads, readCostMs,
 * perfMinusDateMs}: latencyMs at paint (right after drawImage), frameLatencyMs at the worker's next
 * animation frame (when the OffscreenCanvas's picture is committed for display: the same point as
 * the WebRTC page's requestVideoFrameCallback). {type: 'bench-selftest', id, tUs, width} paints a known time into a scratch
 * canvas and reads it back with the same code.
 * @param {DedicatedWorkerGlobalScope} scope
 */
export function install(scope) {
  /** @type {{latencyMs: number, frameLatencyMs: number | null, t48: number}[]} */
  let samples = [];
  /** @type {typeof samples} painted, waiting for the next animation frame */
  let awaiting = [];
  const onAnimationFrame = () => {
    const atUs = nowUs();
    for (const s of awaiting) s.frameLatencyMs = latencyMs(s.t48, atUs);
    awaiting = [];
  };
  const raf = typeof scope.requestAnimationFrame === 'function' ? scope.requestAnimationFrame.bind(scope) : null;
  let misreads = 0;
  let readCost = 0;
  let lastT48 = -1;
  scope.addEventListener('message', (event) => {
    const m = event.data;
    if (m?.type === 'bench-read') {
      const perfMinusDateMs = performance.timeOrigin + performance.now() - Date.now();
      const done = samples.filter((x) => !awaiting.includes(x));
      scope.postMessage({ type: 'bench-data', id: m.id, samples: done, misreads, readCostMs: readCost, perfMinusDateMs });
      samples = samples.filter((x) => awaiting.includes(x));
      misreads = 0;
      readCost = 0;
    } else if (m?.type === 'bench-selftest') {
      const c = new OffscreenCanvas(m.width, 4 * cellSize(m.width));
      const cx = /** @type {OffscreenCanvasRenderingContext2D} */ (c.getContext('2d', { alpha: false }));
      const want = drawStrip(cx, m.width, m.tUs);
      const got = readStrip(cx, m.width);
      scope.postMessage({ type: 'bench-selftest', id: m.id, want, got, ok: want === got });
    }
  });
  /**
   * @param {OffscreenCanvasRenderingContext2D} ctx
   * @param {number} width
   * @param {number} height
   */
  return (ctx, width, height, streamWidth = width) => {
    const paintedAtUs = nowUs();
    if (width < 34 * 8 || height < (2 * cellSize(streamWidth) * width) / streamWidth) return;
    const t48 = readStrip(ctx, width, streamWidth);
    readCost += (nowUs() - paintedAtUs) / 1000;
    if (t48 === null) {
      misreads++;
      return;
    }
    if (t48 === lastT48) return;
    lastT48 = t48;
    const sample = { latencyMs: latencyMs(t48, paintedAtUs), frameLatencyMs: null, t48 };
    samples.push(sample);
    if (samples.length > 100000) samples.shift();
    if (raf) {
      if (awaiting.length === 0) raf(onAnimationFrame);
      awaiting.push(sample);
    }
  };
}
