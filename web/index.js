// The viewer page's script (a file of its own: the page's Content-Security-Policy allows no
// inline script).
//   ?rfb_token=<token>  the link's credential (docs/security.md); it travels to /ws, /wt, /rfb.json
//   ?envelope=json|binary  ?ws=<ws:// url on this server>  ?overlay=1  ?input=0 (send no input)
//   ?audio=0 (no sound)  ?audio=datagram  ?avsync=0 (pictures not held back for lip sync)
//   ?paint=canvas|video (how decoded video reaches the screen; default: a <video> where the
//   browser has a MediaStreamTrackGenerator, web/frame-video.js)
//   ?transport=ws|wt|webrtc (default: WebTransport when offered, else WebSocket; ?envelope=json:
//   WebSocket; webrtc: WHEP to this server, for viewers behind NAT, docs/protocol.md "WebRTC")
//   ?relay=<relay URL>&broadcast=<name> (or ?relay=1): watch through the Media over QUIC relay
//   this element publishes to (docs/protocol.md "Relays"), view-only; no other relay
import { mountViewer } from './rfb-viewer.js';
import { TOKEN_PARAM } from './transport.js';

const params = new URLSearchParams(location.search);
const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const envelope = params.get('envelope') === 'json' ? 'json' : 'binary';

/**
 * The stream's URL: ?ws= when it names this page's own server, else `ws` next to this page
 * (relative: /ws, or /rfb/ws under a reverse proxy's /rfb/ prefix).
 */
function streamUrl() {
  const own = new URL('ws', location.href);
  own.protocol = scheme;
  own.search = '';
  own.hash = '';
  own.searchParams.set('envelope', envelope);
  const token = params.get(TOKEN_PARAM);
  if (token) own.searchParams.set(TOKEN_PARAM, token);
  const override = params.get('ws');
  if (override === null) return own.href;
  try {
    const u = new URL(override, own);
    if (u.host === location.host && (u.protocol === 'ws:' || u.protocol === 'wss:')) {
      if (token && !u.searchParams.has(TOKEN_PARAM)) u.searchParams.set(TOKEN_PARAM, token);
      return u.href;
    }
  } catch { /* not a URL: ignored below */ }
  console.warn(`rfbsink: ignoring ?ws=${override}: the viewer page only connects to its own server`);
  return own.href;
}

const overlay = ['1', 'true', 'yes'].includes(params.get('overlay') ?? '');
const input = !['0', 'false', 'no'].includes(params.get('input') ?? '');
// ?audio=0: no sound (the server sends none to this viewer); ?audio=datagram: over
// WebTransport, sound's packets as datagrams.
const audioParam = params.get('audio') ?? '';
const audio = audioParam === 'datagram' ? 'datagram' : !['0', 'false', 'no'].includes(audioParam);
// ?avsync=0: pictures are not held back for their sound (lowest picture latency, no lip sync).
const avSync = !['0', 'false', 'no'].includes(params.get('avsync') ?? '');
// ?paint=canvas|video: how decoded video reaches the screen (default auto).
const paintParam = params.get('paint');
const paint = paintParam === 'canvas' || paintParam === 'video' ? paintParam : 'auto';
// The JSON envelope is a WebSocket framing: asking for it means WebSocket.
const transportParam = params.get('transport') ?? '';
const transport = transportParam === 'ws' || transportParam === 'wt' || transportParam === 'webrtc'
  ? transportParam
  : (params.get('envelope') === 'json' ? 'ws' : 'auto');
// ?rendition=N: this rendition, whatever the link (docs/protocol.md, "Renditions").
const renditionParam = params.get('rendition');
const rendition = renditionParam !== null && /^\d{1,9}$/.test(renditionParam) ? Number(renditionParam) : null;
/**
 * ?relay: watch through the relay this element publishes to (named in /rfb.json). `?relay=1`, or
 * its URL (a `jwt` parameter may be added for a relay that wants one) and `?broadcast=` its
 * broadcast. Another relay is refused: a link must not make this page show another stream.
 * @returns {Promise<{url: string, broadcast: string} | null>}
 */
async function relayChoice() {
  const asked = params.get('relay');
  if (asked === null || ['0', 'false', 'no'].includes(asked)) return null;
  const info = new URL('rfb.json', location.href);
  info.search = '';
  const token = params.get(TOKEN_PARAM);
  if (token) info.searchParams.set(TOKEN_PARAM, token);
  const offered = await fetch(info, { cache: 'no-store' }).then((r) => (r.ok ? r.json() : null), () => null);
  const relay = offered?.relay;
  if (!relay || typeof relay.url !== 'string' || typeof relay.broadcast !== 'string') {
    console.warn('rfbsink: ignoring ?relay: this element publishes to no relay (relay-url)');
    return null;
  }
  if (['', '1', 'true', 'yes'].includes(asked)) return { url: relay.url, broadcast: relay.broadcast };
  try {
    const want = new URL(relay.url);
    const got = new URL(asked);
    const broadcast = params.get('broadcast') ?? relay.broadcast;
    if (got.origin === want.origin && got.pathname === want.pathname && broadcast === relay.broadcast) {
      return { url: got.href, broadcast };
    }
  } catch { /* not a URL: refused below */ }
  console.warn(`rfbsink: ignoring ?relay=${asked}: this page watches only through ${relay.url} (${relay.broadcast})`);
  return null;
}

const relay = await relayChoice();
// Tests and pages that embed this one reach the viewer as window.rfbViewer.
/** @type {any} */ (window).rfbViewer = mountViewer(
  /** @type {HTMLElement} */ (document.getElementById('viewer')),
  { url: streamUrl(), envelope, overlay, input, transport, rendition, relay, audio, avSync, paint });
