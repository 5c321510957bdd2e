// Watching through a Media over QUIC relay (docs/protocol.md, "Relays"): a Transport that reads
// the broadcast rfbsink publishes to a relay (relay-url) and hands the session what the element
// itself would send: a `hello` (role `view`: nothing goes back, relay viewers only watch), a
// `config` per catalog entry, and `rfb.main` frames. The connection is moq's own client
// (@moq/net, bundled unchanged into moq-net.js, loaded only when a relay is asked for); this file
// maps hang's catalog and frames onto rfbsink's messages. No DOM: runs in the decode worker.

import { Backoff, ChannelRouter } from './transport.js';
import { CONTROL_CHANNEL } from './protocol.js';
import { epochNow } from './sound.js';

/** @typedef {import('./transport.js').Transport} Transport */

/** hang's catalog track. */
const CATALOG_TRACK = 'catalog.json';
/** The sound's track (rfbsink publishes its audio pad's Opus there). */
const AUDIO_TRACK = 'audio0';
/** Rendition N's track. @param {number} n */
const videoTrack = (n) => `video${n}`;

/** After a move, the next is judged only this much later (the new track's first group is old). */
const SETTLE_MS = 3000;
/** A viewer whose frames come this much later than its quickest (median of the last 2 s)... */
const BEHIND_MS = 150;
/** ...or that lost a group in the last 4 s, is behind: it moves down. */
const FAILED_WINDOW_MS = 4000;
/** It tries the next rendition up after this long without falling behind... */
const UP_WAIT_MS = 10_000;
/** ...twice as long after each try that fell back within UP_FAILED_MS, up to UP_WAIT_MAX_MS. */
const UP_FAILED_MS = 10_000;
const UP_WAIT_MAX_MS = 60_000;
/**
 * A move shows the new rendition from a keyframe at most this much older than the last frame
 * shown: renditions of one source have their keyframes at the same instants, and the small one's
 * comes first (a move to the large one would otherwise wait for a keyframe that is never newer).
 */
const SWITCH_BACK_US = 100_000;
/**
 * A viewer whose page measured its link starts on the largest picture whose rate (the catalog's
 * `bitrate`, which rfbsink measures) is at most this share of it, as the element's own ladder
 * starts its viewers (docs/protocol.md, "Renditions").
 */
const START_FIT = 0.85;
/** A session the relay closes this soon after it opened, before the catalog, was refused... */
const REFUSED_WITHIN_MS = 3000;
/** ...and the next try waits this long. */
const REFUSED_RETRY_MS = 30_000;
/** The quickest frame is looked for over this long (the link's own delay, no queue). */
const FLOOR_WINDOW_MS = 30_000;
/** How long the relay's HTTP side has to answer whether it admits the URL's token (`admits`). */
const ADMIT_CHECK_MS = 2000;

/**
 * Whether the relay admits `url`'s credentials (its `jwt` parameter, or none), asked of its HTTP
 * side before a session is dialed: moq-relay's `/announced/<path>` runs the same access rules as
 * a session. A relay that refuses a session accepts it first and then closes it, and Chromium's
 * page was seen to crash on that (3 of 12 tries, tests/e2e/relay.test.mjs "viewer tokens"); a
 * refused HTTP request cannot do that. False only for 401 or 403: a relay without that listing,
 * or one that does not answer, is dialed as before (the session then says more).
 * @param {URL} url
 */
export async function admits(url) {
  const check = new URL(url);
  check.pathname = `/announced${url.pathname.replace(/\/+$/, '')}`;
  check.hash = '';
  try {
    const res = await fetch(check, { cache: 'no-store', credentials: 'omit', signal: AbortSignal.timeout(ADMIT_CHECK_MS) });
    await res.body?.cancel();
    return res.status !== 401 && res.status !== 403;
  } catch {
    return true;
  }
}

/**
 * Which rendition a relay viewer should watch, from what its link does to the frames: the relay
 * gets no acks from it, so the viewer itself moves down when its frames come late (a queue on
 * its link) or groups are lost (the relay gave up on them, or skipped to the next group while
 * frames were missing), and tries the next one up after a while without either
 * (docs/protocol.md, "Relays"). Pure: the clock comes in.
 */
