// Input capture on the viewer's canvas (main thread): pointer, wheel, keys, touch and the view's
// size, sent as `rfb.events` messages (docs/protocol.md, "Input") in stream pixels.
//
// What is sent:
// - Coordinates are stream pixels: the canvas is scaled with `object-fit: contain`, so a point in
//   the letterbox bars is outside the picture. Events there are not sent, except that a drag that
//   started inside the picture goes on (clamped to its edge) until its button is released.
// - Pointer and touch moves are coalesced: at most one per animation frame, latest wins. Downs,
//   ups, wheel and keys go at once, in order (a pending move is sent first).
// - Keys: `key` and `code` as the DOM has them (the server maps them to X11 keysym names). A key-up
//   repeats the `key` of its key-down (Shift+b pressed, Shift released first: the up says "B" as
//   the down did), so that every press the server sees is released under the same name. Keys that
//   are down when the canvas loses focus are released.
// - The browser keeps its shortcuts: while Ctrl or Meta is held, and for F5 (reload), F11 (full
//   screen) and F12 (devtools), the key is sent AND the browser acts on it. Every other key is
//   sent and its default action prevented (Tab does not move the focus out of the viewer, Space
//   and the arrows do not scroll the page, Backspace does not go back).

/** @typedef {{left: number, top: number, width: number, height: number}} Rect */
/** @typedef {{x: number, y: number, inside: boolean}} StreamPoint */
/**
 * @typedef {object} Modifiers
 * @property {boolean} shift
 * @property {boolean} ctrl
 * @property {boolean} alt
 * @property {boolean} meta
 * @property {number} [buttons] DOM bitmask: 1 left, 2 right, 4 middle, 8 back, 16 forward
 */
/** @typedef {{kind: string, [field: string]: any}} InputMessage */

/** DOM_DELTA_LINE in pixels: Firefox's notch of 3 lines is then Chromium's notch of 100 pixels. */
export const WHEEL_LINE_PX = 100 / 3;
/** How long the view's size must stay still before a `resize` is sent. */
export const RESIZE_DEBOUNCE_MS = 150;
/** The server refuses (and closes the client for) a key name longer than this (UTF-8 bytes). */
export const MAX_KEY_BYTES = 32;
/** Keys the browser keeps even when the viewer has the focus (sent as well). */
export const BROWSER_KEYS = Object.freeze(['F5', 'F11', 'F12']);

const DOM_DELTA_LINE = 1;
const DOM_DELTA_PAGE = 2;

/**
 * Client (CSS pixel) coordinates to stream pixels, for a canvas at `rect` (its content box, as
 * getBoundingClientRect() gives it when there is no border or padding) that shows a
 * `streamW`x`streamH` picture with `object-fit: contain`: scaled to fit, centred, bars around.
 * `inside` is false in the bars (and when the stream size is not known yet).
 * @param {number} clientX
 * @param {number} clientY
 * @param {Rect} rect
 * @param {number} streamW
 * @param {number} streamH
 * @returns {StreamPoint}
 */
export function mapToStream(clientX, clientY, rect, streamW, streamH) {
  if (!(streamW > 0 && streamH > 0 && rect.width > 0 && rect.height > 0)) return { x: 0, y: 0, inside: false };
  const scale = Math.min(rect.width / streamW, rect.height / streamH);
  const left = rect.left + (rect.width - streamW * scale) / 2;
  const top = rect.top + (rect.height - streamH * scale) / 2;
  const x = (clientX - left) / scale;
  const y = (clientY - top) / scale;
  return { x, y, inside: x >= 0 && y >= 0 && x < streamW && y < streamH };
}

/**
 * The inverse of mapToStream: where stream pixel (`x`, `y`) is shown, in client coordinates.
 * @param {number} x
 * @param {number} y
 * @param {Rect} rect
 * @param {number} streamW
 * @param {number} streamH
 * @returns {{clientX: number, clientY: number}}
 */
export function streamToClient(x, y, rect, streamW, streamH) {
  const scale = Math.min(rect.width / streamW, rect.height / streamH);
  return {
    clientX: rect.left + (rect.width - streamW * scale) / 2 + x * scale,
    clientY: rect.top + (rect.height - streamH * scale) / 2 + y * scale,
  };
}

/**
 * A point moved onto the picture's edge (for the end of a drag that left it).
 * @param {StreamPoint} p
 * @param {number} streamW
 * @param {number} streamH
 * @returns {StreamPoint}
 */
