// The catalogue's reader on its own (no GStreamer): the file format and the test variant.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { elementsOf, parseCatalogueText, testVariant } from './catalogue.mjs';

const HEADER = '#!/bin/sh\n# What it is for.\n# Latency: low. Quality: fine.\n';

test('a gst-launch line over several lines', () => {
  const e = parseCatalogueText(`${HEADER}gst-launch-1.0 -e \\\n  videotestsrc is-live=true \\\n  ! video/x-raw,format=I420 \\\n  ! x264enc tune=zerolatency ! rfbsink port=8080\n`, 't');
  assert.equal(e.description, 'What it is for.\nLatency: low. Quality: fine.');
  assert.equal(e.producer, null);
  assert.deepEqual(e.gstArgs, ['-e', 'videotestsrc', 'is-live=true', '!', 'video/x-raw,format=I420', '!', 'x264enc', 'tune=zerolatency', '!', 'rfbsink', 'port=8080']);
  assert.deepEqual(e.elements, ['videotestsrc', 'x264enc', 'rfbsink']);
});

test('a producer piped into gst-launch-1.0', () => {
  const e = parseCatalogueText(`${HEADER}ffmpeg -i "a b.mkv" -f matroska - \\\n| gst-launch-1.0 fdsrc fd=0 ! decodebin ! rfbsink\n`, 't');
  assert.deepEqual(e.producer, ['ffmpeg', '-i', 'a b.mkv', '-f', 'matroska', '-']);
  assert.deepEqual(e.elements, ['fdsrc', 'decodebin', 'rfbsink']);
});

test('elements: not options, properties, caps, references', () => {
  assert.deepEqual(elementsOf(['-e', 'a', 'b=c', '!', 'tee', 'name=t', 't.', '!', 'queue', '!', 'image/jpeg', 't.', '!', 'queue']),
    ['a', 'tee', 'queue']);
});

test('malformed files are refused', () => {
  assert.throws(() => parseCatalogueText('gst-launch-1.0 fakesrc ! rfbsink\n', 'x'), /no comment/);
  assert.throws(() => parseCatalogueText('# for nothing\ngst-launch-1.0 fakesrc ! rfbsink\n', 'x'), /latency and quality/);
  assert.throws(() => parseCatalogueText(`${HEADER}gst-launch-1.0 fakesrc ! fakesink\n`, 'x'), /no rfbsink/);
  assert.throws(() => parseCatalogueText(`${HEADER}gst-launch-1.0 fakesrc ! rfbsink\necho done\n`, 'x'), /more than one command/);
  assert.throws(() => parseCatalogueText(`${HEADER}GST_DEBUG=3 gst-launch-1.0 fakesrc ! rfbsink\n`, 'x'), /should run gst-launch-1.0/);
});

test('test variant: a free port, stats, files in the temp folder', () => {
  const { args, outputs } = testVariant(
    ['-e', 'src', '!', 'tee', 'name=t', 't.', '!', 'rfbsink', 'port=8080', 'stats-interval=0', 'view-only=true',
      't.', '!', 'filesink', 'location=out/rec.mp4'],
    { outDir: '/tmp/x' });
  assert.deepEqual(args, ['-e', 'src', '!', 'tee', 'name=t', 't.', '!', 'rfbsink', 'view-only=true', 'port=0', 'stats-interval=200',
    't.', '!', 'filesink', 'location=/tmp/x/rec.mp4']);
  assert.deepEqual(outputs, ['/tmp/x/rec.mp4']);
  assert.deepEqual(testVariant(['a', '!', 'rfbsink'], { outDir: '/t' }).args, ['a', '!', 'rfbsink', 'port=0', 'stats-interval=200']);
});
