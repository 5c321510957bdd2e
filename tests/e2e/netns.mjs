// A private network namespace for the tests that need addresses other than loopback (WebRTC's host
// candidates, a LAN address, an SSH server on a private address): the test file runs itself again
// inside `unshare -n`, with lo and a veth pair on 10.78.0.0/24, so that nothing outside is ever
// contacted. Needs root (or CAP_SYS_ADMIN) and `ip` from iproute2.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pollUntil } from './lib.mjs';

/** The veth pair's two ends, both in the namespace. */
export const ADDRESS_A = '10.78.0.1';
export const ADDRESS_B = '10.78.0.2';

/**
 * Shell lines that wait (up to 5 s) until the links `names` have their carrier: a veth end comes
 * up a moment after `ip link set up`, and a browser started before that sees the network change
 * and fails a navigation with ERR_NETWORK_CHANGED.
 * @param {string[]} names
 */
function waitForLinks(names) {
  const up = names.map((n) => `ip -o link show ${n} | grep -q "state UP"`).join(' && ');
  return `i=0; until ${up}; do i=$((i+1)); [ $i -gt 100 ] && echo "links ${names.join(' ')} not up" >&2 && exit 1; sleep 0.05; done`;
}

/**
 * Makes a veth pair with no IPv6 link-local addresses (addrgenmode none): those appear only after
 * duplicate address detection, a second or two later, which a running browser also sees as a
 * network change.
 */
function vethPair(a, b) {
  return [`ip link add ${a} type veth peer name ${b}`, `ip link set ${a} addrgenmode none`, `ip link set ${b} addrgenmode none`];
}

const SETUP = [
  'ip link set lo up',
  ...vethPair('rfbw0', 'rfbw1'),
  `ip addr add ${ADDRESS_A}/24 dev rfbw0`,
  `ip addr add ${ADDRESS_B}/24 dev rfbw1`,
  'ip link set rfbw0 up',
  'ip link set rfbw1 up',
  // A default route, as a machine has: Firefox gathers host candidates only on the default
  // route's interface (media.peerconnection.ice.default_address_only).
  `ip route add default via ${ADDRESS_B} dev rfbw0`,
  waitForLinks(['rfbw0', 'rfbw1']),
].join(' && ');

/**
 * Re-runs this test file inside a private network namespace and exits with its status; returns
 * at once when already inside one. Call it first thing in the file.
 * @param {string} name the file's name, for the error message
 */
export function runInPrivateNetns(name) {
  if (process.env.RFB_E2E_NETNS === '1') return;
  const args = [...process.execArgv, ...process.argv.slice(1)].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync('unshare', ['-n', '--', '/bin/sh', '-c', `${SETUP} && exec '${process.execPath}' ${args}`], {
    stdio: 'inherit',
    env: { ...process.env, RFB_E2E_NETNS: '1' },
  });
  if (r.error || r.status === null) {
    console.error(`${name}: cannot run in a private network namespace (unshare -n needs root or CAP_SYS_ADMIN, and ip from iproute2): ${r.error?.message ?? r.signal}`);
  }
  process.exit(r.status ?? 1);
}

