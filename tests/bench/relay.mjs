// The relay benchmark (`make bench-relay`): what a Media over QUIC relay adds, glass to glass.
//
//   node tests/bench/relay.mjs [--seconds N] [--out DIR]
//
// One 1280x720@30 stream (tests/bench/source.py: frames that carry their capture time as a
// barcode, x264enc, rfbsink with relay-url) watched by rfbsink's own viewer on the direct link
// (WebTransport), through one moq-relay and through a second relay clustered to the first
// (--cluster-connect), all three at once, and by moq's reference player @moq/watch through the
// same two relays: the same frames, the same run (the player's two paths one after the other, as
// a background tab gets no animation frames; rfbsink's viewers throughout). Per path: frames painted per
// second and the latency from capture to the animation frame after paint (p50, p99). Also the CPU
// of the element's runtime threads + render(), and of each relay process; then the same with 0,
// 100 and 500 light relay subscribers on the edge relay (RFB_RELAY_SUBSCRIBERS; the example
// moq-subscribers, built by `cargo build --release --example moq-subscribers`): the element
// publishes once, so its cost must not grow with the audience.
//
// Loopback only; moq-relay from scripts/moq-relay.sh. Writes OUT/relay-results.json.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as esbuild from 'esbuild';

import { freePort, gstEnv } from '../e2e/lib.mjs';
import { announced, startRelay } from '../e2e/moq.mjs';
import { dist, killAll, launchBenchBrowser, machineCpu, processCpu, sleep, spawnJson, startServer, threadCpu } from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const PYTHON = process.env.RFB_BENCH_PYTHON ?? '/usr/bin/python3';
const { values: opts } = parseArgs({
  options: { seconds: { type: 'string', default: '15' }, out: { type: 'string', default: path.join(HERE, 'out') } },
});
const SECONDS = Number(opts.seconds);
const WIDTH = 1280;
const HEIGHT = 720;
const FPS = 30;
const ENCODER = `videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=${2 * FPS} bitrate=2048`;
const BROADCAST = 'bench';
/** Light relay subscribers, per load step (0: the direct viewer alone). */
const SUBSCRIBERS = (process.env.RFB_RELAY_SUBSCRIBERS ?? '0,100,500').split(',').map(Number);
const SUBSCRIBER_BIN = path.join(REPO, 'target', 'release', 'examples', 'moq-subscribers');

/** A path's figures from its page's samples over `seconds`. */
function row(name, measured, seconds) {
  // The rfbsink viewer's figure at the animation frame after paint; the player's page reads at
  // each animation frame.
  const lat = measured.samples.map((s) => s.frameLatencyMs ?? s.latencyMs).filter((x) => x !== null);
  return { path: name, seconds, paintedFps: lat.length / seconds, e2e: dist(lat), misreads: measured.misreads };
}

