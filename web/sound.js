// The sound's side of the decode worker (docs/protocol.md, "Audio"): Opus packets into
// WebCodecs' AudioDecoder, decoded chunks over a MessagePort to the page's AudioWorklet
// (audio-worklet.js), and the figures that say how it goes: latency, underruns, and the offset
// between what is heard and what is seen.

import { parseAudioConfig } from './protocol.js';

/** How many recent measurements the medians are taken over. */
const RECENT = 32;
/**
 * The sound's offset moved by more than this (an underrun, a cut-back burst): the pictures held
 * for it are timed again.
 */
const SYNC_MOVED_MS = 2;
/** The audio clock's mapping is the median of this many samples (500 ms apart): one late sample does not move it. */
const CLOCK_SAMPLES = 8;
/**
 * Without an output timestamp (Firefox), the audio clock's mapping is the median of the
 * worklet's last few reports of when it rendered (~85 ms apart): a clock that slips on a busy
 * machine is followed within half a second. The page's thread reads the clock too late when it
 * is busy itself: measured in Firefox with one busy core, the median of its readings was
 * 75-320 ms off for seconds after such a slip, and pictures came that much before their sound.
 */
const RENDER_REPORTS = 5;
/** Reports whose clock mapping is kept for recordings (~40 s). */
const CLOCK_LOG = 480;
/** A picture is held back for the sound at most this long (a sound later than this is a fault, not a delay to copy). */
export const MAX_SYNC_HOLD_MS = 150;
/** A recording (`tap`) that has not come back this long after its end has failed. */
const TAP_GRACE_MS = 3000;
/** The sound's clock counts as running while the worklet reported sound played within this long. */
const REPORT_STALE_MS = 500;
/** Packets whose arrival is kept for `lateP99Ms` (5 s of 10 ms packets). */
const TRANSITS = 500;

/**
 * @typedef {object} AudioStats
 * @property {'none' | 'unsupported' | 'waiting-for-click' | 'playing' | 'off'} state `none`: the
 *   stream has no sound; `waiting-for-click`: the browser needs a click or key first; `off`:
 *   the viewer turned sound off (?audio=0)
 * @property {number} channels
 * @property {number} packetsReceived
 * @property {number} packetsLost packets the element sent that never came (gaps in `seq`: a
 *   datagram lost or overtaken, a packet the server dropped for this viewer)
 * @property {number} datagrams packets that came as WebTransport datagrams (`audio=datagram`)
 * @property {number | null} lateP99Ms how much later than the quickest of the last 500 packets
 *   (a packet's arrival minus its timestamp) the 99th percentile came: the delay that a queue on
 *   the link, or a packet waiting for a lost one to be sent again, adds now and then
 * @property {number} framesDecoded decoded chunks (one per Opus packet)
 * @property {number} decodeErrors packets the decoder refused (skipped; the decoder starts over)
 * @property {number} underruns times the player ran dry
 * @property {number | null} depthMs the jitter buffer's depth
 * @property {number | null} targetMs the depth it keeps
 * @property {number} skippedMs sound thrown away to catch up: after a burst, and the depth drained
 *   back to the target's
 * @property {number | null} latencyMs median, a packet's arrival to its first sample played
 *   (handed to the browser's audio output by the worklet)
 * @property {number | null} outputLatencyMs what the browser says its audio output adds after
 *   that (AudioContext baseLatency + outputLatency): the sound is heard this much later
 * @property {number | null} avOffsetMs median, sound heard minus picture painted for the same
 *   timestamp: positive when the sound is later than the picture
 * @property {number | null} startMs from the click that started the sound to its first sample
 *   heard
 * @property {number | null} videoHoldMs median time a decoded picture waited for its sound
 *   (A/V sync: only while sound plays)
 */

/**
 * The 99th percentile of `transits` above their minimum; null with fewer than 50.
 * @param {number[]} transits
 */
export function lateP99(transits) {
  if (transits.length < 50) return null;
  const sorted = [...transits].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) * 0.99)] - sorted[0];
}