function sh(cmd) {
  const r = spawnSync('/bin/sh', ['-c', cmd], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr.trim()}`);
}

/**
 * Holds what leaves port `port` (TCP and UDP: the WebSocket and WebTransport) on this
 * namespace's loopback to `kbit` behind a 300 ms queue (a token bucket, `tc qdisc ... tbf`;
 * netem is not in these kernels); what comes back is free. `to: true`: what goes to `port`
 * instead (a client's upload to a server there). `mask`: the ports whose bits under it match
 * `port`'s (0xfff0: 16 ports from a multiple of 16, e.g. the element's `webrtc-ports`). Only
 * inside runInPrivateNetns.
 * @param {number} port
 * @param {number} kbit
 * @param {{to?: boolean, mask?: number}} [options]
 */
export function shapeLink(port, kbit, { to = false, mask = 0xffff } = {}) {
  if (process.env.RFB_E2E_NETNS !== '1') throw new Error('shapeLink: only inside a private network namespace');
  // lo's 64 KiB packets are larger than the bucket's burst, and tbf drops those: 1500, as a link.
  sh('ip link set lo mtu 1500');
  sh('tc qdisc replace dev lo root handle 1: htb default 10 r2q 1000');
  sh('tc class replace dev lo parent 1: classid 1:10 htb rate 10gbit');
  sh('tc class replace dev lo parent 1: classid 1:20 htb rate 10gbit');
  sh(`tc qdisc replace dev lo parent 1:20 handle 20: tbf rate ${kbit}kbit burst 16kb latency 300ms`);
  sh(`tc filter add dev lo protocol ip parent 1: prio 1 u32 match ip ${to ? 'dport' : 'sport'} ${port} 0x${mask.toString(16)} flowid 1:20`);
}

/**
 * Sends what another `port` sends (or receives, `to`) through shapeLink's bucket too: one link
 * for both.
 * @param {number} port
 * @param {{to?: boolean, mask?: number}} [options]
 */
export function shapeAlso(port, { to = false, mask = 0xffff } = {}) {
  if (process.env.RFB_E2E_NETNS !== '1') throw new Error('shapeAlso: only inside a private network namespace');
  sh(`tc filter add dev lo protocol ip parent 1: prio 1 u32 match ip ${to ? 'dport' : 'sport'} ${port} 0x${mask.toString(16)} flowid 1:20`);
}

/** Undoes shapeLink. */
export function unshapeLink() {
  if (process.env.RFB_E2E_NETNS !== '1') return;
  spawnSync('/bin/sh', ['-c', 'tc qdisc del dev lo root; ip link set lo mtu 65536']);
}

/** The second namespace's address (see serverNamespace). */
export const SERVER_ADDRESS = '10.79.0.2';
const SSHD = '/usr/sbin/sshd';

/**
 * A second network namespace, "the server machine", joined to this one by a veth pair: this side
 * 10.79.0.1, that side 10.79.0.2 (SERVER_ADDRESS). Returns the PID that holds it: run a process
 * there with `nsenter -t PID -n -- cmd`. Gone when the test ends.
 * @param {import('node:test').TestContext} t
 */
export function serverNamespace(t) {
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
  sh(vethPair('rfbs0', 'rfbs1').join(' && '));
  sh(`ip link set rfbs1 netns ${pid}`);
  sh('ip addr add 10.79.0.1/24 dev rfbs0 && ip link set rfbs0 up');
  inside(`ip link set lo up && ip addr add ${SERVER_ADDRESS}/24 dev rfbs1 && ip link set rfbs1 up`);
  sh(waitForLinks(['rfbs0']));
  t.after(() => { try { sh('ip link del rfbs0'); } catch { /* gone with the namespace */ } });
  return pid;
}

/**
 * A real sshd on SERVER_ADDRESS in the server namespace `pid` (key login only, local forwarding
 * only) and `ssh -N -L 127.0.0.1:<port>:127.0.0.1:<remotePort>` to it from here: a person's
 * tunnel to a port on the server's own loopback. Resolves with {port, logs()} once sshd listens
 * (the forward may take a moment more: poll it). Both end with the test.
 * @param {import('node:test').TestContext} t
 * @param {string} pid
 * @param {number} remotePort
 */
export async function sshTunnel(t, pid, remotePort) {
  if (!existsSync(SSHD)) throw new Error(`${SSHD} is missing: install openssh-server (scripts/install-deps.sh does)`);
  const dir = mkdtempSync(path.join(tmpdir(), 'rfbsink-e2e-ssh-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync('/run/sshd', { recursive: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_key')]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', path.join(dir, 'client_key')]);
  execFileSync('cp', [path.join(dir, 'client_key.pub'), path.join(dir, 'authorized_keys')]);
  writeFileSync(path.join(dir, 'sshd_config'), [
    `ListenAddress ${SERVER_ADDRESS}`, 'Port 22', `HostKey ${dir}/host_key`, `AuthorizedKeysFile ${dir}/authorized_keys`,
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
  await pollUntil(async () => sshdErr(), (e) => e.includes(`Server listening on ${SERVER_ADDRESS}`),
    { what: 'sshd listening', details: sshdErr });

  const port = 20000 + Math.floor(Math.random() * 20000);
  const ssh = spawn('ssh', ['-N', '-L', `127.0.0.1:${port}:127.0.0.1:${remotePort}`, '-i', path.join(dir, 'client_key'),
    '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-o', 'ExitOnForwardFailure=yes',
    '-o', 'ConnectionAttempts=5', `root@${SERVER_ADDRESS}`], { stdio: ['ignore', 'ignore', 'pipe'] });
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
  return { port, logs: () => `--- sshd\n${sshdErr()}\n--- ssh\n${sshErr}` };
}
