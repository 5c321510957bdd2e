// A viewer that joins a stream of the Python package (rfbsink.Stream pushing uint8 RGB from a
// thread, x264enc with its keyframe every 120 frames) seconds after it started keeps getting the
// live picture, over WebTransport and WebSocket.
//
//   node --test tests/python/late-join.test.mjs     (after scripts/python-env.sh)

import { test } from 'node:test';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { REPO, sharedBrowser } from '../e2e/lib.mjs';
import { assertKeptUp, joinLate, startProducer } from '../e2e/late.mjs';

const browser = sharedBrowser();
const PYTHON = path.join(REPO, 'target', 'pyenv', 'bin', 'python');
const PRODUCER = path.join(REPO, 'tests', 'bench', 'pyproducer.py');
const FPS = 30;

test('rfbsink.Stream: viewers joining 3.5 s in keep getting frames over WebTransport and WebSocket', { timeout: 90_000 }, async (t) => {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run scripts/python-env.sh (make test-python does)`);
  // 720x720 RGB (the package's square test picture), 105 frames cached when the viewers join.
  const producer = await startProducer(PYTHON, [PRODUCER, '--mode', 'rfb', '--size', '720', '--dtype', 'uint8',
    '--fps', String(FPS)], { nominalFps: FPS });
  t.after(() => producer.stop());
  assertKeptUp(t, await joinLate(browser.context, producer, { frames: 105, transports: ['wt', 'ws'] }));
});
