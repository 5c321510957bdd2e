// WebRTC end to end (docs/protocol.md, "WebRTC"): the real viewer with ?transport=webrtc in
// headless Chromium, the JSON offer client's flow, WHEP's error answers and a flood of offers.
//
// ICE needs host candidates, and Chromium gathers none on loopback alone: this file runs itself
// in a private network namespace (unshare -n) with lo and a veth pair on private addresses, so
// that nothing outside is ever contacted. The element is bound to 127.0.0.1 as by default and
// offers only that address.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import puppeteer from 'puppeteer-core';
import path from 'node:path';
import {
  REPO, Viewer, assertPluginBuilt, assertSmpteBars, gotoSettled, launchBrowser, pollUntil, requireElements, streamToPage, withQuery } from './lib.mjs';
import { pitchOf } from './audio.mjs';
import { runInPrivateNetns } from './netns.mjs';
import { probeMissing, startProbe } from './probe.mjs';

runInPrivateNetns('webrtc.test');

const SOURCE = 'videotestsrc is-live=true pattern=smpte ! video/x-raw,format=I420,width=640,height=480,framerate=30/1';
const X264 = 'x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30';
const PIPELINE = `${SOURCE} ! navigationtest ! videoconvert ! ${X264} ! rfbsink name=sink port=0 stats-interval=200`;
const STREAM = { width: 640, height: 480 };
const VIEWPORT = { width: 1000, height: 500 };

/** @type {Awaited<ReturnType<typeof launchBrowser>> | undefined} */
let browser;
/** @type {Awaited<ReturnType<typeof startProbe>> | undefined} */
let probe;
let skipReason = '';

before(async () => {
  assertPluginBuilt();
  skipReason = probeMissing() ?? '';
  if (skipReason) return;
  browser = await launchBrowser();
  probe = await startProbe(PIPELINE);
});
after(async () => {
  await probe?.stop();
  await browser?.close();
});

/** The probe's pipeline, or a skip with the reason. */
function ready(t) {
  if (!requireElements(t, ['navigationtest', 'x264enc'])) return null;
  if (skipReason) {
    t.skip(skipReason);
    return null;
  }
  return /** @type {NonNullable<typeof probe>} */ (probe);
}

/** Opens the viewer over WebRTC and waits for decoded frames. */
async function openWebRtc(p) {
  const viewer = await Viewer.open(/** @type {any} */ (browser).context, withQuery(p.url, '?transport=webrtc'), { viewport: VIEWPORT });
  const stats = await viewer.waitForFrames(10, { extra: p.logs, timeoutMs: 30_000 });
  return { viewer, stats };
}

/** The element's view of its clients, from its last stats message. */
function elementClients(p) {
  return p.lastStats()?.clients ?? 0;
}

test('?transport=webrtc: the viewer shows the colour bars over WebRTC', { timeout: 90_000 }, async (t) => {
  const p = ready(t);
  if (!p) return;
  const { viewer, stats } = await openWebRtc(p);
  t.after(() => viewer.close());
  const context = `stats: ${JSON.stringify(stats)}\n${viewer.logs()}`;
  assert.equal(stats.transport, 'webrtc', context);
  assert.equal(stats.codec, 'h264', context);
  assert.equal(stats.width, STREAM.width, context);
  assert.equal(stats.height, STREAM.height, context);
  await assertSmpteBars(viewer, { width: 640, y: 100, tolerance: 40, extra: p.logs });
  // The element's stats name the transport and, with no acks from a WebRTC peer, give the
  // path's round trip from its RTCP.
  const peer = await pollUntil(async () => p.lastStats()?.['per-client']?.find((c) => c.transport === 'webrtc'),
    (c) => c !== undefined && c['frames-sent'] > 0 && c['rtt-us'] !== null, { what: 'the element\'s stats of its WebRTC client with rtt-us', details: p.logs });
  t.diagnostic(`element stats for the WebRTC peer: ${JSON.stringify(peer)}`);
});