export function clampToStream(p, streamW, streamH) {
  const clamp = (/** @type {number} */ v, /** @type {number} */ max) => Math.min(Math.max(v, 0), Math.max(max - 1, 0));
  return { x: clamp(p.x, streamW), y: clamp(p.y, streamH), inside: true };
}

/**
 * A WheelEvent's deltas in pixels, whatever its deltaMode (pixels, lines, pages).
 * @param {number} deltaX
 * @param {number} deltaY
 * @param {number} deltaMode 0 pixel, 1 line, 2 page
 * @param {{width: number, height: number}} page the size of a "page": the view, in CSS pixels
 * @returns {{dx: number, dy: number}}
 */
export function wheelPixels(deltaX, deltaY, deltaMode, page) {
  if (deltaMode === DOM_DELTA_LINE) return { dx: deltaX * WHEEL_LINE_PX, dy: deltaY * WHEEL_LINE_PX };
  if (deltaMode === DOM_DELTA_PAGE) return { dx: deltaX * page.width, dy: deltaY * page.height };
  return { dx: deltaX, dy: deltaY };
}

/**
 * The modifier fields of an input message, from a Mouse/Pointer/Wheel/KeyboardEvent (keyboard
 * events have no `buttons`: none is given).
 * @param {{shiftKey?: boolean, ctrlKey?: boolean, altKey?: boolean, metaKey?: boolean, buttons?: number}} e
 * @returns {Modifiers}
 */
export function modifiers(e) {
  /** @type {Modifiers} */
  const m = { shift: !!e.shiftKey, ctrl: !!e.ctrlKey, alt: !!e.altKey, meta: !!e.metaKey };
  if (typeof e.buttons === 'number') m.buttons = e.buttons;
  return m;
}

/** The DOM `buttons` bit of DOM `button` n (0 left, 1 middle, 2 right, 3 back, 4 forward). */
export function buttonBit(/** @type {number} */ button) {
  return [1, 4, 2, 8, 16][button] ?? 0;
}

/**
 * What to do with a keydown/keyup: send it to the server, and whether to stop the browser's own
 * action (see the top of this file).
 * @param {{key: string, code?: string, ctrlKey?: boolean, metaKey?: boolean, isComposing?: boolean}} e
 * @returns {{send: boolean, preventDefault: boolean}}
 */
export function keyAction(e) {
  // IME composition: the key is the IME's, the text comes later (and is not a key).
  const composing = !!e.isComposing || e.key === 'Process';
  const bytes = new TextEncoder().encode(e.key ?? '').byteLength;
  const send = !composing && bytes > 0 && bytes <= MAX_KEY_BYTES && e.key !== 'Unidentified';
  const browserKey = !!e.ctrlKey || !!e.metaKey || BROWSER_KEYS.includes(e.key);
  return { send, preventDefault: send && !browserKey };
}

/**
 * Holds moves until the next animation frame and sends the latest of each (by key: one for the
 * mouse, one per touch point), in the order the keys first became pending. flush() sends them at
 * once (before a down or up, so that the order of events is kept).
 */
export class MoveCoalescer {
  /**
   * @param {(batch: InputMessage[]) => void} deliver gets each batch, in order
   * @param {(cb: () => void) => any} [schedule] default requestAnimationFrame
   * @param {(handle: any) => void} [unschedule] default cancelAnimationFrame
   */
  constructor(deliver, schedule, unschedule) {
    this.deliver = deliver;
    this.schedule = schedule ?? ((cb) => requestAnimationFrame(cb));
    this.unschedule = unschedule ?? ((handle) => cancelAnimationFrame(handle));
    /** @type {Map<string, InputMessage>} */
    this.pending = new Map();
    /** @type {any} */
    this.handle = null;
  }

  /**
   * @param {string} key
   * @param {InputMessage} message replaces the pending message with the same key
   */
  push(key, message) {
    this.pending.set(key, message);
    if (this.handle === null) {
      this.handle = this.schedule(() => {
        this.handle = null;
        this.flush();
      });
    }
  }

  /** Sends what is pending now. @returns {number} how many messages it sent */
  flush() {
    const batch = this.take();
    if (batch.length > 0) this.deliver(batch);
    return batch.length;
  }

  /** What is pending, taken out (the caller sends it). @returns {InputMessage[]} */
  take() {
    if (this.handle !== null) this.unschedule(this.handle);
    this.handle = null;
    const batch = [...this.pending.values()];
    this.pending.clear();
    return batch;
  }

