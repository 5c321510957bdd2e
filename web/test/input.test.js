import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  buttonBit, clampToStream, keyAction, mapToStream, modifiers, MoveCoalescer, streamToClient, WHEEL_LINE_PX, wheelPixels,
} from '../input.js';

/** @param {number} a @param {number} b */
const near = (a, b, eps = 1e-9) => Math.abs(a - b) <= eps;

test('mapToStream: a view of the stream\'s aspect ratio scales, no bars', () => {
  const rect = { left: 10, top: 20, width: 1280, height: 960 };
  assert.deepEqual(mapToStream(10, 20, rect, 640, 480), { x: 0, y: 0, inside: true });
  assert.deepEqual(mapToStream(10 + 640, 20 + 480, rect, 640, 480), { x: 320, y: 240, inside: true });
  // The far edge is the first pixel past the picture.
  assert.equal(mapToStream(10 + 1280, 20 + 100, rect, 640, 480).inside, false);
  assert.equal(mapToStream(10 + 1279.9, 20 + 959.9, rect, 640, 480).inside, true);
});

test('mapToStream: a wide view has bars left and right (pillarbox)', () => {
  // 640x480 in 1000x500: scale 500/480, picture 666.67 wide, bars of 166.67 each side.
  const rect = { left: 0, top: 0, width: 1000, height: 500 };
  const scale = 500 / 480;
  const bar = (1000 - 640 * scale) / 2;
  const p = mapToStream(bar + 160 * scale, 120 * scale, rect, 640, 480);
  assert.ok(near(p.x, 160) && near(p.y, 120) && p.inside, JSON.stringify(p));
  const left = mapToStream(bar - 1, 250, rect, 640, 480);
  assert.equal(left.inside, false);
  assert.ok(left.x < 0);
  const right = mapToStream(1000 - bar + 1, 250, rect, 640, 480);
  assert.equal(right.inside, false);
  assert.ok(right.x > 640);
  assert.equal(mapToStream(500, 250, rect, 640, 480).inside, true);
});

test('mapToStream: a tall view has bars above and below (letterbox), offset rect', () => {
  const rect = { left: 100, top: 50, width: 320, height: 600 };
  // scale 0.5, picture 320x240 at top 50 + 180.
  const p = mapToStream(100 + 320, 50 + 180 + 240, rect, 640, 480);
  assert.equal(p.inside, false);
  assert.ok(near(p.x, 640) && near(p.y, 480));
  const q = mapToStream(100 + 16, 50 + 180 + 8, rect, 640, 480);
  assert.deepEqual(q, { x: 32, y: 16, inside: true });
  assert.equal(mapToStream(200, 50 + 179, rect, 640, 480).inside, false);
});

test('mapToStream: unknown stream size or an empty view is outside', () => {
  assert.equal(mapToStream(5, 5, { left: 0, top: 0, width: 100, height: 100 }, 0, 0).inside, false);
  assert.equal(mapToStream(5, 5, { left: 0, top: 0, width: 0, height: 100 }, 640, 480).inside, false);
});

test('streamToClient is the inverse of mapToStream', () => {
  for (const rect of [
    { left: 0, top: 0, width: 1000, height: 500 },
    { left: 7, top: 3, width: 333, height: 777 },
    { left: 0, top: 0, width: 640, height: 480 },
  ]) {
    for (const [x, y] of [[0, 0], [160, 120], [639, 479], [320.5, 17.25]]) {
      const c = streamToClient(x, y, rect, 640, 480);
      const back = mapToStream(c.clientX, c.clientY, rect, 640, 480);
      assert.ok(near(back.x, x, 1e-6) && near(back.y, y, 1e-6) && back.inside, `${JSON.stringify(rect)} ${x},${y}`);
    }
  }
});

test('clampToStream puts a point that left the picture on its edge', () => {
  assert.deepEqual(clampToStream({ x: -20, y: 500, inside: false }, 640, 480), { x: 0, y: 479, inside: true });
  assert.deepEqual(clampToStream({ x: 700, y: -1, inside: false }, 640, 480), { x: 639, y: 0, inside: true });
  assert.deepEqual(clampToStream({ x: 10.5, y: 20, inside: true }, 640, 480), { x: 10.5, y: 20, inside: true });
});

test('wheelPixels: pixels stay, lines and pages become pixels', () => {
  const page = { width: 800, height: 600 };
  assert.deepEqual(wheelPixels(0, 100, 0, page), { dx: 0, dy: 100 });
  assert.deepEqual(wheelPixels(-3, 3, 1, page), { dx: -3 * WHEEL_LINE_PX, dy: 3 * WHEEL_LINE_PX });
  // Firefox's notch (3 lines) is Chromium's (100 px): the server divides by 100 for one step.
  assert.ok(near(wheelPixels(0, 3, 1, page).dy, 100));
  assert.deepEqual(wheelPixels(1, -1, 2, page), { dx: 800, dy: -600 });
});

test('modifiers: booleans always, buttons when the event has them', () => {
  assert.deepEqual(modifiers({ shiftKey: true, ctrlKey: false, altKey: true, metaKey: false, buttons: 5 }),
    { shift: true, ctrl: false, alt: true, meta: false, buttons: 5 });
  // A KeyboardEvent has no `buttons`.
  assert.deepEqual(modifiers({ ctrlKey: true }), { shift: false, ctrl: true, alt: false, meta: false });
  assert.equal('buttons' in modifiers({}), false);
});