test('?transport=webrtc: a click arrives upstream at the stream coordinates it was made at', { timeout: 90_000 }, async (t) => {
  const p = ready(t);
  if (!p) return;
  const { viewer } = await openWebRtc(p);
  t.after(() => viewer.close());
  // The <video> shows the stream with object-fit: contain.
  const at = (x, y) => streamToPage(viewer.page, 'video.rfb-video', STREAM, x, y);
  const from = p.lines.length;
  // The data channel opens with the connection: wait until a move gets through.
  await pollUntil(async () => {
    const q = await at(100, 100);
    await viewer.page.mouse.move(q.x, q.y);
    return p.events(from).some((e) => e.event === 'mouse-move');
  }, (ok) => ok, { what: 'a pointer move upstream over the data channel', details: p.logs });
  const target = await at(480, 360);
  await viewer.page.mouse.click(target.x, target.y);
  const press = await p.waitFor((l) => l.event === 'mouse-button-press', 'the click upstream', { from });
  assert.ok(Math.abs(press.x - 480) <= 2 && Math.abs(press.y - 360) <= 2,
    `click at stream (480, 360) arrived at (${press.x}, ${press.y})\n${viewer.logs()}`);
  // Application messages both ways on the data channel: the probe answers a ping with a pong.
  await viewer.page.evaluate(() => {
    window.appReceived = [];
    window.rfbViewer.onMessage((m) => window.appReceived.push(m));
    return window.rfbViewer.sendMessage('app.test', { kind: 'ping', n: 5 });
  });
  const { client_message: cm } = await p.waitFor((l) => l.client_message?.channel === 'app.test', 'the app message upstream', { from });
  assert.deepEqual(cm.json, { kind: 'ping', n: 5 });
  const received = await pollUntil(() => viewer.page.evaluate(() => window.appReceived), (r) => r.length > 0,
    { what: 'the pong in the page over the data channel', details: () => viewer.logs() });
  assert.deepEqual(received[0], { channel: 'app.test', kind: 'pong', n: 5, echo: { kind: 'ping', n: 5 } });
});

test('two WebRTC peers and a WebSocket viewer watch one encoder', { timeout: 120_000 }, async (t) => {
  const p = ready(t);
  if (!p) return;
  const a = await openWebRtc(p);
  t.after(() => a.viewer.close());
  const b = await openWebRtc(p);
  t.after(() => b.viewer.close());
  const ws = await Viewer.open(/** @type {any} */ (browser).context, withQuery(p.url, '?transport=ws'));
  t.after(() => ws.close());
  await ws.waitForFrames(10, { extra: p.logs });
  // All three keep receiving at the same time.
  const before = await Promise.all([a.viewer.stats(), b.viewer.stats(), ws.stats()]);
  await new Promise((r) => setTimeout(r, 2000));
  const later = await Promise.all([a.viewer.stats(), b.viewer.stats(), ws.stats()]);
  for (const [i, s] of later.entries()) {
    assert.ok(s.framesDecoded >= before[i].framesDecoded + 20,
      `viewer ${i} (${s.transport}) decoded ${s.framesDecoded - before[i].framesDecoded} frames in 2 s`);
  }
  assert.deepEqual(later.map((s) => s.transport), ['webrtc', 'webrtc', 'websocket']);
  await pollUntil(async () => elementClients(p), (n) => n === 3, { what: 'the element counting 3 clients', details: p.logs });
  // One encoder: the pipeline has one x264enc, and the element encodes nothing itself (its WebRTC
  // peers hold only a payloader and webrtcbin).
  assert.equal(PIPELINE.match(/x264enc/g)?.length, 1);
});

// Sound over WebRTC: the element's Opus packets on an audio track beside the video, played by the
// <video> after a click; the pitch read back through Web Audio from the track the page received.
test('?transport=webrtc with sound: an Opus track plays after a click, at the tone\'s pitch', { timeout: 120_000 }, async (t) => {
  if (!requireElements(t, ['x264enc', 'opusenc', 'rtpopuspay'])) return;
  if (skipReason) return t.skip(skipReason);
  const withSound = await startProbe(`${SOURCE} ! ${X264} ! rfbsink name=sink port=0 stats-interval=200 `
    + 'audiotestsrc is-live=true freq=440 volume=0.5 ! audio/x-raw,rate=48000,channels=2 ! opusenc ! sink.audio');
  t.after(() => withSound.stop());
  const { viewer } = await openWebRtc(withSound);
  t.after(() => viewer.close());
  await viewer.waitForStats((s) => s.audio.state === 'waiting-for-click', 'the sound track, muted until a click', { extra: withSound.logs });
  await viewer.page.mouse.click(5, 5);
  const playing = await viewer.waitForStats((s) => s.audio.state === 'playing' && s.audio.packetsReceived >= 50,
    'the sound playing', { extra: withSound.logs });
  const heard = await viewer.page.evaluate(async () => {
    const video = /** @type {HTMLVideoElement} */ (document.querySelector('video.rfb-video'));
    const context = new AudioContext();
    await context.resume();
    const analyser = context.createAnalyser();
    analyser.fftSize = 32768;
    context.createMediaStreamSource(/** @type {MediaStream} */ (video.srcObject)).connect(analyser);
    await new Promise((r) => setTimeout(r, 1200));
    const samples = new Float32Array(analyser.fftSize);
    analyser.getFloatTimeDomainData(samples);
    // Crossing periods, read by audio.mjs's pitchOf() as record()'s are.
    const periods = [];
    let previous = -1;
    for (let i = 1; i < samples.length; i++) {
      if (samples[i - 1] < 0 && samples[i] >= 0) {
        if (previous >= 0) periods.push(i - previous);
        previous = i;
      }
    }
    return { periods, sampleRate: context.sampleRate };
  }).then(({ periods, sampleRate }) => pitchOf(periods, sampleRate));
  t.diagnostic(`webrtc sound: ${JSON.stringify(playing.audio)}, heard ${heard.toFixed(1)} Hz`);
  assert.ok(Math.abs(heard - 440) < 5, `heard ${heard.toFixed(1)} Hz through the WebRTC track, expected 440\n${viewer.logs()}`);
  // Still one Opus encoder for every viewer: the element's peers only payload it.
  const more = await viewer.waitForFrames(20, { from: playing.framesDecoded });
  assert.equal(more.transport, 'webrtc');
});

