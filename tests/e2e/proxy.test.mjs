// Behind a reverse proxy under a path prefix: a real nginx (Debian's nginx-light, started by the
// test with a config of its own) serves rfbsink at http://127.0.0.1:PORT/rfb/ with WebSocket
// upgrade, the block the README shows. The viewer uses relative URLs (rfb/ws, rfb/rfb.json), so
// it works there unchanged; frames and input are asserted through the proxy.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  Viewer, assertPluginBuilt, assertSmpteBars, freePort, launchBrowser, pollUntil, streamToPage } from './lib.mjs';
import { probeReady, startProbe } from './probe.mjs';

const NGINX = process.env.RFB_NGINX ?? '/usr/sbin/nginx';
const SOURCE = 'videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=640,height=480,framerate=30/1';
const X264 = 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';
const STREAM = { width: 640, height: 480 };

/** The README's proxy block, in a whole config of its own (no root paths touched). */
export function nginxConfig(dir, port, upstream) {
  return `worker_processes 1;
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 256; }
http {
  access_log ${dir}/access.log;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${port};
    location /rfb/ {
      proxy_pass http://127.0.0.1:${upstream}/;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $http_host;
      proxy_buffering off;
      proxy_read_timeout 1h;
    }
  }
}
`;
}

/** @type {Awaited<ReturnType<typeof launchBrowser>> | undefined} */
let browser;
before(async () => {
  assertPluginBuilt();
  browser = await launchBrowser();
});
after(async () => { await browser?.close(); });

test('behind nginx under /rfb/: the viewer shows the stream over WebSocket and input arrives upstream', { timeout: 120_000 }, async (t) => {
  if (!probeReady(t, ['navigationtest', 'x264enc'])) return;
  assert.ok(existsSync(NGINX), `${NGINX} is missing: install Debian's nginx-light (scripts/install-deps.sh does)`);
  const port = await freePort();
  // The proxy's origin is another origin than rfbsink's own: it must be allowed.
  const probe = await startProbe(`${SOURCE} ! navigationtest ! videoconvert ! ${X264} ! rfbsink name=sink port=0 allowed-origins=http://127.0.0.1:${port}`);
  t.after(() => probe.stop());
  const dir = mkdtempSync(path.join(tmpdir(), 'rfbsink-e2e-nginx-'));
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, d));
  writeFileSync(path.join(dir, 'nginx.conf'), nginxConfig(dir, port, probe.url.match(/:(\d+)\//)[1]));
  const nginx = spawn(NGINX, ['-c', path.join(dir, 'nginx.conf'), '-p', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let nginxErr = '';
  nginx.stderr.on('data', (c) => { nginxErr += c; });
  t.after(() => {
    nginx.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });
  const logs = () => `${probe.logs()}\n--- nginx stderr\n${nginxErr}\n--- nginx error.log\n${(() => { try { return readFileSync(path.join(dir, 'error.log'), 'utf8').slice(-4000); } catch { return ''; } })()}`;
  await pollUntil(() => fetch(`http://127.0.0.1:${port}/rfb/`).then((r) => r.status, () => 0), (s) => s === 401,
    { what: 'nginx answering for rfbsink (401 without the token)', details: logs });

  const token = new URL(probe.url).searchParams.get('rfb_token');
  const url = `http://127.0.0.1:${port}/rfb/?rfb_token=${token}&transport=ws`;
  const viewer = await Viewer.open(/** @type {any} */ (browser).context, url, { viewport: { width: 1000, height: 500 } });
  t.after(() => viewer.close());
  const stats = await viewer.waitForFrames(20, { extra: logs });
  assert.equal(stats.transport, 'websocket');
  await assertSmpteBars(viewer, { width: 640, y: 100, tolerance: 40, extra: logs });

  const target = await streamToPage(viewer.page, 'canvas.rfb-canvas', STREAM, 320, 240);
  const from = probe.lines.length;
  await viewer.page.mouse.click(target.x, target.y);
  const press = await probe.waitFor((l) => l.event === 'mouse-button-press', 'the click upstream through the proxy', { from });
  assert.ok(Math.abs(press.x - 320) <= 2 && Math.abs(press.y - 240) <= 2, `click at (320, 240) arrived at (${press.x}, ${press.y})`);
  // nginx logs a WebSocket once it closes: the stream went through the proxy, under /rfb/.
  await viewer.close();
  const accessLog = () => { try { return readFileSync(path.join(dir, 'access.log'), 'utf8'); } catch { return ''; } };
  await pollUntil(async () => accessLog(), (a) => /"GET \/rfb\/ws\?[^"]*" 101 /.test(a),
    { what: 'the WebSocket (101) under /rfb/ in nginx\'s access log', details: accessLog });
});
