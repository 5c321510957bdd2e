// Browser input end to end: the real viewer in headless Chromium sends pointer, keys, wheel,
// application messages and its size; rfbsink turns them into navigation events pushed upstream
// and bus messages. nav-probe.py runs the pipeline and reports what arrived (a pad probe on
// rfbsink's sink pad, its bus messages, its client-message signal), one JSON object a line.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Viewer, assertPluginBuilt, launchBrowser, outPath, pollUntil, requireElements, withQuery } from './lib.mjs';
import { probeMissing, probeReady, startProbe } from './probe.mjs';

const SOURCE = 'videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=640,height=480,framerate=30/1';
const X264 = 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';
const PIPELINE = `${SOURCE} ! navigationtest ! videoconvert ! ${X264} ! rfbsink name=sink port=0 stats-interval=200`;
const ELEMENTS = ['navigationtest', 'x264enc'];
const STREAM = { width: 640, height: 480 };
/** 2:1, not the stream's 4:3: the picture has bars left and right. */
const VIEWPORT = { width: 1000, height: 500 };
const TOLERANCE_PX = 2;

// GstNavigationModifierType
const SHIFT_MASK = 1 << 0;
const BUTTON1_MASK = 1 << 8;

// --- the page -----------------------------------------------------------------------------------

/**
 * Where stream pixel (x, y) is on the page: the canvas shows the stream with object-fit: contain
 * (computed here, not with the viewer's own mapping, so that a wrong mapping fails).
 */
async function pagePoint(viewer, x, y) {
  const { rect, stream } = await viewer.page.evaluate(() => {
    const r = document.querySelector('canvas.rfb-canvas').getBoundingClientRect();
    return { rect: { left: r.left, top: r.top, width: r.width, height: r.height }, stream: window.rfbViewer.streamSize };
  });
  assert.deepEqual(stream, STREAM, 'the viewer knows the stream size');
  const scale = Math.min(rect.width / stream.width, rect.height / stream.height);
  return {
    x: rect.left + (rect.width - stream.width * scale) / 2 + x * scale,
    y: rect.top + (rect.height - stream.height * scale) / 2 + y * scale,
  };
}

/** Waits for the page's next animation frame (the viewer sends at most one move per frame). */
function nextFrame(viewer) {
  return viewer.page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r(undefined))));
}

function assertAt(event, x, y, context) {
  assert.ok(Math.abs(event.x - x) <= TOLERANCE_PX && Math.abs(event.y - y) <= TOLERANCE_PX,
    `${event.event} at (${event.x}, ${event.y}), want (${x}, ${y}) ± ${TOLERANCE_PX}\n${context()}`);
}

/** Opens the viewer on `url`, sized VIEWPORT, and waits until it shows the stream. */
async function openViewer(url, probe, query = '') {
  const viewer = await Viewer.open(browser.context, withQuery(url, query));
  await viewer.page.setViewportSize(VIEWPORT);
  await viewer.waitForFrames(5, { extra: probe.logs });
  await pollUntil(() => viewer.page.evaluate(() => window.rfbViewer.streamSize),
    (s) => s.width === STREAM.width && s.height === STREAM.height, { what: 'the stream size in the viewer' });
  return viewer;
}

// --- tests --------------------------------------------------------------------------------------

/** @type {Awaited<ReturnType<typeof launchBrowser>>} */
let browser;
/** Shared by the tests on the navigationtest pipeline (each looks at what came after it began). */
let probe = null;
/** @type {Viewer | null} */
let viewer = null;
let skipReason = null;

before(async () => {
  assertPluginBuilt();
  browser = await launchBrowser();
});

after(async () => {
  await viewer?.close();
  await probe?.stop();
  await browser?.close();
});

/** The shared pipeline and page, started by the first test that needs them. */
async function shared(t) {
  if (!requireElements(t, ELEMENTS)) return false;
  skipReason ??= probeMissing() ?? '';
  if (skipReason) {
    t.skip(skipReason);
    return false;
  }
  probe ??= await startProbe(PIPELINE);
  viewer ??= await openViewer(probe.url, probe);
  return true;
}

const details = () => `${viewer?.logs() ?? ''}\n${probe?.logs() ?? ''}`;

