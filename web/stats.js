// Rolling stream figures over a sliding window (1 s by default). Pure: time is passed in (ms).

/** Samples `(time, value)` of the last `windowMs` milliseconds. */
export class SlidingWindow {
  /** @param {number} [windowMs] */
  constructor(windowMs = 1000) {
    if (!(windowMs > 0)) throw new RangeError(`window must be > 0 ms, got ${windowMs}`);
    this.windowMs = windowMs;
    /** @type {number[]} */
    this.times = [];
    /** @type {number[]} */
    this.values = [];
    this.head = 0;
    this.total = 0;
  }

  /**
   * @param {number} now ms, never less than the previous call's
   * @param {number} [value]
   */
  push(now, value = 1) {
    this.prune(now);
    this.times.push(now);
    this.values.push(value);
    this.total += value;
  }

  /** Forgets samples older than the window: those at or before `now - windowMs`. */
  prune(/** @type {number} */ now) {
    const oldest = now - this.windowMs;
    while (this.head < this.times.length && this.times[this.head] <= oldest) {
      this.total -= this.values[this.head];
      this.head++;
    }
    // Compact now and then so that the arrays do not grow forever.
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.values = this.values.slice(this.head);
      this.head = 0;
    }
    if (this.head === this.times.length) this.total = 0; // no float drift when empty
  }

  /** @param {number} now */
  count(now) {
    this.prune(now);
    return this.times.length - this.head;
  }

  /** @param {number} now */
  sum(now) {
    this.prune(now);
    return this.total;
  }

  /** Per second over the window. @param {number} now */
  rate(now) {
    return (this.sum(now) * 1000) / this.windowMs;
  }

  /** Mean of the values in the window, 0 when empty. @param {number} now */
  mean(now) {
    const n = this.count(now);
    return n === 0 ? 0 : this.total / n;
  }

  /** Largest value in the window, 0 when empty. @param {number} now */
  max(now) {
    this.prune(now);
    let max = 0;
    for (let i = this.head; i < this.values.length; i++) max = Math.max(max, this.values[i]);
    return max;
  }

  clear() {
    this.times = [];
    this.values = [];
    this.head = 0;
    this.total = 0;
  }
}

/**
 * @typedef {object} RateSnapshot
 * @property {number} fps decoded (painted) frames per second
 * @property {number} bitrateBps received payload bits per second
 * @property {number} decodeLatencyMs mean time from receiving a frame to painting it
 */

/** fps, bitrate and decode latency of one stream. */
export class StreamRates {
  /** @param {number} [windowMs] */
  constructor(windowMs = 1000) {
    this.received = new SlidingWindow(windowMs);
    this.decoded = new SlidingWindow(windowMs);
  }

  /**
   * @param {number} now ms
   * @param {number} bytes payload size
   */
  frameReceived(now, bytes) {
    this.received.push(now, bytes);
  }

  /**
   * @param {number} now ms
   * @param {number} latencyMs from receiving the frame to having it decoded
   */
  frameDecoded(now, latencyMs) {
    this.decoded.push(now, latencyMs);
  }

  /**
   * @param {number} now ms
   * @returns {RateSnapshot}
   */
  snapshot(now) {
    return {
      fps: this.decoded.count(now) * (1000 / this.decoded.windowMs),
      bitrateBps: this.received.rate(now) * 8,
      decodeLatencyMs: this.decoded.mean(now),
    };
  }

  clear() {
    this.received.clear();
    this.decoded.clear();
  }
}

// --- the server's telemetry (`rfb.stats` `stats`, docs/protocol.md) ------------------------------

/**
 * The server's figures for this client, sent every second. Latencies in microseconds: `latency_*`
 * from render() in the element to decoded in this viewer, `paint_*` from render() to painted. A
 * figure the server did not send (or sent as something else than a number) is null.
 * @typedef {object} ServerStats
 * @property {string} transport `websocket` or `webtransport`
 * @property {number | null} latency_p50_us
 * @property {number | null} latency_p95_us
 * @property {number | null} latency_max_us
 * @property {number | null} paint_p50_us
 * @property {number | null} paint_p95_us
 * @property {number | null} fps
 * @property {number | null} bitrate_bps
 * @property {number | null} delivered_bps what this client acknowledged in the last second
 * @property {number | null} target_bps the encoder's target under rate control; null when off
 * @property {number | null} frames_dropped
 * @property {number | null} queued_bytes
 * @property {number | null} keyframe_requests
 * @property {number | null} rendition the rendition this client gets (0: the sink pad's)
 * @property {number | null} rendition_switches times it moved to another rendition
 * @property {number | null} capacity_bps what its link was measured to carry at least; null when
 *   not measured
 */

