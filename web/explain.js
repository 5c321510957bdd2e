// What the viewer says when it cannot show the stream: plain words and the fix (docs in README,
// "When the page stays black"). Pure: no DOM, runs in node too.

/**
 * WebCodecs is missing. Browsers offer it (and WebTransport) only to secure contexts: https, or
 * http from localhost / 127.0.0.1.
 * @param {{secureContext: boolean, host: string}} where
 * @returns {string}
 */
export function noWebCodecsText({ secureContext, host }) {
  if (!secureContext) {
    return `This page is not a secure context (plain http from ${host || 'another address'}), so the browser `
      + 'hides WebCodecs and WebTransport and cannot decode video. Open it over https (rfbsink https=true, '
      + 'or certificate-file), or through an SSH tunnel to localhost: ssh -L 8080:127.0.0.1:8080 <host>, '
      + 'then http://127.0.0.1:8080/ with the same ?rfb_token=.';
  }
  return 'This browser has no WebCodecs (VideoDecoder), so it cannot decode video: use a current Chrome, '
    + 'Edge, Firefox or Safari, or stream images (jpegenc, pngenc) or raw video, which need no WebCodecs.';
}

/**
 * The browser cannot decode the stream's codec.
 * @param {{codec: string, codecString: string, width: number, height: number}} c
 * @param {string} why
 * @returns {string}
 */
export function unsupportedCodecText(c, why) {
  let instead = 'H.264 (x264enc behind video/x-raw,format=I420) or jpegenc';
  if (c.codec === 'h264' && /^avc1\.(F4|7A|6E)/i.test(c.codecString)) {
    instead = 'H.264 4:2:0 8-bit: put video/x-raw,format=I420 before the encoder (and leave rfbsink\'s h264-high-444 off)';
  } else if (c.codec === 'h264') {
    instead = 'a lower H.264 profile or level, or VP8 (vp8enc) or jpegenc';
  }
  return `This browser cannot decode ${c.codec} "${c.codecString}" at ${c.width}x${c.height} (${why}). `
    + `Pick another codec in the pipeline: ${instead}.`;
}

/**
 * The server went away (or was never reached: `first`); the viewer retries.
 * @param {number} msLeft until the next attempt
 * @param {{why?: string, first?: boolean}} [opts] why: the close code and reason, if any
 * @returns {string}
 */
export function reconnectingText(msLeft, { why = '', first = false } = {}) {
  const s = Math.max(0, Math.ceil(msLeft / 1000));
  const when = s === 0 ? 'now' : `in ${s} s`;
  const what = first ? 'Cannot reach rfbsink' : 'The server is gone';
  return `${what}${why ? ` ${why}` : ''}: is the pipeline still running? Retrying ${when}…`;
}

/** Connected, and the pipeline has not sent a picture yet. */
export const WAITING_TEXT = 'Connected. Waiting for the first picture: the pipeline has not sent one yet '
  + '(is it playing, and is its source producing frames?)';
