// Watching through a Media over QUIC relay (docs/protocol.md, "Relays"): a Transport that reads
// the broadcast rfbsink publishes to a relay (relay-url) and hands the session what the element
// itself would send: a `hello` (role `view`: nothing goes back, relay viewers only watch), a
// `config` per catalog entry, and `rfb.main` frames. The connection is moq's own client
// (@moq/net, bundled unchanged into moq-net.js, loaded only when a relay is asked for); this file
// maps hang's catalog and frames onto rfbsink's messages. No DOM: runs in the decode worker.

import { Backoff, ChannelRouter } from './transport.js';
import { CONTROL_CHANNEL } from './protocol.js';

/** @typedef {import('./transport.js').Transport} Transport */

/** The track of rendition 0 (rfbsink names rendition N's track `videoN`). */
const MAIN_TRACK = 'video0';
/** hang's catalog track. */
const CATALOG_TRACK = 'catalog.json';
/** The sound's track (rfbsink publishes its audio pad's Opus there). */
const AUDIO_TRACK = 'audio0';

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
 * @property {() => Promise<any>} [load] loads @moq/net (tests)
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
    this.audioConfigId = 0;
    this.audioSeq = 0;
    this.load = options.load ?? (() => import('./moq-net.js'));
    this.name = 'relay';
    // Nothing goes back through a relay: sends resolve and are dropped (view-only).
    this.router = new ChannelRouter(() => Promise.resolve());
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
    try {
      const Moq = await this.load();
      const connection = await Moq.Connection.connect(this.url);
      if (this.closed) {
        connection.close();
        return;
      }
      this.connection = connection;
      this.router.emit({ type: 'open' });
      this.router.route({ channel: CONTROL_CHANNEL, kind: 'hello', protocol: 1, envelope: 'binary', role: 'view', server: `moq relay ${this.url.host}` });
      const broadcast = connection.consume(Moq.Path.from(this.broadcast));
      await Promise.race([this.follow(broadcast), connection.closed]);
    } catch (e) {
      reason = e instanceof Error ? e.message : String(e);
    }
    this.connection?.close();
    this.connection = null;
    if (this.closed) return;
    const retryInMs = this.backoff.next();
    this.router.emit({ type: 'closed', code: 1006, reason, retryInMs });
    this.retryTimer = setTimeout(() => { this.retryTimer = null; if (!this.closed) this.run(); }, retryInMs);
  }

  /**
   * Reads the catalog and the main track until either ends: a new catalog entry becomes a
   * `config`, and each group's first frame is a keyframe.
   * @param {any} broadcast
   */
  async follow(broadcast) {
    const catalog = broadcast.subscribe(CATALOG_TRACK, { priority: 100 });
    /** @type {string | null} */
    let current = null;
    let video = null;
    /** @type {string | null} */
    let currentAudio = null;
    let audio = null;
    const decoder = new TextDecoder();
    for (;;) {
      const frame = await catalog.readFrame();
      if (!frame) return;
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
      const entry = parsed?.video?.renditions?.[MAIN_TRACK];
      const text = JSON.stringify(entry ?? null);
      if (text === current) continue;
      current = text;
      const config = configFromCatalog(entry, ++this.configId);
      if (!config) {
        this.router.route({ channel: CONTROL_CHANNEL, kind: 'error', message: `the relay's broadcast has no video this viewer plays (${entry?.codec ?? 'none'})` });
        continue;
      }
      this.router.route(config);
      if (!video) {
        video = this.readVideo(broadcast.subscribe(MAIN_TRACK, { priority: 60 }));
        video.catch(() => {});
      }
    }
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
   * Each group's frames, the first a keyframe.
   * @param {any} track
   */
  async readVideo(track) {
    await this.readGroups(track, (timestampUs, payload, first) => {
      if (first) this.backoff.reset();
      this.router.frame({ frameId: ++this.frameId, timestampUs, key: first, configId: this.configId, payload });
    });
  }

  /**
   * Reads a track's frames group by group. Latest wins: a newer group (a newer keyframe, or the
   * relay's link behind) replaces what is left of the current one. A group that fails (the
   * publisher gave up on it on a slow link, frames evicted before they were read) is left for
   * the next one; only the track's end ends this.
   * @param {any} track
   * @param {(timestampUs: number, payload: Uint8Array, first: boolean) => void} each
   */
  async readGroups(track, each) {
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
          group = r.g;
          break;
        }
        if ('failed' in r || !r.f) {
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