  /** Forgets what is pending. */
  cancel() {
    if (this.handle !== null) this.unschedule(this.handle);
    this.handle = null;
    this.pending.clear();
  }
}

/**
 * @typedef {object} InputOptions
 * @property {(message: InputMessage, ordered?: boolean) => Promise<void>} send sends one `rfb.events`
 *   message; `ordered`: in order with the reliable messages (never a datagram)
 * @property {() => {width: number, height: number}} streamSize the stream's size (0x0: unknown)
 * @property {number} [resizeDebounceMs]
 */

/**
 * Captures input on `canvas` and sends it. The canvas is made focusable (tabindex 0) and takes the
 * focus on pointerdown; touch-action is off so that touches reach it instead of panning the page.
 */
export class InputCapture {
  /**
   * @param {HTMLElement} canvas the element that shows the stream (a canvas, or a <video> in WebRTC mode)
   * @param {InputOptions} options
   */
  constructor(canvas, options) {
    this.canvas = canvas;
    this.sendMessage = options.send;
    this.streamSize = options.streamSize;
    this.resizeDebounceMs = options.resizeDebounceMs ?? RESIZE_DEBOUNCE_MS;
    /** Sent (the transport took it), failed (not connected), outside (in the bars, not sent). */
    this.counters = { sent: 0, failed: 0, outside: 0 };
    /** DOM `buttons` bits whose pointer-down was sent and pointer-up not yet. */
    this.pressed = 0;
    /** Touch points whose touch-down was sent. @type {Set<number>} */
    this.touches = new Set();
    /** Keys whose key-down was sent, by `code` (or `key` when there is none). @type {Map<string, {key: string, code: string}>} */
    this.keys = new Map();
    this.moves = new MoveCoalescer((batch) => {
      // Sent out of order (a WebTransport datagram): the press or release that follows sends it
      // again in order (send()).
      for (const m of batch) if (m.kind === 'pointer-move') this.unorderedMove = m;
      this.deliverMoves(batch);
    });
    /** The last pointer move sent out of order since the last in-order message. @type {InputMessage | null} */
    this.unorderedMove = null;
    /** @type {{width: number, height: number} | null} */
    this.viewSize = null;
    /** @type {{width: number, height: number} | null} */
    this.sentViewSize = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.resizeTimer = null;
    this.closed = false;

    canvas.tabIndex = 0;
    Object.assign(canvas.style, { touchAction: 'none', userSelect: 'none', webkitUserSelect: 'none' });

    /** @type {[string, (e: any) => void, AddEventListenerOptions?][]} */
    this.listeners = [
      ['pointerdown', (e) => this.onPointerDown(e)],
      ['pointermove', (e) => this.onPointerMove(e)],
      ['pointerup', (e) => this.onPointerUp(e)],
      ['pointercancel', (e) => this.onPointerCancel(e)],
      ['lostpointercapture', (e) => this.onPointerCancel(e)],
      ['wheel', (e) => this.onWheel(e), { passive: false }],
      ['keydown', (e) => this.onKeyDown(e)],
      ['keyup', (e) => this.onKeyUp(e)],
      ['blur', () => this.releaseKeys()],
      ['contextmenu', (e) => e.preventDefault()],
    ];
    for (const [type, fn, opts] of this.listeners) canvas.addEventListener(type, fn, opts);

    this.resizeObserver = new ResizeObserver((entries) => this.onResize(entries[entries.length - 1]));
    try {
      this.resizeObserver.observe(canvas, { box: 'device-pixel-content-box' });
    } catch {
      this.resizeObserver.observe(canvas); // no device-pixel-content-box (Safari): contentRect x DPR
    }
  }

  /** Call when a new connection is up: the server learns the view's size again. */
  connected() {
    this.sentViewSize = null;
    this.sendResize();
  }

  /** Stops capturing. Keys and buttons still down are released first. */
  close() {
    if (this.closed) return;
    this.releaseKeys();
    this.moves.cancel();
    this.closed = true;
    for (const [type, fn, opts] of this.listeners) this.canvas.removeEventListener(type, fn, opts);
    this.resizeObserver.disconnect();
    if (this.resizeTimer) clearTimeout(this.resizeTimer);
  }

  // --- sending ------------------------------------------------------------------------------