test('pointer: a click and a drag arrive at their stream pixels; the bars send nothing', { timeout: 90_000 }, async (t) => {
  if (!(await shared(t))) return;
  const { page } = viewer;
  const outsideBefore = await page.evaluate(() => window.rfbViewer.input.counters.outside);

  // A click in the left bar (the picture starts at x = 166.7): not sent.
  let from = probe.lines.length;
  await page.mouse.click(20, 250);
  const click = await pagePoint(viewer, 160, 120);
  await page.mouse.click(click.x, click.y);
  const press = await probe.waitFor((l) => l.event === 'mouse-button-press', 'mouse-button-press', { from });
  const release = await probe.waitFor((l) => l.event === 'mouse-button-release', 'mouse-button-release', { from });
  assert.equal(press.button, 1, `left button is 1\n${details()}`);
  assert.equal(release.button, 1, `left button is 1\n${details()}`);
  // The first press after the bar click is the picture click: the bar click was not sent.
  assertAt(press, 160, 120, details);
  assertAt(release, 160, 120, details);
  assert.ok(await page.evaluate(() => window.rfbViewer.input.counters.outside) > outsideBefore,
    'the click in the bar was seen and not sent');

  // A drag, one move per animation frame.
  from = probe.lines.length;
  const a = await pagePoint(viewer, 100, 100);
  const b = await pagePoint(viewer, 300, 200);
  await page.mouse.move(a.x, a.y);
  await page.mouse.down();
  const steps = 10;
  for (let i = 1; i <= steps; i++) {
    await page.mouse.move(a.x + ((b.x - a.x) * i) / steps, a.y + ((b.y - a.y) * i) / steps);
    await nextFrame(viewer);
  }
  await page.mouse.up();
  await probe.waitFor((l) => l.event === 'mouse-button-release', 'the drag\'s mouse-button-release', { from });
  const events = probe.events(from).filter((e) => e.event.startsWith('mouse-'));
  const iPress = events.findIndex((e) => e.event === 'mouse-button-press');
  const iRelease = events.findIndex((e) => e.event === 'mouse-button-release');
  assert.ok(iPress >= 0 && iRelease > iPress, `press before release: ${JSON.stringify(events)}`);
  assertAt(events[iPress], 100, 100, details);
  assertAt(events[iRelease], 300, 200, details);
  assert.equal(events[iPress].button, 1);
  assert.equal(events[iRelease].button, 1);
  const moves = events.slice(iPress + 1, iRelease).filter((e) => e.event === 'mouse-move');
  const along = moves.filter((e) => e.x > 100 + TOLERANCE_PX && e.x < 300 - TOLERANCE_PX
    && Math.abs(e.y - (100 + ((e.x - 100) * 100) / 200)) <= TOLERANCE_PX);
  assert.ok(along.length >= 3, `mouse-move events along the drag (between press and release): ${JSON.stringify(moves)}`);
  for (const m of moves) {
    assert.ok((m.state & BUTTON1_MASK) !== 0, `a move during the drag has BUTTON1_MASK in state: ${JSON.stringify(m)}`);
  }
  // The move that ends at (300, 200) arrives before the release (order kept).
  assertAt(moves.at(-1), 300, 200, details);
});

test('keys: a, Enter, ArrowLeft, Shift+B arrive as X11 keysym names, each released', { timeout: 60_000 }, async (t) => {
  if (!(await shared(t))) return;
  const { page } = viewer;
  // The canvas takes the focus on pointerdown.
  const at = await pagePoint(viewer, 600, 440);
  await page.mouse.click(at.x, at.y);
  assert.equal(await page.evaluate(() => document.activeElement?.className), 'rfb-canvas', 'the canvas has the focus');

  const from = probe.lines.length;
  await page.keyboard.press('a');
  await page.keyboard.press('Enter');
  await page.keyboard.press('ArrowLeft');
  await page.keyboard.press('Shift+B');
  const keyEvents = () => probe.events(from).filter((e) => e.event.startsWith('key-'));
  await pollUntil(async () => keyEvents(), (evs) => evs.filter((e) => e.event === 'key-release').length >= 5,
    { timeoutMs: 10_000, what: '5 key-release events', details });
  const evs = keyEvents();
  const names = (kind) => evs.filter((e) => e.event === kind).map((e) => e.key);
  assert.deepEqual(names('key-press'), ['a', 'Return', 'Left', 'Shift_L', 'B'], JSON.stringify(evs));
  assert.deepEqual(names('key-release'), ['a', 'Return', 'Left', 'B', 'Shift_L'], JSON.stringify(evs));
  const b = evs.find((e) => e.event === 'key-press' && e.key === 'B');
  assert.ok((b.state & SHIFT_MASK) !== 0, `B is pressed with Shift held: ${JSON.stringify(b)}`);
  const a = evs.find((e) => e.event === 'key-press' && e.key === 'a');
  assert.equal(a.state & SHIFT_MASK, 0, `a is pressed without Shift: ${JSON.stringify(a)}`);
  // Each press comes before its release.
  for (const key of ['a', 'Return', 'Left', 'Shift_L', 'B']) {
    const p = evs.findIndex((e) => e.event === 'key-press' && e.key === key);
    const r = evs.findIndex((e) => e.event === 'key-release' && e.key === key);
    assert.ok(p >= 0 && r > p, `${key}: press before release: ${JSON.stringify(evs)}`);
  }
});

