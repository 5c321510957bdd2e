// Benchmark: render() -> decoded latency and rfbsink's CPU cost, with 1 and with N viewers.
//
//   node tests/bench/latency.mjs [--viewers 1,8] [--seconds 15] [--size 1280x720] [--fps 30] [--json out.json]
//
// A real pipeline (videotestsrc -> x264enc -> rfbsink) runs under gst-launch-1.0 -m; headless
// Chromium tabs run the bundled viewer. Each viewer acknowledges every decoded frame on
// rfb.stats; rfbsink matches the ack with the time render() received the buffer, so the figure is
// render() -> decoded (plus the ack's trip back over loopback, well under a millisecond). The
// element posts its stats (rfbsink-stats, stats-interval) on the bus; this script reads them at
// the end of consecutive 5 s windows (the element's latency window): p50 is the median of the
// windows' medians, p99 and max the largest of theirs.
// rfbsink's CPU: the CPU time of its runtime threads (/proc/PID/task/*/stat, "rfbsink-runtime")
// plus the time spent in render(), per frame. A figure printer, not a test: it asserts nothing.

import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { launchBrowser, startPipeline, Viewer, assertPluginBuilt } from '../e2e/lib.mjs';

const { values: opts } = parseArgs({
  options: {
    viewers: { type: 'string', default: '1,8' },
    seconds: { type: 'string', default: '15' },
    size: { type: 'string', default: '1280x720' },
    fps: { type: 'string', default: '30' },
    json: { type: 'string' },
  },
});

const CLK_TCK = 100; // Linux USER_HZ
const [width, height] = opts.size.split('x').map(Number);
const fps = Number(opts.fps);
const seconds = Number(opts.seconds);

/** utime+stime (seconds) of the threads of `pid` whose name starts with `prefix`. */
function threadCpu(pid, prefix) {
  let ticks = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat;
    try { stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'); } catch { continue; }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    if (!name.startsWith(prefix)) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
  }
  return ticks / CLK_TCK;
}

/** Total CPU seconds of the whole process. */
function processCpu(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Numbers of one `name=(type)value` field in a serialized structure (unescaped). */
function field(text, name) {
  const m = text.match(new RegExp(`(?:^|[ ,])${name}=\\([a-z0-9]+\\)(-?[0-9]+)`));
  return m ? Number(m[1]) : undefined;
}

/** Parses an rfbsink-stats line printed by gst-launch-1.0 -m. */
function parseStats(line) {
  const at = line.indexOf('rfbsink-stats,');
  if (at < 0) return null;
  const text = line.slice(at).replace(/\\(.)/g, '$1');
  const top = text.split('client-stats=')[0];
  const clients = [...text.matchAll(/"client, ([^"]*)"/g)].map((m) => ({
    id: field(m[1], 'id'),
    framesSent: field(m[1], 'frames-sent'),
    framesDropped: field(m[1], 'frames-dropped'),
    acks: field(m[1], 'acks'),
    p50: field(m[1], 'latency-p50-us'),
    p95: field(m[1], 'latency-p95-us'),
    p99: field(m[1], 'latency-p99-us'),
    max: field(m[1], 'latency-max-us'),
  }));
  return {
    frames: field(top, 'frames'),
    renderUs: field(top, 'render-time-us'),
    clients,
  };
}

async function scenario(viewers) {
  const line = `videotestsrc is-live=true pattern=ball ! video/x-raw,format=I420,width=${width},height=${height},framerate=${fps}/1 `
    + `! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=${2 * fps} `
    + '! rfbsink port=0 stats-interval=1000';
  const pipeline = await startPipeline(line);
  const stats = [];
  let buf = '';
  pipeline.proc.stdout.on('data', (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const s = parseStats(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      if (s) stats.push({ at: Date.now(), ...s });
    }
  });
  const browser = await launchBrowser();
  try {
    const pages = [];
    for (let i = 0; i < viewers; i++) pages.push(await Viewer.open(browser.context, pipeline.url));
    await Promise.all(pages.map((v) => v.waitForFrames(10, { timeoutMs: 30_000 })));
    // Warm up, then measure over a window that the element's latency window (600 samples) covers.
    await new Promise((r) => setTimeout(r, 3000));
    const pid = pipeline.proc.pid;
    const first = stats.length;
    const cpu0 = { rt: threadCpu(pid, 'rfbsink-runtim'), all: processCpu(pid) };
    const t0 = Date.now();
    const windows = [];
    for (let w = 0; w < Math.max(1, Math.round(seconds / 5)); w++) {
      await new Promise((r) => setTimeout(r, 5000));
      windows.push(stats[stats.length - 1]);
    }
    const cpu1 = { rt: threadCpu(pid, 'rfbsink-runtim'), all: processCpu(pid) };
    const elapsed = (Date.now() - t0) / 1000;
    const a = stats[first];
    const b = stats[stats.length - 1];
    const frames = b.frames - a.frames;
    const rfbCpu = cpu1.rt - cpu0.rt + (b.renderUs - a.renderUs) / 1e6;
    const viewerStats = await Promise.all(pages.map((v) => v.stats()));
    const clients = b.clients;
    const pct = (k) => windows.flatMap((w) => w.clients.map((c) => c[k] / 1000));
    const result = {
      viewers,
      size: `${width}x${height}`,
      fps,
      seconds: elapsed,
      framesProduced: frames,
      producedFps: frames / (b.at - a.at) * 1000,
      latencyP50Ms: median(pct('p50')),
      latencyP99Ms: Math.max(...pct('p99')),
      latencyMaxMs: Math.max(...pct('max')),
      framesDropped: clients.reduce((n, c) => n + c.framesDropped, 0),
      rfbsinkCpuPerFrameUs: (rfbCpu / frames) * 1e6,
      rfbsinkCpuPercentOfCore: (rfbCpu / elapsed) * 100,
      renderPerFrameUs: (b.renderUs - a.renderUs) / frames,
      pipelineCpuPercent: ((cpu1.all - cpu0.all) / elapsed) * 100,
      viewerFps: viewerStats.map((s) => Math.round(s.fps)),
      perClient: clients,
    };
    return result;
  } finally {
    await browser.close();
    await pipeline.stop();
  }
}

function median(xs) {
  const s = [...xs].sort((p, q) => p - q);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
}

assertPluginBuilt();
const results = [];
for (const n of opts.viewers.split(',').map(Number)) {
  process.stderr.write(`running ${n} viewer(s) for ${seconds} s...\n`);
  results.push(await scenario(n));
}
const f = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');
console.log(`\nrender() -> decoded, H.264 ${opts.size}@${fps} (x264enc ultrafast zerolatency), WebSocket binary envelope`);
console.log('viewers | p50 ms | p99 ms | max ms | produced fps | dropped | rfbsink CPU/frame us | rfbsink % core | render() us/frame | pipeline % CPU');
for (const r of results) {
  console.log(`${String(r.viewers).padStart(7)} | ${f(r.latencyP50Ms, 2).padStart(6)} | ${f(r.latencyP99Ms, 2).padStart(6)} | ${f(r.latencyMaxMs, 2).padStart(6)} | `
    + `${f(r.producedFps).padStart(12)} | ${String(r.framesDropped).padStart(7)} | ${f(r.rfbsinkCpuPerFrameUs, 0).padStart(20)} | `
    + `${f(r.rfbsinkCpuPercentOfCore, 2).padStart(14)} | ${f(r.renderPerFrameUs, 1).padStart(17)} | ${f(r.pipelineCpuPercent, 0).padStart(14)}`);
}
if (opts.json) writeFileSync(opts.json, JSON.stringify(results, null, 2));
