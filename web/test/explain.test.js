import assert from 'node:assert/strict';
import { test } from 'node:test';

import { noWebCodecsText, reconnectingText, unsupportedCodecText, WAITING_TEXT } from '../explain.js';

test('no WebCodecs over plain http from another address: the fix is https or an SSH tunnel', () => {
  const text = noWebCodecsText({ secureContext: false, host: '192.168.1.20:8080' });
  assert.match(text, /not a secure context \(plain http from 192\.168\.1\.20:8080\)/);
  assert.match(text, /https=true/);
  assert.match(text, /ssh -L 8080:127\.0\.0\.1:8080/);
});

test('no WebCodecs in a secure context: another browser, or images/raw', () => {
  const text = noWebCodecsText({ secureContext: true, host: '127.0.0.1:8080' });
  assert.match(text, /has no WebCodecs/);
  assert.match(text, /jpegenc/);
  assert.doesNotMatch(text, /secure context/);
});

test('an undecodable codec names it and what to pick instead', () => {
  const c = { codec: 'h264', codecString: 'avc1.F40020', width: 1920, height: 1080 };
  const text = unsupportedCodecText(c, 'isConfigSupported says no');
  assert.match(text, /cannot decode h264 "avc1\.F40020" at 1920x1080/);
  assert.match(text, /format=I420/);
  assert.match(unsupportedCodecText({ ...c, codec: 'av1', codecString: 'av01.1.08M.10' }, 'no'), /x264enc/);
});

test('server gone: a countdown to the next try', () => {
  assert.equal(reconnectingText(2100, { why: '(1006)' }),
    'The server is gone (1006): is the pipeline still running? Retrying in 3 s…');
  assert.match(reconnectingText(0), /Retrying now…$/);
  assert.match(reconnectingText(900, { first: true }), /^Cannot reach rfbsink: .* Retrying in 1 s…$/);
});

test('waiting for the first picture says what to check', () => {
  assert.match(WAITING_TEXT, /has not sent one yet/);
});