test('the JSON offer endpoint: a live-view client POSTing {"sdp", "type": "offer"} shows video', { timeout: 90_000 }, async (t) => {
  const p = ready(t);
  if (!p) return;
  const page = await /** @type {any} */ (browser).context.newPage();
  t.after(() => page.close());
  // The page is only for its origin: the client below is the flow such clients use, unchanged.
  await gotoSettled(page, withQuery(p.url, '?transport=ws'));
  const url = new URL('webrtc_offer', p.url);
  url.search = new URL(p.url).search;
  const result = await page.evaluate(async (endpoint) => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    const video = document.createElement('video');
    video.muted = true;
    document.body.append(video);
    pc.ontrack = (e) => { video.srcObject = e.streams[0] ?? new MediaStream([e.track]); video.play(); };
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((r) => {
      if (pc.iceGatheringState === 'complete') r(undefined);
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r(undefined);
      setTimeout(r, 2000);
    });
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ sdp: pc.localDescription.sdp, type: 'offer', detector: 'camera0' }),
    });
    const reply = await res.json();
    if (reply.status !== 'success') return { reply };
    await pc.setRemoteDescription({ type: reply.type, sdp: reply.sdp });
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline && !(video.videoWidth > 0 && video.currentTime > 0.5)) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const stats = await pc.getStats();
    let decoded = 0;
    stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') decoded = s.framesDecoded; });
    return { reply: { status: reply.status, type: reply.type }, width: video.videoWidth, height: video.videoHeight, decoded };
  }, url.href);
  assert.deepEqual(result.reply, { status: 'success', type: 'answer' }, JSON.stringify(result));
  assert.equal(result.width, STREAM.width, JSON.stringify(result));
  assert.ok(result.decoded >= 10, `frames decoded: ${JSON.stringify(result)}`);
});

