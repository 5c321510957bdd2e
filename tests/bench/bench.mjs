// rfbsink latency/throughput benchmark (`make bench`).
//
//   node tests/bench/bench.mjs [--quick] [--only REGEX] [--seconds N] [--out DIR] [--no-webrtc] [--no-netns]
//
// Runs real pipelines (tests/bench/source.py: a live appsrc whose frames carry their capture time
// as a barcode, then an encoder, then rfbsink) and headless Chromium with the repository's viewer
// (web/, served from disk, with the opt-in barcode hook of web/decode-worker.js), and, as a
// baseline, the same source through GStreamer's webrtcbin into the same Chromium
// (tests/bench/webrtc.html). Everything runs inside a private network namespace the bench makes
// itself (unshare -n; lo plus a veth pair 10.77.0.1/24 <-> 10.77.0.2/24, so that ICE has host
// candidates; no outside address is ever used).
//
// Per scenario: end-to-end latency from the barcode (capture -> painted, CLOCK_REALTIME on both
// ends), the element's own render() -> decoded latency (rfbsink-stats, from the viewer's acks),
// delivered vs produced fps, rfbsink's CPU (its runtime threads + render()), bytes/s, the pipeline
// process's peak memory (VmHWM). With more than one viewer, 1 viewer is real Chromium (the
// end-to-end figure) and the others are lightweight WebSocket clients (lightclient.py) that read
// and ack every frame without decoding: 32 Chromium decoders do not fit on a 2-core machine.
//
// Shaped-link scenarios: what the server sends is held to a rate with a 300 ms queue (a token
// bucket, `tc qdisc ... tbf`, under an HTB class on the namespace's loopback, its MTU set to 1500;
// what the viewer sends back passes freely: a downstream link) once the viewer plays, with and
// without rate control (`rc`: rate-control=slowest; the other rows set rate-control=off): `700k` and `2m` steady; `step` 20 Mbit/s,
// down to 1 Mbit/s 3 s into the measured window and back up 8 s later (24 s window: how long until
// latency is back under 200 ms, and until the encoder is back at its own bitrate). Their results
// carry a timeline (each painted frame's capture time and latency, the encoder's targets, each
// second's stream / delivered / target rates) for plotting or reading. `rc` alone: rate control on
// a free link, against the plain run (`rgb-natural busy rc`: with a busy browser); those rows
// list the targets it set (`rateTargets`: a cut there read a late frame as a queue). The
// reference on the same links, in the same run:
// gst-plugins-rs' webrtcsink (`webrtcsink ...` rows: whepserversink with its own x264enc and
// rtpgccbwe's Google Congestion Control, built once by scripts/whepclientsrc.sh and
// scripts/rtpgccbwe.sh), played by the same Chromium over WHEP; rfbsink's shaped rows carry
// `xRTC` ratios against it.
//
// Two links (`2 links`): two Chromium viewers of one 720p30 stream at once, one on a free link
// (127.0.0.1) and one held to 700 kbit/s with a 300 ms queue (it connects to the veth address;
// an HTB class on lo takes the packets from that address), as `off`, `rc` (rate control follows
// the slower viewer: everyone gets its quality) and `ladder` (a 640x360 rendition at 500 kbit/s
// on rendition_1: each viewer gets what its link carries). One row per viewer.
//
// A busy browser (`busy`): the viewer's page is recorded as a screen recorder does while it plays
// (DevTools' screencast: the compositor's every frame read back and PNG-encoded, which loads the
// browser like a desktop recorder), for rfbsink and the WebRTC baseline at 720p60 and 1080p30.
// The recording is also read: `screen` = capture -> the compositor frame that first showed each
// picture (its swap time), the one point that the viewer's paint paths and WebRTC share;
// `fps shown` counts the frames on screen (barcodes read at the next animation frame, or at the
// viewer's <video>'s requestVideoFrameCallback), `xRTC shown` against the baseline under the same
// load; `canvas`: the viewer's paint option 'canvas' (drawImage in the worker) against its default
// (a <video> fed by a MediaStreamTrackGenerator in Chromium).
//
// Writes OUT/bench-results.json, OUT/bench.svg and OUT/bench.png (OUT = tests/bench/out).

import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { gstEnv, hasElement } from '../e2e/lib.mjs';
import { latencyMs } from './barcode.mjs';
import {
  dist, killAll, launchBareBrowser, launchBenchBrowser, machineCpu, median, processCpu, sleep, spawnJson, startRecorder, startServer, thin,
  threadCpu, vmHwmKb,
} from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const PLUGIN_DIR = process.env.RFB_PLUGIN_DIR ?? path.join(REPO, 'target', 'release');
const PYTHON = process.env.RFB_BENCH_PYTHON ?? '/usr/bin/python3';

const { values: opts } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    seconds: { type: 'string' },
    out: { type: 'string', default: path.join(HERE, 'out') },
    'no-webrtc': { type: 'boolean', default: false },
    'no-netns': { type: 'boolean', default: false },
    list: { type: 'boolean', default: false },
    replot: { type: 'string' },
  },
});

// --- the private network namespace ---------------------------------------------------------------

/** The element's address in the rfb-webrtc scenarios: the veth end in the private namespace. */
const RTC_ADDRESS = '10.77.0.1';
const NETNS_SETUP = [
  'ip link set lo up',
  'ip link add rfbb0 type veth peer name rfbb1',
  'ip addr add 10.77.0.1/24 dev rfbb0',
  'ip addr add 10.77.0.2/24 dev rfbb1',
  'ip link set rfbb0 up',
  'ip link set rfbb1 up',
].join(' && ');

if (!opts['no-netns'] && !opts.list && !opts.replot && process.env.RFB_BENCH_NETNS !== '1') {
  const args = process.argv.slice(1).map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync('unshare', ['-n', '--', '/bin/sh', '-c', `${NETNS_SETUP} && exec '${process.execPath}' ${args}`], {
    stdio: 'inherit',
    env: { ...process.env, RFB_BENCH_NETNS: '1' },
  });
  if (r.error) console.error(`bench: cannot run unshare: ${r.error.message}`);
  else if (r.status !== 0 && r.status !== 3) {
    console.error('bench: failed (it runs in a private network namespace: that needs root or CAP_SYS_ADMIN and `ip`; --no-netns runs without one, and without WebRTC)');
  }
  process.exit(r.status ?? 1);
}
const IN_NETNS = process.env.RFB_BENCH_NETNS === '1';
opts.out = path.resolve(opts.out);

// --- scenarios -----------------------------------------------------------------------------------

/** Shaped links: the rate (kbit/s) from the start of the warm-up, and steps in the measured window. */
const SHAPES = {
  '700k': { kbit: 700 },
  '2m': { kbit: 2000 },
  step: { kbit: 20000, steps: [{ atMs: 3000, kbit: 1000 }, { atMs: 11000, kbit: 20000 }], seconds: 24 },
};

const x264 = (fps) => `x264enc tune=zerolatency speed-preset=ultrafast key-int-max=${2 * fps}`;
const ENCODERS = {
  h264: { element: 'x264enc', chain: x264 },
  jpeg: { element: 'jpegenc', chain: () => 'jpegenc quality=85' },
  vp8: { element: 'vp8enc', chain: (fps) => `vp8enc deadline=1 cpu-used=16 threads=2 lag-in-frames=0 end-usage=cbr target-bitrate=3000000 keyframe-max-dist=${2 * fps} error-resilient=1` },
  vp9: { element: 'vp9enc', chain: (fps) => `vp9enc deadline=1 cpu-used=8 threads=2 row-mt=true lag-in-frames=0 end-usage=cbr target-bitrate=2000000 keyframe-max-dist=${2 * fps}` },
  av1: { element: 'av1enc', parser: 'av1parse', chain: (fps) => `av1enc usage-profile=realtime cpu-used=10 threads=2 row-mt=true lag-in-frames=0 end-usage=vbr target-bitrate=1000 keyframe-max-dist=${2 * fps} ! av1parse ! video/x-av1,stream-format=obu-stream,alignment=tu` },
  png: { element: 'pngenc', chain: () => 'videoconvert ! video/x-raw,format=RGB ! pngenc compression-level=1' },
  webp: { element: 'webpenc', chain: () => 'webpenc quality=80 speed=6' },
};

/**
 * `natural`: the source is RGB (BGRx) and the encoder's input caps are left free, as in
 * `... ! videoconvert ! x264enc ! rfbsink`: rfbsink's own caps must steer x264enc to 4:2:0 8-bit.
 * `serve`: the encoder chain `rfb serve` runs for that size and rate (its leaky queue, conversion
 * and encoder settings, from `rfb serve --dry-run`).
 * @typedef {{name: string, kind: 'rfb' | 'webrtc', codec: string, width: number, height: number, fps: number, viewers: number, transport: string, natural?: boolean, serve?: boolean}} Scenario
 */

/** rfbsink's WebRTC media ports in the bench ([first, mask]: 16 ports, one filter holds them). */
const RFB_RTC_PORTS = /** @type {[number, number]} */ ([40000, 0xfff0]);

/** The shaped viewer of the two-links scenarios connects to this address (an HTB class on lo). */
const SHAPED_ADDRESS = '10.77.0.2';
/** The ladder's rendition in the two-links scenario: half the size, a bitrate under 0.85 x 700. */
const LADDER_KBPS = 500;