export class RelayAbr {
  constructor() {
    /** [arrival epoch ms, arrival minus timestamp ms] of recent frames. @type {[number, number][]} */
    this.transits = [];
    /** [epoch ms, transit] minima, for the quickest frame over FLOOR_WINDOW_MS. @type {[number, number][]} */
    this.floor = [];
    /** When groups failed, or were cut short with frames missing. @type {number[]} */
    this.failed = [];
    /** When the current group was cut short by the next, until the next's first frame. @type {number | null} */
    this.cut = null;
    this.lastTsMs = -Infinity;
    this.lastArrivalMs = -Infinity;
    /** Recent intervals between frames of a group (ms). @type {number[]} */
    this.intervals = [];
    this.switchedAt = -Infinity;
    this.upAt = -Infinity;
    this.upWaitMs = UP_WAIT_MS;
  }

  /**
   * A frame delivered; `first`: its group's first. A group that was cut short by the next one
   * while its frames were still coming, with frames missing between the two, is a lost group as
   * much as a failed one: the relay skipped ahead because the link is behind.
   * @param {number} nowMs
   * @param {number} timestampUs
   * @param {boolean} [first]
   */
  frame(nowMs, timestampUs, first = false) {
    const tsMs = timestampUs / 1000;
    if (first && this.cut !== null) {
      const gap = tsMs - this.lastTsMs;
      const sorted = [...this.intervals].sort((a, b) => a - b);
      const usual = sorted.length ? sorted[sorted.length >> 1] : 33;
      if (this.cut - this.lastArrivalMs < 200 && gap > Math.max(50, 1.5 * usual)) this.failed.push(nowMs);
    }
    if (!first && Number.isFinite(this.lastTsMs)) {
      this.intervals.push(tsMs - this.lastTsMs);
      if (this.intervals.length > 30) this.intervals.shift();
    }
    this.cut = null;
    this.lastTsMs = tsMs;
    this.lastArrivalMs = nowMs;
    const transit = nowMs - tsMs;
    this.transits.push([nowMs, transit]);
    while (this.transits.length && this.transits[0][0] < nowMs - 2000) this.transits.shift();
    // A monotonic queue of minima: the front is the quickest of the window.
    while (this.floor.length && this.floor[this.floor.length - 1][1] >= transit) this.floor.pop();
    this.floor.push([nowMs, transit]);
    while (this.floor[0][0] < nowMs - FLOOR_WINDOW_MS) this.floor.shift();
  }

  /** A group failed. @param {number} nowMs */
  groupFailed(nowMs) {
    this.failed.push(nowMs);
  }

  /** The next group came before this one ended (judged at its first frame). @param {number} nowMs */
  groupCut(nowMs) {
    this.cut = nowMs;
  }

  /**
   * How much later than the quickest frame the last 2 s came (median), or null with too few.
   * @param {number} nowMs
   */
  lateMs(nowMs) {
    const recent = this.transits.filter(([at]) => at >= nowMs - 2000 && at >= this.switchedAt + SETTLE_MS).map(([, t]) => t);
    if (recent.length < 5 || !this.floor.length) return null;
    recent.sort((a, b) => a - b);
    return recent[recent.length >> 1] - this.floor[0][1];
  }

  /**
   * The rendition to move to, or null to stay.
   * @param {number} nowMs
   * @param {number} current
   * @param {{n: number, area: number}[]} renditions those this viewer can show
   */
  decide(nowMs, current, renditions) {
    if (nowMs - this.switchedAt < SETTLE_MS) return null;
    const order = [...renditions].sort((a, b) => b.area - a.area || a.n - b.n);
    const i = order.findIndex((r) => r.n === current);
    if (i < 0) return order.length ? order[0].n : null;
    this.failed = this.failed.filter((at) => at >= nowMs - FAILED_WINDOW_MS && at >= this.switchedAt + SETTLE_MS);
    const late = this.lateMs(nowMs);
    if (this.failed.length || (late !== null && late > BEHIND_MS)) {
      return i + 1 < order.length ? order[i + 1].n : null;
    }
    if (i > 0 && late !== null && late < BEHIND_MS / 3 && nowMs - this.switchedAt >= this.upWaitMs) return order[i - 1].n;
    return null;
  }

  /**
   * The viewer moved.
   * @param {number} nowMs
   * @param {boolean} up
   */
  switched(nowMs, up) {
    if (up) {
      this.upAt = nowMs;
    } else if (nowMs - this.upAt < UP_FAILED_MS) {
      this.upWaitMs = Math.min(UP_WAIT_MAX_MS, this.upWaitMs * 2);
    }
    this.switchedAt = nowMs;
    this.failed = [];
  }
}

