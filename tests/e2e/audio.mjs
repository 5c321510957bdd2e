// What the sound tests hear and see, for Chromium (audio.test.mjs) and Firefox
// (firefox.test.mjs): the viewer's own recording of what its AudioWorklet played, read as a
// listener would (pitch, loudness, tick onsets), and the moments flashes reached the canvas.

import assert from 'node:assert/strict';

/** Clicks the page (a user gesture: the browser may now play sound). */
export async function click(viewer) {
  await viewer.page.mouse.click(5, 5);
}

/**
 * Records `ms` of what the viewer's worklet plays and reduces it in the page (its crossing periods,
 * ~1,500 in 3.5 s of a 440 Hz tone, cross the driver, not half a million samples: Firefox's
 * WebDriver BiDi is slow with those): the pitch by zero crossings (pitchOf: robust to a gap), the
 * RMS, and the epoch ms of each tick onset (a sound after at least 50 ms of silence).
 * @returns {Promise<{pitch: number, rms: number, ticks: number[], sampleRate: number}>}
 */
export async function record(viewer, ms) {
  return viewer.page.evaluate(async (n) => {
    const { samples, sampleRate, clock } = await window.rfbViewer.recordAudio(n);
    // When sample i was heard, by the audio clock as it was then (it can slip under load).
    let k = 0;
    const heard = (i) => {
      while (k + 1 < clock.length && clock[k + 1].sample <= i) k++;
      return clock[k].epochMs + ((i - clock[k].sample) * 1000) / sampleRate;
    };
    // The periods between upward zero crossings, for pitchOf().
    const periods = [];
    let previous = -1;
    let sum = 0;
    const ticks = [];
    const quiet = Math.round(sampleRate * 0.05);
    let silentFor = quiet;
    for (let i = 0; i < samples.length; i++) {
      const v = samples[i];
      sum += v * v;
      if (i > 0 && samples[i - 1] < 0 && v >= 0) {
        if (previous >= 0) periods.push(i - previous);
        previous = i;
      }
      if (Math.abs(v) > 0.05) {
        if (silentFor >= quiet) ticks.push(heard(i));
        silentFor = 0;
      } else {
        silentFor++;
      }
    }
    return { periods, rms: Math.sqrt(sum / samples.length), ticks, sampleRate };
  }, ms).then(({ periods, rms, ticks, sampleRate }) => ({ pitch: pitchOf(periods, sampleRate), rms, ticks, sampleRate }));
}

/**
 * The pitch from the periods (in samples) between upward zero crossings: crossings fall on whole
 * samples, so the mean of the periods near the median, not the median itself; a gap's long period
 * (an underrun at start, a packet concealed under load) is left out and does not move it.
 * @param {number[]} periods
 * @param {number} sampleRate
 */
export function pitchOf(periods, sampleRate) {
  const sorted = [...periods].sort((a, b) => a - b);
  const median = sorted[sorted.length >> 1] ?? 0;
  const near = sorted.filter((p) => Math.abs(p - median) <= 2);
  const period = near.length ? near.reduce((a, b) => a + b, 0) / near.length : 0;
  return period ? sampleRate / period : 0;
}

/** The pipeline for the A/V test: nav-probe.py's camera and microphone appsrcs (see there). */
export const AV_LINE = 'appsrc name=avvideo ! videoconvert ! video/x-raw,format=I420 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! rfbsink name=sink port=0 '
  + 'appsrc name=avaudio ! audioconvert ! opusenc frame-size=10 ! sink.audio';

/**
 * The A/V test of a viewer on AV_LINE (a flash and a tick at each whole second, made at the same
 * instant): after a click, watches the picture's centre while the sound is recorded, matches
 * each flash seen to the nearest tick heard, and asserts |sound minus picture| p95 <= 20 ms.
 * @param {import('node:test').TestContext} t
 * @param {any} viewer
 * @param {() => string} logs
 * @param {string} [label]
 */
export async function checkAvSync(t, viewer, logs, label = '') {
  await viewer.waitForFrames(5, { extra: logs });
  await click(viewer);
  await viewer.waitForStats((s) => s.audio.state === 'playing' && s.audio.avOffsetMs !== null && s.audio.framesDecoded >= 100,
    'sound and pictures playing', { extra: logs });
  // 24 flashes, so that p95 is the 95th percentile the target names and not the worst flash
  // (with 8 it was): on a busy machine one picture in a few dozen can come late.
  const seconds = 24;
  // Polls the picture's centre: when each flash reached the canvas.
  const watch = viewer.page.evaluate(async (n) => {
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
  }, seconds * 1000);
  const { ticks } = await record(viewer, seconds * 1000);
  const flashes = await watch;
  const offsets = flashes.map((f) => ticks.reduce((best, h) => (Math.abs(h - f) < Math.abs(best) ? h - f : best), Infinity))
    .filter((o) => Math.abs(o) < 500);
  const sorted = offsets.map(Math.abs).sort((a, b) => a - b);
  const p95 = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.95))];
  const stats = await viewer.stats();
  t.diagnostic(`${label}sound minus picture per flash (ms): ${offsets.map((o) => o.toFixed(1)).join(' ')}; |offset| p95 ${p95?.toFixed(1)} ms; viewer: ${JSON.stringify(stats.audio)}`);
  assert.ok(offsets.length >= seconds - 2, `${flashes.length} flashes seen, ${ticks.length} ticks heard, matched: ${offsets}`);
  assert.ok(p95 <= 20, `|A/V offset| p95 ${p95.toFixed(1)} ms (sound minus picture: ${offsets.map((o) => o.toFixed(1))})`);
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
