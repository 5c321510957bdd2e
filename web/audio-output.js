// The page's end of the sound (docs/protocol.md, "Audio"): the AudioContext and its worklet
// (audio-worklet.js), the "click for sound" prompt that browsers' autoplay rules call for, and
// mute and volume. The decode worker decodes; the worklet plays what the worker sends it over a
// MessagePort of its own, so that no sample passes through the page's main thread.

/** How often the page tells the worker how the audio clock maps to the wall clock. */
const CLOCK_EVERY_MS = 500;
/** See sendClock(). */
const FIREFOX = typeof navigator !== 'undefined' && /\bFirefox\//.test(navigator.userAgent);
/** Clock ticks without an output timestamp before the viewer does without one. */
const CLOCK_MISSES = 4;
/** An AudioContext that has not started within this long will not (no output device). */
const START_TIMEOUT_MS = 3000;

/**
 * @typedef {object} AudioOutputOptions
 * @property {(message: import('./decode-worker.js').ToWorker, transfer?: Transferable[]) => void} post to the worker
 * @property {(text: string) => void} notice a message to show for a while
 * @property {HTMLMediaElement} [media] WebRTC: the <video> that plays the sound itself; starting
 *   the sound unmutes it (no AudioContext, no worklet)
 */

export class AudioOutput {
  /**
   * @param {HTMLElement} root the viewer's box (the prompt goes in it)
   * @param {AudioOutputOptions} options
   */
  constructor(root, options) {
    this.root = root;
    this.options = options;
    /** @type {AudioContext | null} */
    this.context = null;
    /** @type {GainNode | null} */
    this.gain = null;
    /** @type {Promise<void> | null} */
    this.starting = null;
    this.muted = false;
    this.volume = 1;
    /** WebRTC: the <video> plays unmuted. */
    this.playing = false;
    /** Clock ticks that found no output timestamp yet. */
    this.clockMisses = 0;
    /** @type {ReturnType<typeof setInterval> | null} */
    this.clockTimer = null;
    const doc = root.ownerDocument;
    this.button = doc.createElement('button');
    this.button.className = 'rfb-sound';
    this.button.type = 'button';
    Object.assign(this.button.style, {
      position: 'absolute',
      top: '12px',
      left: '50%',
      transform: 'translateX(-50%)',
      zIndex: '2',
      display: 'none',
      padding: '8px 16px',
      border: '1px solid #fff8',
      borderRadius: '6px',
      background: '#000c',
      color: '#fff',
      font: '15px/1.3 system-ui, sans-serif',
      cursor: 'pointer',
    });
    this.button.addEventListener('click', (event) => {
      event.stopPropagation();
      if (this.running) this.setMuted(!this.muted);
      else this.start();
    });
    root.append(this.button);
    /** The first click or key anywhere on the page starts the sound (a user gesture). */
    this.onGesture = () => {
      if (this.button.style.display !== 'none') this.start();
    };
    doc.addEventListener('pointerdown', this.onGesture, { capture: true });
    doc.addEventListener('keydown', this.onGesture, { capture: true });
  }

  /** The stream has sound: ask for the click that lets the browser play it. */
  available() {
    if (this.running) return;
    this.button.textContent = '🔇 Click for sound';
    this.button.title = 'The browser plays sound only after a click or a key press on the page';
    this.button.style.display = 'block';
  }

  /** Starts the sound; call it from a click or key handler (the browser's autoplay rule). */
  start() {
    if (!this.starting) {
      this.starting = this.open().catch((e) => {
        this.starting = null;
        const why = e instanceof Error ? e.message : String(e);
        console.error(`rfb: cannot play sound: ${why}`);
        this.options.notice(`cannot play sound: ${why}`);
      });
    } else if (this.context && this.context.state !== 'running') {
      this.context.resume().then(() => this.showState());
    }
    return this.starting;
  }