function scenarios(quick, transports) {
  /** @type {Scenario[]} */
  const list = [];
  const links = (transport, variant) => list.push({
    name: `h264 1280x720@30 2 links ${transport} ${variant}`, kind: 'rfb-links', codec: 'h264', width: 1280, height: 720, fps: 30,
    viewers: 2, transport, variant, rateControl: variant === 'rc', ladder: variant === 'ladder',
  });
  const rfb = (codec, width, height, fps, viewers = 1, transport = 'ws', variant = '') => {
    const shapeName = Object.hasOwn(SHAPES, variant.split(' ')[0]) ? variant.split(' ')[0] : null;
    list.push({
      name: `${codec} ${width}x${height}@${fps} ${viewers}v ${transport}${variant ? ` ${variant}` : ''}`,
      kind: 'rfb', codec, width, height, fps, viewers, transport, natural: variant.startsWith('rgb-natural'), serve: variant === 'rfb-serve',
      busy: / busy\b/.test(` ${variant}`), paint: / canvas$/.test(variant) ? 'canvas' : 'auto',
      shape: shapeName ? SHAPES[shapeName] : null, shapeName, rateControl: variant === 'rc' || variant.endsWith(' rc'),
    });
  };
  // The reference on the same shaped links: gst-plugins-rs' webrtcsink (whepserversink) with its
  // own x264enc and its Google Congestion Control (rtpgccbwe), at most the 2048 kbit/s our x264enc
  // runs at; '' is the free link.
  const webrtcsink = (variant) => list.push({
    name: `webrtcsink h264 1280x720@30${variant ? ` ${variant}` : ''}`, kind: 'webrtcsink', codec: 'h264', width: 1280, height: 720, fps: 30, viewers: 1,
    transport: 'webrtc', shape: variant ? SHAPES[variant] : null, shapeName: variant || null, rateControl: true,
  });
  // `natural`: the same RGB source and conversions as rfbsink's `rgb-natural` rows, converted to
  // I420 for x264enc (what rfbsink's caps steer it to), so that those rows compare like with like.
  const webrtc = (width, height, fps, busy = false, natural = false) => list.push({
    name: `webrtc h264 ${width}x${height}@${fps}${natural ? ' rgb-natural' : ''}${busy ? ' busy' : ''}`, kind: 'webrtc', codec: 'h264', width, height, fps, viewers: 1,
    transport: 'webrtc', busy, natural,
  });
  for (const t of transports) {
    // A link slower than the stream (~1.15 Mbit/s), without and with rate control; a step down.
    if (!quick || t === 'ws') {
      rfb('h264', 1280, 720, 30, 1, t, '700k');
      rfb('h264', 1280, 720, 30, 1, t, '700k rc');
      rfb('h264', 1280, 720, 30, 1, t, 'step rc');
      // Rate control on a free link: nothing worse than without.
      rfb('h264', 1280, 720, 30, 1, t, 'rc');
      // Two viewers on different links: off, rate control, renditions.
      for (const v of ['off', 'rc', 'ladder']) links(t, v);
    }
    if (!quick) {
      // jpegenc's quality under rate control, on a 2 Mbit/s link.
      rfb('jpeg', 1280, 720, 30, 1, t, '2m');
      rfb('jpeg', 1280, 720, 30, 1, t, '2m rc');
      rfb('h264', 1280, 720, 30, 1, t, '2m');
      rfb('h264', 1280, 720, 30, 1, t, '2m rc');
      rfb('h264', 1280, 720, 30, 1, t, 'step');
    }
    if (quick) {
      rfb('h264', 1280, 720, 30, 1, t);
      rfb('h264', 1280, 720, 30, 8, t);
      rfb('h264', 1280, 720, 30, 32, t);
      rfb('jpeg', 1280, 720, 30, 1, t);
    } else {
      rfb('h264', 1280, 720, 30, 1, t);
      rfb('h264', 1280, 720, 60, 1, t);
      rfb('h264', 1920, 1080, 30, 1, t);
      rfb('h264', 1920, 1080, 60, 1, t);
      rfb('h264', 1920, 1080, 30, 1, t, 'rgb-natural');
      rfb('h264', 1280, 720, 60, 1, t, 'rgb-natural');
      // A busy browser: its compositor's output recorded as a screen recorder does.
      rfb('h264', 1920, 1080, 30, 1, t, 'rgb-natural busy');
      rfb('h264', 1280, 720, 60, 1, t, 'rgb-natural busy');
      // The same with rate control: a busy browser's late frames are not read as a queue.
      rfb('h264', 1280, 720, 60, 1, t, 'rgb-natural busy rc');
      // The same drawn on the canvas (the viewer's paint: 'canvas'), against its <video> path.
      rfb('h264', 1920, 1080, 30, 1, t, 'rgb-natural busy canvas');
      rfb('h264', 1280, 720, 60, 1, t, 'rgb-natural busy canvas');
      rfb('h264', 1920, 1080, 30, 1, t, 'rfb-serve');
      rfb('h264', 1280, 720, 60, 1, t, 'rfb-serve');
      rfb('h264', 1280, 720, 30, 8, t);
      rfb('h264', 1280, 720, 30, 32, t);
      rfb('jpeg', 1280, 720, 30, 1, t);
      rfb('jpeg', 1920, 1080, 30, 1, t);
      rfb('vp8', 960, 540, 30, 1, t); // vp8enc reaches ~16 fps at 1280x720 here
      rfb('vp9', 960, 540, 30, 1, t);
      rfb('av1', 640, 360, 15, 1, t);
      rfb('png', 960, 540, 10, 1, t);
      rfb('webp', 960, 540, 15, 1, t);
    }
  }
  for (const v of quick ? ['700k'] : ['700k', '2m', 'step', '']) webrtcsink(v);
  webrtc(1280, 720, 30);
  // rfbsink's own WebRTC transport against that baseline, with 1, 8 and 32 peers on one encoder.
  for (const peers of [1, 8, 32]) {
    list.push({
      name: `rfb-webrtc h264 1280x720@30 ${peers}p`, kind: 'rfb-webrtc', codec: 'h264', width: 1280, height: 720, fps: 30, viewers: peers, transport: 'webrtc',
    });
  }
  // rfbsink's WebRTC peer on the slow links, its rate control fed by the peer's receiver
  // reports, against webrtcsink's GCC on the same links.
  for (const v of quick ? ['700k'] : ['700k', 'step']) {
    list.push({
      name: `rfb-webrtc h264 1280x720@30 1p ${v} rc`, kind: 'rfb-webrtc', codec: 'h264', width: 1280, height: 720, fps: 30, viewers: 1, transport: 'webrtc',
      shape: SHAPES[v], shapeName: v, rateControl: true,
    });
  }
  // The same peer offering no TWCC (as GStreamer's whepclientsrc offers): receiver reports alone.
  if (!quick) {
    list.push({
      name: 'rfb-webrtc h264 1280x720@30 1p 700k rc reports', kind: 'rfb-webrtc', codec: 'h264', width: 1280, height: 720, fps: 30, viewers: 1, transport: 'webrtc',
      shape: SHAPES['700k'], shapeName: '700k', rateControl: true, noTwcc: true,
    });
  }
  if (!quick) {
    webrtc(1920, 1080, 30);
    webrtc(1280, 720, 60);
    webrtc(1920, 1080, 30, false, true);
    webrtc(1280, 720, 60, false, true);
    webrtc(1920, 1080, 30, true, true);
    webrtc(1280, 720, 60, true, true);
  }
  return list;
}

// --- helpers -------------------------------------------------------------------------------------

function field(text, name) {
  const m = text.match(new RegExp(`(?:^|[ ,])${name}=\\([a-z0-9]+\\)(-?[0-9]+)`));
  return m ? Number(m[1]) : undefined;
}
/** An rfbsink-stats structure (gst_structure_to_string). */
export function parseStats(text) {
  const t = text.replace(/\\(.)/g, '$1');
  const top = t.split('client-stats=')[0];
  const clients = [...t.matchAll(/"client, ([^"]*)"/g)].map((m) => ({
    id: field(m[1], 'id'),
    framesSent: field(m[1], 'frames-sent'),
    framesDropped: field(m[1], 'frames-dropped'),
    acks: field(m[1], 'acks'),
    p50: field(m[1], 'latency-p50-us'),
    p95: field(m[1], 'latency-p95-us'),
    p99: field(m[1], 'latency-p99-us'),
    max: field(m[1], 'latency-max-us'),
    delivered: field(m[1], 'delivered-bitrate'),
    rendition: field(m[1], 'rendition'),
    switches: field(m[1], 'rendition-switches'),
    capacity: field(m[1], 'link-capacity'),
  }));
  return {
    frames: field(top, 'frames'), bytes: field(top, 'bytes'), renderUs: field(top, 'render-time-us'), target: field(top, 'target-bitrate'), clients,
  };
}

// --- static server for the pages -----------------------------------------------------------------

// --- running one scenario ------------------------------------------------------------------------

const SECONDS = Number(opts.seconds ?? (opts.quick ? 8 : 12));
const WARMUP_MS = 3000;
// The source runs 0.3 % fast: its frames' phase against Chromium's 60 Hz frame clock then sweeps a
// whole cycle every ~5 s, so that a run does not sit at one lucky or unlucky phase (which otherwise
// moves the on-screen figures by up to a frame interval from run to run).
const SKEW = '1.003';

/** The viewport of the bench's pages; the viewer and the WebRTC page fit the picture in it. */
const VIEWPORT = { width: 1280, height: 720 };

/** Where a scenario's picture is on the page: fitted into the viewport (object-fit: contain). */
function laidOut(sc) {
  const scale = Math.min(VIEWPORT.width / sc.width, VIEWPORT.height / sc.height);
  const width = sc.width * scale;
  const height = sc.height * scale;
  return { x: (VIEWPORT.width - width) / 2, y: (VIEWPORT.height - height) / 2, width, height };
}

/**
 * The screen recorder's figures: capture -> the compositor frame that first showed each picture
 * (`screen`), pictures seen a second, and recorded frames whose barcode did not read.
 */
function screenFigures({ seen, misreads }, seconds) {
  const ms = seen.map((x) => x.latencyMs);
  return { screen: dist(ms), screenFps: ms.length / seconds, screenMisreads: misreads };
}

/** The encoder chain of a scenario: behind an RGB source with free caps when `natural`. */
function encoderChain(sc) {
  if (sc.serve) return serveChain(sc);
  const chain = ENCODERS[sc.codec].chain(sc.fps);
  return sc.natural ? `${NATURAL} ! ${chain}` : chain;
}

/** The `natural` scenarios' source: RGB (BGRx), then converted for the encoder. */
const NATURAL = 'videoconvert ! video/x-raw,format=BGRx ! videoconvert';

/**
 * What `rfb serve --codec C --size WxH --fps F` puts between its source and rfbsink (the x264
 * encoder, forced: the bench machine's GPU encoder would make it another scenario).
 */
function serveChain(sc) {
  const rfb = path.join(REPO, 'target', 'release', 'rfb');
  const r = spawnSync(rfb, ['serve', '--dry-run', '--codec', sc.codec, '--encoder', 'x264', '--size', `${sc.width}x${sc.height}`,
    '--fps', String(sc.fps)], { encoding: 'utf8', env: gstEnv() });
  if (r.status !== 0) throw new Error(`rfb serve --dry-run failed: ${r.stderr}`);
  const line = r.stdout.trim().split('\n').filter((l) => l.includes('rfbsink')).pop() ?? '';
  const parts = line.split(' ! ');
  // videotestsrc ... ! video/x-raw,... ! <what we want> ! rfbsink ...
  if (parts.length < 4 || !parts[0].startsWith('videotestsrc') || !parts[parts.length - 1].startsWith('rfbsink')) {
    throw new Error(`unexpected rfb serve pipeline: ${line}`);
  }
  return parts.slice(2, -1).join(' ! ');
}

