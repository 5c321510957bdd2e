// Viewers that join an app-fed stream seconds after it started (appsrc is-live do-timestamp, no
// buffer durations, x264enc's default keyframe interval of 250 frames: 8 s at 30 fps) keep getting
// the live picture: over WebTransport and WebSocket, joining while the cached group of pictures
// is long (2.5 s in) and once it is past the cache's bound (5 s in, a fresh keyframe is asked for).

import { test } from 'node:test';
import path from 'node:path';
import { REPO, requireElements, sharedBrowser } from './lib.mjs';
import { assertKeptUp, joinLate, startProducer } from './late.mjs';

const browser = sharedBrowser();
const FPS = 30;
const SOURCE = path.join(REPO, 'tests', 'bench', 'source.py');

/** appsrc do-timestamp=true ! x264enc (default key-int-max) ! rfbsink, frames from a thread. */
function appsrcStream() {
  return startProducer('/usr/bin/python3', [SOURCE, '--mode', 'rfb', '--width', '1280', '--height', '720',
    '--fps', String(FPS), '--encoder', 'x264enc tune=zerolatency speed-preset=ultrafast',
    '--sink', 'rfbsink port=0 address=127.0.0.1', '--max-seconds', '60'], { nominalFps: FPS });
}

for (const [when, frames] of [['2.5 s in (75 cached frames)', 75], ['5 s in (past the cached 120)', 150]]) {
  test(`appsrc + do-timestamp, default keyframe interval: viewers joining ${when} keep getting frames over WebTransport and WebSocket`, { timeout: 90_000 }, async (t) => {
    if (!requireElements(t, ['x264enc', 'appsrc'])) return;
    const producer = await appsrcStream();
    t.after(() => producer.stop());
    assertKeptUp(t, await joinLate(browser.context, producer, { frames, transports: ['wt', 'ws'] }));
  });
}