// A WHEP client no one here wrote: medooze's whip-whep (npm), the reference JavaScript client. It
// offers without candidates, trickles them with PATCH and ends with DELETE. It is served to the
// page unchanged, from the element's origin (a route), and imported as the module it is.
test('a standard WHEP client (whip-whep from npm) plays the stream, trickling with PATCH', { timeout: 90_000 }, async (t) => {
  const p = ready(t);
  if (!p) return;
  const page = await /** @type {any} */ (browser).context.newPage();
  t.after(() => page.close());
  const logs = [];
  page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
  page.on('request', (r) => { if (/\/whep/.test(r.url())) logs.push(`${r.method()} ${r.url()}`); });
  const origin = new URL(p.url).origin;
  const source = readFileSync(path.join(REPO, 'node_modules', 'whip-whep', 'whep.js'), 'utf8');
  await page.route(`${origin}/test-whep-client/whep.js`, (route) => route.fulfill({ body: source, contentType: 'text/javascript' }));
  await gotoSettled(page, withQuery(p.url, '?transport=ws&input=0'));
  const token = new URL(p.url).searchParams.get('rfb_token');
  const from = p.lines.length;
  const result = await page.evaluate(async ({ whep, token }) => {
    const { WHEPClient } = await import('/test-whep-client/whep.js');
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    const video = document.createElement('video');
    video.muted = true;
    document.body.append(video);
    pc.ontrack = (e) => { video.srcObject = e.streams[0] ?? new MediaStream([e.track]); video.play(); };
    const client = new WHEPClient();
    await client.view(pc, whep, token);
    const deadline = Date.now() + 20000;
    while (Date.now() < deadline && !(video.videoWidth > 0 && video.currentTime > 0.5)) {
      await new Promise((r) => setTimeout(r, 100));
    }
    let decoded = 0;
    (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') decoded = s.framesDecoded; });
    const out = { width: video.videoWidth, height: video.videoHeight, decoded, resource: String(client.resourceURL) };
    await client.stop();
    return out;
  }, { whep: new URL('whep', p.url).href, token });
  const context = `${JSON.stringify(result)}\n${logs.join('\n')}`;
  assert.equal(result.width, STREAM.width, context);
  assert.ok(result.decoded >= 10, context);
  assert.match(result.resource, /\/whep\/[0-9a-f]{48}$/, context);
  assert.ok(logs.some((l) => l.startsWith('PATCH ')), `it trickled: ${context}`);
  // Its DELETE ended the session: the element drops the peer.
  await pollUntil(async () => p.lines.slice(from).filter((l) => l.stats).at(-1)?.stats.clients,
    (n) => n === 1, { what: 'the element back to the page\'s own WebSocket client after DELETE', details: p.logs });
});

test('WHEP and the JSON endpoint answer bad requests with clear HTTP errors', { timeout: 90_000 }, async (t) => {
  const p = ready(t);
  if (!p) return;
  const token = new URL(p.url).searchParams.get('rfb_token');
  const whep = new URL('whep', p.url).href;
  const post = (body, headers = {}) => fetch(whep, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${token}`, ...headers },
    body,
  });

  let res = await fetch(whep, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: 'v=0\r\n' });
  assert.equal(res.status, 401, 'no token: 401');
  res = await post('this is not SDP');
  assert.equal(res.status, 400, 'not SDP: 400');
  assert.match(await res.text(), /SDP|m-line/);
  const audioOnly = [
    'v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'c=IN IP4 0.0.0.0', 'a=rtpmap:111 opus/48000/2', 'a=recvonly', '',
  ].join('\r\n');
  res = await post(audioOnly);
  assert.equal(res.status, 400, 'no video: 400');
  assert.match(await res.text(), /no video/);
  res = await post('v=0\r\n', { 'Content-Type': 'text/plain' });
  assert.equal(res.status, 415, 'not application/sdp: 415');
  res = await post('v=0\r\n'.repeat(20_000));
  assert.equal(res.status, 413, 'a 100 KB offer: 413');
  res = await fetch(`${whep}/0123456789abcdef`, { method: 'DELETE', headers: { Authorization: `Bearer ${token}` } });
  assert.equal(res.status, 404, 'DELETE of an unknown session: 404');
  const json = new URL('webrtc_offer', p.url);
  json.search = new URL(p.url).search;
  res = await fetch(json, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"sdp": 1}' });
  assert.equal(res.status, 400);
  assert.equal((await res.json()).status, 'error');
});

test('100 offers at once: bounded answers, and a watching WebRTC viewer is unaffected', { timeout: 120_000 }, async (t) => {
  const p = ready(t);
  if (!p) return;
  const { viewer } = await openWebRtc(p);
  t.after(() => viewer.close());
  const page = await /** @type {any} */ (browser).context.newPage();
  t.after(() => page.close());
  await gotoSettled(page, withQuery(p.url, '?transport=ws&input=0'));
  const whep = new URL('whep', p.url).href;
  const token = new URL(p.url).searchParams.get('rfb_token');
  // One real browser offer, sent 100 times at once.
  const statuses = await page.evaluate(async ({ whep, token }) => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    await pc.setLocalDescription(await pc.createOffer());
    const sdp = pc.localDescription.sdp;
    const all = await Promise.all(Array.from({ length: 100 }, () => fetch(whep, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: `Bearer ${token}` },
      body: sdp,
    }).then((r) => r.status, () => 0)));
    pc.close();
    return all;
  }, { whep, token });
  const counts = statuses.reduce((m, s) => ({ ...m, [s]: (m[s] ?? 0) + 1 }), {});
  t.diagnostic(`100 offers at once: ${JSON.stringify(counts)}`);
  assert.ok(statuses.every((s) => s === 201 || s === 503), `only 201 or 503: ${JSON.stringify(counts)}`);
  assert.ok((counts[201] ?? 0) <= 64, `at most max-clients answered: ${JSON.stringify(counts)}`);
  assert.ok((counts[503] ?? 0) > 0, `the flood was refused in part: ${JSON.stringify(counts)}`);
  // The watching viewer keeps decoding through it.
  const s0 = await viewer.stats();
  await new Promise((r) => setTimeout(r, 2000));
  const s1 = await viewer.stats();
  assert.ok(s1.framesDecoded >= s0.framesDecoded + 20, `the viewer decoded ${s1.framesDecoded - s0.framesDecoded} frames in 2 s during the flood`);
  // The answered peers never connect: they are gone within the connect timeout.
  await pollUntil(async () => elementClients(p), (n) => n <= 2, { timeoutMs: 40_000, what: 'the unconnected peers dropped', details: p.logs });
});

// Firefox's ICE, like libnice, does not pair its host candidates with a loopback one: the element
// is bound to every address here (0.0.0.0), as it would be for viewers on other machines.
// Firefox's WebRTC receives H.264 only with Cisco's OpenH264 plugin, which it downloads at run
// time (never here): its offer has VP8 and VP9. An H.264 stream is refused with that reason on the
// page (the documented fallback: VP8 for WebRTC, or WebSocket); a VP8 stream plays.
async function launchFirefox(t) {
  const profile = mkdtempSync(path.join(tmpdir(), 'rfbsink-e2e-firefox-'));
  const firefox = await puppeteer.launch({
    browser: 'firefox', executablePath: process.env.RFB_FIREFOX ?? '/usr/bin/firefox-esr', headless: true, userDataDir: profile,
  });
  t.after(async () => {
    await firefox.close();
    rmSync(profile, { recursive: true, force: true });
  });
  return { newPage: () => firefox.newPage() };
}

test('Firefox: ?transport=webrtc with an H.264 stream says why and what to do', { timeout: 90_000 }, async (t) => {
  if (!ready(t)) return;
  const p = await startProbe(PIPELINE.replace('rfbsink name=sink', 'rfbsink name=sink address=0.0.0.0'));
  t.after(() => p.stop());
  const viewer = await Viewer.open(await launchFirefox(t), withQuery(p.url, '?transport=webrtc'));
  t.after(() => viewer.close());
  const text = await pollUntil(() => viewer.page.evaluate(() => document.querySelector('.rfb-status')?.textContent ?? ''),
    (s) => /HTTP 415/.test(s), { what: 'the refusal on the page', details: () => viewer.logs() });
  assert.match(text, /does not receive H264/);
  assert.match(text, /vp8enc|WebSocket/);
  // The server says what the offer lacks; the viewer, knowing it is Firefox, says why.
  assert.match(text, /Firefox receives H\.264 over WebRTC only with its OpenH264 plugin/);
});

test('Firefox: ?transport=webrtc with a VP8 stream shows the colour bars, and a click arrives upstream', { timeout: 120_000 }, async (t) => {
  if (!ready(t) || !requireElements(t, ['vp8enc'])) return;
  const vp8 = 'vp8enc deadline=1 cpu-used=16 lag-in-frames=0 keyframe-max-dist=30';
  const p = await startProbe(PIPELINE.replace(X264, vp8).replace('rfbsink name=sink', 'rfbsink name=sink address=0.0.0.0'));
  t.after(() => p.stop());
  const viewer = await Viewer.open(await launchFirefox(t), withQuery(p.url, '?transport=webrtc'), { viewport: VIEWPORT });
  t.after(() => viewer.close());
  const stats = await viewer.waitForFrames(10, { extra: p.logs, timeoutMs: 30_000 });
  assert.equal(stats.transport, 'webrtc', JSON.stringify(stats));
  assert.equal(stats.codec, 'vp8', JSON.stringify(stats));
  assert.equal(stats.width, STREAM.width, JSON.stringify(stats));
  await assertSmpteBars(viewer, { width: 640, y: 100, tolerance: 40, extra: p.logs });
  const target = await streamToPage(viewer.page, 'video.rfb-video', STREAM, 200, 150);
  const from = p.lines.length;
  await pollUntil(async () => {
    await viewer.page.mouse.click(target.x, target.y);
    return p.events(from).find((e) => e.event === 'mouse-button-press');
  }, (e) => e !== undefined, { what: 'a click upstream over the data channel', details: p.logs });
  const press = p.events(from).find((e) => e.event === 'mouse-button-press');
  assert.ok(Math.abs(press.x - 200) <= 2 && Math.abs(press.y - 150) <= 2, `click at (200, 150) arrived at (${press.x}, ${press.y})`);
});