async function runRfb(sc, ctx) {
  const enc = ENCODERS[sc.codec];
  // The bench page is served from this script's own server: rfbsink must allow its origin.
  const sink = `rfbsink port=0 address=127.0.0.1 stats-interval=1000 allowed-origins=${ctx.base}${sc.rateControl ? ' rate-control=slowest' : ' rate-control=off'}`;
  if (sc.shape && !IN_NETNS) return { ...sc, skipped: 'a shaped link needs the private network namespace' };
  const source = spawnJson(PYTHON, [path.join(HERE, 'source.py'), '--mode', 'rfb', '--width', String(sc.width), '--height', String(sc.height),
    '--fps', String(sc.fps), '--skew', SKEW, '--encoder', encoderChain(sc), '--sink', sink, '--max-seconds', String(SECONDS + 60)], { env: gstEnv(), what: 'source.py' });
  let light = null;
  let page = null;
  /** The screen recorder of a `busy` scenario. @type {Awaited<ReturnType<typeof startRecorder>> | null} */
  let recorder = null;
  try {
    const listening = await source.waitFor((e) => e.event === 'listening' || e.event === 'error', 'rfbsink-listening');
    if (listening.event === 'error') throw new Error(listening.message);
    const { url: clockBase } = await source.waitFor((e) => e.event === 'http', 'http');
    // The control link's token, from the URL rfbsink posted.
    const token = new URL(listening.url).searchParams.get('rfb_token');
    const wsUrl = `ws://127.0.0.1:${listening.port}/ws?rfb_token=${token}`;
    if (sc.transport === 'wt') {
      const info = await fetch(`http://127.0.0.1:${listening.port}/rfb.json?rfb_token=${token}`).then((r) => (r.ok ? r.json() : null), () => null);
      if (!info?.webtransport) return { ...sc, skipped: 'rfbsink does not offer WebTransport (no webtransport in /rfb.json)' };
    }
    page = await ctx.browser.context.newPage();
    const consoleTail = [];
    page.on('console', (m) => { consoleTail.push(`[${m.type()}] ${m.text()}`); if (consoleTail.length > 30) consoleTail.shift(); });
    page.on('pageerror', (e) => consoleTail.push(`[pageerror] ${e.message}`));
    const q = new URLSearchParams({ ws: wsUrl, transport: sc.transport, paint: sc.paint ?? 'auto' });
    await page.goto(`${ctx.base}/bench/viewer.html?${q}`);
    const hook = await page.evaluate(() => Promise.race([window.benchInstalled, new Promise((r) => setTimeout(() => r({ ok: false, error: 'timeout' }), 15000))]));
    if (!hook.ok) throw new Error(`the worker's bench hook did not install: ${hook.error} (is web/decode-worker.js's hook there?)\n${consoleTail.join('\n')}`);
    const waitDecoded = async (n, timeoutMs) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const s = await page.evaluate(() => window.rfbViewer.stats());
        if (s.framesDecoded >= n) return s;
        if (Date.now() > deadline) throw new Error(`viewer decoded ${s.framesDecoded} frames, wanted ${n}: ${JSON.stringify(s)}\n${consoleTail.join('\n')}`);
        await sleep(200);
      }
    };
    const first = await waitDecoded(5, 30_000);
    if (sc.busy) recorder = await startRecorder(page, { streamWidth: sc.width, box: laidOut(sc) });
    const wantTransport = { ws: 'websocket', wt: 'webtransport' }[sc.transport];
    if (first.transport !== wantTransport) throw new Error(`the viewer runs on ${first.transport}, not ${wantTransport}`);
    const calibration = ctx.calibrated ? null : {
      clock: await page.evaluate((u) => window.benchClock(u), new URL('clock', clockBase).href),
      selftest: await page.evaluate((w) => window.benchSelftest(w), sc.width),
    };
    ctx.calibrated ||= calibration;
    if (sc.viewers > 1) {
      light = spawnJson(PYTHON, [path.join(HERE, 'lightclient.py'), wsUrl, String(sc.viewers - 1), '--max-seconds', String(SECONDS + 60)], { env: process.env, what: 'lightclient.py' });
      await light.waitFor((e) => e.event === 'connected', `${sc.viewers - 1} light clients`);
    }
    const sender = { ports: [listening.port, listening.webtransport_port].filter(Boolean) };
    if (sc.shape) shapeServer(sc.shape.kbit, sender);
    const tWarm = Date.now();
    // Behind a shaped link: time for the queue to fill, and for rate control to settle.
    await sleep(sc.shape ? 4 * WARMUP_MS : WARMUP_MS);
    // --- the measured window
    const pid = source.proc.pid;
    const statsFrom = source.events.length;
    await page.evaluate(() => window.benchRead());
    if (light) light.proc.stdin.write('mark\n');
    const v0 = await page.evaluate(() => window.rfbViewer.stats());
    const cpu0 = { rt: threadCpu(pid, 'rfbsink-runtim'), all: processCpu(pid), m: machineCpu() };
    const recorded0 = recorder?.frames() ?? 0;
    recorder?.samples();
    const t0 = Date.now();
    await measuredWindow(sc, sender);
    const cpu1 = { rt: threadCpu(pid, 'rfbsink-runtim'), all: processCpu(pid), m: machineCpu() };
    const elapsed = (Date.now() - t0) / 1000;
    const recordedFps = recorder ? (recorder.frames() - recorded0) / elapsed : null;
    const screen = recorder ? screenFigures(recorder.samples(), elapsed) : {};
    const measured = await page.evaluate(() => window.benchRead());
    const v1 = await page.evaluate(() => window.rfbViewer.stats());
    let lightMark0 = null;
    let lightMark1 = null;
    if (light) {
      const marks = () => light.events.filter((e) => e.event === 'mark');
      lightMark0 = marks()[0];
      light.proc.stdin.write('mark\n');
      await light.waitFor((e) => e.event === 'mark' && e !== lightMark0, 'second mark', 5000);
      lightMark1 = marks()[1];
    }
    const hwm = vmHwmKb(pid);
    const stats = source.events.slice(statsFrom).filter((e) => e.event === 'stats').map((e) => ({ at: e.at, ...parseStats(e.text) }));
    // The element's latency figures cover a sliding 5 s window: only windows that start 1 s after
    // the warm-up began (the connect-time burst of the GOP cache is out of them).
    const windows = stats.filter((s) => s.at * 1000 >= tWarm + 6000);
    const latency = source.events.find((e) => e.event === 'latency');
    if (source.proc.exitCode !== null || source.proc.signalCode !== null) {
      throw new Error(`source.py exited during the run (${source.proc.exitCode ?? source.proc.signalCode}): ${source.stderr().split('\n').filter((l) => !/WARN/.test(l)).slice(-3).join(' ')}`);
    }
    if (stats.length < 2) throw new Error(`fewer than 2 rfbsink-stats messages in ${elapsed} s`);
    const a = stats[0];
    const b = stats[stats.length - 1];
    const frames = b.frames - a.frames;
    const rfbCpu = cpu1.rt - cpu0.rt + (b.renderUs - a.renderUs) / 1e6;
    const mine = (s) => s.clients.find((c) => c.id === v1.clientId);
    const elemP50 = median(windows.map(mine).filter(Boolean).map((c) => c.p50 / 1000));
    const elemP99 = Math.max(...windows.map(mine).filter(Boolean).map((c) => c.p99 / 1000));
    const lightP99 = light ? Math.max(...windows.flatMap((s) => s.clients.filter((c) => c.id !== v1.clientId).map((c) => c.p99 / 1000))) : NaN;
    // e2e: at the worker's next animation frame after paint (the picture committed for display; the
    // same point as the WebRTC page's requestVideoFrameCallback); e2ePaint: right after drawImage.
    const e2e = measured.samples.filter((s) => s.frameLatencyMs !== null).map((s) => s.frameLatencyMs);
    const e2ePaint = measured.samples.map((s) => s.latencyMs);
    let lightFps = null;
    let lightGaps = null;
    if (lightMark0 && lightMark1) {
      const per = lightMark1.clients.map((c, i) => (c.frames - lightMark0.clients[i].frames) / elapsed);
      lightFps = { min: Math.min(...per), max: Math.max(...per), mean: per.reduce((x, y) => x + y, 0) / per.length };
      lightGaps = lightMark1.clients.reduce((n, c, i) => n + c.gaps - lightMark0.clients[i].gaps, 0);
    }
    const produced = frames / (b.at - a.at);
    const timeline = sc.shape ? shapedTimeline(sc, measured, source.events, t0, v1.clientId) : null;
    return {
      ...sc,
      seconds: elapsed,
      encoder: encoderChain(sc),
      pipelineLatencyMs: latency?.min_ms ?? null,
      codecString: v1.codecString,
      viewerTransport: v1.transport,
      producedFps: produced,
      deliveredFps: (v1.framesDecoded - v0.framesDecoded) / elapsed,
      paintedFpsBarcode: e2ePaint.length / elapsed,
      shownFps: e2e.length / elapsed,
      recordedFps,
      ...screen,
      paintPath: v1.paintPath,
      lightClientFps: lightFps,
      lightClientGaps: lightGaps,
      viewerFramesDropped: v1.framesDropped - v0.framesDropped,
      e2e: dist(e2e),
      e2eSamples: thin(e2e, 400),
      e2ePaint: dist(e2ePaint),
      barcodeMisreads: measured.misreads,
      barcodeReadCostMsPerFrame: e2ePaint.length ? measured.readCostMs / (e2ePaint.length + measured.misreads) : NaN,
      workerPerfMinusDateMs: measured.perfMinusDateMs,
      elementP50Ms: elemP50,
      elementP99Ms: elemP99,
      elementLightClientsP99Ms: lightP99,
      elementFramesDropped: b.clients.reduce((n, c) => n + (c.framesDropped ?? 0), 0) - a.clients.reduce((n, c) => n + (c.framesDropped ?? 0), 0),
      rfbsinkCpuPercentOfCore: (rfbCpu / elapsed) * 100,
      rfbsinkCpuPerFrameUs: (rfbCpu / frames) * 1e6,
      renderUsPerFrame: (b.renderUs - a.renderUs) / frames,
      pipelineCpuPercent: ((cpu1.all - cpu0.all) / elapsed) * 100,
      machineBusyPercent: ((cpu1.m.busy - cpu0.m.busy) / (cpu1.m.total - cpu0.m.total)) * 100,
      bytesPerSecond: (b.bytes - a.bytes) / (b.at - a.at),
      peakMemoryMiB: hwm / 1024,
      calibration,
      ...(timeline ? { timeline, ...stepFigures(sc, timeline) } : {}),
      // Rate control on a free link: each target it set in the window (ms from its start,
      // kbit/s); a cut there is a false reading (a busy browser's late frames read as a queue).
      ...(sc.rateControl && !sc.shape ? {
        rateTargets: source.events.filter((e) => e.event === 'target' && e.at * 1000 >= t0 && e.at * 1000 <= t0 + elapsed * 1000)
          .map((e) => [Math.round(e.at * 1000 - t0), Math.round(e.bitrate / 1000)]),
      } : {}),
    };
  } finally {
    if (sc.shape) shapeServer(0);
    if (recorder) await recorder.stop();
    if (light) await light.stop();
    if (page) await page.close().catch(() => {});
    await source.stop();
  }
}