/** @type {readonly (keyof ServerStats)[]} */
export const SERVER_STATS_NUMBERS = Object.freeze([
  'latency_p50_us', 'latency_p95_us', 'latency_max_us', 'paint_p50_us', 'paint_p95_us',
  'fps', 'bitrate_bps', 'delivered_bps', 'target_bps', 'frames_dropped', 'queued_bytes', 'keyframe_requests',
  'rendition', 'rendition_switches', 'capacity_bps',
]);

/**
 * The ServerStats in a `stats` message, or null when it is not one. Lenient about the figures
 * (a server with no acks yet may leave the latencies out): unusable ones become null.
 * @param {{kind?: string, [field: string]: any}} message
 * @returns {ServerStats | null}
 */
export function parseServerStats(message) {
  if (message?.kind !== 'stats') return null;
  /** @type {any} */
  const out = { transport: typeof message.transport === 'string' ? message.transport : 'unknown' };
  for (const name of SERVER_STATS_NUMBERS) {
    const v = message[name];
    out[name] = typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null;
  }
  return /** @type {ServerStats} */ (out);
}

/**
 * Timed samples of the last `windowMs` milliseconds in a fixed-size ring: the oldest sample goes
 * when the ring is full, whatever its age. Pure: time is passed in (ms).
 * @template T
 */
export class History {
  /**
   * @param {number} [windowMs]
   * @param {number} [capacity] most samples kept
   */
  constructor(windowMs = 60_000, capacity = 128) {
    if (!(windowMs > 0)) throw new RangeError(`window must be > 0 ms, got ${windowMs}`);
    if (!(Number.isInteger(capacity) && capacity > 0)) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    this.windowMs = windowMs;
    this.capacity = capacity;
    this.times = new Float64Array(capacity);
    /** @type {(T | undefined)[]} undefined: a free slot (its value let go) */
    this.values = new Array(capacity);
    /** index of the oldest sample */
    this.start = 0;
    this.length = 0;
  }

  /**
   * @param {number} now ms, never less than the previous call's
   * @param {T} value
   */
  push(now, value) {
    this.prune(now);
    if (this.length === this.capacity) {
      this.values[this.start] = undefined;
      this.start = (this.start + 1) % this.capacity;
      this.length--;
    }
    const i = (this.start + this.length) % this.capacity;
    this.times[i] = now;
    this.values[i] = value;
    this.length++;
  }

  /** Forgets samples at or before `now - windowMs`. @param {number} now */
  prune(now) {
    const oldest = now - this.windowMs;
    while (this.length > 0 && this.times[this.start] <= oldest) {
      this.values[this.start] = undefined;
      this.start = (this.start + 1) % this.capacity;
      this.length--;
    }
  }

  /**
   * The samples in the window, oldest first, with their age at `now`.
   * @param {number} now
   * @returns {{ageMs: number, value: T}[]}
   */
  entries(now) {
    this.prune(now);
    const out = [];
    for (let k = 0; k < this.length; k++) {
      const i = (this.start + k) % this.capacity;
      out.push({ ageMs: now - this.times[i], value: /** @type {T} */ (this.values[i]) });
    }
    return out;
  }

  clear() {
    this.values = new Array(this.capacity);
    this.start = 0;
    this.length = 0;
  }
}

/**
 * One point of the latency graph: the server's render() -> decoded percentiles `ageMs` ago.
 * @typedef {{ageMs: number, p50Us: number, p95Us: number}} LatencySample
 */

/**
 * The top of a graph's scale for values up to `maxMs`: the next of 1, 2, 5, 10, 20, 50, ... ms at
 * or above it (at least `minMs`), so that the label is a round number.
 * @param {number} maxMs
 * @param {number} [minMs]
 */
export function graphScaleMs(maxMs, minMs = 1) {
  const target = Number.isFinite(maxMs) ? Math.max(maxMs, minMs) : minMs;
  let decade = 10 ** Math.floor(Math.log10(target));
  for (;;) {
    for (const step of [1, 2, 5]) {
      // The epsilon keeps 10 ** -1 * 5 and friends from missing an exact match.
      if (step * decade >= target * (1 - 1e-12)) return Number((step * decade).toPrecision(12));
    }
    decade *= 10;
  }
}

/**
 * Where the samples of a sparkline go in a `width` x `height` box: x from the window's start (0,
 * `windowMs` ago) to now (`width`), y from `scale` (0, the top) down to 0 (`height`). Values
 * above the scale are drawn at the top.
 * @param {{ageMs: number, value: number}[]} samples
 * @param {{windowMs: number, width: number, height: number, scale: number}} box
 * @returns {[number, number][]}
 */
export function sparklinePoints(samples, { windowMs, width, height, scale }) {
  return samples.map(({ ageMs, value }) => {
    const x = width * (1 - Math.min(Math.max(ageMs / windowMs, 0), 1));
    const y = height * (1 - Math.min(Math.max(value / scale, 0), 1));
    return [x, y];
  });
}