/**
 * The codec name rfbsink's `config` uses for a WebCodecs codec string, or null for one the
 * viewer does not decode.
 * @param {string} codecString
 */
export function codecName(codecString) {
  if (/^avc[13]\./.test(codecString)) return 'h264';
  if (codecString === 'vp8') return 'vp8';
  if (codecString.startsWith('vp09.')) return 'vp9';
  if (codecString.startsWith('av01.')) return 'av1';
  return null;
}

/** @param {string} hex */
function hexToBase64(hex) {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new Error('catalog description is not hex');
  let s = '';
  for (let i = 0; i < hex.length; i += 2) s += String.fromCharCode(parseInt(hex.slice(i, i + 2), 16));
  return btoa(s);
}

/**
 * The rendition a viewer whose page measured its link at `downlinkKbps` starts on: the largest
 * picture whose catalog `bitrate` is at most START_FIT of it, else the one of the lowest rate.
 * Null (the largest picture, judged by RelayAbr) without a measure, or while a rendition's rate
 * is not in the catalog yet.
 * @param {{n: number, entry: any, area: number}[]} playable
 * @param {number | null | undefined} downlinkKbps
 * @returns {number | null}
 */
export function startRendition(playable, downlinkKbps) {
  if (!(typeof downlinkKbps === 'number' && downlinkKbps > 0) || !playable.length) return null;
  const rated = playable.map((r) => ({ ...r, bps: Number(r.entry?.bitrate) }));
  if (!rated.every((r) => Number.isFinite(r.bps) && r.bps > 0)) return null;
  const fit = downlinkKbps * 1000 * START_FIT;
  const fits = rated.filter((r) => r.bps <= fit).sort((a, b) => b.area - a.area || a.n - b.n);
  if (fits.length) return fits[0].n;
  return [...rated].sort((a, b) => a.bps - b.bps || a.n - b.n)[0].n;
}

/**
 * What of a catalog video entry the decoder is configured from (`configFromCatalog`): an entry
 * whose other fields changed (its `bitrate`, which rfbsink rewrites as the rate moves) needs no
 * new `config`, which would restart the decoder at the next keyframe.
 * @param {any} entry
 */
export function decoderKey(entry) {
  if (!entry || typeof entry !== 'object') return 'null';
  return JSON.stringify([entry.codec, entry.description, entry.codedWidth, entry.codedHeight]);
}

/**
 * rfbsink's `config` message for one hang catalog video entry (docs/protocol.md, "Session
 * start"), or null when the viewer cannot show it.
 * @param {any} entry a `video.renditions` value of hang's catalog
 * @param {number} configId
 */
export function configFromCatalog(entry, configId) {
  if (!entry || typeof entry.codec !== 'string') return null;
  const codec = codecName(entry.codec);
  const width = Number(entry.codedWidth);
  const height = Number(entry.codedHeight);
  if (!codec || !(width > 0) || !(height > 0)) return null;
  const description = typeof entry.description === 'string' && entry.description ? hexToBase64(entry.description) : null;
  return {
    channel: CONTROL_CHANNEL, kind: 'config', config_id: configId, type: 'video', codec, codec_string: entry.codec,
    format: codec === 'h264' ? (description ? 'avc' : 'annexb') : codec === 'av1' ? 'obu' : codec,
    width, height, description,
  };
}

/**
 * rfbsink's `audio-config` message for hang's catalog audio entry (docs/protocol.md, "Audio"), or
 * null for sound the viewer does not play (only Opus, mono or stereo).
 * @param {any} entry an `audio.renditions` value of hang's catalog
 * @param {number} configId
 */
export function audioConfigFromCatalog(entry, configId) {
  if (!entry || entry.codec !== 'opus') return null;
  const sampleRate = Number(entry.sampleRate);
  const channels = Number(entry.numberOfChannels);
  if (!(sampleRate >= 8000 && sampleRate <= 192000) || (channels !== 1 && channels !== 2)) return null;
  return { channel: CONTROL_CHANNEL, kind: 'audio-config', config_id: configId, codec: 'opus', sample_rate: sampleRate, channels };
}

/**
 * Splits a hang frame: a QUIC varint timestamp (microseconds), then the encoded payload.
 * @param {Uint8Array} bytes
 * @returns {{timestampUs: number, payload: Uint8Array}}
 */