/** Opens a bench viewer page on `wsUrl` and waits until it decoded 5 frames on `transport`. */
async function openBenchViewer(ctx, wsUrl, transport) {
  const page = await ctx.browser.context.newPage();
  const consoleTail = [];
  page.on('console', (m) => { consoleTail.push(`[${m.type()}] ${m.text()}`); if (consoleTail.length > 30) consoleTail.shift(); });
  page.on('pageerror', (e) => consoleTail.push(`[pageerror] ${e.message}`));
  await page.goto(`${ctx.base}/bench/viewer.html?${new URLSearchParams({ ws: wsUrl, transport })}`);
  const hook = await page.evaluate(() => Promise.race([window.benchInstalled, new Promise((r) => setTimeout(() => r({ ok: false, error: 'timeout' }), 15000))]));
  if (!hook.ok) throw new Error(`the worker's bench hook did not install: ${hook.error}\n${consoleTail.join('\n')}`);
  const deadline = Date.now() + 30_000;
  for (;;) {
    const st = await page.evaluate(() => window.rfbViewer.stats());
    if (st.framesDecoded >= 5) {
      const want = { ws: 'websocket', wt: 'webtransport' }[transport];
      if (st.transport !== want) throw new Error(`the viewer runs on ${st.transport}, not ${want}`);
      return { page, consoleTail };
    }
    if (Date.now() > deadline) throw new Error(`viewer ${wsUrl} decoded ${st.framesDecoded} frames in 30 s\n${consoleTail.join('\n')}`);
    await sleep(200);
  }
}

/**
 * Two viewers of one stream at once, one on a free link and one on 700 kbit/s (see the header):
 * a row for each, with the size and bitrate it got.
 */
async function runTwoLinks(sc, ctx) {
  if (!IN_NETNS) return { ...sc, skipped: 'two links need the private network namespace' };
  const chain = ENCODERS.h264.chain(sc.fps);
  const encoder = sc.ladder ? `tee name=t t. ! queue ! ${chain}` : chain;
  const rung = sc.ladder
    ? ` t. ! queue ! videoscale ! video/x-raw,width=${sc.width / 2},height=${sc.height / 2} ! ${chain} bitrate=${LADDER_KBPS} ! sink.rendition_1`
    : '';
  // 0.0.0.0: the shaped viewer reaches it on the veth address (only inside the namespace).
  const sink = `rfbsink name=sink port=0 address=0.0.0.0 stats-interval=1000 allowed-origins=${ctx.base}${sc.rateControl ? ' rate-control=slowest' : ' rate-control=off'}${rung}`;
  const source = spawnJson(PYTHON, [path.join(HERE, 'source.py'), '--mode', 'rfb', '--width', String(sc.width), '--height', String(sc.height),
    '--fps', String(sc.fps), '--skew', SKEW, '--encoder', encoder, '--sink', sink, '--max-seconds', String(SECONDS + 60)], { env: gstEnv(), what: 'source.py' });
  const viewers = [];
  try {
    const listening = await source.waitFor((e) => e.event === 'listening' || e.event === 'error', 'rfbsink-listening');
    if (listening.event === 'error') throw new Error(listening.message);
    const token = new URL(listening.url).searchParams.get('rfb_token');
    const url = (host) => `ws://${host}:${listening.port}/ws?rfb_token=${token}`;
    for (const [link, host] of [['free', '127.0.0.1'], ['700k', SHAPED_ADDRESS]]) {
      viewers.push({ link, ...(await openBenchViewer(ctx, url(host), sc.transport)) });
    }
    const shapedAt = Date.now();
    const shapedFrom = source.events.length;
    shapeServer(700, { address: SHAPED_ADDRESS, ports: [listening.port, listening.webtransport_port].filter(Boolean) });
    await sleep(4 * WARMUP_MS);
    const statsFrom = source.events.length;
    for (const v of viewers) {
      await v.page.evaluate(() => window.benchRead());
      v.s0 = await v.page.evaluate(() => window.rfbViewer.stats());
    }
    const t0 = Date.now();
    await sleep(SECONDS * 1000);
    const elapsed = (Date.now() - t0) / 1000;
    const stats = source.events.slice(statsFrom).filter((e) => e.event === 'stats').map((e) => ({ at: e.at, ...parseStats(e.text) }));
    if (stats.length < 2) throw new Error(`fewer than 2 rfbsink-stats messages in ${elapsed} s`);
    const [a, b] = [stats[0], stats.at(-1)];
    const rows = [];
    for (const v of viewers) {
      const measured = await v.page.evaluate(() => window.benchRead());
      const s1 = await v.page.evaluate(() => window.rfbViewer.stats());
      const e2e = measured.samples.filter((x) => x.frameLatencyMs !== null).map((x) => x.frameLatencyMs);
      const mine = (st) => st.clients.find((c) => c.id === s1.clientId);
      const delivered = stats.map(mine).filter(Boolean).map((c) => c.delivered);
      rows.push({
        ...sc,
        name: `${sc.name}: ${v.link}`,
        link: v.link,
        seconds: elapsed,
        producedFps: (b.frames - a.frames) / (b.at - a.at),
        deliveredFps: (s1.framesDecoded - v.s0.framesDecoded) / elapsed,
        paintedFpsBarcode: measured.samples.length / elapsed,
        e2e: dist(e2e),
        e2eSamples: thin(e2e, 400),
        size: `${s1.width}x${s1.height}`,
        rendition: s1.renditions?.current ?? 0,
        renditionSwitches: mine(b)?.switches ?? null,
        deliveredKbps: median(delivered) / 1000,
        targetKbps: b.target ? b.target / 1000 : null,
        elementP50Ms: median(stats.map(mine).filter(Boolean).map((c) => c.p50 / 1000)),
        elementP99Ms: Math.max(...stats.map(mine).filter(Boolean).map((c) => c.p99 / 1000)),
        bytesPerSecond: (b.bytes - a.bytes) / (b.at - a.at),
        // Each second from the moment the link was shaped: [ms, its render()->decoded p50 ms,
        // rendition, switches so far, frames dropped so far, delivered kbit/s, measured link
        // capacity kbit/s].
        timeline: source.events.slice(shapedFrom).filter((e) => e.event === 'stats').map((e) => {
          const c = mine({ ...parseStats(e.text) });
          return c ? [Math.round(e.at * 1000 - shapedAt), Math.round(c.p50 / 1000), c.rendition, c.switches, c.framesDropped, Math.round(c.delivered / 1000),
            Math.round(c.capacity / 1000)] : null;
        }).filter(Boolean),
      });
    }
    return rows;
  } finally {
    shapeServer(0);
    for (const v of viewers) await v.page.close().catch(() => {});
    await source.stop();
  }
}


/**
 * A shaped run's timeline, in ms from the measured window's start: each painted frame's capture
 * time and its glass-to-glass latency; each target the rate control set (kbit/s); each second's
 * stats: the stream's bitrate, what the viewer acknowledged, the target (kbit/s).
 */
function shapedTimeline(sc, measured, events, t0, clientId) {
  // The worker's clock: the page's Date.now() plus perfMinusDateMs.
  const t0Us = (t0 + measured.perfMinusDateMs) * 1000;
  const frames = measured.samples.filter((x) => x.frameLatencyMs !== null)
    .map((x) => [Math.round(-latencyMs(x.t48, t0Us)), Math.round(x.frameLatencyMs * 10) / 10]);
  const targets = events.filter((e) => e.event === 'target').map((e) => [Math.round(e.at * 1000 - t0), Math.round(e.bitrate / 1000)]);
  const stats = events.filter((e) => e.event === 'stats').map((e) => ({ at: e.at, ...parseStats(e.text) }));
  const seconds = stats.slice(1).map((s, i) => [
    Math.round(s.at * 1000 - t0),
    Math.round(((s.bytes - stats[i].bytes) * 8) / (s.at - stats[i].at) / 1000),
    Math.round((s.clients.find((c) => c.id === clientId)?.delivered ?? 0) / 1000),
    Math.round((s.target ?? 0) / 1000),
  ]);
  return { steps: sc.shape.steps ?? [], frames, targets, seconds };
}

/**
 * A step's figures: after the step down, how long until every frame's latency is under 200 ms
 * (`recoveryMs`, from the step); after the step up, how long until the encoder's target is back
 * at the highest it had before the step down (`fullQualityMs`), null if it never came back.
 */
function stepFigures(sc, timeline) {
  const [down, up] = sc.shape.steps ?? [];
  if (!down || !up) return {};
  const late = timeline.frames.filter(([t, ms]) => t >= down.atMs && t < up.atMs && ms >= 200);
  const recoveryMs = late.length ? Math.max(...late.map(([t]) => t)) - down.atMs : 0;
  // The target before the step down (from the stats: it changes only under congestion).
  // (webrtcsink has no such stats: the last bitrate it set before the step.)
  const before = timeline.seconds.length ? timeline.seconds.filter(([t]) => t < down.atMs).map(([, , , k]) => k)
    : timeline.targets.filter(([t]) => t < down.atMs).map(([, k]) => k);
  const full = before.length ? before[before.length - 1] : null;
  const cutDuring = timeline.targets.some(([t]) => t >= down.atMs && t < up.atMs);
  const back = timeline.targets.find(([t, k]) => t >= up.atMs && (full === null || k >= full));
  const fullQualityMs = !cutDuring ? 0 : back ? back[0] - up.atMs : null;
  const inStep = timeline.frames.filter(([t]) => t >= down.atMs && t < up.atMs);
  return { recoveryMs, fullQualityMs, stepFps: inStep.length / ((up.atMs - down.atMs) / 1000) };
}

/** The sender that shapeServer() holds now (its filters), or null. */
let shapedSender = null;

