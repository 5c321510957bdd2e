import assert from 'node:assert/strict';
import { test } from 'node:test';

import { offerRefusal, WebRtcTransport, whepUrl } from '../webrtc.js';

test('the WHEP endpoint sits next to the stream URL and takes its token', () => {
  assert.deepEqual(whepUrl('wss://h:8443/pre/ws?rfb_token=abc&envelope=binary'), { whep: 'https://h:8443/pre/whep', token: 'abc' });
  assert.deepEqual(whepUrl('ws://127.0.0.1:8080/ws'), { whep: 'http://127.0.0.1:8080/whep', token: null });
  // What the page measured of its link goes along; the rest of the stream URL's query does not.
  assert.deepEqual(whepUrl('ws://127.0.0.1:8080/ws?rfb_token=t&audio=1&downlink=870'), { whep: 'http://127.0.0.1:8080/whep?downlink=870', token: 't' });
});

test('refused offers: access keeps trying, a refused format is final, Firefox gets the OpenH264 hint', () => {
  const chrome = 'Mozilla/5.0 Chrome/140.0';
  const firefox = 'Mozilla/5.0 Gecko/20100101 Firefox/153.0';
  assert.equal(offerRefusal(401, '', chrome)?.refused, true);
  assert.equal(offerRefusal(403, '', chrome)?.refused, true);
  const body = 'the offer has no format for H264 (avc1.42C01F): it offers VP8\n';
  assert.deepEqual(offerRefusal(415, body, chrome), { final: true, reason: `WebRTC refused (HTTP 415): ${body.trim()}` });
  assert.match(offerRefusal(415, body, firefox)?.reason ?? '', /OpenH264 plugin\)$/);
  assert.equal(offerRefusal(400, 'not SDP', firefox)?.reason, 'WebRTC refused (HTTP 400): not SDP');
  assert.equal(offerRefusal(503, 'busy', chrome), null, 'busy: try again');
});

test('data channel messages are parsed once and routed like the other transports; what breaks the protocol is an error', () => {
  const t = new WebRtcTransport('ws://127.0.0.1:8080/ws?rfb_token=abc', { onTrack: () => {} });
  const got = { control: [], app: [], errors: [] };
  t.openChannel('rfb.control').onMessage((m) => got.control.push(m.kind));
  t.openChannel('app.*').onMessage((m) => got.app.push(m.channel));
  t.onEvent((e) => {
    if (e.type === 'error') got.errors.push(e.error.message);
  });
  t.receive(JSON.stringify({ channel: 'rfb.control', kind: 'hello', client_id: 3 }));
  t.receive(JSON.stringify({ channel: 'app.detector', kind: 'message' }));
  t.receive('{not json');
  t.receive(new ArrayBuffer(4));
  t.receive(JSON.stringify({ channel: 'rfb.main', frame_id: 1 }));
  assert.deepEqual(got.control, ['hello']);
  assert.deepEqual(got.app, ['app.detector']);
  assert.equal(got.errors.length, 3);
  assert.equal(t.name, 'webrtc');
  assert.deepEqual(t.headers(), { Authorization: 'Bearer abc' });
});

test('sending without a data channel rejects; wildcard channels and binary are refused before that', async () => {
  const t = new WebRtcTransport('ws://127.0.0.1:8080/ws', { onTrack: () => {} });
  await assert.rejects(t.openChannel('rfb.events').send({ kind: 'pointermove', x: 1, y: 2 }), /not connected/);
  await assert.rejects(t.send('app.*', { kind: 'x' }), /wildcard/);
  await assert.rejects(t.send('app.x', new Uint8Array(2)), /JSON objects only/);
});