test('wheel: mouse-scroll with GStreamer\'s sign (down is negative) at the pointer', { timeout: 60_000 }, async (t) => {
  if (!(await shared(t))) return;
  const { page } = viewer;
  const at = await pagePoint(viewer, 320, 240);
  await page.mouse.move(at.x, at.y);
  let from = probe.lines.length;
  await page.mouse.wheel(0, 100);
  const down = await probe.waitFor((l) => l.event === 'mouse-scroll', 'mouse-scroll (down)', { from });
  assertAt(down, 320, 240, details);
  assert.ok(Math.abs(down.delta_y - -1) < 0.01 && down.delta_x === 0, `wheel down 100 px is delta_y -1: ${JSON.stringify(down)}`);

  from = probe.lines.length;
  await page.mouse.wheel(0, -200);
  const up = await probe.waitFor((l) => l.event === 'mouse-scroll', 'mouse-scroll (up)', { from });
  assert.ok(Math.abs(up.delta_y - 2) < 0.01, `wheel up 200 px is delta_y +2: ${JSON.stringify(up)}`);

  from = probe.lines.length;
  await page.mouse.wheel(100, 0);
  const right = await probe.waitFor((l) => l.event === 'mouse-scroll', 'mouse-scroll (right)', { from });
  assert.ok(Math.abs(right.delta_x - -1) < 0.01 && right.delta_y === 0, `wheel right is delta_x -1: ${JSON.stringify(right)}`);
});

/**
 * The page sends `message` on `channel` with sendMessage; returns what the element's
 * client-message gave the probe and what the page's onMessage received (polled until `accept`).
 */
async function appRoundTrip(channel, message, { accept = (r) => r.length > 0, timeoutMs = 5_000 } = {}) {
  const { page } = viewer;
  await page.evaluate(() => {
    window.appReceived = [];
    window.appUnsubscribe?.();
    window.appUnsubscribe = window.rfbViewer.onMessage((m) => window.appReceived.push(m));
  });
  const from = probe.lines.length;
  await page.evaluate(([c, m]) => window.rfbViewer.sendMessage(c, m), [channel, message]);
  const { client_message: cm } = await probe.waitFor((l) => l.client_message, `client-message on ${channel}`, { from });
  let received;
  try {
    received = await pollUntil(() => page.evaluate(() => window.appReceived), accept,
      { timeoutMs, what: `the reply on ${cm.reply_channel} in the page's onMessage` });
  } catch (err) {
    received = err;
  }
  return { cm, received };
}

test('application channel: the page\'s message reaches the element, its reply reaches the page', { timeout: 60_000 }, async (t) => {
  if (!(await shared(t))) return;
  // The reply goes out on another channel than the request (see the next test for why).
  const { cm, received } = await appRoundTrip('app.test', { kind: 'ping', n: 1, reply_on: 'app.test-reply' });
  const stats = await viewer.stats();
  assert.equal(cm.channel, 'app.test');
  assert.deepEqual(cm.json, { kind: 'ping', n: 1, reply_on: 'app.test-reply' }, 'the element gives the object without `channel`');
  assert.equal(cm.client_id, stats.clientId, 'client-message names the client that sent it');
  assert.equal(cm.replied, true, 'send-message queued the reply');
  if (received instanceof Error) assert.fail(`${received.message}\n${details()}`);
  assert.deepEqual(received, [{
    channel: 'app.test-reply', kind: 'pong', n: 1, echo: { kind: 'ping', n: 1, reply_on: 'app.test-reply' },
  }]);
});

