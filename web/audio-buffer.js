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
/**
 * Once there was no underrun for `QUIET_MS`, the target comes down every `DECAY_AFTER_MS` by half
 * of what the buffer could spare in that time: its lowest depth less `DECAY_MARGIN_MS` (at least
 * `DECAY_STEP_MS`, and only if it could spare that). A machine that stalled the sound for a while
 * (a busy CPU) raised the target; once it is quiet again the target follows within a few windows
 * (150 ms back to 30 in ~20 s), while stalls that keep coming keep their depth. In a simulation of
 * random stalls (20-120 ms, 2 s apart on average, for 60 s; web/test/audio.test.js) a decay of
 * 5 ms each 5 s without a drain (this buffer's first rule) had 9.0 underruns a run and a depth of
 * 88 ms 15 s after the stalls stopped; this rule 10.6 and 44 ms; without `QUIET_MS`, 17.2
 * underruns.
 */
export const QUIET_MS = 10_000;
export const DECAY_AFTER_MS = 3000;
export const DECAY_STEP_MS = 5;
export const DECAY_MARGIN_MS = 10;
/** A depth over the target by more than this is cut back to it at once (latest wins). */
export const EXCESS_MS = 60;
/**
 * The depth is kept to what the target asks, not what it happened to fill up to: every this long,
 * a lowest depth that stayed more than `DRAIN_SLACK_MS` above the target less
 * `LOW_BELOW_TARGET_MS` is drained, at most `DRAIN_MAX_MS` at a time (a few per cent faster than
 * real time). Without it, a target that came down (or a burst under `EXCESS_MS`) kept its latency
 * for good. At the least target this keeps the lowest depth of 20 ms that starting at 30 ms gives
 * with 10 or 20 ms packets.
 */
export const LOW_BELOW_TARGET_MS = 10;
export const DRAIN_EVERY_MS = 500;
export const DRAIN_SLACK_MS = 5;
export const DRAIN_MAX_MS = 20;
/**
 * Sound taken out is joined by a cross-fade this long, at the offset (within the allowed range)
 * where the sound after the cut looks most like the sound before it: a cut of whole pitch periods,
 * as NetEQ's "accelerate" does, rather than a click.
 */
export const JOIN_MS = 2.5;
/** A burst cut back to the target may leave up to this much more, to find its join (a pitch period of 100 Hz). */
export const JOIN_RANGE_MS = 10;

