#!/usr/bin/env node
// The sound's benchmark (make bench-audio; make bench runs it too): a picture and a tone into
// rfbsink, one headless Chromium viewer on loopback playing both, measured at steady state for
// --seconds (60 by default): underruns, the sound's latency from a packet's arrival to its first
// sample handed to the output (median of the viewer's per-second medians) and the output's own
// latency as the browser reports it, the A/V offset (sound heard minus picture painted, p95 of
// |offset|) with the time pictures wait for their sound, and the time from the start of sound to
// its first sample heard. Writes tests/bench/out/audio.json.
//
// --link KBIT runs the slow-link cases instead (in a private network namespace, as root): what the
// element sends is held to KBIT behind a 300 ms queue (netns.mjs shapeLink), under a picture that
// wants more than the link carries, with rate control on (the default) and off. They compare the
// sound's packets on WebTransport's stream, as datagrams (`audio=datagram`) and on the WebSocket:
// packets lost, how late the late ones come (`lateP99Ms`), underruns. Writes audio-link.json.
//
// --load runs the busy-machine case instead: a WebSocket viewer at 720p30, 10 s idle, then
// --load-seconds (15) with --load-loops busy loops beside the browser (one more than the cores),
// then --seconds idle again (40 by default). It says, per phase, the underruns, the sound's
// latency and the A/V offset, and how long after the load ends the sound is back within 10 ms of
// its latency before it (its jitter buffer grew under the load: it should not keep that depth
// once the machine is quiet). Writes audio-load.json.
//
//   node tests/bench/audio.mjs [--seconds N] [--quick] [--only REGEX] [--link KBIT | --load]

import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startPipeline, withQuery } from '../e2e/lib.mjs';
import { runInPrivateNetns, shapeLink, unshapeLink } from '../e2e/netns.mjs';
import { launchBareBrowser } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string' }, only: { type: 'string' }, quick: { type: 'boolean' }, link: { type: 'string' },
    load: { type: 'boolean' }, 'load-seconds': { type: 'string' }, 'load-loops': { type: 'string' },
  },
});
const LOAD = Boolean(opts.load);
const LOAD_SECONDS = Number(opts['load-seconds'] ?? 15);
const LOAD_LOOPS = Number(opts['load-loops'] ?? availableParallelism() + 1);
if (LOAD && opts.link !== undefined) throw new Error('--load and --link are separate runs');
const LINK_KBIT = opts.link === undefined ? null : Number(opts.link);
if (LINK_KBIT !== null && !(LINK_KBIT > 0)) throw new Error(`--link ${opts.link}: a rate in kbit/s`);
if (LINK_KBIT !== null) runInPrivateNetns('audio bench --link');
const SECONDS = Number(opts.seconds ?? (opts.quick ? 15 : LOAD ? 40 : 60));
/** The idle phase before the load (--load). */
const BEFORE_LOAD_SECONDS = 10;
// A slow link: rate control has settled the encoder by then.
const WARMUP_MS = LINK_KBIT === null ? 5000 : 10_000;

const video = (w, h, fps) => `videotestsrc is-live=true pattern=ball ! video/x-raw,width=${w},height=${h},framerate=${fps}/1 `
  + `! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=${2 * fps} ! sink.`;
const tone = (frameMs) => 'audiotestsrc is-live=true freq=440 volume=0.3 ! audio/x-raw,rate=48000,channels=2 '
  + `! opusenc frame-size=${frameMs} ! sink.audio`;

/** Snow at 2 Mbit/s: more than the slow link carries unless rate control lowers it. */
const snow = 'videotestsrc is-live=true pattern=snow ! video/x-raw,format=I420,width=640,height=360,framerate=30/1 '
  + '! x264enc tune=zerolatency speed-preset=ultrafast bitrate=2000 key-int-max=60 ! sink.';
const LOOPBACK_CASES = [
  { name: '720p30 + Opus 20 ms, WebSocket', line: `${video(1280, 720, 30)} ${tone(20)}`, query: 'transport=ws' },
  { name: '720p30 + Opus 10 ms, WebTransport', line: `${video(1280, 720, 30)} ${tone(10)}`, query: 'transport=wt' },
  { name: '720p30 + Opus 10 ms, WebTransport datagrams', line: `${video(1280, 720, 30)} ${tone(10)}`, query: 'transport=wt&audio=datagram' },
  { name: '1080p60 + Opus 10 ms, WebSocket', line: `${video(1920, 1080, 60)} ${tone(10)}`, query: 'transport=ws' },
];
const LINK_CASES = ['auto', 'off'].flatMap((rc) => [
  ['WebTransport stream', 'transport=wt'],
  ['WebTransport datagrams', 'transport=wt&audio=datagram'],
  ['WebSocket', 'transport=ws'],
].map(([how, query]) => ({
  name: `${LINK_KBIT} kbit/s, rate-control=${rc}: ${how}`,
  line: `rate-control=${rc} ${snow} ${tone(20)}`,
  query,
})));
const LOAD_CASES = [
  { name: `720p30 + Opus 20 ms, WebSocket, ${LOAD_LOOPS} busy loops for ${LOAD_SECONDS} s`, line: `${video(1280, 720, 30)} ${tone(20)}`, query: 'transport=ws' },
];
const CASES = (LOAD ? LOAD_CASES : LINK_KBIT === null ? LOOPBACK_CASES : LINK_CASES)
  .filter((c) => !opts.only || new RegExp(opts.only, 'i').test(c.name));

