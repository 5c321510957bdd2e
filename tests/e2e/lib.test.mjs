// The helpers' own parsing: no pipeline, no browser.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pitchOf } from './audio.mjs';
import { parseListening, parseStats, splitLaunchLine, withQuery } from './lib.mjs';

test('parseListening reads the url and port gst-launch-1.0 -m prints', () => {
  const line = 'Got message #12 from element "rfbsink0" (element): rfbsink-listening, '
    + 'url=(string)http://127.0.0.1:39123/, port=(uint)39123;';
  assert.deepEqual(parseListening(line), { url: 'http://127.0.0.1:39123/', port: 39123 });
  assert.deepEqual(
    parseListening('Got message #3 from element "s" (element): rfbsink-listening, url=(string)"http://[::1]:80/", port=(uint)80;'),
    { url: 'http://[::1]:80/', port: 80 });
  assert.equal(parseListening('Got message #1 from element "pipeline0" (state-changed): GstMessageStateChanged'), null);
  // What rfbsink posts: the URL with its token, quoted and escaped by gst-launch-1.0.
  assert.deepEqual(
    parseListening('Got message #9 from element "rfbsink0" (element): rfbsink-listening, '
      + 'url=(string)"http://127.0.0.1:8080/\\?rfb_token\\=ab12", view-url=(string)"http://127.0.0.1:8080/\\?rfb_token\\=cd34", '
      + 'address=(string)127.0.0.1, port=(uint)8080, webtransport-port=(uint)8080;'),
    { url: 'http://127.0.0.1:8080/?rfb_token=ab12', viewUrl: 'http://127.0.0.1:8080/?rfb_token=cd34', port: 8080 });
});

test('withQuery adds parameters and keeps the token', () => {
  assert.equal(withQuery('http://127.0.0.1:8080/?rfb_token=ab12', '?envelope=json&transport=ws'),
    'http://127.0.0.1:8080/?rfb_token=ab12&envelope=json&transport=ws');
  assert.equal(withQuery('http://127.0.0.1:8080/?rfb_token=ab12', ''), 'http://127.0.0.1:8080/?rfb_token=ab12');
});

test('splitLaunchLine splits on spaces and keeps quoted words together', () => {
  assert.deepEqual(splitLaunchLine('videotestsrc  is-live=true ! video/x-raw,width=640 ! fakesink'),
    ['videotestsrc', 'is-live=true', '!', 'video/x-raw,width=640', '!', 'fakesink']);
  assert.deepEqual(splitLaunchLine(`textoverlay text="a b" ! x name='c d'`),
    ['textoverlay', 'text=a b', '!', 'x', 'name=c d']);
  assert.throws(() => splitLaunchLine('a "b'), /unbalanced/);
});

test('parseStats reads the element\'s own figures', () => {
  const line = 'Got message #40 from element "rfbsink0" (element): rfbsink-stats, clients=(uint)2, frames=(guint64)90, '
    + 'input-events=(guint64)3, input-ignored=(guint64)5, client-stats=(GstValueArray)< "client\\,\\ id\\=\\(guint64\\)1" >;';
  assert.deepEqual(parseStats(line), { clients: 2, frames: 90, 'input-events': 3, 'input-ignored': 5 });
  assert.equal(parseStats(null), null);
});

test('pitchOf reads a tone from its crossing periods, and a gap or a glitch does not move it', () => {
  // 440 Hz at 48 kHz: 109.09 samples a period, so crossings 109 and 110 samples apart.
  const periods = Array.from({ length: 440 }, (_, i) => (i % 11 === 0 ? 110 : 109));
  assert.ok(Math.abs(pitchOf(periods, 48000) - 440) < 0.5, `${pitchOf(periods, 48000)}`);
  // An underrun's long period and a concealed packet's short ones are left out.
  const glitched = [4800, ...periods.slice(0, 200), 37, 51, ...periods.slice(200)];
  assert.ok(Math.abs(pitchOf(glitched, 48000) - 440) < 0.5, `${pitchOf(glitched, 48000)}`);
  // A whole-window mean would not: the reading is not the plain mean.
  const mean = glitched.reduce((a, b) => a + b, 0) / glitched.length;
  assert.ok(Math.abs(48000 / mean - 440) > 5);
  assert.equal(pitchOf([], 48000), 0);
});
