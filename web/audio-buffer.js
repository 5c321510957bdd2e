// The sound's jitter buffer (docs/protocol.md, "Audio"): decoded chunks in, render quanta out, in
// the AudioWorklet (audio-worklet.js). It holds a small, adaptive depth: packets that arrive
// unevenly still play evenly, and a depth that grows (a burst after a stall) is cut back, so
// that the sound stays as close to live as the link allows. Pure: unit-tested in node.

/**
 * The depth it keeps at least (ms): its start. At 20 ms (one opusenc packet) the bench had an
 * underrun in 30 s at steady state on loopback (720p30, WebSocket); at 30 ms none in 60 s, for
 * 4 ms more latency.
 */
export const MIN_TARGET_MS = 30;
/** The depth it starts with: one 20 ms packet (opusenc's default) and some jitter. */
export const START_TARGET_MS = 30;
/** The most it waits for: a link worse than this stutters rather than lags further. */
export const MAX_TARGET_MS = 200;
/** An underrun raises the target by this much. */
export const UNDERRUN_STEP_MS = 10;
/** Without an underrun for this long, the target comes down by `DECAY_STEP_MS`. */
export const DECAY_AFTER_MS = 5000;
export const DECAY_STEP_MS = 5;
/** A depth over the target by more than this is cut back to the target (latest wins). */
export const EXCESS_MS = 60;

/**
 * @typedef {object} Chunk
 * @property {Float32Array[]} planes one per channel, all the same length
 * @property {number} timestampUs of its first sample (the stream's running time)
 * @property {number} arrivedMs when its packet arrived (epoch ms: performance.timeOrigin + now)
 */

/**
 * What one render quantum played: the first sample's timestamp, or null for silence; and when a
 * chunk's first sample played in it, that chunk's arrival and its sample's index in the quantum
 * (a packet's latency: from its arrival to its first sample played).
 * @typedef {{timestampUs: number, started: {arrivedMs: number, at: number} | null} | null} Played
 */

export class JitterBuffer {
  /** @param {number} sampleRate the output's (the AudioContext's) */
  constructor(sampleRate) {
    this.sampleRate = sampleRate;
    /** @type {Chunk[]} */
    this.chunks = [];
    /** Frames of the first chunk already played. */
    this.offset = 0;
    /** Frames buffered. */
    this.depth = 0;
    this.playing = false;
    this.targetMs = START_TARGET_MS;
    /** Output frames since the last underrun or decay step. */
    this.steady = 0;
    this.underruns = 0;
    /** Frames thrown away to cut the depth back. */
    this.skipped = 0;
    /** Frames played (not silence). */
    this.played = 0;
  }

  /** @param {number} ms */
  frames(ms) {
    return Math.round((ms * this.sampleRate) / 1000);
  }

  get depthMs() {
    return (this.depth * 1000) / this.sampleRate;
  }

  /** @param {Chunk} chunk */
  push(chunk) {
    const n = chunk.planes[0]?.length ?? 0;
    if (n === 0) return;
    this.chunks.push(chunk);
    this.depth += n;
    if (this.playing && this.depth > this.frames(this.targetMs + EXCESS_MS)) {
      this.skip(this.depth - this.frames(this.targetMs));
    }
  }

  /** Drops `n` frames from the front. @param {number} n */
  skip(n) {
    this.skipped += n;
    this.depth -= n;
    while (n > 0 && this.chunks.length) {
      const left = this.chunks[0].planes[0].length - this.offset;
      if (n >= left) {
        n -= left;
        this.chunks.shift();
        this.offset = 0;
      } else {
        this.offset += n;
        n = 0;
      }
    }
  }

  /** Forgets what is buffered (a new stream, a reconnect). */
  clear() {
    this.chunks = [];
    this.offset = 0;
    this.depth = 0;
    this.playing = false;
  }

  /**
   * Fills one render quantum. Channels the stream lacks repeat its last one (mono on stereo
   * speakers); silence while filling up, and after an underrun until the new target is reached.
   * @param {Float32Array[]} out the output's channels, all the same length
   * @returns {Played}
   */
  read(out) {
    const n = out[0]?.length ?? 0;
    for (const channel of out) channel.fill(0);
    if (n === 0) return null;
    if (!this.playing) {
      if (this.depth < this.frames(this.targetMs)) return null;
      this.playing = true;
    }
    this.steady += n;
    if (this.steady >= this.frames(DECAY_AFTER_MS)) {
      this.steady = 0;
      this.targetMs = Math.max(MIN_TARGET_MS, this.targetMs - DECAY_STEP_MS);
    }
    const first = this.chunks[0];
    /** @type {Played} */
    const played = first
      ? { timestampUs: first.timestampUs + ((this.offset * 1e6) / this.sampleRate), started: null }
      : null;
    let written = 0;
    while (written < n && this.chunks.length) {
      const chunk = this.chunks[0];
      if (this.offset === 0 && played) played.started = { arrivedMs: chunk.arrivedMs, at: written };
      const take = Math.min(n - written, chunk.planes[0].length - this.offset);
      for (let c = 0; c < out.length; c++) {
        const plane = chunk.planes[Math.min(c, chunk.planes.length - 1)];
        out[c].set(plane.subarray(this.offset, this.offset + take), written);
      }
      written += take;
      this.offset += take;
      if (this.offset === chunk.planes[0].length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    this.depth -= written;
    this.played += written;
    if (written < n) {
      // Ran dry: wait for more than before (the link is less even than the target assumed).
      this.underruns++;
      this.playing = false;
      this.steady = 0;
      this.targetMs = Math.min(MAX_TARGET_MS, this.targetMs + UNDERRUN_STEP_MS);
    }
    return written > 0 ? played : null;
  }
}
