// Publishing to a Media over QUIC relay (docs/protocol.md, "Relays"): rfbsink publishes its stream
// once to a real moq-relay on loopback (a generated certificate, reached as http://, its
// fingerprint read from /certificate.sha256), and moq's reference player, @moq/watch from npm,
// unchanged, plays it in headless Chromium: the colour bars on its canvas, frames decoded by its
// own decoder. The element keeps serving its own viewers directly meanwhile. The relay is killed
// and started again mid-stream: the publisher and the player come back on their own. Two relays
// clustered (moq-relay --cluster-connect): published to one, played from the other. Firefox
// (firefox-esr through WebDriver BiDi) plays it too. The element's own viewer page watches through
// the relay with ?relay=&broadcast= (view-only), only the relay the element publishes to. It all
// runs in a private network namespace of its own.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { Viewer, assertPluginBuilt, assertSmpteBars, freePort, launchBrowser, pollUntil, requireElements, startPipeline, withQuery } from './lib.mjs';
import { announced, relayBin, startAuthServer, startRelay, startWatchServer } from './moq.mjs';
import { click, record } from './audio.mjs';
import { runInPrivateNetns } from './netns.mjs';

// In a private network namespace (netns.mjs): the relays, the clustered pair among them, and
// their viewers reach nothing but each other.
runInPrivateNetns('relay.test');

const X264 = 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';
const SOURCE = 'videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=640,height=480,framerate=30/1';
const BROADCAST = 'bars';
const FIREFOX = process.env.RFB_FIREFOX ?? '/usr/bin/firefox-esr';

/** rfbsink publishing `encoder`'s stream to `relay` (more rfbsink properties in `extra`). */
function publish(relay, { encoder = X264, extra = '' } = {}) {
  return startPipeline(`${SOURCE} ! ${encoder} ! rfbsink port=0 stats-interval=200 relay-url=${relay.url} relay-broadcast=${BROADCAST}${extra ? ` ${extra}` : ''}`);
}

/** Until `relay` announces the broadcast. */
function untilAnnounced(relay, details) {
  return pollUntil(() => announced(relay), (names) => names.includes(BROADCAST),
    { timeoutMs: 20_000, what: `${relay.url} announcing ${BROADCAST}`, details });
}

/** @type {Awaited<ReturnType<typeof launchBrowser>>} */
let browser;
/** @type {Awaited<ReturnType<typeof startWatchServer>>} */
let watchServer;

before(async () => {
  assertPluginBuilt();
  relayBin();
  browser = await launchBrowser();
  watchServer = await startWatchServer();
});

after(async () => {
  await watchServer?.close();
  await browser?.close();
});

test('@moq/watch plays the stream rfbsink publishes to moq-relay, and it, the element and its own relay viewer come back after the relay restarts', { timeout: 180_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const port = await freePort();
  let relay = await startRelay({ port });
  const pipeline = await publish(relay);
  const details = () => `${relay.logs()}\n${pipeline.logs()}`;
  let watch;
  let direct;
  let ours;
  try {
    await untilAnnounced(relay, details);
    watch = await Viewer.open(browser.context, watchServer.pageUrl(relay.url, BROADCAST));
    const more = () => `${watch.logs()}\n${details()}`;
    await watch.waitForFrames(30, { extra: details });
    await assertSmpteBars(watch, { extra: details });
    // The element's own viewers are served as before, beside the relay.
    direct = await Viewer.open(browser.context, pipeline.url);
    await direct.waitForFrames(30, { extra: details });
    await assertSmpteBars(direct, { extra: details });
    const stats = pipeline.stats();
    assert.equal(stats['relay-connected'], 1, more());
    assert.ok(stats['relay-frames'] >= 30, `relay-frames ${stats['relay-frames']}\n${more()}`);
    // And the element's page watching through the relay.
    ours = await Viewer.open(browser.context, withQuery(pipeline.url, 'relay=1'));
    await ours.waitForFrames(30, { extra: details });

    // The relay goes away mid-stream and comes back at once, as a restarted relay does (a new
    // certificate, the same address). @moq/watch gives up redialing after about 10 s of refused
    // dials, and the element notices a relay killed without a word only at QUIC's idle timeout:
    // the restart does not wait for that; relay-sessions below proves the element dialed again.
    const before = (await watch.stats()).framesDecoded;
    const oursBefore = (await ours.stats()).framesDecoded;
    await relay.stop();
    relay = await startRelay({ port });
    await untilAnnounced(relay, more);
    await watch.waitForFrames(30, { from: before, timeoutMs: 30_000, extra: details });
    await assertSmpteBars(watch, { extra: details });
    await ours.waitForFrames(30, { from: oursBefore, timeoutMs: 30_000, extra: details });
    await pollUntil(async () => pipeline.stats()?.['relay-sessions'], (n) => n >= 2,
      { timeoutMs: 15_000, what: 'the element on its second relay session', details: more });
    assert.equal(pipeline.stats()['relay-connected'], 1, more());
    // The direct viewer never depended on the relay.
    const d = await direct.stats();
    await direct.waitForFrames(30, { from: d.framesDecoded, extra: details });
  } finally {
    await watch?.close();
    await direct?.close();
    await ours?.close();
    await pipeline.stop();
    await relay.stop();
  }
});

