// The paint-path bench's worker (tests/bench/paint.mjs): decodes a recorded H.264 clip at its
// frame rate with WebCodecs, as the viewer's worker does, and hands every decoded frame to the
// screen by one path:
//   2d              drawImage(VideoFrame) on the transferred OffscreenCanvas (the viewer's path)
//   2d-desync       the same on a `desynchronized` 2d context
//   bitmaprenderer  createImageBitmap(VideoFrame), then transferFromImageBitmap
//   webgl           texImage2D(VideoFrame) into a texture drawn as one quad (WebGL 2, else 1)
//   track           the VideoFrame transferred to the page, written to a MediaStreamTrackGenerator
//                   that a <video> plays (the compositor's video layer, the path WebRTC takes)
// Counts frames decoded, handed over, and shown (canvas paths: a worker animation frame that
// commits a new picture; `track`: the page's requestVideoFrameCallback), and decode -> shown.

/** @type {any} */
const scope = self;

const state = {
  decoded: 0,
  handed: 0,
  shown: 0,
  /** Frames handed over but replaced before an animation frame committed them. */
  replaced: 0,
  /** decode output -> shown, ms. @type {number[]} */
  latency: [],
  /** Time spent in the paint call, ms. @type {number[]} */
  paintMs: [],
  errors: /** @type {string[]} */ ([]),
};
/** Output time (timeOrigin-based ms) of the frame handed over last and not yet shown. */
let pendingAt = /** @type {number | null} */ (null);
let pendingCount = 0;

const now = () => performance.timeOrigin + performance.now();

/**
 * @param {string} path
 * @param {OffscreenCanvas | null} canvas
 * @returns {(frame: VideoFrame) => void | Promise<void>}
 */
function painter(path, canvas) {
  if (path === 'track') {
    return (frame) => {
      state.handed += 1;
      scope.postMessage({ type: 'frame', frame, at: now() }, [frame]);
    };
  }
  const c = /** @type {OffscreenCanvas} */ (canvas);
  const fit = (/** @type {VideoFrame} */ f) => {
    if (c.width !== f.displayWidth || c.height !== f.displayHeight) {
      c.width = f.displayWidth;
      c.height = f.displayHeight;
      return true;
    }
    return false;
  };
  if (path === '2d' || path === '2d-desync') {
    const ctx = /** @type {OffscreenCanvasRenderingContext2D} */ (c.getContext('2d', { alpha: false, desynchronized: path === '2d-desync' }));
    return (frame) => {
      fit(frame);
      ctx.drawImage(frame, 0, 0, frame.displayWidth, frame.displayHeight);
      frame.close();
    };
  }
  if (path === 'bitmaprenderer') {
    const ctx = /** @type {ImageBitmapRenderingContext} */ (c.getContext('bitmaprenderer'));
    return async (frame) => {
      const bitmap = await createImageBitmap(frame);
      frame.close();
      ctx.transferFromImageBitmap(bitmap);
    };
  }
  if (path === 'webgl') {
    const gl = /** @type {WebGLRenderingContext} */ (c.getContext('webgl2', { alpha: false, antialias: false, depth: false })
      ?? c.getContext('webgl', { alpha: false, antialias: false, depth: false }));
    if (!gl) throw new Error('no WebGL on an OffscreenCanvas here');
    const shader = (/** @type {number} */ type, /** @type {string} */ src) => {
      const s = /** @type {WebGLShader} */ (gl.createShader(type));
      gl.shaderSource(s, src);
      gl.compileShader(s);
      return s;
    };
    const program = /** @type {WebGLProgram} */ (gl.createProgram());
    gl.attachShader(program, shader(gl.VERTEX_SHADER,
      'attribute vec2 p; varying vec2 uv; void main() { uv = vec2(p.x + 1.0, 1.0 - p.y) * 0.5; gl_Position = vec4(p, 0.0, 1.0); }'));
    gl.attachShader(program, shader(gl.FRAGMENT_SHADER,
      'precision mediump float; varying vec2 uv; uniform sampler2D t; void main() { gl_FragColor = texture2D(t, uv); }'));
    gl.linkProgram(program);
    gl.useProgram(program);
    gl.bindBuffer(gl.ARRAY_BUFFER, gl.createBuffer());
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const loc = gl.getAttribLocation(program, 'p');
    gl.enableVertexAttribArray(loc);
    gl.vertexAttribPointer(loc, 2, gl.FLOAT, false, 0, 0);
    gl.bindTexture(gl.TEXTURE_2D, gl.createTexture());
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
    gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
    return (frame) => {
      if (fit(frame)) gl.viewport(0, 0, c.width, c.height);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, frame);
      gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
      frame.close();
    };
  }
  throw new Error(`unknown paint path ${path}`);
}

/** Canvas paths: an animation frame after a paint commits it to the screen. */
function watchCommits() {
  const tick = () => {
    if (pendingAt !== null) {
      state.shown += 1;
      state.replaced += pendingCount - 1;
      state.latency.push(now() - pendingAt);
      pendingAt = null;
      pendingCount = 0;
    }
    scope.requestAnimationFrame(tick);
  };
  scope.requestAnimationFrame(tick);
}

/**
 * @param {{clip: ArrayBuffer, fps: number, codec: string, path: string, canvas: OffscreenCanvas | null}} m
 */
function start(m) {
  // The clip: [1 byte key][4 bytes length, big-endian][access unit], ...
  const view = new DataView(m.clip);
  /** @type {{key: boolean, data: Uint8Array}[]} */
  const units = [];
  for (let o = 0; o < view.byteLength;) {
    const len = view.getUint32(o + 1);
    units.push({ key: view.getUint8(o) === 1, data: new Uint8Array(m.clip, o + 5, len) });
    o += 5 + len;
  }
  const paint = painter(m.path, m.canvas);
  if (m.path !== 'track') watchCommits();
  const decoder = new VideoDecoder({
    output: async (frame) => {
      state.decoded += 1;
      const t0 = performance.now();
      const at = now();
      try {
        await paint(frame);
      } catch (e) {
        if (state.errors.length < 5) state.errors.push(String(e));
        return;
      }
      state.paintMs.push(performance.now() - t0);
      if (m.path !== 'track') {
        state.handed += 1;
        pendingAt = at;
        pendingCount += 1;
      }
    },
    error: (e) => { if (state.errors.length < 5) state.errors.push(String(e)); },
  });
  decoder.configure({ codec: m.codec, optimizeForLatency: true });
  const interval = 1000 / m.fps;
  const t0 = performance.now();
  let i = 0;
  const feed = () => {
    // Every frame due by now (a late timer catches up, as a live stream would arrive).
    while (t0 + i * interval <= performance.now()) {
      const u = units[i % units.length];
      decoder.decode(new EncodedVideoChunk({ type: u.key ? 'key' : 'delta', timestamp: Math.round((i * 1e6) / m.fps), data: u.data }));
      i += 1;
    }
    setTimeout(feed, Math.max(0, t0 + i * interval - performance.now()));
  };
  feed();
}

scope.onmessage = (/** @type {MessageEvent} */ e) => {
  const m = e.data;
  if (m.type === 'start') {
    try {
      start(m);
    } catch (err) {
      state.errors.push(String(err));
    }
  } else if (m.type === 'read') {
    // Figures since the last read (counters reset).
    scope.postMessage({ type: 'read', id: m.id, state: { ...state } });
    Object.assign(state, { decoded: 0, handed: 0, shown: 0, replaced: 0, latency: [], paintMs: [] });
  }
};
