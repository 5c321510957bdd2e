// web/relay.js: hang's catalog and frames as rfbsink's config and frames; the vendored client.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { RelayAbr, admits, audioConfigFromCatalog, codecName, configFromCatalog, decoderKey, parseHangFrame, startRendition } from '../relay.js';
import { parseAudioConfig } from '../protocol.js';

test('catalog entries become config messages the decoder takes', () => {
  const h264 = configFromCatalog({ codec: 'avc1.42c01f', description: '0142c01f', codedWidth: 640, codedHeight: 480 }, 3);
  assert.deepEqual(h264, {
    channel: 'rfb.control', kind: 'config', config_id: 3, type: 'video', codec: 'h264', codec_string: 'avc1.42c01f',
    format: 'avc', width: 640, height: 480, description: btoa('\x01\x42\xc0\x1f'),
  });
  assert.equal(configFromCatalog({ codec: 'avc1.42c01f', codedWidth: 640, codedHeight: 480 }, 1)?.format, 'annexb');
  assert.equal(configFromCatalog({ codec: 'av01.0.04M.08', codedWidth: 64, codedHeight: 64 }, 1)?.format, 'obu');
  assert.equal(configFromCatalog({ codec: 'vp09.00.10.08', codedWidth: 64, codedHeight: 64 }, 1)?.codec, 'vp9');
  // What the viewer cannot decode, or a broken entry, is no config.
  assert.equal(configFromCatalog({ codec: 'hvc1.1.6.L93.B0', codedWidth: 64, codedHeight: 64 }, 1), null);
  assert.equal(configFromCatalog({ codec: 'vp8' }, 1), null);
  assert.equal(configFromCatalog(null, 1), null);
  assert.throws(() => configFromCatalog({ codec: 'vp8', codedWidth: 8, codedHeight: 8, description: 'zz' }, 1));
  assert.equal(codecName('avc3.640028'), 'h264');
});

test('the catalog\'s Opus entry becomes the audio-config the sound takes', () => {
  const config = audioConfigFromCatalog({ codec: 'opus', sampleRate: 48000, numberOfChannels: 2, container: 'legacy' }, 4);
  assert.deepEqual(parseAudioConfig(/** @type {any} */ (config)), { configId: 4, codec: 'opus', sampleRate: 48000, channels: 2 });
  assert.equal(audioConfigFromCatalog({ codec: 'mp4a.40.2', sampleRate: 44100, numberOfChannels: 2 }, 1), null, 'AAC: not played');
  assert.equal(audioConfigFromCatalog({ codec: 'opus', sampleRate: 48000, numberOfChannels: 6 }, 1), null, 'surround: not played');
  assert.equal(audioConfigFromCatalog(undefined, 1), null);
});

test('a hang frame is a QUIC varint timestamp, then the payload', () => {
  // 1-, 2-, 4- and 8-byte varints.
  assert.deepEqual(parseHangFrame(Uint8Array.of(0x25, 9, 8)), { timestampUs: 37, payload: Uint8Array.of(9, 8) });
  assert.equal(parseHangFrame(Uint8Array.of(0x7b, 0xbd, 1)).timestampUs, 15293);
  assert.equal(parseHangFrame(Uint8Array.of(0x9d, 0x7f, 0x3e, 0x7d)).timestampUs, 494878333);
  const big = parseHangFrame(Uint8Array.of(0xc0, 0, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0xff));
  assert.equal(big.timestampUs, 0x010203040506);
  assert.deepEqual(big.payload, Uint8Array.of(0xff));
  assert.throws(() => parseHangFrame(new Uint8Array(0)));
  assert.throws(() => parseHangFrame(Uint8Array.of(0x80, 1)));
});

test('web/moq-net.js is the @moq/net that package.json pins (npm run vendor:moq)', () => {
  const pinned = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).devDependencies['@moq/net'];
  const head = readFileSync(new URL('../moq-net.js', import.meta.url), 'utf8').slice(0, 300);
  assert.match(head, new RegExp(`^// @ts-nocheck\\n// @moq/net ${pinned.replace(/\./g, '\\.')} `));
});