export function parseHangFrame(bytes) {
  if (bytes.byteLength < 1) throw new Error('empty hang frame');
  const size = 1 << (bytes[0] >> 6);
  if (bytes.byteLength < size) throw new Error('truncated hang timestamp');
  let v = bytes[0] & 0x3f;
  for (let i = 1; i < size; i++) v = v * 256 + bytes[i];
  return { timestampUs: v, payload: bytes.subarray(size) };
}

/**
 * @typedef {object} RelayOptions
 * @property {string} url the relay's URL (`https://host:port/path`, or `http://` for a relay with
 *   a generated certificate: its fingerprint is read from /certificate.sha256)
 * @property {string} broadcast the broadcast's name under that path (rfbsink's relay-broadcast)
 * @property {boolean} [audio] subscribe to the broadcast's sound (default true; the viewer's
 *   `audio: false` leaves it on the relay)
 * @property {number | null} [downlinkKbps] what the viewer's page measured of its link
 *   (`pageDownlinkKbps`): it starts on the rendition that fits it (`startRendition`)
 * @property {() => Promise<any>} [load] loads @moq/net (tests)
 *
 * The rendition shown is the viewer's choice (its session sends `rendition` as to the element:
 * this transport takes it), else the one its link carries (RelayAbr).
 */

/**
 * View-only transport over a moq relay.
 * @implements {Transport}
 */
export class RelayTransport {
  /** @param {RelayOptions} options */
  constructor(options) {
    this.url = new URL(options.url);
    if (this.url.protocol !== 'https:' && this.url.protocol !== 'http:') {
      throw new Error(`relay URL ${options.url}: use https:// (or http:// for a relay with a generated certificate)`);
    }
    if (!options.broadcast) throw new Error('a relay needs the broadcast name (?broadcast=)');
    this.broadcast = options.broadcast;
    this.wantsAudio = options.audio ?? true;
    this.downlinkKbps = options.downlinkKbps ?? null;
    this.audioConfigId = 0;
    this.audioSeq = 0;
    this.load = options.load ?? (() => import('./moq-net.js'));
    this.name = 'relay';
    // Nothing goes back through a relay: sends resolve and are dropped (view-only), except the
    // viewer's choice of rendition, which this transport carries out itself.
    this.router = new ChannelRouter((name, data) => {
      const m = /** @type {any} */ (data);
      if (name === CONTROL_CHANNEL && m?.kind === 'rendition') this.choose(Number.isInteger(m.id) && m.id >= 0 ? m.id : null);
      return Promise.resolve();
    });
    /** The viewer's choice (null: by its link). @type {number | null} */
    this.chosen = null;
    /** The catalog's `video.renditions`. @type {Record<string, any>} */
    this.catalogVideo = {};
    /** The rendition whose frames are delivered, its track, and the reader's generation. @type {{n: number, track: any, gen: number} | null} */
    this.active = null;
    /** The rendition being moved to (delivered from its first fresh keyframe). @type {{n: number, track: any, gen: number, since: number, up: boolean} | null} */
    this.pending = null;
    this.gens = 0;
    /** The last delivered frame's timestamp. */
    this.lastTimestampUs = -Infinity;
    /** The active rendition's catalog entry, as last configured. */
    this.activeEntry = '';
    /** @type {any} the broadcast being followed */
    this.broadcastConsumer = null;
    this.abr = new RelayAbr();
    /** Sessions so far; the current one's number. */
    this.sessions = 0;
    /** The current session got its catalog (a session closed before it was refused). */
    this.catalogSeen = false;
    this.backoff = new Backoff(500, 5000);
    this.attempt = 0;
    this.closed = false;
    /** @type {any} the live connection */
    this.connection = null;
    this.configId = 0;
    this.frameId = 0;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.retryTimer = null;
  }

  /** @param {string} name */
  openChannel(name) {
    return this.router.open(name);
  }

  /** @param {(event: import('./transport.js').TransportEvent) => void} cb */
  onEvent(cb) {
    return this.router.onEvent(cb);
  }

  start() {
    this.closed = false;
    this.run();
  }

  close() {
    this.closed = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.connection?.close();
    this.connection = null;
  }

