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
