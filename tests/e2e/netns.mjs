// A private network namespace for the tests that need addresses other than loopback (WebRTC's host
// candidates, a LAN address, an SSH server on a private address): the test file runs itself again
// inside `unshare -n`, with lo and a veth pair on 10.78.0.0/24, so that nothing outside is ever
// contacted. Needs root (or CAP_SYS_ADMIN) and `ip` from iproute2.

import { spawnSync } from 'node:child_process';

/** The veth pair's two ends, both in the namespace. */
export const ADDRESS_A = '10.78.0.1';
export const ADDRESS_B = '10.78.0.2';

const SETUP = [
  'ip link set lo up',
  'ip link add rfbw0 type veth peer name rfbw1',
  `ip addr add ${ADDRESS_A}/24 dev rfbw0`,
  `ip addr add ${ADDRESS_B}/24 dev rfbw1`,
  'ip link set rfbw0 up',
  'ip link set rfbw1 up',
  // A default route, as a machine has: Firefox gathers host candidates only on the default
  // route's interface (media.peerconnection.ice.default_address_only).
  `ip route add default via ${ADDRESS_B} dev rfbw0`,
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
