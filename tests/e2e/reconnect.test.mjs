// The viewer survives a server restart: after the pipeline is stopped and a new one listens on the
// same port, the open page reconnects by itself and decodes again. The restarted element has the
// same token (set with the token property: a generated one is new at each start, and the old link
// then no longer works, see docs/security.md).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Viewer, assertSmpteBars, sharedBrowser, requireElements, startPipeline, withQuery } from './lib.mjs';

const TOKEN = 'reconnect-test-token';
const line = (port) =>
  'videotestsrc pattern=smpte is-live=true ! video/x-raw,format=I420,width=640,height=480,framerate=30/1 '
  + `! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 ! rfbsink port=${port} token=${TOKEN}`;

const browser = sharedBrowser();

/**
 * Starts a pipeline, lets the viewer (opened with `query`) decode, stops the pipeline, starts a
 * new one on the same port and waits for the same page to decode again.
 */
async function checkReconnect(t, query) {
  if (!requireElements(t, ['x264enc'])) return;
  const first = await startPipeline(line(0));
  t.after(() => first.stop());
  assert.equal(new URL(first.url).searchParams.get('rfb_token'), TOKEN, 'the URL carries the token set');
  const viewer = await Viewer.open(browser.context, withQuery(first.url, query));
  t.after(() => viewer.close());
  const before = await viewer.waitForFrames(10, { extra: first.logs });

  await first.stop();
  const down = await viewer.waitForStats((s) => s.connected === false,
    'the viewer to notice the server went away', { extra: first.logs });

  const second = await startPipeline(line(first.port));
  t.after(() => second.stop());
  assert.equal(second.port, first.port);

  const stats = await viewer.waitForStats(
    (s) => s.connected === true && s.framesDecoded >= down.framesDecoded + 10,
    `10 more decoded frames after the restart (transport before: ${before.transport})`,
    { timeoutMs: 45_000, extra: second.logs });
  assert.equal(stats.codec, 'h264');
  await assertSmpteBars(viewer, { extra: second.logs });
}

// The default page: WebTransport when the server offers it. The restarted server has a new
// self-signed certificate, so the viewer must learn its new hash (or fall back to WebSocket).
test('the viewer reconnects after the pipeline restarts on the same port', { timeout: 120_000 },
  (t) => checkReconnect(t, ''));

test('the viewer reconnects over WebSocket (?transport=ws) after a restart', { timeout: 120_000 },
  (t) => checkReconnect(t, '?transport=ws'));
