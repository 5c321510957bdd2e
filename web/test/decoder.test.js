import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decoderConfig, errorMessage, unsupportedReason } from '../decoder.js';

const base = { type: 'video', configId: 1, width: 640, height: 480, description: null };

test('decoder config: low-latency, with the description; VP8 up to 576 lines is BT.601', () => {
  const h264 = decoderConfig({ ...base, codec: 'h264', codecString: 'avc1.42C01F', description: new Uint8Array([1, 2]) });
  assert.deepEqual(h264, { codec: 'avc1.42C01F', codedWidth: 640, codedHeight: 480, optimizeForLatency: true, description: new Uint8Array([1, 2]) });
  assert.equal(decoderConfig({ ...base, codec: 'vp8', codecString: 'vp8' }).colorSpace?.matrix, 'smpte170m');
  assert.equal(decoderConfig({ ...base, codec: 'vp8', codecString: 'vp8', height: 720 }).colorSpace, undefined);
});

test('without WebCodecs the reason is empty (the viewer explains secure contexts), errors read as text', async () => {
  assert.equal(typeof VideoDecoder, 'undefined', 'node has no WebCodecs');
  assert.equal(await unsupportedReason({ ...base, codec: 'h264', codecString: 'avc1.42C01F' }), '');
  assert.equal(errorMessage(new Error('no')), 'no');
  assert.equal(errorMessage('plain'), 'plain');
});