test("the element's own viewer watches through the relay (?relay=&broadcast=), view-only, and only through the relay it publishes to", { timeout: 120_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const relay = await startRelay({ port: await freePort() });
  const other = await startRelay({ port: await freePort() });
  const pipeline = await publish(relay);
  const details = () => `${relay.logs()}\n${pipeline.logs()}`;
  let viewer;
  let stranger;
  try {
    await untilAnnounced(relay, details);
    viewer = await Viewer.open(browser.context, withQuery(pipeline.url, `relay=${encodeURIComponent(relay.url)}&broadcast=${BROADCAST}`));
    const s = await viewer.waitForFrames(30, { extra: details });
    assert.equal(s.transport, 'relay');
    assert.equal(s.width, 640);
    await assertSmpteBars(viewer, { extra: details });
    // No client of the element: the picture came through the relay.
    assert.equal(pipeline.stats().clients, 0, details());
    // The page reaches the element's relay only.
    stranger = await Viewer.open(browser.context, withQuery(pipeline.url, `relay=${encodeURIComponent(other.url)}&broadcast=${BROADCAST}`));
    // Another relay in the link is refused: the page watches the element directly instead.
    const st = await stranger.waitForFrames(10, { extra: details });
    assert.notEqual(st.transport, 'relay');
    assert.match(stranger.logs(), /ignoring \?relay=/);
    // ?relay=1: the element's relay, named in /rfb.json.
    const short = await Viewer.open(browser.context, withQuery(pipeline.url, 'relay=1'));
    assert.equal((await short.waitForFrames(10, { extra: details })).transport, 'relay');
    await short.close();
  } finally {
    await viewer?.close();
    await stranger?.close();
    await pipeline.stop();
    await other.stop();
    await relay.stop();
  }
});

test('a viewer through the relay hears the sound the element publishes beside the picture (audio0)', { timeout: 120_000 }, async (t) => {
  if (!requireElements(t, ['x264enc', 'opusenc'])) return;
  const relay = await startRelay({ port: await freePort() });
  const pipeline = await startPipeline(`${SOURCE} ! ${X264} ! rfbsink name=s port=0 stats-interval=200 relay-url=${relay.url} relay-broadcast=${BROADCAST} `
    + 'audiotestsrc is-live=true freq=440 volume=0.5 ! audio/x-raw,rate=48000,channels=2 ! opusenc frame-size=20 ! s.audio');
  const details = () => `${relay.logs()}\n${pipeline.logs()}`;
  let viewer;
  try {
    await untilAnnounced(relay, details);
    viewer = await Viewer.open(browser.context, withQuery(pipeline.url, 'relay=1'));
    await viewer.waitForFrames(10, { extra: details });
    await viewer.waitForStats((s) => s.audio.state === 'waiting-for-click', 'the relay\'s sound announced', { extra: details });
    await click(viewer);
    const playing = await viewer.waitForStats((s) => s.audio.state === 'playing' && s.audio.framesDecoded >= 25, 'sound playing through the relay', { extra: details });
    assert.equal(playing.transport, 'relay');
    assert.equal(playing.audio.channels, 2);
    assert.equal(playing.audio.decodeErrors, 0);
    const { pitch, rms } = await record(viewer, 1000);
    assert.ok(Math.abs(pitch - 440) < 5, `heard ${pitch.toFixed(1)} Hz through the relay, expected 440 Hz (rms ${rms.toFixed(3)})`);
    assert.ok(rms > 0.2, `rms ${rms}`);
    // Nothing of it came from the element directly.
    assert.equal(pipeline.stats().clients, 0, details());
    const settled = await viewer.stats();
    t.diagnostic(`relay: audio ${JSON.stringify(settled.audio)}`);
    // The picture goes on beside it.
    await viewer.waitForFrames(30, { from: settled.framesDecoded, extra: details });
  } finally {
    await viewer?.close();
    await pipeline.stop();
    await relay.stop();
  }
});

