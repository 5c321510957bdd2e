// The meson build installs the plugin where GStreamer looks for plugins:
//   meson setup <tmp>/build --prefix=<tmp>/prefix && meson compile && meson install
// then gst-inspect-1.0 finds rfbsink in <prefix>/<libdir>/gstreamer-1.0 (and `rfb` is in
// <prefix>/bin when app/ exists). Cargo shares the source tree's target/ (meson's default), so
// after `make build` this costs seconds, not a rebuild.
//
//   node --test tests/meson/

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { REPO } from '../e2e/lib.mjs';

// Cargo may have to rebuild (or wait for another build's lock) when the sources changed.
const CARGO_TIMEOUT_MS = 15 * 60_000;

const work = mkdtempSync(path.join(tmpdir(), 'rfbsink-meson-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** Runs a command, failing the test with its output when it fails. */
function run(cmd, args, { env = process.env, timeout = 60_000 } = {}) {
  const r = spawnSync(cmd, args, { cwd: REPO, env, encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  const output = `$ ${cmd} ${args.join(' ')}\n${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `\n${r.error.message}` : ''}`;
  assert.equal(r.status, 0, `failed (status ${r.status}, signal ${r.signal})\n${output.slice(-8000)}`);
  return r.stdout;
}

/** Every file named `name` under `dir`. */
function findFiles(dir, name) {
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findFiles(p, name));
    else if (entry.name === name) found.push(p);
  }
  return found;
}

test('meson setup, compile and install put rfbsink in <prefix>/<libdir>/gstreamer-1.0', { timeout: 2 * CARGO_TIMEOUT_MS }, (t) => {
  const missing = ['meson', 'ninja', 'cargo', 'gst-inspect-1.0'].filter(
    (p) => spawnSync('sh', ['-c', 'command -v "$1"', 'sh', p], { stdio: 'ignore' }).status !== 0);
  if (missing.length) {
    t.skip(`not installed: ${missing.join(', ')}`);
    return;
  }
  const build = path.join(work, 'build');
  const prefix = path.join(work, 'prefix');

  run('meson', ['setup', build, `--prefix=${prefix}`]);
  run('meson', ['compile', '-C', build], { timeout: CARGO_TIMEOUT_MS });
  run('meson', ['install', '-C', build], { timeout: CARGO_TIMEOUT_MS });

  const plugins = findFiles(prefix, 'libgstrfbsink.so');
  assert.equal(plugins.length, 1, `expected one libgstrfbsink.so under ${prefix}, found: ${plugins.join(', ') || 'none'}`);
  const pluginDir = path.dirname(plugins[0]);
  assert.equal(path.basename(pluginDir), 'gstreamer-1.0', `installed in ${pluginDir}, not a gstreamer-1.0 plugin dir`);
  // <prefix>/lib/gstreamer-1.0 or, on Debian, <prefix>/lib/<multiarch triplet>/gstreamer-1.0.
  assert.match(path.relative(prefix, pluginDir), /^lib(64)?(\/[^/]+)?\/gstreamer-1\.0$/);
  t.diagnostic(`plugin: ${plugins[0]}`);

  const inspect = run('gst-inspect-1.0', ['rfbsink'], {
    env: {
      ...process.env,
      GST_PLUGIN_PATH: pluginDir,
      GST_REGISTRY: path.join(work, 'registry.bin'),
      GST_DEBUG: '*:1',
    },
  });
  assert.match(inspect, /Long-name\s+Remote framebuffer sink/);
  const filename = /Filename\s+(\S+)/.exec(inspect)?.[1];
  assert.equal(filename, plugins[0], 'gst-inspect-1.0 loaded rfbsink from somewhere else');

  if (existsSync(path.join(REPO, 'app'))) {
    const rfb = path.join(prefix, 'bin', 'rfb');
    assert.ok(existsSync(rfb), `app/ exists but ${rfb} was not installed`);
    assert.ok(statSync(rfb).mode & 0o111, `${rfb} is not executable`);
    t.diagnostic(`program: ${rfb}`);
  } else {
    t.diagnostic('app/ does not exist: no rfb program to install');
  }

  // meson's own test (gst-inspect-1.0 on the build dir); the build is fresh.
  run('meson', ['test', '-C', build, '--no-rebuild', '--print-errorlogs']);
});
