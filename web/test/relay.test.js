// web/relay.js: hang's catalog and frames as rfbsink's config and frames; the vendored client.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { audioConfigFromCatalog, codecName, configFromCatalog, parseHangFrame } from '../relay.js';
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