test('buttonBit: DOM button numbers to DOM buttons bits (middle and right swap)', () => {
  assert.deepEqual([0, 1, 2, 3, 4].map(buttonBit), [1, 4, 2, 8, 16]);
  assert.equal(buttonBit(9), 0);
});

test('keyAction: sent and kept from the browser, except its shortcuts', () => {
  assert.deepEqual(keyAction({ key: 'a', code: 'KeyA' }), { send: true, preventDefault: true });
  assert.deepEqual(keyAction({ key: 'Tab', code: 'Tab' }), { send: true, preventDefault: true });
  assert.deepEqual(keyAction({ key: ' ', code: 'Space' }), { send: true, preventDefault: true });
  // Browser shortcuts: sent, and the browser acts too.
  assert.deepEqual(keyAction({ key: 'r', code: 'KeyR', ctrlKey: true }), { send: true, preventDefault: false });
  assert.deepEqual(keyAction({ key: 'c', code: 'KeyC', metaKey: true }), { send: true, preventDefault: false });
  assert.deepEqual(keyAction({ key: 'F5', code: 'F5' }), { send: true, preventDefault: false });
  assert.deepEqual(keyAction({ key: 'F12', code: 'F12' }), { send: true, preventDefault: false });
  // Not keys the server can name (or would close the connection for): neither.
  assert.deepEqual(keyAction({ key: 'Process', code: 'KeyA' }), { send: false, preventDefault: false });
  assert.deepEqual(keyAction({ key: 'a', code: 'KeyA', isComposing: true }), { send: false, preventDefault: false });
  assert.deepEqual(keyAction({ key: 'Unidentified', code: '' }), { send: false, preventDefault: false });
  assert.deepEqual(keyAction({ key: '', code: '' }), { send: false, preventDefault: false });
  assert.equal(keyAction({ key: 'x'.repeat(33), code: '' }).send, false);
  assert.equal(keyAction({ key: 'é', code: 'KeyE' }).send, true);
});

/** A MoveCoalescer whose animation frames the test runs by hand. */
function coalescer() {
  /** @type {object[][]} */
  const batches = [];
  /** @type {Map<number, () => void>} */
  const frames = new Map();
  let next = 1;
  const c = new MoveCoalescer(
    (batch) => batches.push(batch),
    (cb) => { frames.set(next, cb); return next++; },
    (h) => frames.delete(h),
  );
  const runFrame = () => {
    const cbs = [...frames.values()];
    frames.clear();
    for (const cb of cbs) cb();
  };
  return { c, batches, frames, runFrame };
}

test('MoveCoalescer: one message per key per frame, the latest wins', () => {
  const { c, batches, frames, runFrame } = coalescer();
  c.push('mouse', { kind: 'pointer-move', x: 1 });
  c.push('mouse', { kind: 'pointer-move', x: 2 });
  c.push('mouse', { kind: 'pointer-move', x: 3 });
  assert.equal(frames.size, 1, 'one frame scheduled for all three');
  assert.deepEqual(batches, []);
  runFrame();
  assert.deepEqual(batches, [[{ kind: 'pointer-move', x: 3 }]]);
  runFrame();
  assert.equal(batches.length, 1, 'nothing pending: nothing sent');
  c.push('mouse', { kind: 'pointer-move', x: 4 });
  runFrame();
  assert.deepEqual(batches[1], [{ kind: 'pointer-move', x: 4 }]);
});

test('MoveCoalescer: keys are kept apart, in the order they became pending', () => {
  const { c, batches, runFrame } = coalescer();
  c.push('touch:2', { kind: 'touch-move', id: 2, x: 1 });
  c.push('touch:7', { kind: 'touch-move', id: 7, x: 1 });
  c.push('touch:2', { kind: 'touch-move', id: 2, x: 5 });
  runFrame();
  assert.deepEqual(batches, [[{ kind: 'touch-move', id: 2, x: 5 }, { kind: 'touch-move', id: 7, x: 1 }]]);
});

test('MoveCoalescer: flush sends now (before a click) and cancels the frame', () => {
  const { c, batches, frames, runFrame } = coalescer();
  c.push('mouse', { kind: 'pointer-move', x: 9 });
  assert.equal(c.flush(), 1);
  assert.deepEqual(batches, [[{ kind: 'pointer-move', x: 9 }]]);
  assert.equal(frames.size, 0, 'the scheduled frame is cancelled');
  assert.equal(c.flush(), 0);
  runFrame();
  assert.equal(batches.length, 1);
  // A push after the flush schedules a new frame.
  c.push('mouse', { kind: 'pointer-move', x: 10 });
  assert.equal(frames.size, 1);
  c.cancel();
  runFrame();
  assert.equal(batches.length, 1, 'cancelled: dropped');
});

test('MoveCoalescer: take() hands over what is pending and cancels its frame', () => {
  // InputCapture.send() takes the pending move and sends it in order with the press that follows
  // (not as a datagram that may arrive after it).
  const { c, batches, frames, runFrame } = coalescer();
  c.push('mouse', { kind: 'pointer-move', x: 7 });
  assert.deepEqual(c.take(), [{ kind: 'pointer-move', x: 7 }]);
  assert.equal(frames.size, 0, 'its frame is cancelled');
  runFrame();
  assert.deepEqual(batches, [], 'nothing is sent twice');
  assert.deepEqual(c.take(), []);
});