  async open() {
    const media = this.options.media;
    if (media) {
      media.muted = this.muted;
      media.volume = this.volume;
      await media.play();
      this.playing = true;
      this.showState();
      return;
    }
    const askedEpochMs = performance.timeOrigin + performance.now();
    // Created and resumed inside the gesture: the browser lets it run.
    const context = new AudioContext({ latencyHint: 'interactive', sampleRate: 48000 });
    this.context = context;
    const resumed = context.resume();
    await context.audioWorklet.addModule(new URL('./audio-worklet.js', import.meta.url));
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('the browser did not start its sound output (is there a sound device?)')), START_TIMEOUT_MS);
    });
    try {
      await Promise.race([resumed, timeout]);
    } catch (e) {
      context.close().catch(() => {});
      this.context = null;
      throw e;
    } finally {
      clearTimeout(timer);
    }
    const node = new AudioWorkletNode(context, 'rfb-audio', { numberOfInputs: 0, outputChannelCount: [2] });
    const gain = context.createGain();
    gain.gain.value = this.muted ? 0 : this.volume;
    node.connect(gain).connect(context.destination);
    this.gain = gain;
    const channel = new MessageChannel();
    node.port.postMessage({ type: 'connect', port: channel.port1 }, [channel.port1]);
    this.sendClock();
    this.options.post({ type: 'audio-port', port: channel.port2, askedEpochMs }, [channel.port2]);
    this.clockTimer = setInterval(() => this.sendClock(), CLOCK_EVERY_MS);
    context.addEventListener('statechange', () => this.showState());
    this.showState();
  }

  /** Tells the worker the wall-clock time (epoch ms) at which context time 0 is heard. */
  sendClock() {
    const context = this.context;
    if (!context) return;
    // Firefox 153 (PulseAudio output): reading getOutputTimestamp() or outputLatency while its
    // output starts hung the page for good, about one start in four (measured: the page answered
    // nothing more). There the base latency stands for the output's.
    const ts = FIREFOX ? null : context.getOutputTimestamp?.();
    // currentTime is the context time the worklet renders next: rendered now.
    const renderEpochMs = performance.timeOrigin + performance.now() - context.currentTime * 1000;
    let contextEpochMs;
    const contextTime = ts?.contextTime ?? 0;
    const performanceTime = ts?.performanceTime ?? 0;
    const exact = contextTime > 0 && performanceTime > 0;
    if (exact) {
      contextEpochMs = performance.timeOrigin + performanceTime - contextTime * 1000;
    } else if (!FIREFOX && ++this.clockMisses < CLOCK_MISSES) {
      return; // the output has not started yet: the next tick asks again
    } else {
      // No output timestamp: what is rendered now is heard after the context's base latency.
      contextEpochMs = renderEpochMs + (context.baseLatency ?? 0) * 1000;
    }
    this.options.post({ type: 'audio-clock', contextEpochMs, outputLatencyMs: Math.max(0, contextEpochMs - renderEpochMs), exact });
  }

  /** Whether the sound is on its way to the speakers (the context runs, or the <video> plays unmuted). */
  get running() {
    return this.options.media ? this.playing : this.context?.state === 'running';
  }

  showState() {
    if (!this.running) {
      this.available();
      return;
    }
    this.button.textContent = this.muted ? '🔇' : '🔊';
    this.button.title = this.muted ? 'Sound is muted: click to hear it' : 'Click to mute';
    Object.assign(this.button.style, { display: 'block', left: 'auto', right: '12px', transform: 'none', padding: '4px 8px' });
  }

  /** @param {boolean} muted */
  setMuted(muted) {
    this.muted = muted;
    if (this.gain) this.gain.gain.value = muted ? 0 : this.volume;
    if (this.options.media && this.playing) this.options.media.muted = muted;
    if (this.running) this.showState();
  }

  /** @param {number} volume 0 to 1 */
  setVolume(volume) {
    this.volume = Math.min(1, Math.max(0, Number(volume) || 0));
    if (this.gain && !this.muted) this.gain.gain.value = this.volume;
    if (this.options.media) this.options.media.volume = this.volume;
  }

  close() {
    const doc = this.root.ownerDocument;
    doc.removeEventListener('pointerdown', this.onGesture, { capture: true });
    doc.removeEventListener('keydown', this.onGesture, { capture: true });
    if (this.clockTimer !== null) clearInterval(this.clockTimer);
    this.clockTimer = null;
    this.context?.close().catch(() => {});
    this.context = null;
    this.button.remove();
  }
}
