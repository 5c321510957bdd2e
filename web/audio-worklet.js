// The sound's player: an AudioWorkletProcessor on the browser's audio thread. The decode worker
// (sound.js) sends it decoded chunks over a MessagePort; it plays them through its jitter
// buffer (audio-buffer.js) and says, a few times a second, which sample it played when, so that
// the worker knows the sound's latency and its offset from the picture.

import { JitterBuffer } from './audio-buffer.js';

/** Reports go out every this many render quanta (128 frames each: ~85 ms at 48 kHz). */
const REPORT_EVERY = 32;

// The AudioWorkletGlobalScope's names (not in TypeScript's DOM library).
const scope = /** @type {any} */ (globalThis);

class RfbAudioProcessor extends scope.AudioWorkletProcessor {
  constructor() {
    super();
    this.buffer = new JitterBuffer(scope.sampleRate);
    /** The decode worker's port. @type {MessagePort | null} */
    this.worker = null;
    this.quanta = 0;
    /** The last quantum that played sound, and its context time. @type {import('./audio-buffer.js').Played} */
    this.lastPlayed = null;
    this.lastPlayedTime = 0;
    /** The last packet whose first sample played: its arrival and the context time it played at. @type {{arrivedMs: number, contextTime: number} | null} */
    this.lastStarted = null;
    /** The earliest render moment since the last report (see process()). */
    this.renderMin = Infinity;
    /** What the last report said of the timeline (see process()). */
    this.reported = { underruns: 0, skipped: 0, playing: false };
    /** The context time of the first sample it ever played. @type {number | null} */
    this.firstPlayed = null;
    /** A recording of the output for `tap` (tests, meters): first channel. @type {{samples: Float32Array, at: number, start: number | null} | null} */
    this.tap = null;
    this.port.onmessage = (/** @type {MessageEvent} */ event) => {
      if (event.data?.type === 'connect' && event.data.port) {
        this.worker = event.data.port;
        /** @type {MessagePort} */ (this.worker).onmessage = (/** @type {MessageEvent} */ e) => this.fromWorker(e.data);
      }
    };
  }

  /** @param {any} m */
  fromWorker(m) {
    if (m?.type === 'pcm') {
      this.buffer.push({ planes: m.planes, timestampUs: m.timestampUs, arrivedMs: m.arrivedMs });
    } else if (m?.type === 'clear') {
      this.buffer.clear();
    } else if (m?.type === 'tap' && !this.tap) {
      const frames = Math.max(1, Math.min(Math.round((m.ms * scope.sampleRate) / 1000), scope.sampleRate * 30));
      this.tap = { samples: new Float32Array(frames), at: 0, start: null };
    }
  }

  /**
   * @param {Float32Array[][]} _inputs
   * @param {Float32Array[][]} outputs
   */
  process(_inputs, outputs) {
    // When this quantum is rendered on the wall clock (Date.now(): the one clock this scope
    // has), for browsers without an output timestamp; the earliest of a report's quanta (a
    // callback renders several quanta at once, late ones only ever later).
    this.renderMin = Math.min(this.renderMin, Date.now() - scope.currentTime * 1000);
    const out = outputs[0];
    const played = this.buffer.read(out);
    if (played) {
      this.lastPlayed = played;
      this.lastPlayedTime = scope.currentTime;
      if (this.firstPlayed === null) this.firstPlayed = scope.currentTime + (played.started?.at ?? 0) / scope.sampleRate;
      if (played.started) {
        this.lastStarted = { arrivedMs: played.started.arrivedMs, contextTime: scope.currentTime + played.started.at / scope.sampleRate };
      }
    }
    const tap = this.tap;
    if (tap && out[0]) {
      if (tap.start === null) tap.start = scope.currentTime;
      const n = Math.min(out[0].length, tap.samples.length - tap.at);
      tap.samples.set(out[0].subarray(0, n), tap.at);
      tap.at += n;
      if (tap.at === tap.samples.length) {
        this.worker?.postMessage({ type: 'tap', samples: tap.samples, startContextTime: tap.start, sampleRate: scope.sampleRate }, [tap.samples.buffer]);
        this.tap = null;
      }
    }
    const b = this.buffer;
    // Its timeline moved (it ran dry, started again after filling up, or cut sound out: a burst,
    // a drain): the worker hears of it now, not up to a report later, so that pictures held for
    // the sound follow it at once.
    const moved = b.underruns !== this.reported.underruns || b.skipped !== this.reported.skipped
      || (b.playing && played !== null) !== this.reported.playing;
    if ((++this.quanta % REPORT_EVERY === 0 || moved) && this.worker) {
      this.reported = { underruns: b.underruns, skipped: b.skipped, playing: b.playing && played !== null };
      this.worker.postMessage({
        type: 'report',
        // The last sample that played: its timestamp, its packet's arrival, and the context time
        // of its render quantum.
        played: this.lastPlayed,
        playedContextTime: this.lastPlayedTime,
        started: this.lastStarted,
        firstPlayed: this.firstPlayed,
        depthMs: b.depthMs,
        targetMs: b.targetMs,
        underruns: b.underruns,
        skippedMs: (b.skipped * 1000) / scope.sampleRate,
        playing: b.playing,
        renderEpochMs: this.renderMin,
        contextTime: scope.currentTime,
      });
      this.renderMin = Infinity;
      this.lastPlayed = null;
      this.lastStarted = null;
    }
    return true;
  }
}

scope.registerProcessor('rfb-audio', RfbAudioProcessor);