  /**
   * Sends now, after any pending move. That move goes in order with this message (not as a
   * WebTransport datagram, which may reach the server after the press that follows it). A press
   * or release with no move pending repeats the last move that went out of order, in order: the
   * server drops that datagram if it comes after the press (docs/protocol.md, "WebTransport"),
   * and the pointer's position before the press still arrives before it.
   * @param {InputMessage} message
   */
  send(message) {
    const batch = this.moves.take();
    if (batch.some((m) => m.kind === 'pointer-move')) this.unorderedMove = null;
    if (message.kind === 'pointer-down' || message.kind === 'pointer-up') {
      if (this.unorderedMove) batch.unshift(this.unorderedMove);
      this.unorderedMove = null;
    }
    this.deliverMoves(batch, true);
    this.post(message);
  }

  /** @param {InputMessage} message @param {boolean} [ordered] */
  post(message, ordered = false) {
    if (this.closed) return;
    this.sendMessage(message, ordered).then(
      () => this.counters.sent++,
      () => this.counters.failed++, // not connected: input while disconnected is lost
    );
  }

  /** @param {InputMessage[]} batch @param {boolean} [ordered] */
  deliverMoves(batch, ordered = false) {
    for (const m of batch) this.post(m, ordered);
    if (batch.some((m) => m.kind === 'touch-move')) this.post({ kind: 'touch-frame' }, ordered);
  }

  /** @param {MouseEvent} e @returns {StreamPoint} */
  map(e) {
    const { width, height } = this.streamSize();
    return mapToStream(e.clientX, e.clientY, this.canvas.getBoundingClientRect(), width, height);
  }

  /** @param {StreamPoint} p */
  clamp(p) {
    const { width, height } = this.streamSize();
    return clampToStream(p, width, height);
  }

  // --- pointer ------------------------------------------------------------------------------

  /** @param {PointerEvent} e */
  onPointerDown(e) {
    this.canvas.focus({ preventScroll: true });
    if (e.pointerType === 'touch') return this.onTouchDown(e);
    const p = this.map(e);
    if (!p.inside) {
      this.counters.outside++;
      return;
    }
    // No text selection or native drag; the focus was given above.
    e.preventDefault();
    try {
      this.canvas.setPointerCapture(e.pointerId);
    } catch {
      // the pointer is already gone
    }
    this.buttonDown(e, p);
  }

  /** @param {PointerEvent} e */
  onPointerMove(e) {
    if (e.pointerType === 'touch') return this.onTouchMove(e);
    // A second button pressed or released while another is held comes as a pointermove.
    if (e.button >= 0) {
      const bit = buttonBit(e.button);
      if (e.buttons & bit) {
        const p = this.map(e);
        if (p.inside) this.buttonDown(e, p);
        else this.counters.outside++;
      } else {
        this.buttonUp(e);
      }
      return;
    }
    let p = this.map(e);
    if (!p.inside) {
      if (!this.pressed) return; // hovering over the bars
      p = this.clamp(p); // a drag that left the picture
    }
    // The buttons held are those whose press was sent (one pressed over the bars was not): the
    // server drops a move whose buttons disagree with the presses and releases it has.
    const m = modifiers(e);
    if (m.buttons !== undefined) m.buttons &= this.pressed;
    this.moves.push('mouse', { kind: 'pointer-move', x: p.x, y: p.y, ...m });
  }

  /** @param {PointerEvent} e */
  onPointerUp(e) {
    if (e.pointerType === 'touch') return this.onTouchUp(e);
    this.buttonUp(e);
  }

  /** pointercancel, lostpointercapture: whatever is still down is released. @param {PointerEvent} e */
  onPointerCancel(e) {
    if (e.pointerType === 'touch') return this.onTouchCancel(e);
    for (const button of [0, 1, 2, 3, 4]) {
      if (this.pressed & buttonBit(button)) this.buttonUp(e, button);
    }
  }

  /**
   * @param {PointerEvent} e
   * @param {StreamPoint} p
   */
  buttonDown(e, p) {
    this.pressed |= buttonBit(e.button);
    this.send({ kind: 'pointer-down', x: p.x, y: p.y, button: e.button, ...modifiers(e) });
  }

  /**
   * Sends the pointer-up of a button whose pointer-down was sent (clamped onto the picture).
   * @param {PointerEvent} e
   * @param {number} [button] default e.button
   */
  buttonUp(e, button = e.button) {
    const bit = buttonBit(button);
    if (!(this.pressed & bit)) return;
    this.pressed &= ~bit;
    const p = this.clamp(this.map(e));
    this.send({ kind: 'pointer-up', x: p.x, y: p.y, button, ...modifiers(e), buttons: e.buttons & ~bit });
  }

  // --- touch --------------------------------------------------------------------------------