// Guards a fixed bug: sending on app.X opened an exact app.X channel in the transport, which
// then shadowed the app.* wildcard the worker listens on, so replies on app.X were lost.
test('application channel: a reply on the channel the page sent on reaches onMessage', {
  timeout: 60_000,
}, async (t) => {
  if (!(await shared(t))) return;
  const { cm, received } = await appRoundTrip('app.test', { kind: 'ping', n: 2 });
  assert.equal(cm.reply_channel, 'app.test');
  assert.equal(cm.replied, true, 'send-message queued the reply');
  if (received instanceof Error) assert.fail(received.message);
  assert.deepEqual(received, [{ channel: 'app.test', kind: 'pong', n: 2, echo: { kind: 'ping', n: 2 } }]);
});

test('touch: a tap and a swipe arrive as touch-down/motion/up, each followed by touch-frame', { timeout: 60_000 }, async (t) => {
  if (!(await shared(t))) return;
  const { page } = viewer;
  const cdp = await page.context().newCDPSession(page);
  t.after(() => cdp.detach().catch(() => {}));
  const touch = (type, points) => cdp.send('Input.dispatchTouchEvent', {
    type, touchPoints: points.map(([x, y]) => ({ x, y, id: 1, radiusX: 1, radiusY: 1, force: 1 })),
  });
  const from = probe.lines.length;
  const a = await pagePoint(viewer, 200, 300);
  const b = await pagePoint(viewer, 400, 300);
  await touch('touchStart', [[a.x, a.y]]);
  for (let i = 1; i <= 5; i++) {
    await touch('touchMove', [[a.x + ((b.x - a.x) * i) / 5, a.y]]);
    await nextFrame(viewer);
  }
  await touch('touchEnd', []);
  await probe.waitFor((l) => l.event === 'touch-up', 'touch-up', { from });
  await probe.waitFor((l) => l.event === 'touch-frame', 'the last touch-frame', { from: probe.lines.findLastIndex((l) => l.event === 'touch-up') });
  const evs = probe.events(from).filter((e) => e.event.startsWith('touch-'));
  const kinds = evs.map((e) => e.event);
  assert.equal(kinds[0], 'touch-down', JSON.stringify(evs));
  assert.equal(kinds[1], 'touch-frame', JSON.stringify(evs));
  assert.deepEqual(kinds.slice(-2), ['touch-up', 'touch-frame'], JSON.stringify(evs));
  assertAt(evs[0], 200, 300, details);
  assertAt(evs.at(-2), 400, 300, details);
  const motions = evs.filter((e) => e.event === 'touch-motion');
  assert.ok(motions.length >= 2, `touch-motion events: ${JSON.stringify(evs)}`);
  for (let i = 0; i < evs.length; i++) {
    if (evs[i].event === 'touch-motion') assert.equal(evs[i + 1]?.event, 'touch-frame', `a frame after each motion batch: ${JSON.stringify(evs)}`);
  }
  const ids = new Set(evs.filter((e) => e.identifier !== undefined).map((e) => e.identifier));
  assert.equal(ids.size, 1, `one touch point, one identifier: ${JSON.stringify(evs)}`);
  // A touch is not a mouse: no mouse-button-press from it.
  assert.deepEqual(probe.events(from).filter((e) => e.event === 'mouse-button-press'), []);
});

test('pixels: navigationtest draws where the page pointed', { timeout: 60_000 }, async (t) => {
  if (!(await shared(t))) return;
  const { page } = viewer;
  const target = [320, 240];
  const points = [[320, 240], [318, 238], [322, 242], [317, 243], [323, 237]];
  // The pointer elsewhere first (navigationtest draws a box where the pointer is).
  const away = await pagePoint(viewer, 560, 420);
  const from = probe.lines.length;
  await page.mouse.move(away.x, away.y);
  await probe.waitFor((l) => l.event === 'mouse-move' && Math.abs(l.x - 560) <= TOLERANCE_PX, 'the move away', { from });
  const far = (p, q) => p.slice(0, 3).some((c, k) => Math.abs(c - q[k]) > 80);
  // SMPTE's green bar (0, 255, 0) there, once the frames drawn with the old pointer are gone.
  const green = [0, 255, 0];
  const before = await pollUntil(() => viewer.samplePixels(points), (px) => px.every((p) => !far(p, green)),
    { what: 'the green bar at (320, 240) with no pointer box', details });
  await page.screenshot({ path: outPath('input-before.png') });

  const at = await pagePoint(viewer, ...target);
  await page.mouse.move(at.x, at.y);
  await page.mouse.down();
  await page.mouse.up();
  const after = await pollUntil(() => viewer.samplePixels(points), (px) => px.every((p, i) => far(p, before[i])),
    { what: `the pixels around (${target}) to change (before: ${JSON.stringify(before)})`, details });
  const file = outPath('input-navigationtest.png');
  await page.screenshot({ path: file });
  t.diagnostic(`before ${JSON.stringify(before)} after ${JSON.stringify(after)}; screenshot: ${file}`);
  // Away from the box the picture is as it was: the change is where the page pointed.
  const [control] = await viewer.samplePixels([[320, 200]]);
  assert.ok(!far(control, green), `(320, 200) is still the green bar: ${JSON.stringify(control)}`);
});