  async run() {
    this.attempt++;
    this.router.emit({ type: 'connecting', attempt: this.attempt });
    let reason = 'the relay closed the session';
    const session = ++this.sessions;
    let openedAt = null;
    let closedByRelay = false;
    let refusedOverHttp = false;
    this.catalogSeen = false;
    try {
      const Moq = await this.load();
      if (!(await admits(this.url))) {
        refusedOverHttp = true;
        throw new Error('its HTTP side answered 401/403');
      }
      if (this.closed) return;
      // WebTransport alone where the browser has it. moq's connect also races a WebSocket to
      // the relay, 500 ms later, when WebTransport has not connected by then; for a session
      // the relay refuses (a token it wants) both were in flight, and Chromium's page crashed
      // in 2 of 4 runs (tests/e2e/relay.test.mjs, "viewer tokens").
      const connection = await Moq.Connection.connect(this.url,
        Moq.Connection.isWebTransportSupported() ? { websocket: { enabled: false } } : undefined);
      if (this.closed) {
        connection.close();
        return;
      }
      this.connection = connection;
      openedAt = epochNow();
      this.router.emit({ type: 'open' });
      this.router.route({ channel: CONTROL_CHANNEL, kind: 'hello', protocol: 1, envelope: 'binary', role: 'view', server: `moq relay ${this.url.host}` });
      connection.closed.then(() => { closedByRelay = true; }, () => { closedByRelay = true; });
      const broadcast = connection.consume(Moq.Path.from(this.broadcast));
      try {
        await Promise.race([this.follow(broadcast, session), connection.closed]);
      } finally {
        // A subscription fails a moment before the session says it closed.
        await Promise.race([connection.closed, new Promise((r) => setTimeout(r, 100))]).catch(() => {});
      }
    } catch (e) {
      reason = e instanceof Error ? e.message : String(e);
    }
    this.connection?.close();
    this.connection = null;
    this.resetVideo();
    if (this.closed) return;
    // A session the relay closed at once, before the catalog came, is a refusal (most likely
    // its access rules: a missing or wrong jwt): said, and tried again only after a while (a
    // broadcast not there yet fails its subscription, not the session). Chromium's page was
    // also seen to crash when a refused session was dialed again within a second.
    const refused = refusedOverHttp
      || (closedByRelay && openedAt !== null && !this.catalogSeen && epochNow() - openedAt < REFUSED_WITHIN_MS);
    if (refusedOverHttp) reason = `the relay refused: it may want a token (a jwt parameter in the relay URL) (${reason})`;
    else if (refused) reason = `the relay closed the session at once: it may want a token (a jwt parameter in the relay URL) (${reason})`;
    const retryInMs = refused ? REFUSED_RETRY_MS : this.backoff.next();
    this.router.emit({ type: 'closed', code: 1006, reason, retryInMs });
    this.retryTimer = setTimeout(() => { this.retryTimer = null; if (!this.closed) this.run(); }, retryInMs);
  }

  /**
   * Reads the catalog until it ends: the renditions it lists are announced, the shown one's
   * entry becomes a `config` (again when it changes), and the sound's entry an `audio-config`.
   * @param {any} broadcast
   * @param {number} session this session's number (`sessions`): a later one's state is not touched
   */
  async follow(broadcast, session) {
    const catalog = broadcast.subscribe(CATALOG_TRACK, { priority: 100 });
    this.broadcastConsumer = broadcast;
    this.resetVideo();
    this.lastTimestampUs = -Infinity;
    this.abr = new RelayAbr();
    /** @type {string | null} */
    let currentAudio = null;
    let audio = null;
    const decoder = new TextDecoder();
    const timer = setInterval(() => this.adapt(), 500);
    try {
      for (;;) {
        const frame = await catalog.readFrame();
        if (!frame || session !== this.sessions) return;
        this.catalogSeen = true;
        const parsed = JSON.parse(decoder.decode(frame.payload));
        const audioEntry = this.wantsAudio ? parsed?.audio?.renditions?.[AUDIO_TRACK] : undefined;
        const audioText = JSON.stringify(audioEntry ?? null);
        if (audioEntry && audioText !== currentAudio) {
          currentAudio = audioText;
          const config = audioConfigFromCatalog(audioEntry, ++this.audioConfigId);
          if (config) {
            this.router.route(config);
            if (!audio) {
              audio = this.readAudio(broadcast.subscribe(AUDIO_TRACK, { priority: 80 }));
              audio.catch(() => {});
            }
          }
        }
        const renditions = parsed?.video?.renditions;
        this.catalogVideo = renditions && typeof renditions === 'object' ? renditions : {};
        if (this.active) {
          // The shown rendition's entry changed (a new size, a new codec): a new config, before
          // its frames of it. Not for a new `bitrate`: the decoder's configuration is the same.
          const text = decoderKey(this.catalogVideo[videoTrack(this.active.n)]);
          if (text !== this.activeEntry) {
            this.activeEntry = text;
            this.configure(this.active.n);
          }
          this.announce();
        } else if (!this.pending) {
          const playable = this.playable();
          if (!playable.length) {
            this.unplayable(0);
            continue;
          }
          // The chosen one, else the one the page's measure of its link fits, else the
          // largest picture (the link is judged on it).
          const chosen = playable.find((r) => r.n === this.chosen)?.n;
          const largest = [...playable].sort((a, b) => b.area - a.area || a.n - b.n)[0].n;
          this.switchTo(chosen ?? startRendition(playable, this.downlinkKbps) ?? largest);
        }
      }
    } finally {
      clearInterval(timer);
      // A later session has tracks of its own.
      if (session === this.sessions) this.resetVideo();
    }
  }