/**
 * @typedef {object} Chunk
 * @property {Float32Array[]} planes one per channel, all the same length
 * @property {number} timestampUs of its first sample (the stream's running time)
 * @property {number} arrivedMs when its packet arrived (epoch ms: performance.timeOrigin + now)
 * @property {boolean} [joined] a join after a cut, or what follows it: not a packet's start
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
    /** Output frames since the last underrun (or the start). */
    this.sinceUnderrun = 0;
    /** The lowest depth (frames) since then: what the buffer could have done without. */
    this.lowSinceDecay = Infinity;
    /** Output frames since the last drain, and the lowest depth since then. */
    this.sinceDrain = 0;
    this.lowSinceDrain = Infinity;
    this.underruns = 0;
    /** Frames thrown away to cut the depth back (bursts and drains). */
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
      const excess = this.depth - this.frames(this.targetMs);
      this.cut(excess - this.frames(JOIN_RANGE_MS), excess);
    }
  }

  /**
   * The lowest depth (frames) kept for a target: the depth dips below the target as a packet
   * plays out before the next one comes (10-20 ms for opusenc's packets).
   */
  expectedLowFrames(targetMs = this.targetMs) {
    return Math.max(0, this.frames(targetMs - LOW_BELOW_TARGET_MS));
  }

  /** An underrun: the windows start again from the buffer it fills up. */
  restartWindows() {
    this.sinceDrain = 0;
    this.lowSinceDrain = Infinity;
    this.steady = 0;
    this.lowSinceDecay = Infinity;
  }

  /**
   * Takes out between `min` and `max` frames from the front (what plays next), at the length where
   * channel 0 after the cut best continues what came before it, joined by a cross-fade of
   * `JOIN_MS`. Fewer if fewer are buffered.
   * @param {number} min
   * @param {number} max
   * @returns {number} frames taken out
   */
  cut(min, max) {
    const join = this.frames(JOIN_MS);
    max = Math.min(Math.round(max), this.depth - join);
    min = Math.max(1, Math.min(Math.round(min), max));
    if (max < 1) return 0;
    const channels = this.chunks[0]?.planes.length ?? 0;
    const head = this.front(0, max + join);
    // The best join: normalised correlation of the `join` frames at the cut with those after it.
    let best = max;
    let bestScore = -Infinity;
    let energy = 0;
    for (let i = 0; i < join; i++) energy += head[min + i] * head[min + i];
    let e0 = 0;
    for (let i = 0; i < join; i++) e0 += head[i] * head[i];
    for (let l = min; l <= max; l++) {
      let dot = 0;
      for (let i = 0; i < join; i++) dot += head[i] * head[l + i];
      const score = dot / Math.sqrt(e0 * energy + 1e-12);
      // Ties (silence) take the longest cut.
      if (score >= bestScore) {
        bestScore = score;
        best = l;
      }
      if (l < max) energy += head[l + join] * head[l + join] - head[l] * head[l];
    }
    const timestampUs = this.frontTimestampUs() + (best * 1e6) / this.sampleRate;
    const planes = [];
    for (let c = 0; c < channels; c++) {
      const x = c === 0 ? head : this.front(c, best + join);
      const joined = new Float32Array(join);
      for (let i = 0; i < join; i++) {
        const w = (i + 1) / (join + 1);
        joined[i] = x[i] * (1 - w) + x[best + i] * w;
      }
      planes.push(joined);
    }
    this.skip(best + join);
    this.skipped -= join;
    // What follows the join starts mid-packet: its own chunk from here, so the join goes in front.
    const first = this.chunks[0];
    if (first && this.offset > 0) {
      this.chunks[0] = {
        planes: first.planes.map((p) => p.subarray(this.offset)),
        timestampUs: first.timestampUs + (this.offset * 1e6) / this.sampleRate,
        arrivedMs: first.arrivedMs,
        joined: true,
      };
      this.offset = 0;
    }
    this.chunks.unshift({ planes, timestampUs, arrivedMs: first?.arrivedMs ?? 0, joined: true });
    this.depth += join;
    return best;
  }

  /** The first `n` frames of channel `c` from the front (zeros past the end). @param {number} c @param {number} n */
  front(c, n) {
    const out = new Float32Array(n);
    let at = 0;
    let offset = this.offset;
    for (const chunk of this.chunks) {
      if (at >= n) break;
      const plane = chunk.planes[Math.min(c, chunk.planes.length - 1)];
      const take = Math.min(n - at, plane.length - offset);
      out.set(plane.subarray(offset, offset + take), at);
      at += take;
      offset = 0;
    }
    return out;
  }

  frontTimestampUs() {
    const first = this.chunks[0];
    return first ? first.timestampUs + (this.offset * 1e6) / this.sampleRate : 0;
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
    const first = this.chunks[0];
    /** @type {Played} */
    const played = first
      ? { timestampUs: first.timestampUs + ((this.offset * 1e6) / this.sampleRate), started: null }
      : null;
    let written = 0;
    while (written < n && this.chunks.length) {
      const chunk = this.chunks[0];
      if (this.offset === 0 && played && !chunk.joined) played.started = { arrivedMs: chunk.arrivedMs, at: written };
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
      this.sinceUnderrun = 0;
      this.playing = false;
      this.restartWindows();
      this.targetMs = Math.min(MAX_TARGET_MS, this.targetMs + UNDERRUN_STEP_MS);
    } else {
      this.adapt(n);
    }
    return written > 0 ? played : null;
  }

  /**
   * After a quantum played in full: the depth's low-water marks, the target's decay and the
   * drain of a depth the target does not ask for.
   * @param {number} n frames just played
   */
  adapt(n) {
    this.lowSinceDecay = Math.min(this.lowSinceDecay, this.depth);
    this.lowSinceDrain = Math.min(this.lowSinceDrain, this.depth);
    this.steady += n;
    this.sinceDrain += n;
    this.sinceUnderrun += n;
    if (this.steady >= this.frames(DECAY_AFTER_MS)) {
      const spareMs = (this.lowSinceDecay * 1000) / this.sampleRate - DECAY_MARGIN_MS;
      if (spareMs >= DECAY_STEP_MS && this.sinceUnderrun >= this.frames(QUIET_MS)) {
        this.targetMs = Math.max(MIN_TARGET_MS, this.targetMs - Math.max(DECAY_STEP_MS, Math.floor(spareMs / 2)));
      }
      this.steady = 0;
      this.lowSinceDecay = Infinity;
    }
    if (this.sinceDrain >= this.frames(DRAIN_EVERY_MS)) {
      const excess = this.lowSinceDrain - this.expectedLowFrames();
      if (excess > this.frames(DRAIN_SLACK_MS)) {
        const most = Math.min(excess, this.frames(DRAIN_MAX_MS));
        this.cut(most / 2, most);
      }
      this.sinceDrain = 0;
      this.lowSinceDrain = Infinity;
    }
  }
}