/**
 * Holds what the server sends to `kbit` kbit/s behind a 300 ms queue, as a slow downstream link
 * does: packets from its `ports` (TCP and UDP) or its port `range` ([first, mask]), and only from
 * `address` when given, go through an HTB class holding a token bucket (tbf) on the namespace's
 * loopback; what the viewers send back (acks, RTCP feedback) passes freely, as on a link with an
 * upstream of its own. A later call for the same sender only changes the rate (the steps); 0 frees
 * it. Only inside the bench's private network namespace.
 * @param {number} kbit
 * @param {{ports?: number[], range?: [number, number], address?: string}} [from]
 */
function shapeServer(kbit, from = {}) {
  if (!IN_NETNS) throw new Error('shaping needs the private network namespace');
  const run = (cmd) => {
    const r = spawnSync('/bin/sh', ['-c', cmd], { encoding: 'utf8' });
    if (r.status !== 0 && kbit) throw new Error(`${cmd}: ${r.stderr.trim()}`);
  };
  const bucket = `tbf rate ${kbit}kbit burst 16kb latency 300ms`;
  if (!kbit) {
    run('tc qdisc del dev lo root');
    run('ip link set lo mtu 65536');
    shapedSender = null;
    return;
  }
  const sender = JSON.stringify(from);
  if (shapedSender === sender) {
    run(`tc qdisc replace dev lo parent 1:20 handle 20: ${bucket}`);
    return;
  }
  // lo's 64 KiB packets are larger than the bucket's burst, and tbf drops those: 1500, as a link.
  run('ip link set lo mtu 1500');
  run('tc qdisc replace dev lo root handle 1: htb default 10 r2q 1000');
  run('tc class replace dev lo parent 1: classid 1:10 htb rate 10gbit');
  run('tc class replace dev lo parent 1: classid 1:20 htb rate 10gbit');
  run(`tc qdisc replace dev lo parent 1:20 handle 20: ${bucket}`);
  const src = from.address ? `match ip src ${from.address}/32 ` : '';
  const matches = [...(from.ports ?? []).map((port) => `${port} 0xffff`), ...(from.range ? [`${from.range[0]} 0x${from.range[1].toString(16)}`] : [])];
  if (!matches.length) throw new Error('shapeServer: no ports to shape');
  for (const m of matches) run(`tc filter add dev lo protocol ip parent 1: prio 1 u32 ${src}match ip sport ${m} flowid 1:20`);
  shapedSender = sender;
}

/**
 * The measured window of a scenario: its length, and on a shaped link its steps (the rate
 * `sender`'s packets are held to changes at each step's time).
 * @param {{shape?: {seconds?: number, steps?: {atMs: number, kbit: number}[]} | null}} sc
 * @param {Parameters<typeof shapeServer>[1]} sender
 */
async function measuredWindow(sc, sender) {
  const steps = (sc.shape?.steps ?? []).map((st) => setTimeout(() => shapeServer(st.kbit, sender), st.atMs));
  await sleep((sc.shape?.seconds ?? SECONDS) * 1000);
  steps.forEach(clearTimeout);
}

/** GStreamer's environment with gst-plugins-rs' webrtcsink and rtpgccbwe: built on first use (minutes). */
let webrtcsinkEnvCache = null;
function webrtcsinkEnv() {
  if (!webrtcsinkEnvCache) {
    const dirs = ['whepclientsrc.sh', 'rtpgccbwe.sh'].map((script) => {
      const r = spawnSync('bash', [path.join(REPO, 'scripts', script)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 3_600_000 });
      if (r.status !== 0) throw new Error(`scripts/${script} failed`);
      return r.stdout.trim();
    });
    webrtcsinkEnvCache = { ...gstEnv(), GST_PLUGIN_PATH: [gstEnv().GST_PLUGIN_PATH, ...dirs].join(':') };
  }
  return webrtcsinkEnvCache;
}

/**
 * A WebRTC scenario: the webrtcbin baseline (source.py's own webrtcbin offers), rfbsink's WebRTC
 * transport (`rfb-webrtc`: the page offers to rfbsink's /whep), or webrtcsink (`webrtcsink`: the
 * page offers to whepserversink through source.py), read the same way by webrtc.html; with N > 1
 * peers, N - 1 more pull the stream over WHEP from tests/bench/whepclients.py.
 */
async function runWebrtc(sc, ctx) {
  const ours = sc.kind === 'rfb-webrtc';
  const reference = sc.kind === 'webrtcsink';
  const args = ours
    // Bound to the veth address: libnice (the WHEP peers of whepclients.py) does not pair its
    // host candidates with a loopback one; Chromium does, but both get the same path here.
    ? ['--mode', 'rfb', '--sink', `rfbsink port=0 address=${RTC_ADDRESS} stats-interval=1000 max-clients=64 allowed-origins=${ctx.base} `
      // The shaped rows hold its media to 16 ports (one peer); the 8 and 32 peers use any.
      + `${sc.shape ? `webrtc-ports=${RFB_RTC_PORTS[0]}-${RFB_RTC_PORTS[0] + 15}` : ''}${sc.rateControl ? ' rate-control=slowest' : ''}`]
    : ['--mode', sc.kind];
  const source = spawnJson(PYTHON, [path.join(HERE, 'source.py'), ...args, '--width', String(sc.width), '--height', String(sc.height),
    '--fps', String(sc.fps), '--skew', SKEW, '--encoder', sc.natural ? `${NATURAL} ! video/x-raw,format=I420 ! ${ENCODERS.h264.chain(sc.fps)}` : ENCODERS.h264.chain(sc.fps),
    '--max-seconds', String(SECONDS + 90)],
  { env: reference ? webrtcsinkEnv() : gstEnv(), what: `source.py (${sc.kind})` });
  let page = null;
  let peers = null;
  /** The screen recorder of a `busy` scenario. @type {Awaited<ReturnType<typeof startRecorder>> | null} */
  let recorder = null;
  /** @type {{seconds: number, retries: number, busy_answers: number} | null} whepclients.py's set-up */
  let peerSetup = null;
  try {
    const consoleTail = [];
    let query;
    let whep = null;
    let token = null;
    if (ours) {
      const listening = await source.waitFor((e) => e.event === 'listening' || e.event === 'error', 'rfbsink-listening');
      if (listening.event === 'error') throw new Error(listening.message);
      await source.waitFor((e) => e.event === 'http', 'http');
      token = new URL(listening.url).searchParams.get('rfb_token');
      whep = `http://${RTC_ADDRESS}:${listening.port}/whep`;
      query = new URLSearchParams({ whep, token, signal: (source.events.find((e) => e.event === 'http')).url });
      if (sc.noTwcc) query.set('notwcc', '1');
    } else if (reference) {
      const { url: signal } = await source.waitFor((e) => e.event === 'http', 'http');
      query = new URLSearchParams({ whep: new URL('whep', signal).href, signal });
    } else {
      const { url: signal } = await source.waitFor((e) => e.event === 'http', 'http');
      query = new URLSearchParams({ signal });
    }
    page = await ctx.browser.context.newPage();
    page.on('console', (m) => { consoleTail.push(`[${m.type()}] ${m.text()}`); if (consoleTail.length > 30) consoleTail.shift(); });
    page.on('pageerror', (e) => consoleTail.push(`[pageerror] ${e.message}`));
    await page.goto(`${ctx.base}/bench/webrtc.html?${query}`);
    const offer = ours || reference
      ? { candidates: `${sc.kind} (in its WHEP answer)` }
      : await source.waitFor((e) => e.event === 'offer' || e.event === 'error', 'the offer', 20_000);
    if (offer.event === 'error') throw new Error(offer.message);
    const deadline = Date.now() + 30_000;
    let got = 0;
    while (got < 5) {
      const r = await page.evaluate(() => window.benchRead());
      got += r.samples.length;
      if (Date.now() > deadline) {
        const st = await page.evaluate(() => window.benchState);
        throw new Error(`no WebRTC frames read in 30 s (state ${JSON.stringify(st)}, offer candidates ${JSON.stringify(offer.candidates)})\n${consoleTail.join('\n')}\n${source.stderr()}`);
      }
      await sleep(300);
    }
    if (ours && sc.viewers > 1) {
      peers = spawnJson(PYTHON, [path.join(HERE, 'whepclients.py'), whep, token, String(sc.viewers - 1), '--max-seconds', String(SECONDS + 90)],
        { env: gstEnv(), what: 'whepclients.py' });
      // Each peer is a whole negotiation on both sides of a 2-core machine: 2 s each is ample.
      const waitMs = 30_000 + 2_000 * (sc.viewers - 1);
      const setup = await peers.waitFor((e) => e.event === 'connected' || e.event === 'error', `${sc.viewers - 1} WHEP peers connected`, waitMs)
        .catch((err) => {
          const last = peers?.events.filter((e) => e.event === 'progress').at(-1);
          throw new Error(`${err.message}: after ${waitMs / 1000} s ${last ? `${last.started} started, ${last.connected} connected, ${last.receiving} receiving media, ${last.retries} made again after connecting without media, ${last.busy_answers} offers answered 503 (busy) and posted again` : 'no progress reported'}`);
        });
      if (setup.event === 'error') throw new Error(setup.message);
      peerSetup = setup;
    }
    const clock = await page.evaluate(() => window.benchClock());
    if (sc.busy) recorder = await startRecorder(page, { streamWidth: sc.width, box: laidOut(sc) });
    // webrtcsink sends from its ICE ports (source.py pins them to a range); rfbsink from its
    // `webrtc-ports`.
    const sender = reference ? { range: (await source.waitFor((e) => e.event === 'rtp-ports', 'rtp-ports')).range }
      : ours ? { range: RFB_RTC_PORTS } : null;
    if (sc.shape) shapeServer(sc.shape.kbit, sender);
    // Behind a shaped link: time for the queue to fill, and for congestion control to settle.
    await sleep(sc.shape ? 4 * WARMUP_MS : WARMUP_MS);
    const pid = source.proc.pid;
    await page.evaluate(() => window.benchRead());
    const s0 = await page.evaluate(() => window.benchStats());
    const marks = () => (peers ? peers.events.filter((e) => e.event === 'mark') : []);
    if (peers) peers.proc.stdin.write('mark\n');
    const src0 = source.events.filter((e) => e.event === 'source').at(-1);
    const cpu0 = { all: processCpu(pid), m: machineCpu() };
    const recorded0 = recorder?.frames() ?? 0;
    recorder?.samples();
    const t0 = Date.now();
    await measuredWindow(sc, sender);
    const elapsed = (Date.now() - t0) / 1000;
    const recordedFps = recorder ? (recorder.frames() - recorded0) / elapsed : null;
    const screen = recorder ? screenFigures(recorder.samples(), elapsed) : {};
    const cpu1 = { all: processCpu(pid), m: machineCpu() };
    const measured = await page.evaluate(() => window.benchRead());
    const s1 = await page.evaluate(() => window.benchStats());
    const src1 = source.events.filter((e) => e.event === 'source').at(-1);
    let peerKBps = null;
    if (peers) {
      const m0 = marks()[0];
      peers.proc.stdin.write('mark\n');
      const m1 = await peers.waitFor((e) => e.event === 'mark' && e !== m0, 'second mark', 5000);
      const per = m1.clients.map((c, i) => (c.bytes - m0.clients[i].bytes) / elapsed / 1000);
      peerKBps = { min: Math.min(...per), max: Math.max(...per) };
    }
    // e2e: at the requestVideoFrameCallback (after drawing the frame into a canvas), the same point
    // as the viewer's figure; e2ePaint: at rVFC's presentationTime (handed to the compositor).
    const e2e = measured.samples.map((s) => s.latencyMs);
    const e2ePresented = measured.samples.map((s) => s.presentedLatencyMs);
    const e2eDecoded = measured.samples.filter((s) => s.decodedLatencyMs !== null).map((s) => s.decodedLatencyMs);
    let timeline = null;
    if (sc.shape) {
      // As shapedTimeline: each shown frame's capture time (ms from t0) and latency; each bitrate
      // webrtcsink's congestion control gave its encoder.
      const frames = measured.samples.map((x) => [Math.round(-latencyMs(x.t48, t0 * 1000)), Math.round(x.latencyMs * 10) / 10]);
      const targets = source.events.filter((e) => e.event === 'target').map((e) => [Math.round(e.at * 1000 - t0), Math.round(e.bitrate / 1000)]);
      timeline = { steps: sc.shape.steps ?? [], frames, targets, seconds: [] };
    }
    return {
      ...sc,
      seconds: elapsed,
      encoder: {
        'rfb-webrtc': `${ENCODERS.h264.chain(sc.fps)} ! rfbsink (WebRTC: appsrc ! rtph264pay ! webrtcbin per peer)`,
        webrtcsink: 'videoconvert ! whepserversink video-caps=video/x-h264 start-bitrate=2048000 max-bitrate=2048000 (its x264enc, rtpgccbwe)',
      }[sc.kind] ?? `${ENCODERS.h264.chain(sc.fps)} ! rtph264pay config-interval=-1 aggregate-mode=zero-latency ! webrtcbin`,
      peerKBps,
      peerSetup,
      codecString: s1?.codec ?? null,
      decoderImplementation: s1?.decoderImplementation ?? null,
      producedFps: (src1.pushed - src0.pushed) / (src1.at - src0.at),
      deliveredFps: s1 && s0 ? (s1.framesDecoded - s0.framesDecoded) / elapsed : NaN,
      paintedFpsBarcode: e2e.length / elapsed,
      shownFps: e2e.length / elapsed,
      recordedFps,
      ...screen,
      paintPath: 'video element (WebRTC)',
      e2e: dist(e2e),
      e2eSamples: thin(e2e, 400),
      e2ePaint: dist(e2ePresented),
      e2eDecoded: dist(e2eDecoded),
      barcodeMisreads: measured.misreads,
      jitterBufferMs: s1 && s0 && s1.jitterBufferEmittedCount > s0.jitterBufferEmittedCount
        ? ((s1.jitterBufferDelay - s0.jitterBufferDelay) / (s1.jitterBufferEmittedCount - s0.jitterBufferEmittedCount)) * 1000 : NaN,
      decodeMsPerFrame: s1 && s0 && s1.framesDecoded > s0.framesDecoded
        ? ((s1.totalDecodeTime - s0.totalDecodeTime) / (s1.framesDecoded - s0.framesDecoded)) * 1000 : NaN,
      bytesPerSecond: s1 && s0 ? (s1.bytesReceived - s0.bytesReceived) / elapsed : NaN,
      pipelineCpuPercent: ((cpu1.all - cpu0.all) / elapsed) * 100,
      machineBusyPercent: ((cpu1.m.busy - cpu0.m.busy) / (cpu1.m.total - cpu0.m.total)) * 100,
      peakMemoryMiB: vmHwmKb(pid) / 1024,
      calibration: { clock },
      iceCandidates: offer.candidates,
      ...(timeline ? { timeline, ...stepFigures(sc, timeline) } : {}),
    };
  } finally {
    if (sc.shape) shapeServer(0);
    if (recorder) await recorder.stop();
    if (peers) await peers.stop();
    if (page) await page.close().catch(() => {});
    await source.stop();
  }
}