  /** Leaves the video tracks (a new session, or the end of this one). */
  resetVideo() {
    this.active?.track.close?.();
    this.pending?.track.close?.();
    this.active = null;
    this.pending = null;
    this.activeEntry = '';
  }

  /**
   * The renditions of the catalog this viewer can show, by number.
   * @returns {{n: number, entry: any, area: number}[]}
   */
  playable() {
    const out = [];
    for (const [name, entry] of Object.entries(this.catalogVideo)) {
      const m = /^video(\d{1,3})$/.exec(name);
      if (!m) continue;
      let config = null;
      try {
        config = configFromCatalog(entry, 0);
      } catch {
        // a broken description: not playable
      }
      if (!config) continue;
      out.push({ n: Number(m[1]), entry, area: config.width * config.height });
    }
    return out.sort((a, b) => a.n - b.n);
  }

  /**
   * The renditions, as the element announces them (docs/protocol.md, "Renditions"), when the
   * broadcast has several.
   */
  announce() {
    const playable = this.playable();
    if (playable.length < 2 || !this.active) return;
    this.router.route({
      channel: CONTROL_CHANNEL,
      kind: 'renditions',
      current: this.active.n,
      renditions: playable.map(({ n, entry }) => ({
        id: n, codec: codecName(entry.codec), codec_string: entry.codec, width: entry.codedWidth, height: entry.codedHeight,
        bitrate_bps: Number.isFinite(entry.bitrate) && entry.bitrate >= 0 ? entry.bitrate : null,
      })),
    });
  }

  /** A `config` for rendition `n`'s catalog entry; its frames follow it. @param {number} n */
  configure(n) {
    const entry = this.catalogVideo[videoTrack(n)];
    let config = null;
    try {
      config = configFromCatalog(entry, ++this.configId);
    } catch {
      // reported below
    }
    if (!config) {
      this.unplayable(n);
      return;
    }
    this.router.route(config);
  }

  /** Says that rendition `n` is not one this viewer plays. @param {number} n */
  unplayable(n) {
    const entry = this.catalogVideo[videoTrack(n)];
    this.router.route({ channel: CONTROL_CHANNEL, kind: 'error', message: `the relay's broadcast has no video this viewer plays (${entry?.codec ?? 'none'})` });
  }

  /**
   * The viewer chose a rendition (null: by its link).
   * @param {number | null} n
   */
  choose(n) {
    this.chosen = n;
    if (n !== null && this.active && n !== this.active.n && this.playable().some((r) => r.n === n)) this.switchTo(n);
  }

