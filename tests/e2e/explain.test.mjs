// The viewer says what is wrong, on screen, in plain words and with the fix: read from the status
// line the person watching sees (the refused-link case is in security.test.mjs).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Viewer, launchBrowser, pollUntil, requireElements, sharedBrowser, startPipeline } from './lib.mjs';

const browser = sharedBrowser();

/** Waits until the status line shows text matching `re`; returns it. */
function statusLine(viewer, re, what, timeoutMs = 20_000) {
  return pollUntil(() => viewer.page.textContent('.rfb-status'), (text) => re.test(text ?? ''),
    { what, timeoutMs, details: () => viewer.logs() });
}

test('stream not started yet: connected, and it says the pipeline has sent no picture', { timeout: 60_000 }, async (t) => {
  // appsrc that nobody feeds: rfbsink serves, no caps, no frame.
  const pipeline = await startPipeline('appsrc is-live=true caps=image/jpeg ! rfbsink port=0');
  t.after(() => pipeline.stop());
  const viewer = await Viewer.open(browser.context, pipeline.url);
  t.after(() => viewer.close());
  const text = await statusLine(viewer, /Waiting for the first picture/, 'the waiting explanation');
  assert.match(text, /is it playing, and is its source producing frames\?/);
  assert.equal(await viewer.page.isVisible('.rfb-status'), true);
  assert.equal((await viewer.stats()).connected, true);
});

test('server gone: it says so and counts down to the next try, then plays again', { timeout: 90_000 }, async (t) => {
  if (!requireElements(t, ['jpegenc'])) return;
  const line = (port) => `videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=10/1 ! jpegenc ! rfbsink port=${port} token=explain-test-token`;
  const first = await startPipeline(line(0));
  t.after(() => first.stop());
  const viewer = await Viewer.open(browser.context, first.url);
  t.after(() => viewer.close());
  await viewer.waitForFrames(2, { extra: first.logs });
  await first.stop();
  const seen = new Set();
  await pollUntil(async () => {
    const text = await viewer.page.textContent('.rfb-status');
    const m = /The server is gone.*: is the pipeline still running\? Retrying in (\d+) s…/.exec(text ?? '');
    if (m) seen.add(Number(m[1]));
    return seen;
  }, (s) => s.size >= 2, { what: 'a countdown (two different "Retrying in N s")', timeoutMs: 30_000, intervalMs: 200, details: () => `${[...seen]}\n${viewer.logs()}` });
  assert.equal(await viewer.page.isVisible('.rfb-status'), true, 'the explanation is on screen');
  // Back on the same port with the same token: the viewer plays again and the line goes away.
  const second = await startPipeline(line(first.port));
  t.after(() => second.stop());
  const before = (await viewer.stats()).framesDecoded;
  await viewer.waitForFrames(2, { from: before, extra: second.logs, timeoutMs: 40_000 });
  await pollUntil(() => viewer.page.isVisible('.rfb-status'), (v) => v === false, { what: 'the status line to go' });
});

test('plain http from another address (not a secure context, so no WebCodecs): it says so and gives the fix',
  { timeout: 60_000 }, async (t) => {
    if (!requireElements(t, ['x264enc'])) return;
    // A page on a non-local name over http, as a LAN address would be: not a secure context. (The
    // browser's private-network checks are off: on a LAN the page and rfbsink are one address.)
    const lan = await launchBrowser({
      args: ['--disable-features=BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,LocalNetworkAccessChecks'],
    });
    t.after(() => lan.close());
    const pipeline = await startPipeline(
      'videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=10/1 ! x264enc tune=zerolatency '
      + '! rfbsink port=0 allowed-origins=http://rfb-lan.test');
    t.after(() => pipeline.stop());
    const url = new URL(pipeline.url);
    const page = await lan.context.newPage();
    t.after(() => page.close());
    const logs = [];
    page.on('console', (m) => logs.push(m.text()));
    await page.route('http://rfb-lan.test/**', (route) => route.fulfill({
      contentType: 'text/html',
      body: `<!doctype html><div id="screen" style="width:320px;height:240px"></div><script type="module">
        const { mountViewer } = await import('http://127.0.0.1:${url.port}/rfb-viewer.js');
        window.rfbViewer = mountViewer(document.getElementById('screen'),
          { url: 'ws://127.0.0.1:${url.port}/ws?rfb_token=${url.searchParams.get('rfb_token')}' });
      </script>`,
    }));
    await page.goto('http://rfb-lan.test/');
    assert.equal(await page.evaluate(() => isSecureContext), false);
    const text = await pollUntil(() => page.textContent('.rfb-status').catch(() => null),
      (v) => /not a secure context/.test(v ?? ''),
      { what: 'the insecure-context explanation', details: () => logs.join('\n') });
    assert.match(text, /plain http from rfb-lan\.test/);
    assert.match(text, /https=true/);
    assert.match(text, /ssh -L 8080:127\.0\.0\.1:8080/);
    assert.equal(await page.isVisible('.rfb-status'), true, 'on screen');
    // It stays: the stream's frames keep coming and do not put "waiting" over it.
    await new Promise((r) => setTimeout(r, 1500));
    assert.match(await page.textContent('.rfb-status'), /not a secure context/);
  });