test('two clustered relays: rfbsink publishes to one, @moq/watch plays from the other', { timeout: 120_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const origin = await startRelay({ port: await freePort() });
  // The second relay dials the first (moq-relay's own clustering), as a relay near the audience.
  const edge = await startRelay({ port: await freePort(), args: ['--cluster-connect', `${origin.http}/`] });
  const pipeline = await publish(origin);
  const details = () => `${origin.logs()}\n${edge.logs()}\n${pipeline.logs()}`;
  let watch;
  try {
    await untilAnnounced(edge, details);
    watch = await Viewer.open(browser.context, watchServer.pageUrl(edge.url, BROADCAST));
    await watch.waitForFrames(30, { extra: details });
    await assertSmpteBars(watch, { extra: details });
  } finally {
    await watch?.close();
    await pipeline.stop();
    await edge.stop();
    await origin.stop();
  }
});

test('Firefox plays the broadcast through the relay with @moq/watch', { timeout: 120_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  if (!existsSync(FIREFOX)) throw new Error(`${FIREFOX} is missing: install Debian's firefox-esr (scripts/install-deps.sh does)`);
  const relay = await startRelay({ port: await freePort() });
  const pipeline = await publish(relay);
  const profile = mkdtempSync(path.join(tmpdir(), 'rfbsink-e2e-firefox-'));
  const firefox = await puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX, headless: true, userDataDir: profile });
  const details = () => `${relay.logs()}\n${pipeline.logs()}`;
  try {
    await untilAnnounced(relay, details);
    const watch = await Viewer.open({ newPage: () => firefox.newPage() }, watchServer.pageUrl(relay.url, BROADCAST));
    await watch.waitForFrames(30, { extra: details });
    await assertSmpteBars(watch, { extra: details });
  } finally {
    await firefox.close();
    rmSync(profile, { recursive: true, force: true });
    await pipeline.stop();
    await relay.stop();
  }
});

test('a relay that does not let the element publish is said on the bus; direct viewers are unaffected', { timeout: 60_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  // Anonymous sessions may watch under anon/, not publish: the relay closes the element's.
  const relay = await startRelay({ port: await freePort(), anonymousPublish: false });
  const pipeline = await publish(relay);
  try {
    // moq's client takes the refusal for final: the bus says so with the relay's reason.
    const logs = await pollUntil(async () => pipeline.logs(), (l) => /rfbsink-relay.*status=\(string\)failed/.test(l),
      { timeoutMs: 20_000, what: 'the failed message', details: () => `${pipeline.logs()}\n${relay.logs()}` });
    assert.match(logs, /Cannot publish to the relay at http:\/\/127\.0\.0\.1:\d+\/anon: /);
    assert.deepEqual(await announced(relay), []);
    const direct = await Viewer.open(browser.context, pipeline.url);
    await direct.waitForFrames(10, { extra: pipeline.logs });
    await direct.close();
  } finally {
    await pipeline.stop();
    await relay.stop();
  }
});

test('relay-token: the element publishes with the token the relay\'s auth server wants; without it the relay refuses', { timeout: 90_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const token = 'eyJ.test-publish-token.sig';
  const auth = await startAuthServer(token);
  const relay = await startRelay({ port: await freePort(), authUrl: auth.url });
  const details = () => `${relay.logs()}\nauth server asked: ${JSON.stringify(auth.asked)}`;
  let refused;
  let pipeline;
  try {
    refused = await publish(relay);
    await pollUntil(async () => refused.logs(), (l) => /status=\(string\)failed, reason=\(string\)unauthorized/.test(l),
      { timeoutMs: 20_000, what: 'the refusal without a token', details: () => `${refused.logs()}\n${details()}` });
    assert.match(refused.logs(), /is relay-token set/);
    await refused.stop();
    pipeline = await publish(relay, { extra: `relay-token=${token}` });
    await untilAnnounced(relay, () => `${pipeline.logs()}\n${details()}`);
    // The token went to the relay (its jwt parameter), never onto the bus.
    assert.ok(auth.asked.some((r) => r.event === 'connect' && new URLSearchParams(r.query ?? '').get('jwt') === token), details());
    // (The first line of logs() is the launch line, which holds it.)
    assert.ok(!pipeline.logs().split('\n').slice(1).join('\n').includes(token), `the token is printed:\n${pipeline.logs()}`);
    // A viewer without a token may watch (the auth server's rule).
    const watch = await Viewer.open(browser.context, watchServer.pageUrl(relay.url, BROADCAST));
    await watch.waitForFrames(30, { extra: details });
    await watch.close();
  } finally {
    await refused?.stop();
    await pipeline?.stop();
    await relay.stop();
    await auth.close();
  }
});