async function main() {
  if (SUBSCRIBERS.some((n) => n > 0) && !existsSync(SUBSCRIBER_BIN)) {
    const r = spawnSync('cargo', ['build', '--release', '-j', '2', '-p', 'gst-plugin-rfbsink', '--example', 'moq-subscribers'], { cwd: REPO, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('cannot build the moq-subscribers example');
  }
  mkdirSync(opts.out, { recursive: true });
  // The player, bundled unchanged next to its page.
  await esbuild.build({ entryPoints: ['@moq/watch/element'], bundle: true, format: 'esm', target: 'es2022',
    absWorkingDir: REPO, outfile: path.join(HERE, 'out', 'moq-watch.js'), logLevel: 'warning' });
  const origin = await startRelay({ port: await freePort() });
  const edge = await startRelay({ port: await freePort(), args: ['--cluster-connect', `${origin.http}/`] });
  const { server, base } = await startServer();
  const browser = await launchBenchBrowser();
  const sink = `rfbsink port=0 address=127.0.0.1 stats-interval=1000 allowed-origins=${base} relay-url=${origin.url} relay-broadcast=${BROADCAST}`;
  const source = spawnJson(PYTHON, [path.join(HERE, 'source.py'), '--mode', 'rfb', '--width', String(WIDTH), '--height', String(HEIGHT),
    '--fps', String(FPS), '--encoder', ENCODER, '--sink', sink, '--max-seconds', String(SECONDS + 90)], { env: gstEnv(), what: 'source.py' });
  try {
    const listening = await source.waitFor((e) => e.event === 'listening' || e.event === 'error', 'rfbsink-listening');
    if (listening.event === 'error') throw new Error(listening.message);
    const token = new URL(listening.url).searchParams.get('rfb_token');
    for (const relay of [origin, edge]) {
      const deadline = Date.now() + 20_000;
      while (!(await announced(relay)).includes(BROADCAST)) {
        if (Date.now() > deadline) throw new Error(`${relay.url} never announced ${BROADCAST}\n${relay.logs()}`);
        await sleep(200);
      }
    }
    const ws = `ws://127.0.0.1:${listening.port}/ws?rfb_token=${token}`;
    const pages = {
      direct: `${base}/bench/viewer.html?${new URLSearchParams({ ws, transport: 'wt' })}`,
      'rfbsink viewer, one relay': `${base}/bench/viewer.html?${new URLSearchParams({ ws, relay: origin.url, broadcast: BROADCAST })}`,
      'rfbsink viewer, two relays': `${base}/bench/viewer.html?${new URLSearchParams({ ws, relay: edge.url, broadcast: BROADCAST })}`,
      '@moq/watch, one relay': `${base}/bench/watch.html?${new URLSearchParams({ url: origin.url, name: BROADCAST })}`,
      '@moq/watch, two relays': `${base}/bench/watch.html?${new URLSearchParams({ url: edge.url, name: BROADCAST })}`,
    };
    // The rfbsink viewer measures in its worker, so its three paths run at once throughout; a
    // page's animation frames stop in a background tab, so the player's two paths are measured
    // one after the other, each in the foreground tab, SECONDS each.
    const renderUs = (text) => Number(/render-time-us=\(guint64\)(\d+)/.exec(text ?? '')?.[1] ?? NaN);
    const viewers = {};
    for (const name of ['direct', 'rfbsink viewer, one relay', 'rfbsink viewer, two relays']) {
      const page = await browser.context.newPage();
      await page.goto(pages[name]);
      await page.evaluate(() => window.benchInstalled);
      viewers[name] = page;
    }
    await sleep(3000);
    for (const page of Object.values(viewers)) await page.evaluate(() => window.benchRead());
    const pid = source.proc.pid;
    const cpu0 = { rt: threadCpu(pid, 'rfbsink-runtim'), origin: processCpu(origin.proc.pid), edge: processCpu(edge.proc.pid) };
    const statsFrom = source.events.length;
    const t0 = Date.now();
    const rows = [];
    for (const name of ['@moq/watch, one relay', '@moq/watch, two relays']) {
      const page = await browser.context.newPage();
      await page.goto(pages[name]);
      await sleep(4000);
      await page.evaluate(() => window.benchRead());
      const t = Date.now();
      await sleep(SECONDS * 1000);
      const m = await page.evaluate(() => window.benchRead());
      rows.push(row(name, m, (Date.now() - t) / 1000));
      await page.close();
    }
    const elapsed = (Date.now() - t0) / 1000;
    const cpu1 = { rt: threadCpu(pid, 'rfbsink-runtim'), origin: processCpu(origin.proc.pid), edge: processCpu(edge.proc.pid) };
    const ours = [];
    for (const [name, page] of Object.entries(viewers)) ours.push(row(name, await page.evaluate(() => window.benchRead()), elapsed));
    rows.unshift(...ours);
    // The load steps keep the direct viewer only.
    await viewers['rfbsink viewer, one relay'].close();
    await viewers['rfbsink viewer, two relays'].close();
    // The element's cost against the audience: the direct viewer alone, then with N light relay
    // subscribers (examples/moq-subscribers.rs: one QUIC session each, every frame read, none
    // decoded) on the edge relay.
    const load = [];
    for (const n of SUBSCRIBERS) {
      const subs = n ? spawnJson(SUBSCRIBER_BIN, [edge.url, BROADCAST, String(n)], { env: process.env, what: 'moq-subscribers' }) : null;
      try {
        if (subs) await subs.waitFor((e) => e.event === 'tick' && e.frames > n * FPS, `${n} subscribers receiving`, 60_000);
        await sleep(2000);
        const ticks0 = subs?.events.length ?? 0;
        const c0 = { rt: threadCpu(pid, 'rfbsink-runtim'), edge: processCpu(edge.proc.pid), origin: processCpu(origin.proc.pid), m: machineCpu() };
        const s0 = source.events.length;
        const t = Date.now();
        await sleep(SECONDS * 1000);
        const secs = (Date.now() - t) / 1000;
        const c1 = { rt: threadCpu(pid, 'rfbsink-runtim'), edge: processCpu(edge.proc.pid), origin: processCpu(origin.proc.pid), m: machineCpu() };
        const st = source.events.slice(s0).filter((e) => e.event === 'stats').map((e) => e.text);
        const ticks = subs ? subs.events.slice(ticks0).filter((e) => e.event === 'tick') : [];
        const perSub = ticks.length > 1 ? (ticks.at(-1).frames - ticks[0].frames) / ((ticks.length - 1) * n) : null;
        load.push({
          relaySubscribers: n,
          rfbsinkCpuPercentOfCore: ((c1.rt - c0.rt + (renderUs(st.at(-1)) - renderUs(st[0])) / 1e6) / secs) * 100,
          edgeRelayCpuPercentOfCore: ((c1.edge - c0.edge) / secs) * 100,
          originRelayCpuPercentOfCore: ((c1.origin - c0.origin) / secs) * 100,
          machineBusyPercent: ((c1.m.busy - c0.m.busy) / (c1.m.total - c0.m.total)) * 100,
          framesPerSecondPerSubscriber: perSub,
        });
      } finally {
        await subs?.stop();
      }
    }
    const stats = source.events.slice(statsFrom).filter((e) => e.event === 'stats').map((e) => e.text);
    const rfbCpu = cpu1.rt - cpu0.rt + (renderUs(stats.at(-1)) - renderUs(stats[0])) / 1e6;
    const result = {
      when: new Date().toISOString(), seconds: elapsed, width: WIDTH, height: HEIGHT, fps: FPS, encoder: ENCODER,
      rows,
      rfbsinkCpuPercentOfCore: (rfbCpu / elapsed) * 100,
      relayCpuPercentOfCore: { origin: ((cpu1.origin - cpu0.origin) / elapsed) * 100, edge: ((cpu1.edge - cpu0.edge) / elapsed) * 100 },
      load,
    };
    writeFileSync(path.join(opts.out, 'relay-results.json'), `${JSON.stringify(result, null, 2)}\n`);
    const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
    console.log(`relay bench: ${WIDTH}x${HEIGHT}@${FPS} x264 2 Mbit/s, ${SECONDS} s a path, one run`);
    console.log('path                          fps   e2e p50   e2e p99 (ms)');
    for (const r of rows) console.log(`${r.path.padEnd(28)} ${f(r.paintedFps).padStart(5)} ${f(r.e2e?.p50).padStart(8)} ${f(r.e2e?.p99).padStart(9)}`);
    console.log(`rfbsink (runtime + render) ${f(result.rfbsinkCpuPercentOfCore)} % of a core; moq-relay origin ${f(result.relayCpuPercentOfCore.origin)} %, edge ${f(result.relayCpuPercentOfCore.edge)} %`);
    console.log('relay subscribers  rfbsink % core  edge relay % core  origin % core  machine busy %  fps/subscriber');
    for (const l of load) {
      console.log(`${String(l.relaySubscribers).padStart(17)} ${f(l.rfbsinkCpuPercentOfCore).padStart(15)} ${f(l.edgeRelayCpuPercentOfCore).padStart(18)} ${f(l.originRelayCpuPercentOfCore).padStart(14)} ${f(l.machineBusyPercent).padStart(15)} ${f(l.framesPerSecondPerSubscriber ?? NaN).padStart(15)}`);
    }
  } finally {
    await source.stop();
    await browser.close();
    server.close();
    await edge.stop();
    await origin.stop();
    killAll();
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