test('RelayAbr: a relay viewer moves down when its frames come late or groups fail, and tries up after a wait', () => {
  const renditions = [{ n: 0, area: 1280 * 720 }, { n: 1, area: 640 * 360 }, { n: 2, area: 320 * 180 }];
  const abr = new RelayAbr();
  abr.switched(0, false);
  // 30 fps, 20 ms on the way: nothing to do, and not yet long enough to try up from 1.
  let t = 0;
  const play = (ms, delay) => {
    for (const end = t + ms; t < end; t += 33) abr.frame(t, (t - delay) * 1000);
  };
  play(4000, 20);
  assert.equal(abr.decide(t, 0, renditions), null, 'on the top rendition, on time');
  // A queue builds on the link: 200 ms later than the quickest frame.
  play(3000, 220);
  assert.equal(abr.decide(t, 0, renditions), 1, 'late: one down');
  abr.switched(t, false);
  assert.equal(abr.decide(t + 1000, 1, renditions), null, 'settling after a move');
  play(11000, 20);
  assert.equal(abr.decide(t, 1, renditions), 0, 'on time for the wait: one up');
  abr.switched(t, true);
  // The try fails: late again soon after.
  play(4000, 300);
  assert.equal(abr.decide(t, 0, renditions), 1);
  abr.switched(t, false);
  play(11000, 20);
  assert.equal(abr.decide(t, 1, renditions), null, 'the next try waits twice as long');
  play(10000, 20);
  assert.equal(abr.decide(t, 1, renditions), 0);
  abr.switched(t, true);
  // A failed group is behind too, even with frames on time.
  play(4000, 20);
  abr.groupFailed(t);
  assert.equal(abr.decide(t, 0, renditions), 1, 'a failed group: one down');
  abr.switched(t, false);
  // A group cut short by the next while its frames were coming, frames missing: lost.
  play(4000, 20);
  abr.groupCut(t - 33);
  abr.frame(t + 400, (t + 400 - 20) * 1000, true);
  assert.equal(abr.decide(t + 400, 1, renditions), 2, 'a group cut short with frames missing: one down');
  abr.switched(t + 400, false);
  t += 400;
  // After a pause (sparse frames: nothing for 5 s), the next group is not a loss.
  play(4000, 20);
  abr.groupCut(t + 5000);
  abr.frame(t + 5000, (t + 5000 - 20) * 1000, true);
  t += 5000;
  assert.equal(abr.decide(t, 1, renditions), null, 'a pause, then a new group: no loss');
  // On the lowest, behind: nowhere to go.
  play(4000, 20);
  assert.equal(abr.decide(t, 2, renditions), null, 'on time on the lowest: up waits');
  play(3000, 400);
  assert.equal(abr.decide(t, 2, renditions), null, 'late on the lowest: stays');
  // A rendition that left the catalog: the top one.
  assert.equal(abr.decide(t, 7, renditions), 0);
});

test('startRendition: a joiner whose page measured its link starts on the largest picture that fits it', () => {
  const large = { n: 0, area: 640 * 360, entry: { bitrate: 3_000_000 } };
  const small = { n: 1, area: 320 * 180, entry: { bitrate: 300_000 } };
  assert.equal(startRendition([large, small], 854), 1, '700 kbit/s read as 854: the small one');
  assert.equal(startRendition([large, small], 20_000), 0, 'a fast link: the large one');
  assert.equal(startRendition([large, small], 200), 1, 'none fits: the lowest rate');
  assert.equal(startRendition([small, large], 3500), 1, '3 Mbit/s is more than 0.85 of 3.5');
  assert.equal(startRendition([small, large], 3000 / 0.85 + 1), 0, 'and fits 0.85 of a little more');
  // No measure, or a rate not in the catalog yet (rfbsink says it after 2 s of a track): the
  // largest, judged by RelayAbr.
  assert.equal(startRendition([large, small], null), null);
  assert.equal(startRendition([large, { ...small, entry: {} }], 854), null);
  assert.equal(startRendition([large, { ...small, entry: { bitrate: 'x' } }], 854), null);
  assert.equal(startRendition([], 854), null);
});

test('decoderKey: a catalog entry whose rate moved configures nothing anew; a new size or codec does', () => {
  const entry = { codec: 'avc1.42c01f', description: '0142c01f', codedWidth: 640, codedHeight: 360, optimizeForLatency: true };
  assert.equal(decoderKey({ ...entry, bitrate: 3_000_000 }), decoderKey(entry));
  assert.equal(decoderKey({ ...entry, bitrate: 900_000 }), decoderKey({ ...entry, bitrate: 3_000_000 }));
  assert.notEqual(decoderKey({ ...entry, codedWidth: 320 }), decoderKey(entry));
  assert.notEqual(decoderKey({ ...entry, codec: 'avc1.640028' }), decoderKey(entry));
  assert.notEqual(decoderKey({ ...entry, description: '01640028' }), decoderKey(entry));
  assert.equal(decoderKey(undefined), decoderKey(null));
  assert.notEqual(decoderKey(entry), decoderKey(null));
});

test('admits: the relay\'s /announced/<path> with the URL\'s jwt answers whether a session would be refused', async () => {
  /** @type {string[]} */
  const asked = [];
  const server = http.createServer((req, res) => {
    asked.push(req.url ?? '');
    const jwt = new URL(req.url ?? '/', 'http://x').searchParams.get('jwt');
    res.writeHead(jwt === 'good' ? 200 : jwt === 'other' ? 403 : 401);
    res.end('');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  try {
    assert.equal(await admits(new URL(`http://127.0.0.1:${port}/anon?jwt=good`)), true);
    assert.equal(await admits(new URL(`http://127.0.0.1:${port}/anon?jwt=bad`)), false);
    assert.equal(await admits(new URL(`http://127.0.0.1:${port}/anon/?jwt=other#x`)), false);
    assert.equal(await admits(new URL(`http://127.0.0.1:${port}/`)), false);
    assert.deepEqual(asked, ['/announced/anon?jwt=good', '/announced/anon?jwt=bad', '/announced/anon?jwt=other', '/announced']);
  } finally {
    await new Promise((resolve) => { server.close(() => resolve(undefined)); server.closeAllConnections(); });
  }
  // A relay whose HTTP side does not answer is dialed as before.
  assert.equal(await admits(new URL(`http://127.0.0.1:${port}/anon`)), true);
});