const median = (xs) => (xs.length ? [...xs].sort((a, b) => a - b)[xs.length >> 1] : null);
const p95abs = (xs) => (xs.length ? xs.map(Math.abs).sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.95))] : null);
const f = (v, d = 1) => (v === null || v === undefined ? '-' : Number(v).toFixed(d));

async function run(c, browser) {
  const pipeline = await startPipeline(`rfbsink name=sink port=0 ${c.line}`);
  const page = await browser.context.newPage();
  try {
    if (LINK_KBIT !== null) shapeLink(pipeline.port, LINK_KBIT);
    await page.goto(withQuery(pipeline.url, c.query));
    const stats = () => page.evaluate(() => window.rfbViewer?.stats() ?? null);
    const deadline = Date.now() + 20_000;
    for (;;) {
      const s = await stats().catch(() => null);
      if (s?.audio?.state === 'waiting-for-click') break;
      if (Date.now() > deadline) throw new Error(`no sound announced: ${JSON.stringify(s?.audio)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    // --autoplay-policy=no-user-gesture-required stands in for the click.
    await page.evaluate(() => window.rfbViewer.startAudio());
    await new Promise((r) => setTimeout(r, WARMUP_MS));
    if (LOAD) return { case: c.name, ...(await measureLoad(stats)) };
    const first = await stats();
    const latencies = [];
    const offsets = [];
    const holds = [];
    const lates = [];
    /** The seconds (into the measurement) in which underruns came, and the target after. */
    const underrunsAt = [];
    let underruns = first.audio.underruns;
    for (let i = 0; i < SECONDS; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      const s = await stats();
      if (s.audio.underruns !== underruns) underrunsAt.push({ s: i + 1, underruns: s.audio.underruns - underruns, targetMs: s.audio.targetMs });
      underruns = s.audio.underruns;
      if (s.audio.latencyMs !== null) latencies.push(s.audio.latencyMs);
      if (s.audio.avOffsetMs !== null) offsets.push(s.audio.avOffsetMs);
      if (s.audio.videoHoldMs !== null) holds.push(s.audio.videoHoldMs);
      // Every 5 s: each reading covers the last 500 packets.
      if (i % 5 === 4 && s.audio.lateP99Ms !== null) lates.push(s.audio.lateP99Ms);
    }
    const last = await stats();
    return {
      case: c.name,
      transport: last.transport,
      seconds: SECONDS,
      underruns: last.audio.underruns - first.audio.underruns,
      underruns_at: underrunsAt,
      packets: last.audio.packetsReceived - first.audio.packetsReceived,
      lost: last.audio.packetsLost - first.audio.packetsLost,
      datagrams: last.audio.datagrams - first.audio.datagrams,
      late_p99_ms: lates.length ? Math.max(...lates) : null,
      target_ms: last.audio.targetMs,
      skipped_ms: last.audio.skippedMs - first.audio.skippedMs,
      decode_errors: last.audio.decodeErrors,
      latency_p50_ms: median(latencies),
      output_latency_ms: last.audio.outputLatencyMs,
      av_offset_p95_abs_ms: p95abs(offsets),
      video_hold_ms: median(holds),
      start_ms: last.audio.startMs,
      fps: last.fps,
      server_latency_p50_ms: last.server ? last.server.latency_p50_us / 1000 : null,
    };
  } catch (e) {
    return { case: c.name, error: `${e instanceof Error ? e.message : e}\n${pipeline.logs().slice(-1500)}` };
  } finally {
    unshapeLink();
    await page.close().catch(() => {});
    await pipeline.stop();
  }
}

/** `LOAD_LOOPS` busy loops, until `stop()`. */
function startBusyLoops() {
  const loops = Array.from({ length: LOAD_LOOPS }, () => spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
  return { stop: () => { for (const p of loops) p.kill('SIGKILL'); } };
}

/**
 * --load: a reading a second through the idle, loaded and idle-again phases.
 * @param {() => Promise<any>} stats
 */
async function measureLoad(stats) {
  /** @type {{t: number, phase: string, latencyMs: number | null, targetMs: number | null, depthMs: number | null, underruns: number, avOffsetMs: number | null}[]} */
  const timeline = [];
  const startUnderruns = (await stats()).audio.underruns;
  const phases = [['before', BEFORE_LOAD_SECONDS], ['load', LOAD_SECONDS], ['after', SECONDS]];
  let t = 0;
  for (const [phase, seconds] of phases) {
    const busy = phase === 'load' ? startBusyLoops() : null;
    try {
      for (let i = 0; i < seconds; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        const s = (await stats()).audio;
        timeline.push({ t: ++t, phase, latencyMs: s.latencyMs, targetMs: s.targetMs, depthMs: s.depthMs, underruns: s.underruns, avOffsetMs: s.avOffsetMs });
      }
    } finally {
      busy?.stop();
    }
  }
  const of = (phase) => timeline.filter((r) => r.phase === phase);
  const summary = (phase) => {
    const rows = of(phase);
    // Each phase from the reading before its first (the start's for the first phase).
    const before = timeline[timeline.indexOf(rows[0]) - 1]?.underruns ?? startUnderruns;
    return {
      underruns: rows[rows.length - 1].underruns - before,
      latency_p50_ms: median(rows.map((r) => r.latencyMs).filter((v) => v !== null)),
      latency_max_ms: Math.max(...rows.map((r) => r.latencyMs ?? 0)),
      av_offset_p95_abs_ms: p95abs(rows.map((r) => r.avOffsetMs).filter((v) => v !== null)),
      target_end_ms: rows[rows.length - 1].targetMs,
    };
  };
  const before = summary('before');
  const after = of('after');
  // Back: from this reading on, the latency stays within 10 ms of the idle one before the load.
  const bound = (before.latency_p50_ms ?? 0) + 10;
  let back = after.length;
  while (back > 0 && after[back - 1].latencyMs !== null && after[back - 1].latencyMs <= bound) back -= 1;
  return {
    seconds: SECONDS,
    before, load: summary('load'), after: summary('after'),
    recovered_after_s: back < after.length ? back : null,
    timeline,
  };
}

/** @param {string[][]} rows */
function printTable(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i] ?? '').length)));
  for (const r of rows) console.log(r.map((v, i) => String(v ?? '').padEnd(widths[i])).join('  '));
}

async function main() {
  const browser = await launchBareBrowser({ width: 1280, height: 720 }, ['--autoplay-policy=no-user-gesture-required']);
  const results = [];
  try {
    for (const c of CASES) {
      console.log(`audio bench: ${c.name} (${SECONDS} s)`);
      results.push(await run(c, browser));
    }
  } finally {
    await browser.close();
  }
  if (LOAD) {
    const rows = [['case', 'phase', 'underruns', 'latency p50 ms', 'latency max ms', '|A/V| p95 ms', 'buffer at end ms', 'back within 10 ms']];
    for (const r of results) {
      if (r.error) rows.push([r.case, 'error (below)']);
      else {
        for (const phase of ['before', 'load', 'after']) {
          const p = r[phase];
          rows.push([phase === 'before' ? r.case : '', phase, String(p.underruns), f(p.latency_p50_ms), f(p.latency_max_ms),
            f(p.av_offset_p95_abs_ms), f(p.target_end_ms, 0),
            phase === 'after' ? (r.recovered_after_s === null ? `not in ${r.seconds} s` : `${r.recovered_after_s} s after the load`) : '']);
        }
      }
    }
    printTable(rows);
  } else {
    const rows = [['case', 'underruns', 'lost', 'late p99 ms', 'buffer ms', 'latency p50 ms', '+ output ms', '|A/V| p95 ms', 'picture waits ms', 'start ms', 'fps', 'render->decoded ms']];
    for (const r of results) {
      rows.push(r.error ? [r.case, 'error (below)'] : [
        r.case, `${r.underruns} in ${r.seconds} s`, `${r.lost} of ${r.packets}`, f(r.late_p99_ms), f(r.target_ms, 0),
        f(r.latency_p50_ms), f(r.output_latency_ms), f(r.av_offset_p95_abs_ms),
        f(r.video_hold_ms), f(r.start_ms, 0), f(r.fps, 0), f(r.server_latency_p50_ms),
      ]);
    }
    printTable(rows);
  }
  for (const r of results.filter((x) => x.error)) console.log(`${r.case}: ${r.error}`);
  mkdirSync(path.join(HERE, 'out'), { recursive: true });
  const out = path.join(HERE, 'out', LOAD ? 'audio-load.json' : LINK_KBIT === null ? 'audio.json' : 'audio-link.json');
  writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), seconds: SECONDS, link_kbit: LINK_KBIT, load_seconds: LOAD ? LOAD_SECONDS : null, results }, null, 2));
  console.log(`wrote ${out}`);
  if (results.some((r) => r.error)) process.exitCode = 1;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