test('resize: the view\'s size in device pixels reaches the bus as rfbsink-resize', { timeout: 60_000 }, async (t) => {
  if (!(await shared(t))) return;
  const { page } = viewer;
  const dpr = await page.evaluate(() => window.devicePixelRatio);
  const want = (w, h) => ({ width: Math.round(w * dpr), height: Math.round(h * dpr) });
  const clientId = (await viewer.stats()).clientId;
  // The size the page was opened with has arrived already (sent after connecting, debounced).
  const first = want(VIEWPORT.width, VIEWPORT.height);
  await probe.waitFor((l) => l.resize?.width === first.width && l.resize?.height === first.height,
    `rfbsink-resize ${first.width}x${first.height}`);

  const from = probe.lines.length;
  await page.setViewportSize({ width: 800, height: 600 });
  const next = want(800, 600);
  const { resize } = await probe.waitFor((l) => l.resize, 'rfbsink-resize after the viewport changed', { from });
  assert.deepEqual(resize, { 'client-id': clientId, ...next }, `one resize, debounced, with the new size\n${details()}`);
  await page.setViewportSize(VIEWPORT);
});

test('?input=0: the viewer captures nothing', { timeout: 60_000 }, async (t) => {
  if (!(await shared(t))) return;
  const other = await openViewer(probe.url, probe, '?input=0');
  t.after(() => other.close());
  const state = await other.page.evaluate(() => ({
    input: window.rfbViewer.input,
    tabindex: document.querySelector('canvas.rfb-canvas').getAttribute('tabindex'),
  }));
  assert.deepEqual(state, { input: null, tabindex: null });
});

test('view-only=true: a click is counted as ignored and nothing goes upstream', { timeout: 90_000 }, async (t) => {
  if (!probeReady(t, ELEMENTS)) return;
  const viewOnly = await startProbe(PIPELINE.replace('rfbsink name=sink', 'rfbsink name=sink view-only=true'));
  t.after(() => viewOnly.stop());
  const v = await openViewer(viewOnly.url, viewOnly);
  t.after(() => v.close());
  const more = () => `${v.logs()}\n${viewOnly.logs()}`;
  const sent = () => v.page.evaluate(() => window.rfbViewer.input.counters.sent);

  const sentBefore = await sent();
  const from = viewOnly.lines.length;
  const at = await pagePoint(v, 160, 120);
  await v.page.mouse.click(at.x, at.y);
  const clickedAt = Date.now();
  // The viewer sent the click (down and up) ...
  const sentAfter = await pollUntil(sent, (n) => n >= sentBefore + 2, { what: 'the viewer to send the click', details: more });
  // ... and the element counted it (with everything else this page sent) as ignored.
  await viewOnly.waitFor((l) => l.stats && l.stats['input-ignored'] >= sentAfter,
    `rfbsink-stats input-ignored >= ${sentAfter}`, { from });
  // Nothing went upstream, not even late.
  const quiet = 1500 - (Date.now() - clickedAt);
  if (quiet > 0) await new Promise((r) => setTimeout(r, quiet));
  assert.deepEqual(viewOnly.events(), [], `no navigation event upstream\n${more()}`);
  assert.equal(viewOnly.lastStats()['input-events'], 0, `input-events stays 0\n${more()}`);
  assert.deepEqual(viewOnly.lines.filter((l) => l.resize), [], 'view-only: resize is input too, ignored');
});