// --- output --------------------------------------------------------------------------------------

const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

function table(results) {
  const cols = [
    ['scenario', (r) => r.name, 30],
    ['e2e p50', (r) => f(r.e2e?.p50), 7],
    ['e2e p99', (r) => f(r.e2e?.p99), 7],
    ['xRTC p50', (r) => (r.ratioP50 ? `${f(r.ratioP50, 2)}` : '-'), 8],
    ['xRTC p99', (r) => (r.ratioP99 ? `${f(r.ratioP99, 2)}` : '-'), 8],
    ['paint p50', (r) => f(r.e2ePaint?.p50), 9],
    ['elem p50', (r) => f(r.elementP50Ms, 2), 8],
    ['elem p99', (r) => f(r.elementP99Ms, 2), 8],
    ['fps prod', (r) => f(r.producedFps), 8],
    ['fps dlvd', (r) => f(r.deliveredFps), 8],
    ['fps shown', (r) => f(r.shownFps), 9],
    ['screen p50', (r) => f(r.screen?.p50), 10],
    ['screen p99', (r) => f(r.screen?.p99), 10],
    ['screen fps', (r) => f(r.screenFps), 10],
    ['xRTC shown', (r) => (r.ratioShown ? `${f(r.ratioShown, 2)}` : '-'), 10],
    ['light fps min', (r) => (r.lightClientFps ? f(r.lightClientFps.min) : '-'), 13],
    ['rfb %core', (r) => f(r.rfbsinkCpuPercentOfCore, 2), 9],
    ['rfb us/frm', (r) => f(r.rfbsinkCpuPerFrameUs, 0), 10],
    ['kB/s', (r) => f(r.bytesPerSecond / 1000, 0), 7],
    ['VmHWM MiB', (r) => f(r.peakMemoryMiB, 0), 9],
    ['busy %', (r) => f(r.machineBusyPercent, 0), 6],
  ];
  const lines = [];
  lines.push(cols.map(([h, , w]) => h.padStart(w)).join(' | '));
  lines.push(cols.map(([, , w]) => '-'.repeat(w)).join('-|-'));
  for (const r of results) {
    if (r.error) { lines.push(`${r.name.padStart(30)} | FAILED: ${r.error.split('\n')[0].slice(0, 140)}`); continue; }
    if (r.skipped) { lines.push(`${r.name.padStart(30)} | skipped: ${r.skipped}`); continue; }
    lines.push(cols.map(([, get, w]) => String(get(r)).padStart(w)).join(' | '));
  }
  return lines.join('\n');
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;');

function svgPlot(results, meta) {
  const rows = results;
  const rowH = 34;
  const top = 96;
  const labelW = 250;
  const latW = 560;
  const gap = 40;
  const fpsW = 260;
  const W = labelW + latW + gap + fpsW + 70;
  const H = top + rows.length * rowH + 70;
  const maxLat = Math.min(400, Math.max(50, ...rows.map((r) => r.e2e?.p99 || 0), ...rows.map((r) => (Number.isFinite(r.elementP99Ms) ? r.elementP99Ms : 0))) * 1.1);
  const niceStep = [5, 10, 20, 25, 50, 100].find((s) => maxLat / s <= 10) ?? 100;
  const lx = (ms) => labelW + Math.min(latW, (Math.max(0, ms) / maxLat) * latW);
  const maxFps = Math.max(30, ...rows.map((r) => Math.max(r.producedFps || 0, r.deliveredFps || 0, r.fps || 0))) * 1.05;
  const fx0 = labelW + latW + gap;
  const fx = (v) => fx0 + (Math.max(0, v) / maxFps) * fpsW;
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, sans-serif" font-size="12">`);
  o.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  o.push(`<text x="12" y="22" font-size="15" font-weight="bold">rfbsink benchmark: end-to-end latency (capture -&gt; on screen, barcode in the pixels) and fps per scenario</text>`);
  o.push(`<text x="12" y="40" fill="#555">${esc(meta)}</text>`);
  o.push(`<text x="${labelW}" y="${top - 26}" font-weight="bold">end-to-end latency, ms: capture -&gt; on screen (barcode)</text>`);
  o.push(`<text x="${labelW}" y="${top - 10}" font-size="10" fill="#444">box p25-p75, black line p50, whiskers p5-p99, dots samples; green: p50 at paint; red: render()-&gt;decoded p50, p99</text>`);
  o.push(`<text x="${fx0}" y="${top - 26}" font-weight="bold">fps</text>`);
  o.push(`<text x="${fx0}" y="${top - 10}" font-size="10" fill="#444">grey produced, colour delivered</text>`);
  for (let v = 0; v <= maxLat + 1e-9; v += niceStep) {
    o.push(`<line x1="${lx(v)}" y1="${top}" x2="${lx(v)}" y2="${top + rows.length * rowH}" stroke="#e4e4e4"/>`);
    o.push(`<text x="${lx(v)}" y="${top + rows.length * rowH + 16}" text-anchor="middle" fill="#444">${v}</text>`);
  }
  const fStep = maxFps > 40 ? 15 : 10;
  for (let v = 0; v <= maxFps; v += fStep) {
    o.push(`<line x1="${fx(v)}" y1="${top}" x2="${fx(v)}" y2="${top + rows.length * rowH}" stroke="#e4e4e4"/>`);
    o.push(`<text x="${fx(v)}" y="${top + rows.length * rowH + 16}" text-anchor="middle" fill="#444">${v}</text>`);
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const cy = y + rowH / 2;
    const webrtc = r.kind === 'webrtc';
    if (i % 2) o.push(`<rect x="0" y="${y}" width="${W}" height="${rowH}" fill="#f6f6f6"/>`);
    o.push(`<text x="${labelW - 8}" y="${cy + 4}" text-anchor="end" ${webrtc ? 'fill="#a0522d" font-weight="bold"' : ''}>${esc(r.name)}</text>`);
    if (r.error || r.skipped) {
      const why = r.error ? `FAILED: ${r.error.split('\n')[0]}` : `skipped: ${r.skipped}`;
      o.push(`<text x="${labelW + 4}" y="${cy + 4}" fill="${r.error ? '#c00' : '#777'}" font-size="11">${esc(why.slice(0, 150))}</text>`);
      return;
    }
    const d = r.e2e;
    const color = webrtc ? '#d2691e' : '#2a6fdb';
    (r.e2eSamples ?? []).forEach((v, k) => {
      const jy = cy + (((k * 7919) % 17) - 8) * 0.8;
      o.push(`<circle cx="${lx(v).toFixed(1)}" cy="${jy.toFixed(1)}" r="1.3" fill="${color}" fill-opacity="0.25"/>`);
    });
    if (d && d.n) {
      o.push(`<line x1="${lx(d.p5)}" y1="${cy}" x2="${lx(d.p99)}" y2="${cy}" stroke="${color}" stroke-width="1.5"/>`);
      o.push(`<line x1="${lx(d.p5)}" y1="${cy - 6}" x2="${lx(d.p5)}" y2="${cy + 6}" stroke="${color}"/>`);
      o.push(`<line x1="${lx(d.p99)}" y1="${cy - 6}" x2="${lx(d.p99)}" y2="${cy + 6}" stroke="${color}"/>`);
      o.push(`<rect x="${lx(d.p25)}" y="${cy - 9}" width="${Math.max(1, lx(d.p75) - lx(d.p25))}" height="18" fill="${color}" fill-opacity="0.35" stroke="${color}"/>`);
      o.push(`<line x1="${lx(d.p50)}" y1="${cy - 11}" x2="${lx(d.p50)}" y2="${cy + 11}" stroke="#000" stroke-width="2"/>`);
      const label = `${f(d.p50)} / ${f(d.p99)}${r.ratioP50 ? `  (${f(r.ratioP50, 2)}x WebRTC)` : ''}`;
      o.push(`<text x="${Math.min(lx(d.p99) + 6, labelW + latW - 150)}" y="${cy - 5}" font-size="10" fill="#333">${label}</text>`);
    }
    if (Number.isFinite(r.e2ePaint?.p50)) {
      o.push(`<line x1="${lx(r.e2ePaint.p50)}" y1="${cy - 15}" x2="${lx(r.e2ePaint.p50)}" y2="${cy - 8}" stroke="#090" stroke-width="2"/>`);
    }
    if (Number.isFinite(r.elementP50Ms)) {
      for (const v of [r.elementP50Ms, r.elementP99Ms]) {
        o.push(`<line x1="${lx(v)}" y1="${cy + 6}" x2="${lx(v)}" y2="${cy + 14}" stroke="#d00" stroke-width="2"/>`);
      }
    }
    o.push(`<rect x="${fx0}" y="${cy - 10}" width="${fx(r.producedFps) - fx0}" height="9" fill="#bbb"/>`);
    o.push(`<rect x="${fx0}" y="${cy + 1}" width="${Math.max(0, fx(r.deliveredFps) - fx0)}" height="9" fill="${color}"/>`);
    o.push(`<line x1="${fx(r.fps)}" y1="${cy - 12}" x2="${fx(r.fps)}" y2="${cy + 12}" stroke="#000" stroke-dasharray="2,2"/>`);
    o.push(`<text x="${fx0 + fpsW + 4}" y="${cy + 4}" font-size="10">${f(r.deliveredFps, 0)}/${f(r.producedFps, 0)}</text>`);
  });
  o.push(`<text x="${labelW}" y="${H - 28}" fill="#555">ms. Dashed line: requested fps. ${esc('Nv = N viewers: 1 Chromium (measured end to end) + N-1 light WebSocket clients (read + ack, no decode).')}</text>`);
  o.push('</svg>');
  return o.join('\n');
}

