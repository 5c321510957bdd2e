// The page's side of the `video` paint path (painter.js): decoded frames transferred from the
// worker are written to a MediaStreamTrackGenerator that a <video> plays, so the compositor shows
// them as it shows WebRTC's (about half the browser's CPU a frame of a canvas drawImage, measured
// by tests/bench/paint.mjs). Latest wins: while a write is under way, a newer frame replaces the
// one waiting (closed unseen), so the <video> never shows a picture that a newer one replaced.

/** Whether this page can paint through a <video> (Chromium has the generator; Firefox, WebKit do not). */
export function videoPaintAvailable() {
  return typeof (/** @type {any} */ (globalThis).MediaStreamTrackGenerator) === 'function';
}

export class FrameVideo {
  /** @param {Document} doc */
  constructor(doc) {
    const Generator = /** @type {any} */ (globalThis).MediaStreamTrackGenerator;
    /** @type {MediaStreamTrack & {writable: WritableStream<VideoFrame>}} */
    this.generator = new Generator({ kind: 'video' });
    this.writer = this.generator.writable.getWriter();
    this.element = doc.createElement('video');
    this.element.className = 'rfb-frames';
    this.element.muted = true;
    this.element.autoplay = true;
    this.element.playsInline = true;
    this.element.disablePictureInPicture = true;
    // Over the canvas, in the same box: input and layout stay the canvas's.
    Object.assign(this.element.style, {
      position: 'absolute',
      inset: '0',
      width: '100%',
      height: '100%',
      objectFit: 'contain',
      pointerEvents: 'none',
      visibility: 'hidden',
    });
    // The track is attached with the first frame: a <video> waiting for its first picture holds
    // back the page's load event (a stream of images or raw tiles would never let it fire).
    this.attached = false;
    this.writing = false;
    /** @type {VideoFrame | null} the newest frame while a write is under way */
    this.waiting = null;
    this.closed = false;
  }

  /** @param {VideoFrame} frame the viewer's from now on */
  show(frame) {
    if (this.closed) {
      frame.close();
      return;
    }
    if (this.writing) {
      this.waiting?.close();
      this.waiting = frame;
      return;
    }
    this.write(frame);
  }

  /** @param {VideoFrame} frame */
  write(frame) {
    if (!this.attached) {
      this.attached = true;
      this.element.srcObject = new MediaStream([this.generator]);
      this.element.play().catch(() => {}); // muted: allowed without a gesture
    }
    this.writing = true;
    this.writer.write(frame).catch((e) => {
      frame.close();
      if (!this.closed) console.warn(`rfb: the <video> took no frame: ${e}`);
    }).finally(() => {
      this.writing = false;
      const next = this.waiting;
      this.waiting = null;
      if (next) this.show(next);
    });
  }

  /** @param {boolean} on the <video> shows the picture (else the canvas under it does) */
  visible(on) {
    this.element.style.visibility = on ? 'visible' : 'hidden';
  }

  close() {
    this.closed = true;
    this.waiting?.close();
    this.waiting = null;
    this.writer.close().catch(() => {});
    this.generator.stop();
    this.element.srcObject = null;
  }
}
