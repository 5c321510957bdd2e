// Network positions other than loopback, in a private network namespace this file makes
// (netns.mjs): a viewer on another address of the machine over https (LAN), and a viewer that
// reaches the element only through an SSH tunnel (a real sshd on a private address in a second
// namespace, where the element listens on its own loopback). In a real browser: frames, the
// colour bars and input upstream.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  Viewer, assertPluginBuilt, assertSmpteBars, launchBrowser, pollUntil, requireElements, streamToPage } from './lib.mjs';
import { ADDRESS_A, runInPrivateNetns } from './netns.mjs';
import { probeMissing, startProbe } from './probe.mjs';

runInPrivateNetns('network.test');

const SOURCE = 'videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=640,height=480,framerate=30/1';
const X264 = 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';
const PIPELINE = `${SOURCE} ! navigationtest ! videoconvert ! ${X264} ! rfbsink name=sink port=0`;
const STREAM = { width: 640, height: 480 };
const SSHD = '/usr/sbin/sshd';

/** @type {Awaited<ReturnType<typeof launchBrowser>> | undefined} */
let browser;
before(async () => {
  assertPluginBuilt();
  // The LAN test's certificate is the element's self-signed one (https=true): accepted as a
  // person accepts it once; WebTransport checks it by its hash from /rfb.json.
  browser = await launchBrowser({ ignoreHTTPSErrors: true });
});
after(async () => { await browser?.close(); });

/** Opens `url`, waits for frames, checks the bars and a click at stream (480, 360) upstream. */
async function watchAndClick(t, probe, url) {
  const t0 = Date.now();
  const viewer = await Viewer.open(/** @type {any} */ (browser).context, url, { viewport: { width: 1000, height: 500 } });
  t.after(() => viewer.close());
  const first = await viewer.waitForFrames(1, { extra: probe.logs, timeoutMs: 30_000 });
  const firstMs = Date.now() - t0;
  const stats = await viewer.waitForFrames(20, { extra: probe.logs });
  await assertSmpteBars(viewer, { width: 640, y: 100, tolerance: 40, extra: probe.logs });
  const target = await streamToPage(viewer.page, 'canvas.rfb-canvas', STREAM, 480, 360);
  const from = probe.lines.length;
  await viewer.page.mouse.click(target.x, target.y);
  const press = await probe.waitFor((l) => l.event === 'mouse-button-press', 'the click upstream', { from });
  assert.ok(Math.abs(press.x - 480) <= 2 && Math.abs(press.y - 360) <= 2, `click at (480, 360) arrived at (${press.x}, ${press.y})`);
  return { stats, first, firstMs, viewer };
}

function ready(t) {
  if (!requireElements(t, ['navigationtest', 'x264enc'])) return false;
  const missing = probeMissing();
  if (missing) {
    t.skip(missing);
    return false;
  }
  return true;
}

test('LAN over https: a viewer on another address of the machine gets frames over WebTransport, and its input', { timeout: 90_000 }, async (t) => {
  if (!ready(t)) return;
  const probe = await startProbe(PIPELINE.replace('port=0', `port=0 address=${ADDRESS_A} https=true`));
  t.after(() => probe.stop());
  assert.match(probe.url, new RegExp(`^https://${ADDRESS_A.replace(/\./g, '\\.')}:\\d+/\\?rfb_token=`), 'the URL it prints is https on the LAN address');
  const { stats, firstMs } = await watchAndClick(t, probe, probe.url);
  assert.equal(stats.transport, 'webtransport', JSON.stringify(stats));
  t.diagnostic(`LAN https: ${stats.transport}, first picture ${firstMs} ms after load`);
});

/**
 * A second network namespace, "the server machine", joined to this one by a veth pair: this side
 * 10.79.0.1, that side 10.79.0.2. Returns the PID that holds it (for nsenter).
 */
function serverNamespace(t) {
  const holder = spawn('unshare', ['-n', 'sleep', '3600'], { stdio: 'ignore' });
  t.after(() => holder.kill('SIGKILL'));
  const pid = String(holder.pid);
  const sh = (cmd) => execFileSync('/bin/sh', ['-c', cmd], { stdio: 'pipe' });
  const inside = (cmd) => sh(`nsenter -t ${pid} -n -- /bin/sh -c '${cmd}'`);
  // The holder must have unshared before its end of the pair moves in.
  for (let i = 0; i < 50; i++) {
    const ours = sh('readlink /proc/self/ns/net').toString();
    const its = sh(`readlink /proc/${pid}/ns/net`).toString();
    if (ours !== its) break;
    execFileSync('sleep', ['0.05']);
  }
  sh('ip link add rfbs0 type veth peer name rfbs1');
  sh(`ip link set rfbs1 netns ${pid}`);
  sh('ip addr add 10.79.0.1/24 dev rfbs0 && ip link set rfbs0 up');
  inside('ip link set lo up && ip addr add 10.79.0.2/24 dev rfbs1 && ip link set rfbs1 up');
  t.after(() => { try { sh('ip link del rfbs0'); } catch { /* gone with the namespace */ } });
  return pid;
}