// --- main ----------------------------------------------------------------------------------------

async function writePlot(results, meta) {
  const svgPath = path.join(opts.out, 'bench.svg');
  writeFileSync(svgPath, svgPlot(results, meta));
  // A PNG of the SVG for people without an SVG viewer.
  const pngPath = path.join(opts.out, 'bench.png');
  try {
    const b = await launchBenchBrowser();
    try {
      const p = await b.context.newPage();
      await p.goto(pathToFileURL(svgPath).href);
      await p.locator('svg').screenshot({ path: pngPath });
    } finally { await b.close(); }
  } catch (err) {
    process.stderr.write(`bench: no PNG (${err.message.split('\n')[0]})\n`);
  }
  return { svgPath, pngPath };
}

async function main() {
  if (opts.replot) {
    const { meta, results } = JSON.parse(readFileSync(opts.replot, 'utf8'));
    mkdirSync(opts.out, { recursive: true });
    const { svgPath, pngPath } = await writePlot(results, meta);
    console.log(`wrote ${svgPath}, ${pngPath}`);
    return 0;
  }
  // Transport dimension: WebTransport once the viewer takes ?transport=wt.
  const transportSrc = readFileSync(path.join(REPO, 'web', 'transport.js'), 'utf8');
  const wtSupported = /new\s+WebTransport\s*\(/.test(transportSrc) && /'wt'/.test(transportSrc);
  const transports = wtSupported ? ['ws', 'wt'] : ['ws'];
  let list = scenarios(opts.quick, transports);
  if (opts.list) { for (const s of list) console.log(s.name); return 0; }
  if (opts.only) list = list.filter((s) => new RegExp(opts.only).test(s.name));
  if (opts['no-webrtc'] || !IN_NETNS) list = list.filter((s) => s.kind !== 'webrtc' && s.kind !== 'rfb-webrtc' && s.kind !== 'webrtcsink');

  const check = spawnSync('gst-inspect-1.0', ['rfbsink'], { env: gstEnv(), encoding: 'utf8', timeout: 60_000 });
  if (check.status !== 0) { console.error(`rfbsink not found in ${PLUGIN_DIR} (run \`make build\` first)`); return 1; }
  mkdirSync(opts.out, { recursive: true });

  const notes = [];
  if (!wtSupported) notes.push('transport wt skipped: web/transport.js has no WebTransport backend yet (only ws runs)');
  if (!IN_NETNS) notes.push('not in a private network namespace (--no-netns): WebRTC baseline skipped');
  const results = [];
  const runnable = [];
  for (const s of list) {
    if (s.kind === 'webrtcsink') {
      // gst-plugins-rs' plugins, built once into ~/.cache/rfbsink-tools (minutes the first time).
      let ok = false;
      try {
        const check = spawnSync('gst-inspect-1.0', ['rtpgccbwe'], { env: webrtcsinkEnv(), stdio: 'ignore', timeout: 60_000 });
        ok = check.status === 0 && spawnSync('gst-inspect-1.0', ['whepserversink'], { env: webrtcsinkEnv(), stdio: 'ignore', timeout: 60_000 }).status === 0;
      } catch { /* said below */ }
      if (ok) runnable.push(s);
      else results.push({ ...s, skipped: 'webrtcsink/rtpgccbwe not built (scripts/whepclientsrc.sh, scripts/rtpgccbwe.sh)' });
      continue;
    }
    const rtc = s.kind === 'webrtc' || s.kind === 'rfb-webrtc';
    const element = rtc ? 'webrtcbin' : ENCODERS[s.codec].element;
    const need = rtc ? [element, 'nicesrc', 'rtph264pay', 'x264enc'] : [element, ENCODERS[s.codec].parser].filter(Boolean);
    const missing = need.filter((e) => !hasElement(e));
    if (missing.length) results.push({ ...s, skipped: `missing GStreamer element(s) ${missing.join(', ')}${missing.includes('nicesrc') ? ' (apt install gstreamer1.0-nice)' : ''}` });
    else runnable.push(s);
  }

  const { server, base } = await startServer();
  // Bare DevTools (launchBareBrowser): Playwright's network domain would have Chromium copy every
  // WebSocket frame for DevTools, a cost no viewer has. Host candidates as addresses (webrtcbin
  // cannot resolve mDNS names).
  const browser = await launchBareBrowser(VIEWPORT, [
    '--autoplay-policy=no-user-gesture-required', '--disable-features=WebRtcHideLocalIpsWithMdns',
  ]);
  const ctx = { base, browser, calibrated: null };
  const started = Date.now();
  const loadAvg = readFileSync('/proc/loadavg', 'utf8').trim();
  try {
    for (const sc of runnable) {
      process.stderr.write(`bench: ${sc.name} (${sc.shape?.seconds ?? SECONDS} s)... `);
      const t = Date.now();
      try {
        // Bounded: a scenario that hangs is abandoned (its processes are killed by stop()).
        const run = { rfb: runRfb, 'rfb-links': runTwoLinks }[sc.kind] ?? runWebrtc;
        const rows = [await Promise.race([
          run(sc, ctx),
          sleep((SECONDS + 90) * 1000).then(() => { throw new Error('scenario timed out'); }),
        ])].flat();
        results.push(...rows);
        process.stderr.write(`${rows.map((r) => (r.skipped ? `skipped: ${r.skipped}`
          : `${r.link ? `${r.link}: ` : ''}e2e p50 ${f(r.e2e.p50)} ms, ${f(r.deliveredFps)}/${f(r.producedFps)} fps${r.size ? ` ${r.size}` : ''}`)).join('; ')}`
          + ` (${((Date.now() - t) / 1000).toFixed(0)} s)\n`);
      } catch (err) {
        results.push({ ...sc, error: err.message });
        process.stderr.write(`FAILED: ${err.message.split('\n').slice(0, 6).join('\n')}\n`);
      }
    }
  } finally {
    await browser.close();
    server.close();
  }

  // Ratios against the WebRTC baseline at the same size and fps.
  // Shaped links: against webrtcsink on the same link.
  for (const r of results) {
    if (r.kind === 'webrtc' || r.kind === 'webrtcsink' || r.error || r.skipped) continue;
    const base = r.shape
      ? results.find((w) => w.kind === 'webrtcsink' && !w.error && !w.skipped && w.shapeName === r.shapeName)
      : results.find((w) => w.kind === 'webrtc' && !w.error && !w.skipped && w.width === r.width && w.height === r.height && w.fps === r.fps
        && Boolean(w.busy) === Boolean(r.busy) && Boolean(w.natural) === Boolean(r.natural));
    if (base && r.e2e.n && base.e2e.n) {
      r.ratioP50 = r.e2e.p50 / base.e2e.p50;
      r.ratioP99 = r.e2e.p99 / base.e2e.p99;
      r.ratioPaintP50 = r.e2ePaint?.p50 / base.e2ePaint?.p50;
      r.ratioShown = r.shownFps / base.shownFps;
      r.baseline = base.name;
    }
  }

  const calibration = ctx.calibrated;
  if (calibration) {
    notes.push(`clock check: viewer page clock - source CLOCK_REALTIME = ${f(calibration.clock.offsetMs, 3)} ms (HTTP round trip ${f(calibration.clock.rttMs, 2)} ms); `
      + `known-time barcode painted and read back in the worker: ${calibration.selftest.ok ? 'ok' : `MISMATCH (${calibration.selftest.want} vs ${calibration.selftest.got})`}`);
  }
  const webrtcRow = results.find((r) => r.kind === 'webrtc' && !r.error && !r.skipped);
  if (webrtcRow) {
    notes.push(`WebRTC baseline (${webrtcRow.name}): e2e at the requestVideoFrameCallback p50 ${f(webrtcRow.e2e.p50)} ms; at its presentationTime ("paint" column) p50 ${f(webrtcRow.e2ePaint.p50)} ms; `
      + `at receiveTime+processingDuration (decoded) p50 ${f(webrtcRow.e2eDecoded.p50)} ms; Chromium jitter buffer ${f(webrtcRow.jitterBufferMs)} ms/frame, decode ${f(webrtcRow.decodeMsPerFrame, 2)} ms/frame, ${webrtcRow.codecString}`);
  }
  if (results.some((r) => r.viewers > 1)) notes.push('Nv with N > 1: 1 Chromium viewer (e2e, fps dlvd, elem p50/p99 are its figures; on the scenario\'s transport) + N-1 light WebSocket clients (tests/bench/lightclient.py, also for wt scenarios) that read and ack every frame without decoding (light fps min = the slowest of them)');
  const rtcPeers = results.filter((r) => r.kind === 'rfb-webrtc' && !r.error && !r.skipped);
  const one = rtcPeers.find((r) => r.viewers === 1);
  if (one) {
    notes.push(`rfbsink WebRTC peers on one encoder (pipeline process CPU, % of one core): ${rtcPeers.map((r) => `${r.viewers} peer(s) ${f(r.pipelineCpuPercent)} %`).join(', ')}; `
      + `per added peer: ${rtcPeers.filter((r) => r.viewers > 1).map((r) => `${f((r.pipelineCpuPercent - one.pipelineCpuPercent) / (r.viewers - 1), 2)} % (at ${r.viewers})`).join(', ')}; `
      + `the extra peers are tests/bench/whepclients.py (webrtcbin, WHEP, nothing decoded), slowest ${rtcPeers.filter((r) => r.peerKBps).map((r) => `${f(r.peerKBps.min, 0)} kB/s at ${r.viewers}`).join(', ')}; `
      + `their set-up: ${rtcPeers.filter((r) => r.peerSetup).map((r) => `${r.viewers - 1} in ${f(r.peerSetup.seconds)} s (${r.peerSetup.retries} made again, ${r.peerSetup.busy_answers} offers answered busy)`).join(', ')}`);
  }
  const meta = `${new Date().toISOString()}  ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), load before: ${loadAvg}, ${SECONDS} s per scenario${opts.quick ? ', --quick' : ''}${IN_NETNS ? ', private netns' : ''}`;

  const h264_720 = results.find((r) => r.kind === 'rfb' && r.codec === 'h264' && r.width === 1280 && r.fps === 30 && r.viewers === 1 && !r.shape && !r.rateControl && !r.error && !r.skipped);
  const v32 = results.find((r) => r.kind === 'rfb' && r.codec === 'h264' && r.width === 1280 && r.fps === 30 && r.viewers === 32 && !r.error && !r.skipped);
  const targets = [];
  if (h264_720) {
    targets.push(`render()->decoded p50 ${f(h264_720.elementP50Ms, 2)} ms (target <= 5): ${h264_720.elementP50Ms <= 5 ? 'met' : 'NOT met'}`);
    targets.push(`render()->decoded p99 ${f(h264_720.elementP99Ms, 2)} ms (target <= 16): ${h264_720.elementP99Ms <= 16 ? 'met' : 'NOT met'}`);
    if (h264_720.ratioP50) {
      targets.push(`end-to-end p50 ${f(h264_720.ratioP50, 2)}x WebRTC's (target <= 0.65): ${h264_720.ratioP50 <= 0.65 ? 'met' : 'NOT met'}; `
        + `p99 ${f(h264_720.ratioP99, 2)}x; at paint vs WebRTC presentationTime p50 ${f(h264_720.ratioPaintP50, 2)}x`);
    }
    targets.push(`uncongested viewer gets every frame: delivered ${f(h264_720.deliveredFps)} of ${f(h264_720.producedFps)} fps, ${h264_720.viewerFramesDropped} dropped in the viewer, ${h264_720.elementFramesDropped} by rfbsink: ${h264_720.deliveredFps >= 0.98 * h264_720.producedFps && h264_720.elementFramesDropped === 0 ? 'met' : 'NOT met'}`);
  }
  const shaped = results.filter((r) => r.shape && !r.error && !r.skipped);
  const reference = (shapeName) => shaped.find((r) => r.kind === 'webrtcsink' && r.shapeName === shapeName);
  for (const on of shaped.filter((r) => r.kind === 'rfb' && r.rateControl && r.shapeName === '700k')) {
    const off = shaped.find((r) => r.kind === 'rfb' && !r.rateControl && r.shapeName === on.shapeName && r.transport === on.transport);
    const ref = reference(on.shapeName);
    targets.push(`700 kbit/s link, ${on.transport}: rate control shows ${f(on.shownFps)} fps at e2e p50 ${f(on.e2e.p50)} / p99 ${f(on.e2e.p99)} ms `
      + `${off ? `(off: ${f(off.shownFps)} fps, ${f(off.e2e.p50)} / ${f(off.e2e.p99)} ms)` : ''}; p99 target <= 150 ms: ${on.e2e.p99 <= 150 ? 'met' : 'NOT met'}`
      + (ref ? `; webrtcsink on the same link ${f(ref.shownFps)} fps, ${f(ref.e2e.p50)} / ${f(ref.e2e.p99)} ms: frames shown ${f((100 * on.shownFps) / ref.shownFps, 0)} % of its (target >= 95): ${on.shownFps >= 0.95 * ref.shownFps ? 'met' : 'NOT met'}, `
        + `p50 ${f(on.e2e.p50 / ref.e2e.p50, 2)}x its (target <= 0.8): ${on.e2e.p50 <= 0.8 * ref.e2e.p50 ? 'met' : 'NOT met'}` : '; webrtcsink not run'));
  }
  const step = (r) => `under 200 ms again ${f(r.recoveryMs, 0)} ms after the step down (target <= 2000): ${r.recoveryMs <= 2000 ? 'met' : 'NOT met'}, `
    + `${f(r.stepFps)} fps shown on 1 Mbit/s; full quality ${r.fullQualityMs === null ? 'never' : `${f(r.fullQualityMs, 0)} ms`} after the step up (target <= 10000): ${r.fullQualityMs !== null && r.fullQualityMs <= 10000 ? 'met' : 'NOT met'}`;
  for (const on of shaped.filter((r) => r.kind === 'rfb' && r.rateControl && r.shapeName === 'step')) targets.push(`20 -> 1 -> 20 Mbit/s, ${on.transport}: ${step(on)}`);
  if (reference('step')) targets.push(`20 -> 1 -> 20 Mbit/s, webrtcsink (reference, its full quality = the 2048 kbit/s it starts at): ${step(reference('step'))}`);
  for (const slow of results.filter((r) => r.kind === 'rfb-links' && r.link === '700k' && !r.error && !r.skipped)) {
    const free = results.find((r) => r.kind === 'rfb-links' && r.link === 'free' && r.variant === slow.variant && r.transport === slow.transport);
    const one = (r) => `${f(r.deliveredFps)} fps ${r.size} at ${f(r.deliveredKbps, 0)} kbit/s, e2e ${f(r.e2e.p50)} / ${f(r.e2e.p99)} ms`;
    targets.push(`two links, ${slow.transport} ${slow.variant}: free viewer ${free && !free.error ? one(free) : '-'}; 700 kbit/s viewer ${one(slow)}`
      + `${slow.rendition ? ` (rendition ${slow.rendition}, ${slow.renditionSwitches} switches)` : ''}${slow.targetKbps ? `; encoder target ${f(slow.targetKbps, 0)} kbit/s` : ''}`);
  }
  // Issue 24: the natural line (an RGB source) at 720p60 and 1080p30, against WebRTC from the same
  // source, idle and with the page recorded.
  for (const r of results.filter((x) => x.kind === 'rfb' && x.natural && x.paint === 'auto' && x.ratioP50 && x.ratioShown)) {
    targets.push(`natural line ${r.width}x${r.height}@${r.fps} ${r.transport}${r.busy ? ' busy' : ''}: e2e p50 ${f(r.e2e.p50)} ms, ${f(r.ratioP50, 2)}x ${r.baseline}'s (target <= 0.65): `
      + `${r.ratioP50 <= 0.65 ? 'met' : 'NOT met'}; frames shown ${f(100 * r.ratioShown, 0)} % of its (target >= 90): ${r.ratioShown >= 0.9 ? 'met' : 'NOT met'}`);
  }
  if (v32) targets.push(`32 viewers at 720p30: rfbsink ${f(v32.rfbsinkCpuPercentOfCore, 2)} % of one core (target < 10): ${v32.rfbsinkCpuPercentOfCore < 10 ? 'met' : 'NOT met'}`);

  const text = [
    `rfbsink benchmark  ${meta}`,
    '',
    table(results),
    '',
    'e2e = capture -> on screen: the barcode in the pixels read back, CLOCK_REALTIME at both ends, taken at the first animation frame after paint (viewer on the canvas: worker requestAnimationFrame; viewer\'s <video> and WebRTC: requestVideoFrameCallback), ms;',
    'paint = capture -> painted (viewer on the canvas: right after drawImage; <video>: rVFC presentationTime), ms; elem = rfbsink render() -> decoded (its stats, from the viewer acks), ms;',
    'xRTC = our e2e / WebRTC e2e at the same size and fps (the rgb-natural rows: WebRTC from the same RGB source; busy: with the page recorded too); rfb %core, us/frm = rfbsink runtime threads + render(); VmHWM = pipeline process peak RSS (includes the python source + encoder); busy % = whole machine.',
    ...notes.map((n) => `note: ${n}`),
    ...(targets.length ? ['', 'targets:', ...targets.map((t) => `  ${t}`)] : []),
  ].join('\n');
  console.log(`\n${text}\n`);
  const jsonPath = path.join(opts.out, 'bench-results.json');
  writeFileSync(jsonPath, JSON.stringify({ meta, notes, targets, calibration, results }, null, 2));
  writeFileSync(path.join(opts.out, 'bench-table.txt'), `${text}\n`);
  const { svgPath, pngPath } = await writePlot(results, meta);
  console.log(`wrote ${jsonPath}, ${svgPath}, ${pngPath} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  return results.some((r) => r.error) ? 3 : 0; // 3: some scenario failed
}

process.exitCode = await main();
