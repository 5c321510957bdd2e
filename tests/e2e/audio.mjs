// What the sound tests hear and see, for Chromium (audio.test.mjs) and Firefox
// (firefox.test.mjs): the viewer's own recording of what its AudioWorklet played, read as a
// listener would (pitch, loudness, tick onsets), and the moments flashes reached the canvas.



/** Clicks the page (a user gesture: the browser may now play sound). */
export async function click(viewer) {
  await viewer.page.mouse.click(5, 5);
}

/**
 * Records `ms` of what the viewer's worklet plays and reduces it in the page (a few numbers
 * cross the driver, not half a million samples: Firefox's WebDriver BiDi is slow with those):
 * the pitch by zero crossings, the RMS, and the epoch ms of each tick onset (a sound after at
 * least 50 ms of silence).
 * @returns {Promise<{pitch: number, rms: number, ticks: number[], sampleRate: number}>}
 */
export async function record(viewer, ms) {
  return viewer.page.evaluate(async (n) => {
    const { samples, sampleRate, startEpochMs } = await window.rfbViewer.recordAudio(n);
    let crossings = 0;
    let first = -1;
    let last = -1;
    let sum = 0;
    const ticks = [];
    const quiet = Math.round(sampleRate * 0.05);
    let silentFor = quiet;
    for (let i = 0; i < samples.length; i++) {
      const v = samples[i];
      sum += v * v;
      if (i > 0 && samples[i - 1] < 0 && v >= 0) {
        crossings++;
        if (first < 0) first = i;
        last = i;
      }
      if (Math.abs(v) > 0.05) {
        if (silentFor >= quiet) ticks.push(startEpochMs + (i * 1000) / sampleRate);
        silentFor = 0;
      } else {
        silentFor++;
      }
    }
    return {
      pitch: crossings > 1 ? ((crossings - 1) * sampleRate) / (last - first) : 0,
      rms: Math.sqrt(sum / samples.length),
      ticks,
      sampleRate,
    };
  }, ms);
}


/**
 * Polls the picture's centre for `ms` and returns when (epoch ms) it turned bright each time.
 * @param {{page: {evaluate: Function}}} viewer
 * @param {number} ms
 */
export function watchFlashes(viewer, ms) {
  return viewer.page.evaluate(async (n) => {
    const seen = [];
    let bright = null;
    const end = performance.now() + n;
    while (performance.now() < end) {
      const [[r]] = await window.rfbViewer.samplePixels([[160, 120]]);
      const now = performance.timeOrigin + performance.now();
      const isBright = r > 128;
      if (bright === false && isBright) seen.push(now);
      bright = isBright;
    }
    return seen;
  }, ms);
}

/** The pipeline for the A/V test: nav-probe.py's camera and microphone appsrcs (see there). */
export const AV_LINE = 'appsrc name=avvideo ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! rfbsink name=sink port=0 '
  + 'appsrc name=avaudio ! audioconvert ! opusenc frame-size=10 ! sink.audio';

/**
 * Sound minus picture (ms) for each flash: the nearest tick heard to it.
 * @param {number[]} flashes
 * @param {number[]} heard
 */
export function avOffsets(flashes, heard) {
  return flashes.map((f) => heard.reduce((best, h) => (Math.abs(h - f) < Math.abs(best) ? h - f : best), Infinity))
    .filter((o) => Math.abs(o) < 500);
}

/** The 95th percentile of |offset|. @param {number[]} offsets */
export function p95Abs(offsets) {
  const sorted = offsets.map(Math.abs).sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))];
}

/**
 * A private PulseAudio server with a null sink (real-time paced, heard by no one), for a
 * browser that needs a sound device to start an AudioContext (Firefox; headless Chromium has
 * its own fake output). Resolves to {server: 'unix:...', stop()}, or null with `why` when
 * pulseaudio is missing (scripts/install-deps.sh installs it).
 */
export async function startSoundServer() {
  const { spawn, spawnSync } = await import('node:child_process');
  const { mkdtempSync, rmSync, existsSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  if (spawnSync('pulseaudio', ['--version']).status !== 0) return { server: null, why: 'pulseaudio is not installed', stop: async () => {} };
  const dir = mkdtempSync(path.join(tmpdir(), 'rfbsink-e2e-pulse-'));
  const socket = path.join(dir, 'native');
  const proc = spawn('pulseaudio', ['-n', '--daemonize=no', '--exit-idle-time=-1', '--use-pid-file=no', '--log-target=stderr',
    '-L', 'module-null-sink sink_name=rfbsink_test', '-L', `module-native-protocol-unix socket=${socket} auth-anonymous=1`],
  { env: { ...process.env, HOME: dir, XDG_RUNTIME_DIR: dir, XDG_CONFIG_HOME: dir }, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (c) => { log = (log + c).slice(-4000); });
  const deadline = Date.now() + 10_000;
  while (!existsSync(socket)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`pulseaudio did not start:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    server: `unix:${socket}`,
    why: null,
    stop: async () => {
      proc.kill('SIGTERM');
      await new Promise((r) => (proc.exitCode !== null ? r() : proc.once('close', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