test('through an SSH tunnel: the only way in is sshd on a private address; WebSocket through the tunnel, frames and input', { timeout: 120_000 }, async (t) => {
  if (!ready(t)) return;
  assert.ok(existsSync(SSHD), `${SSHD} is missing: install openssh-server (scripts/install-deps.sh does)`);
  const pid = serverNamespace(t);
  // The element on the server's own loopback, as by default.
  const probe = await startProbe(PIPELINE, { wrap: ['nsenter', '-t', pid, '-n', '--'] });
  t.after(() => probe.stop());
  const elementPort = Number(new URL(probe.url).port);
  // Not reachable from here: only sshd is.
  const direct = await fetch(`http://10.79.0.2:${elementPort}/`).then(() => 'reached', (e) => e.cause?.code ?? 'failed');
  assert.notEqual(direct, 'reached', 'the element must not be reachable but through the tunnel');

  const dir = mkdtempSync(path.join(tmpdir(), 'rfbsink-e2e-ssh-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync('/run/sshd', { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_key')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'client_key')]);
  execFileSync('cp', [path.join(dir, 'client_key.pub'), path.join(dir, 'authorized_keys')]);
  writeFileSync(path.join(dir, 'sshd_config'), [
    'ListenAddress 10.79.0.2', 'Port 22', `HostKey ${dir}/host_key`, `AuthorizedKeysFile ${dir}/authorized_keys`,
    'PermitRootLogin prohibit-password', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'UsePAM no',
    'StrictModes no', 'AllowTcpForwarding local', `PidFile ${dir}/sshd.pid`, 'ClientAliveInterval 1', 'ClientAliveCountMax 2', '',
  ].join('\n'));
  // sshd's log goes to a file, not a pipe: a session child that outlives the test must not hold
  // this process open. Sessions end 3 s after their client is gone (ClientAlive*).
  const sshdLog = path.join(dir, 'sshd.log');
  const sshdOut = openSync(sshdLog, 'w');
  const sshd = spawn('nsenter', ['-t', pid, '-n', '--', SSHD, '-D', '-e', '-f', path.join(dir, 'sshd_config')], { stdio: ['ignore', 'ignore', sshdOut] });
  closeSync(sshdOut);
  const sshdErr = () => { try { return readFileSync(sshdLog, 'utf8').slice(-4000); } catch { return ''; } };
  await pollUntil(async () => sshdErr(), (e) => /Server listening on 10\.79\.0\.2/.test(e),
    { what: 'sshd listening', details: sshdErr });

  const localPort = 20000 + Math.floor(Math.random() * 20000);
  const ssh = spawn('ssh', ['-N', '-L', `127.0.0.1:${localPort}:127.0.0.1:${elementPort}`, '-i', path.join(dir, 'client_key'),
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ExitOnForwardFailure=yes',
    '-o', 'ConnectionAttempts=5', 'root@10.79.0.2'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let sshErr = '';
  ssh.stderr.on('data', (c) => { sshErr = (sshErr + c).slice(-4000); });
  // The client first (its session ends with it), then the server.
  t.after(async () => {
    if (ssh.exitCode === null && ssh.signalCode === null) {
      const gone = new Promise((r) => ssh.once('exit', r));
      ssh.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3000))]);
    }
    sshd.kill('SIGTERM');
  });
  const logs = () => `${probe.logs()}\n--- sshd\n${sshdErr()}\n--- ssh\n${sshErr}`;
  await pollUntil(() => fetch(`http://127.0.0.1:${localPort}/`).then((r) => r.status, () => 0), (s) => s === 401,
    { what: 'the tunnel up (the element answering 401 without the token)', details: logs });

  // The URL the element printed, with the tunnel's local port: what a person types.
  const url = new URL(probe.url);
  url.port = String(localPort);
  const { stats, firstMs } = await watchAndClick(t, probe, url.href);
  // The tunnel carries TCP only: WebTransport (UDP) to the element's port cannot work, and the
  // viewer gives up on it and falls back to WebSocket.
  assert.equal(stats.transport, 'websocket', JSON.stringify(stats));
  t.diagnostic(`SSH tunnel: ${stats.transport}, first picture ${firstMs} ms after load`);
});
