// Bundles moq's client, @moq/net (the version package.json pins), unchanged with its
// dependencies into web/moq-net.js, which the viewer loads only to watch through a relay
// (web/relay.js, docs/protocol.md "Relays"). The element serves web/ from its binary, and the
// viewer has no build step, hence a file in the tree. Run after changing @moq/net's version:
//   npm run vendor:moq
// web/test/relay.test.js fails when the file and package.json disagree.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const version = JSON.parse(readFileSync(path.join(repo, 'node_modules/@moq/net/package.json'), 'utf8')).version;
await esbuild.build({
  entryPoints: ['@moq/net'], bundle: true, format: 'esm', minify: true, target: 'es2022', legalComments: 'none',
  absWorkingDir: repo, outfile: path.join(repo, 'web', 'moq-net.js'), logLevel: 'warning',
  banner: {
    js: `// @ts-nocheck\n// @moq/net ${version} (moq's client, MIT OR Apache-2.0, https://github.com/moq-dev/moq), bundled unchanged\n`
      + "// with its dependencies by 'npm run vendor:moq' (esbuild); loaded by relay.js only for ?relay=.",
  },
});
console.log(`web/moq-net.js: @moq/net ${version}`);