test('viewer tokens: through a relay that wants one, the element\'s page watches with the token in the relay URL; without it, nothing', { timeout: 90_000 }, async (t) => {
  if (!requireElements(t, ['x264enc'])) return;
  const publishToken = 'eyJ.test-publish-token.sig';
  const viewerToken = 'eyJ.test-viewer-token.sig';
  const auth = await startAuthServer(publishToken, { viewerToken });
  const relay = await startRelay({ port: await freePort(), authUrl: auth.url });
  const pipeline = await publish(relay, { extra: `relay-token=${publishToken}` });
  const details = () => `${relay.logs()}\n${pipeline.logs()}\nauth server asked: ${JSON.stringify(auth.asked)}`;
  let viewer;
  let stranger;
  try {
    // (The relay's HTTP listing wants a token too: the element's own word that it publishes.)
    await pollUntil(async () => pipeline.stats(), (st) => st?.['relay-connected'] === 1,
      { timeoutMs: 20_000, what: 'the element publishing to the relay', details });
    // The relay URL with the viewer's token (docs/protocol.md "Relays"; README: minting them).
    const withToken = `${relay.url}?jwt=${viewerToken}`;
    viewer = await Viewer.open(browser.context, withQuery(pipeline.url, `relay=${encodeURIComponent(withToken)}&broadcast=${BROADCAST}`));
    const s = await viewer.waitForFrames(30, { extra: details });
    assert.equal(s.transport, 'relay');
    assert.ok(auth.asked.some((r) => r.event === 'connect' && new URLSearchParams(r.query ?? '').get('jwt') === viewerToken), details());
    // The same page without it: the relay refuses the session, and no picture comes.
    stranger = await Viewer.open(browser.context, withQuery(pipeline.url, 'relay=1'));
    await new Promise((r) => setTimeout(r, 5000));
    const st = await stranger.stats();
    assert.equal(st.transport, 'relay');
    assert.equal(st.framesDecoded, 0, `a viewer without the token watched\n${details()}`);
    // It says why on the page, and does not hammer the relay: the next try in 30 s. The relay's
    // HTTP side refused the token before any session was dialed (web/relay.js `admits`).
    const said = await stranger.page.locator('.rfb-status').textContent();
    assert.match(said ?? '', /the relay refused: it may want a token/, `the page says: ${said}\n${stranger.logs()}`);
    const tries = auth.asked.filter((r) => r.event === 'connect' && !new URLSearchParams(r.query ?? '').get('jwt')).length;
    assert.equal(tries, 1, `sessions without a token in 5 s\n${details()}`);
    assert.ok(auth.asked.some((r) => r.event === 'connect' && !new URLSearchParams(r.query ?? '').get('jwt')), details());
  } finally {
    await viewer?.close();
    await stranger?.close();
    await pipeline.stop();
    await relay.stop();
    await auth.close();
  }
});

test('a rendition the relay format cannot carry is said on the bus; the element still serves it directly', { timeout: 60_000 }, async (t) => {
  if (!requireElements(t, ['jpegenc'])) return;
  const relay = await startRelay({ port: await freePort() });
  const pipeline = await publish(relay, { encoder: 'jpegenc' });
  try {
    const warned = await pollUntil(async () => pipeline.logs(), (logs) => /rfbsink-relay.*status=\(string\)unsupported/.test(logs),
      { timeoutMs: 15_000, what: 'the unsupported message', details: () => `${pipeline.logs()}\n${relay.logs()}` });
    assert.match(warned, /codec=\(string\)jpeg/);
    assert.match(warned, /does not carry jpeg/);
    const direct = await Viewer.open(browser.context, pipeline.url);
    await direct.waitForFrames(10, { extra: pipeline.logs });
    await direct.close();
  } finally {
    await pipeline.stop();
    await relay.stop();
  }
});