  /** @param {PointerEvent} e */
  touchFields(e) {
    return { id: e.pointerId, pressure: e.pressure, ...modifiers(e) };
  }

  /** @param {PointerEvent} e */
  onTouchDown(e) {
    const p = this.map(e);
    if (!p.inside) {
      this.counters.outside++;
      return;
    }
    e.preventDefault();
    this.touches.add(e.pointerId);
    this.send({ kind: 'touch-down', x: p.x, y: p.y, ...this.touchFields(e) });
    this.post({ kind: 'touch-frame' });
  }

  /** @param {PointerEvent} e */
  onTouchMove(e) {
    if (!this.touches.has(e.pointerId)) return;
    const p = this.clamp(this.map(e));
    this.moves.push(`touch:${e.pointerId}`, { kind: 'touch-move', x: p.x, y: p.y, ...this.touchFields(e) });
  }

  /** @param {PointerEvent} e */
  onTouchUp(e) {
    if (!this.touches.delete(e.pointerId)) return;
    const p = this.clamp(this.map(e));
    this.send({ kind: 'touch-up', id: e.pointerId, x: p.x, y: p.y, ...modifiers(e) });
    this.post({ kind: 'touch-frame' });
  }

  /** GStreamer's touch-cancel cancels every touch point. @param {PointerEvent} e */
  onTouchCancel(e) {
    if (!this.touches.has(e.pointerId)) return;
    this.touches.clear();
    this.send({ kind: 'touch-cancel', ...modifiers(e) });
  }

  // --- wheel --------------------------------------------------------------------------------

  /** @param {WheelEvent} e */
  onWheel(e) {
    e.preventDefault(); // the page does not scroll under the viewer
    const p = this.map(e);
    if (!p.inside) {
      this.counters.outside++;
      return;
    }
    const rect = this.canvas.getBoundingClientRect();
    const { dx, dy } = wheelPixels(e.deltaX, e.deltaY, e.deltaMode, rect);
    if (dx === 0 && dy === 0) return;
    this.send({ kind: 'wheel', x: p.x, y: p.y, dx, dy, ...modifiers(e) });
  }

  // --- keys ---------------------------------------------------------------------------------

  /** @param {KeyboardEvent} e */
  onKeyDown(e) {
    const action = keyAction(e);
    if (action.preventDefault) e.preventDefault();
    if (!action.send) return;
    const key = { key: e.key, code: e.code ?? '' };
    this.keys.set(key.code || key.key, key);
    this.send({ kind: 'key-down', ...key, ...modifiers(e) });
  }

  /** @param {KeyboardEvent} e */
  onKeyUp(e) {
    const action = keyAction(e);
    if (action.preventDefault) e.preventDefault();
    const id = e.code || e.key;
    const down = this.keys.get(id);
    if (!down) return; // its key-down went elsewhere (the focus came in with the key held)
    this.keys.delete(id);
    this.send({ kind: 'key-up', ...down, ...modifiers(e) });
  }

  releaseKeys() {
    for (const key of this.keys.values()) this.send({ kind: 'key-up', ...key, shift: false, ctrl: false, alt: false, meta: false });
    this.keys.clear();
  }

  // --- view size ----------------------------------------------------------------------------

  /** @param {ResizeObserverEntry | undefined} entry */
  onResize(entry) {
    if (!entry) return;
    const box = entry.devicePixelContentBoxSize?.[0];
    const dpr = globalThis.devicePixelRatio || 1;
    this.viewSize = box
      ? { width: Math.round(box.inlineSize), height: Math.round(box.blockSize) }
      : { width: Math.round(entry.contentRect.width * dpr), height: Math.round(entry.contentRect.height * dpr) };
    if (this.resizeTimer) clearTimeout(this.resizeTimer);
    this.resizeTimer = setTimeout(() => {
      this.resizeTimer = null;
      this.sendResize();
    }, this.resizeDebounceMs);
  }

  sendResize() {
    const size = this.viewSize;
    if (this.closed || !size || size.width < 1 || size.height < 1) return;
    const last = this.sentViewSize;
    if (last && last.width === size.width && last.height === size.height) return;
    this.sentViewSize = size;
    this.deliverMoves(this.moves.take(), true);
    this.sendMessage({ kind: 'resize', width: size.width, height: size.height }).then(
      () => this.counters.sent++,
      () => {
        this.counters.failed++;
        // Not connected yet: connected() sends it again.
        if (this.sentViewSize === size) this.sentViewSize = null;
      },
    );
  }
}