  /**
   * Subscribes to rendition `n`'s track. The first one is shown at once; another is shown from
   * its first keyframe no older than the last frame delivered (within SWITCH_BACK_US: no step
   * back to the relay's older group, no gap), and then the old track is left.
   * @param {number} n
   */
  switchTo(n) {
    const broadcast = this.broadcastConsumer;
    if (!broadcast) return;
    if (this.pending) {
      if (this.pending.n === n) return;
      this.pending.track.close?.();
      this.pending = null;
    }
    if (this.active?.n === n) return;
    const track = broadcast.subscribe(videoTrack(n), { priority: 60 });
    const gen = ++this.gens;
    if (this.active) {
      const area = (/** @type {number} */ k) => this.playable().find((r) => r.n === k)?.area ?? 0;
      const up = area(n) > area(this.active.n);
      // Down: the link is behind, and the old track would keep the new one's keyframe waiting
      // behind its own frames: it is left now, and the last picture stays until the new one's
      // keyframe (at most a group). Up: the old one plays on until then.
      if (!up) this.active.track.close?.();
      this.pending = { n, track, gen, since: epochNow(), up };
    } else {
      this.active = { n, track, gen };
      this.activeEntry = decoderKey(this.catalogVideo[videoTrack(n)]);
      this.abr.switched(epochNow(), false);
      this.configure(n);
      this.announce();
    }
    this.readVideo(track, n, gen).catch(() => {});
  }

  /** Every 500 ms without a choice: the rendition the link carries (RelayAbr). */
  adapt() {
    if (!this.active || this.chosen !== null) return;
    const now = epochNow();
    if (this.pending) {
      // A move up that found no fresh keyframe in time is given up (the old one still plays).
      if (this.pending.up && now - this.pending.since > 2 * SETTLE_MS) {
        this.pending.track.close?.();
        this.pending = null;
      }
      return;
    }
    const target = this.abr.decide(now, this.active.n, this.playable());
    if (target === null || target === this.active.n) return;
    this.switchTo(target);
  }

  /**
   * The sound's packets in order.
   * @param {any} track
   */
  async readAudio(track) {
    await this.readGroups(track, (timestampUs, payload) => {
      this.router.audio({ seq: ++this.audioSeq, timestampUs, configId: this.audioConfigId, payload });
    });
  }

  /**
   * Each group's frames, the first a keyframe: delivered while this reader's rendition is the
   * active one, or from the first fresh keyframe when it is the one being moved to.
   * @param {any} track
   * @param {number} n
   * @param {number} gen
   */
  async readVideo(track, n, gen) {
    await this.readGroups(track, (timestampUs, payload, first) => {
      if (this.pending?.gen === gen && first && timestampUs >= this.lastTimestampUs - SWITCH_BACK_US) {
        const { up } = this.pending;
        this.active?.track.close?.();
        this.active = { n, track, gen };
        this.pending = null;
        this.activeEntry = decoderKey(this.catalogVideo[videoTrack(n)]);
        this.abr.switched(epochNow(), up);
        this.announce();
        this.configure(n);
      }
      if (this.active?.gen !== gen) return;
      if (first) this.backoff.reset();
      this.lastTimestampUs = timestampUs;
      this.abr.frame(epochNow(), timestampUs, first);
      this.router.frame({ frameId: ++this.frameId, timestampUs, key: first, configId: this.configId, payload });
    }, () => {
      if (this.active?.gen === gen) this.abr.groupFailed(epochNow());
    }, () => {
      if (this.active?.gen === gen) this.abr.groupCut(epochNow());
    });
  }

  /**
   * Reads a track's frames group by group. Latest wins: a newer group (a newer keyframe, or the
   * relay's link behind) replaces what is left of the current one. A group that fails (the
   * publisher gave up on it on a slow link, frames evicted before they were read) is left for
   * the next one; only the track's end ends this.
   * @param {any} track
   * @param {(timestampUs: number, payload: Uint8Array, first: boolean) => void} each
   * @param {() => void} [failed] a group failed
   * @param {() => void} [cut] the next group came before this one ended
   */
  async readGroups(track, each, failed, cut) {
    let group = await track.nextGroup();
    while (group && !this.closed) {
      const next = track.nextGroup();
      // The track's end surfaces below, when the next group is awaited on its own.
      next.catch(() => {});
      let first = true;
      for (;;) {
        /** @type {{f: any} | {g: any} | {failed: true}} */
        const r = await Promise.race([
          group.readFrame().then((/** @type {any} */ f) => ({ f }), () => ({ failed: /** @type {true} */ (true) })),
          next.then((/** @type {any} */ g) => ({ g })),
        ]);
        if ('g' in r) {
          cut?.();
          group = r.g;
          break;
        }
        if ('failed' in r || !r.f) {
          if ('failed' in r) failed?.();
          group = await next;
          break;
        }
        const { timestampUs, payload } = parseHangFrame(r.f.payload);
        each(timestampUs, payload, first);
        first = false;
      }
    }
  }
}