/** @param {number[]} values */
function median(values) {
  if (!values.length) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

/** @template T @param {T[]} list @param {T} value @param {number} [max] */
function keep(list, value, max = RECENT) {
  list.push(value);
  if (list.length > max) list.shift();
}

/** Epoch milliseconds: comparable between the worker, the page and the audio clock. */
export function epochNow() {
  return performance.timeOrigin + performance.now();
}

/**
 * The packets given to the audio decoder and not yet out of it, in order: their own timestamps
 * and arrivals. A decoded chunk takes its packet's timestamp from here, not from the decoder:
 * Chromium's AudioDecoder counts the samples it has put out from the first packet's timestamp,
 * so every packet skipped before it (a decoder behind, a datagram lost) would label all later
 * sound earlier than it is, and the picture would be held for sound that is already heard
 * (measured: 380 ms off after 38 skipped 10 ms packets on a busy machine).
 */
export class DecodeOrder {
  constructor() {
    /** @type {{timestampUs: number, arrivedMs: number}[]} */
    this.pending = [];
  }

  /** @param {number} timestampUs @param {number} arrivedMs */
  sent(timestampUs, arrivedMs) {
    this.pending.push({ timestampUs, arrivedMs });
    if (this.pending.length > RECENT * 2) this.pending.shift();
  }

  /**
   * The packet that a decoded chunk came from: the one of the chunk's timestamp where the
   * decoder keeps them (packets before it gave nothing out), else the oldest (one chunk per
   * packet, in order); null when none is pending.
   * @param {number} outputTimestampUs
   */
  take(outputTimestampUs) {
    const i = this.pending.findIndex((p) => p.timestampUs === outputTimestampUs);
    if (i > 0) this.pending.splice(0, i);
    return this.pending.shift() ?? null;
  }

  clear() {
    this.pending = [];
  }
}

export class Sound {
  /**
   * @param {(message: {type: 'audio', state: 'available', channels: number}) => void} tell the
   *   page: a stream with sound (it shows "click for sound")
   */
  constructor(tell) {
    this.tell = tell;
    /** @type {import('./protocol.js').AudioConfig | null} */
    this.config = null;
    /** @type {AudioDecoder | null} */
    this.decoder = null;
    /** The page's AudioWorklet, once the page has sound running. @type {MessagePort | null} */
    this.port = null;
    /** Epoch ms at which context time 0 is heard (the page's AudioContext). @type {number | null} */
    this.contextEpochMs = null;
    /** The output's latency after the worklet, ms. @type {number | null} */
    this.outputLatencyMs = null;
    /** The page's recent clock samples (medians above). @type {number[]} */
    this.clockSamples = [];
    /** Whether the clock samples are output timestamps (see clock()). */
    this.clockExact = true;
    /** [context time (s), contextEpochMs] at each report, for recordings (heardClock()). @type {[number, number][]} */
    this.clockLog = [];
    /**
     * Epoch ms at which the worklet rendered context time 0, from its last reports (the
     * earliest of each report's quanta; see audio-worklet.js).
     * @type {number[]}
     */
    this.renderSamples = [];
    /** @type {number[]} */
    this.outputSamples = [];
    /**
     * Heard epoch ms minus timestamp ms of the sound, from the worklet's last report: what the
     * pictures' hold follows. Exact to the sample (the worklet says which sample it played at
     * which context time), so the last report is the one to follow, at once.
     * @type {number | null}
     */
    this.syncOffset = null;
    /** Called when `syncOffset` moved: the held pictures wait anew (decode-worker.js). */
    this.onSyncMoved = () => {};
    this.unsupported = false;
    this.counters = { packetsReceived: 0, packetsLost: 0, datagrams: 0, framesDecoded: 0, decodeErrors: 0 };
    /** The last packet's `seq` (gaps count as lost). @type {number | null} */
    this.lastSeq = null;
    /** Arrival minus timestamp (ms) of the last TRANSITS packets. @type {number[]} */
    this.transits = [];
    /** The worklet's last report. @type {any} */
    this.report = null;
    /** @type {number[]} */
    this.latencies = [];
    /** Heard epoch ms minus timestamp ms, sound and picture. @type {number[]} */
    this.audioOffsets = [];
    /** @type {number[]} */
    this.videoOffsets = [];
    /** @type {number[]} */
    this.holds = [];
    /** When the worklet last reported (epoch ms). */
    this.reportAt = 0;
    /** When the worklet last reported sound played (epoch ms). */
    this.playedAt = 0;
    /** Hold pictures back to meet their sound (the viewer's avSync option). */
    this.sync = true;
    /** When the page asked for sound, and how long until the first sample was heard. @type {number | null} */
    this.askedEpochMs = null;
    /** @type {number | null} */
    this.startMs = null;
    this.order = new DecodeOrder();
    /** A pending `tap` request's resolver. @type {((value: any) => void) | null} */
    this.tapReply = null;
  }

  /** @param {import('./protocol.js').Message} message */
  configure(message) {
    let config;
    try {
      config = parseAudioConfig(message);
    } catch (e) {
      console.error(`rfb: ${e instanceof Error ? e.message : e}`);
      return;
    }
    const same = this.config && this.config.channels === config.channels && this.config.sampleRate === config.sampleRate;
    this.config = config;
    if (!same || !this.decoder) this.openDecoder();
    this.tell({ type: 'audio', state: 'available', channels: config.channels });
  }

  openDecoder() {
    const config = this.config;
    this.closeDecoder();
    if (!config) return;
    if (typeof AudioDecoder === 'undefined') {
      this.unsupported = true;
      return;
    }
    try {
      const decoder = new AudioDecoder({
        output: (data) => this.decoded(data),
        error: (e) => {
          // A broken packet closes the decoder: count it and start a fresh one for the next
          // packet (Opus packets stand alone); the picture never notices.
          this.counters.decodeErrors++;
          console.warn(`rfb: audio decoder error, skipping: ${e.message}`);
          if (this.decoder === decoder) this.decoder = null;
        },
      });
      decoder.configure({ codec: 'opus', sampleRate: config.sampleRate, numberOfChannels: config.channels });
      this.decoder = decoder;
    } catch (e) {
      this.unsupported = true;
      console.error(`rfb: cannot decode Opus here: ${e instanceof Error ? e.message : e}`);
    }
  }

  closeDecoder() {
    const d = this.decoder;
    this.decoder = null;
    this.order.clear();
    if (d && d.state !== 'closed') d.close();
  }

  /** @param {import('./protocol.js').AudioPacket} packet */
  packet(packet) {
    this.counters.packetsReceived++;
    if (packet.datagram) this.counters.datagrams++;
    if (this.lastSeq !== null && packet.seq > this.lastSeq + 1) this.counters.packetsLost += packet.seq - this.lastSeq - 1;
    this.lastSeq = packet.seq;
    keep(this.transits, epochNow() - packet.timestampUs / 1000, TRANSITS);
    const config = this.config;
    if (!config || packet.configId !== config.configId || this.unsupported) return;
    // Nothing plays it yet (no click): decoding would only heat the machine.
    if (!this.port) return;
    if (!this.decoder) this.openDecoder();
    const decoder = this.decoder;
    if (!decoder || decoder.state !== 'configured') return;
    if (decoder.decodeQueueSize > 8) return; // the decoder is behind: late sound is no use
    try {
      decoder.decode(new EncodedAudioChunk({ type: 'key', timestamp: packet.timestampUs, data: packet.payload }));
      this.order.sent(packet.timestampUs, epochNow());
    } catch (e) {
      this.counters.decodeErrors++;
      this.openDecoder();
    }
  }

  /** @param {AudioData} data */
  decoded(data) {
    this.counters.framesDecoded++;
    const from = this.order.take(data.timestamp);
    const timestampUs = from?.timestampUs ?? data.timestamp;
    const arrivedMs = from?.arrivedMs ?? epochNow();
    const port = this.port;
    if (!port) {
      data.close();
      return;
    }
    const planes = [];
    for (let c = 0; c < data.numberOfChannels; c++) {
      const plane = new Float32Array(data.numberOfFrames);
      data.copyTo(plane, { planeIndex: c, format: 'f32-planar' });
      planes.push(plane);
    }
    data.close();
    port.postMessage({ type: 'pcm', planes, timestampUs, arrivedMs }, planes.map((p) => p.buffer));
  }

  /**
   * The page's AudioWorklet is playing: its port, and when the page asked for sound.
   * @param {MessagePort} port
   * @param {number} askedEpochMs
   */
  connect(port, askedEpochMs) {
    this.port = port;
    this.askedEpochMs = askedEpochMs;
    port.onmessage = (event) => this.fromWorklet(event.data);
  }

  /**
   * The page's reading of the audio clock (audio-output.js).
   * @param {number} contextEpochMs
   * @param {number} outputLatencyMs
   * @param {boolean} [exact] from the output's own timestamp (else from currentTime, read on
   *   the page's thread)
   */
  clock(contextEpochMs, outputLatencyMs, exact = true) {
    if (exact !== this.clockExact) {
      this.clockSamples = [];
      this.clockExact = exact;
    }
    keep(this.clockSamples, contextEpochMs, CLOCK_SAMPLES);
    keep(this.outputSamples, outputLatencyMs, CLOCK_SAMPLES);
    this.outputLatencyMs = median(this.outputSamples);
    // Without an output timestamp, the worklet's own reading of when it renders is the better
    // one, once it has reported (fromWorklet()).
    const rendered = median(this.renderSamples);
    this.contextEpochMs = exact || rendered === null ? median(this.clockSamples) : rendered + (this.outputLatencyMs ?? 0);
  }

  /** @param {any} m */
  fromWorklet(m) {
    if (m?.type === 'tap') {
      const reply = this.tapReply;
      this.tapReply = null;
      reply?.({ samples: m.samples, sampleRate: m.sampleRate, ...this.heardClock(m.startContextTime, m.samples.length / m.sampleRate, m.sampleRate) });
      return;
    }
    if (m?.type !== 'report') return;
    this.report = m;
    this.reportAt = epochNow();
    const outputLatencyMs = this.outputLatencyMs;
    if (!this.clockExact && Number.isFinite(m.renderEpochMs) && outputLatencyMs !== null) {
      // Date.now() there, the monotonic clock here: their difference now puts it on this clock.
      keep(this.renderSamples, m.renderEpochMs + this.reportAt - Date.now(), RENDER_REPORTS);
      this.contextEpochMs = /** @type {number} */ (median(this.renderSamples)) + outputLatencyMs;
    }
    if (this.contextEpochMs === null) return;
    if (typeof m.contextTime === 'number') keep(this.clockLog, [m.contextTime, this.contextEpochMs], CLOCK_LOG);
    if (typeof m.firstPlayed === 'number' && this.startMs === null && this.askedEpochMs !== null) {
      this.startMs = this.contextEpochMs + m.firstPlayed * 1000 - this.askedEpochMs;
    }
    const before = this.syncOffset;
    if (m.played) {
      const offset = this.contextEpochMs + m.playedContextTime * 1000 - m.played.timestampUs / 1000;
      keep(this.audioOffsets, offset);
      this.syncOffset = offset;
      this.playedAt = this.reportAt;
    }
    if (this.syncOffset !== null && (before === null || Math.abs(this.syncOffset - before) > SYNC_MOVED_MS)) this.onSyncMoved();
    if (m.started) {
      const played = this.contextEpochMs + m.started.contextTime * 1000 - (this.outputLatencyMs ?? 0);
      keep(this.latencies, played - m.started.arrivedMs);
    }
  }

  /**
   * When a recording's samples were heard, by the audio clock's mapping at the time each was
   * played (a clock that slipped during the recording moves the samples after the slip).
   * @param {number} startContextTime the first sample's context time (s)
   * @param {number} seconds the recording's length
   * @param {number} sampleRate
   * @returns {{startEpochMs: number | null, clock: {sample: number, epochMs: number}[]}} `clock`:
   *   from each `sample` on, sample i is heard at epochMs + (i - sample) / sampleRate s
   */
  heardClock(startContextTime, seconds, sampleRate) {
    const end = startContextTime + seconds;
    let first = this.contextEpochMs;
    /** @type {{sample: number, epochMs: number}[]} */
    const later = [];
    for (const [t, epoch] of this.clockLog) {
      if (t <= startContextTime) first = epoch;
      else if (t < end) later.push({ sample: Math.round((t - startContextTime) * sampleRate), epochMs: epoch + t * 1000 });
    }
    if (first === null) return { startEpochMs: null, clock: [] };
    const startEpochMs = first + startContextTime * 1000;
    return { startEpochMs, clock: [{ sample: 0, epochMs: startEpochMs }, ...later] };
  }

  /**
   * A picture reached the canvas: with the sound's heard time this gives the A/V offset.
   * @param {number} timestampUs
   * @param {number} paintedEpochMs
   */
  painted(timestampUs, paintedEpochMs) {
    if (!this.port) return;
    keep(this.videoOffsets, paintedEpochMs - timestampUs / 1000);
  }

  /**
   * How long a decoded picture should wait so that it shows when the sound of its timestamp is
   * heard (0 when no sound plays, or it plays ahead).
   * @param {number} timestampUs
   * @param {number} nowEpochMs
   * @param {boolean} [count] false: a held picture timed again (not a new hold for the stats)
   */
  videoHoldMs(timestampUs, nowEpochMs, count = true) {
    // Held while sound plays, and through an underrun's short silence (its sound comes later
    // still: showing the picture now would put it further ahead).
    if (!this.sync || !this.port || nowEpochMs - this.playedAt > REPORT_STALE_MS) return 0;
    const audioOffset = this.syncOffset;
    if (audioOffset === null) return 0;
    const hold = Math.min(MAX_SYNC_HOLD_MS, timestampUs / 1000 + audioOffset - nowEpochMs);
    if (hold <= 1) return 0;
    if (count) keep(this.holds, hold);
    return hold;
  }

  /**
   * Records the next `ms` of what the worklet plays (its first channel).
   * @param {number} ms
   * @returns {Promise<{samples: Float32Array, sampleRate: number, startEpochMs: number | null, clock: {sample: number, epochMs: number}[]}>}
   */
  tap(ms) {
    if (!this.port) return Promise.reject(new Error('sound is not playing'));
    if (this.tapReply) return Promise.reject(new Error('a recording is under way'));
    return new Promise((resolve, reject) => {
      // The worklet records only while the browser runs its output: say so rather than wait.
      const timer = setTimeout(() => {
        this.tapReply = null;
        reject(new Error(`the sound output did not play ${ms} ms within ${ms + TAP_GRACE_MS} ms (${JSON.stringify(this.report)})`));
      }, ms + TAP_GRACE_MS);
      this.tapReply = (value) => {
        clearTimeout(timer);
        resolve(value);
      };
      this.port?.postMessage({ type: 'tap', ms });
    });
  }

  /** The connection is gone: what is buffered belongs to the old stream. */
  reset() {
    this.syncOffset = null;
    this.lastSeq = null;
    this.transits = [];
    this.closeDecoder();
    this.config = null;
    this.port?.postMessage({ type: 'clear' });
  }

  /**
   * @param {boolean} wanted false: the viewer turned sound off
   * @returns {AudioStats}
   */
  stats(wanted) {
    const r = this.report;
    const a = median(this.audioOffsets);
    const v = median(this.videoOffsets);
    /** @type {AudioStats['state']} */
    let state = 'none';
    if (!wanted) state = 'off';
    else if (this.unsupported) state = 'unsupported';
    else if (this.config) state = this.port ? 'playing' : 'waiting-for-click';
    return {
      state,
      channels: this.config?.channels ?? 0,
      ...this.counters,
      lateP99Ms: lateP99(this.transits),
      underruns: r?.underruns ?? 0,
      depthMs: r ? r.depthMs : null,
      targetMs: r ? r.targetMs : null,
      skippedMs: r?.skippedMs ?? 0,
      latencyMs: median(this.latencies),
      outputLatencyMs: this.outputLatencyMs,
      avOffsetMs: a !== null && v !== null ? a - v : null,
      startMs: this.startMs,
      videoHoldMs: this.port ? median(this.holds) : null,
    };
  }
}
