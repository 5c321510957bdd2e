// SPDX-License-Identifier: MPL-2.0

//! The moq client that publishes the renditions (the `relay` feature): one hang broadcast on the
//! relay, a track per rendition, a group per keyframe (see the parent module).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moq_net::{broadcast, group, track, Timestamp};

use super::{track_name, RelayError, RelayEvent, RelaySettings, RelayStats};
use crate::audio::AudioPacket;
use crate::codec::{Codec, Format};
use crate::hub::Frame;
use crate::runtime::RUNTIME;

/// The sound's track starts a new group after this much of it: a viewer that subscribes gets the
/// open group from its start, so at most this much old sound (its jitter buffer cuts it back),
/// and the relay opens a stream per group, not per 10-20 ms packet.
const AUDIO_GROUP_US: i64 = 100_000;
/// A rendition's rate is measured over this much of its stream (timestamps)...
const BITRATE_SPAN_US: i64 = 2_000_000;
/// ...and its catalog entry's `bitrate` written after the first span, then again only when the
/// rate halved or doubled, and not sooner than `BITRATE_REWRITE_US` after the last time. A
/// viewer that joins through the relay starts on the rendition its link fits by it
/// (web/relay.js; @moq/watch picks by it too), and a catalog is sent to every viewer: @moq/watch
/// takes a changed entry for a new configuration, and subscribes to the track again for it.
const BITRATE_CHANGE: f64 = 2.0;
const BITRATE_REWRITE_US: i64 = 10_000_000;
/// The name of the sound's track in the broadcast.
const AUDIO_TRACK: &str = "audio0";
/// How long a track keeps a group that is no longer the newest for a subscriber that asks for
/// it: live viewers skip to the newest group at once; the newest is always kept (hang's media
/// default is 30 s, for HLS egress). It is a promise to subscribers, measured in timestamps, not
/// what frees memory: the cache pool below does that, with the same 2 s as its idle window.
const GROUP_MAX_AGE: Duration = Duration::from_secs(2);
/// What the groups in memory may hold at most (moq's cache pool: a target it evicts the oldest
/// towards as tracks write; the newest group of each track is always kept). Its default is no
/// bound and 30 s of every group nobody reads.
const CACHE_BYTES: u64 = 32 << 20;
/// What the QUIC connection to the relay holds unacknowledged, sent or waiting to be: a relay link
/// slower than the stream fills it and then blocks the group being written, which moq expires
/// when the live edge has moved past it (GROUP_MAX_AGE). noq's own default (10 MB) is 20 s of a
/// 4 Mbit/s stream held in memory for a link that cannot carry it.
const SEND_WINDOW: u64 = 1 << 20;
/// The client redials a relay that went away from this delay...
const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// ...doubling up to this, for as long as the element runs.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A client whose redial loop ended (a refusal it takes for final) dials again after this.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(30);
/// A session that ends sooner than this after it connected was closed at once...
const SHORT_SESSION: Duration = Duration::from_secs(2);
/// ...and this many in a row are a refusal (said on the bus).
const REFUSED_AFTER: u32 = 3;

/// One rendition's track.
struct Track {
    producer: track::Producer,
    /// The open group: from the last keyframe on. None until the first keyframe.
    group: Option<group::Producer>,
    /// The stream configuration this track's catalog entry describes.
    config_id: Option<u32>,
    /// Not carried by the format (said once).
    unsupported: bool,
    /// Its rate, for the catalog's `bitrate`.
    rate: Rate,
}

/// A track's rate over spans of `BITRATE_SPAN_US`, and what its catalog entry says.
#[derive(Default)]
struct Rate {
    /// The span's first frame's timestamp and the bytes since.
    since_us: Option<i64>,
    bytes: u64,
    /// The `bitrate` in the catalog entry (none for a new configuration's entry), and the
    /// timestamp it was written at.
    published: Option<(u64, i64)>,
}

impl Rate {
    /// A frame of `len` bytes at `timestamp_us`: the rate to publish when a span ended and the
    /// catalog says none yet, or a rate `BITRATE_CHANGE` times higher or lower than this one,
    /// written `BITRATE_REWRITE_US` ago or more.
    fn note(&mut self, timestamp_us: i64, len: usize) -> Option<u64> {
        let since = match self.since_us {
            Some(since) if timestamp_us >= since => since,
            // The first frame, or timestamps that went back (a new segment): a new span.
            _ => {
                self.since_us = Some(timestamp_us);
                self.bytes = len as u64;
                return None;
            }
        };
        let span = timestamp_us - since;
        if span < BITRATE_SPAN_US {
            self.bytes += len as u64;
            return None;
        }
        // This frame starts the next span: the bytes so far took `span`.
        let bps = (self.bytes as f64 * 8.0 * 1e6 / span as f64) as u64;
        self.since_us = Some(timestamp_us);
        self.bytes = len as u64;
        let moved = self.published.is_none_or(|(p, at)| {
            let (p, r) = (p.max(1) as f64, bps.max(1) as f64);
            timestamp_us - at >= BITRATE_REWRITE_US
                && (r >= p * BITRATE_CHANGE || r * BITRATE_CHANGE <= p)
        });
        if !moved {
            return None;
        }
        self.published = Some((bps, timestamp_us));
        Some(bps)
    }
}

/// The sound's track (`audio0`).
struct AudioTrack {
    producer: track::Producer,
    /// The open group and its first packet's timestamp.
    group: Option<(group::Producer, i64)>,
    /// The `audio-config` this track's catalog entry describes.
    config_id: Option<u32>,
}

struct State {
    broadcast: broadcast::Producer,
    catalog_track: track::Producer,
    catalog: hang::Catalog,
    tracks: BTreeMap<u32, Track>,
    audio: Option<AudioTrack>,
}

/// Publishes the element's renditions as one hang broadcast on a relay, for as long as it lives.
pub(crate) struct Publisher {
    state: Mutex<State>,
    connected: Arc<AtomicBool>,
    sessions: Arc<AtomicU64>,
    frames: AtomicU64,
    bytes: AtomicU64,
    events: Arc<dyn Fn(RelayEvent) + Send + Sync>,
    /// The origin the broadcast is announced in (the client publishes what it holds).
    _origin: moq_net::origin::Producer,
    /// The groups the origin holds (`RelayStats::cache_bytes`).
    cache: moq_net::cache::Pool,
    /// Holds the client's connection (its redial loop lives as long as the connection) and
    /// reports on it.
    supervisor: tokio::task::JoinHandle<()>,
}

impl Publisher {
    /// Starts dialing the relay and announces the (still empty) broadcast; returns at once.
    pub fn start(
        settings: RelaySettings,
        events: Arc<dyn Fn(RelayEvent) + Send + Sync>,
    ) -> Result<Publisher, RelayError> {
        let _runtime = RUNTIME.enter();
        let cache = moq_net::cache::Pool::new(
            moq_net::cache::Config::default()
                .with_expiry(GROUP_MAX_AGE)
                .with_capacity(CACHE_BYTES),
        );
        let mut origin_config = moq_net::origin::Config::default();
        origin_config.pool = cache.clone();
        let origin = moq_tokio::origin::spawn_config(origin_config);
        let broadcast = origin
            .create_broadcast(settings.broadcast.as_str())
            .map_err(|e| RelayError::Client(e.to_string()))?;
        let mut catalog_track = broadcast
            .create_track(
                hang::Catalog::DEFAULT_NAME,
                hang::Catalog::default_track_info(),
            )
            .map_err(|e| RelayError::Client(e.to_string()))?;
        let catalog = hang::Catalog::default();
        write_catalog(&mut catalog_track, &catalog)?;
        broadcast
            .announce(Default::default())
            .map_err(|e| RelayError::Client(e.to_string()))?;

        let mut connect = moq_tokio::connect::Config::default();
        connect.backoff.initial = BACKOFF_INITIAL;
        connect.backoff.max = BACKOFF_MAX;
        // 0: never give up on a relay that went away; the element runs until it is stopped.
        connect.backoff.timeout = Duration::ZERO;
        let mut quic = moq_tokio::quic::Config::default();
        quic.send_window = Some(SEND_WINDOW);
        let client = connect
            .init(quic)
            .map_err(|e| RelayError::Client(e.to_string()))?;

        let connected = Arc::new(AtomicBool::new(false));
        let sessions = Arc::new(AtomicU64::new(0));
        let supervisor = {
            let (connected, sessions, events) =
                (connected.clone(), sessions.clone(), events.clone());
            let client = client.with_publisher(&origin);
            let url = settings.url.clone();
            RUNTIME.spawn(async move {
                loop {
                    // The client redials by itself; its loop ends only on what it takes for
                    // final (the relay refused the session): said, then dialed again later, in
                    // case the relay's rules change.
                    let connection = client.connect(url.clone());
                    let reason = watch(connection, &connected, &sessions, &*events).await;
                    connected.store(false, Ordering::Relaxed);
                    events(RelayEvent::Failed { reason });
                    tokio::time::sleep(RETRY_AFTER_FAILURE).await;
                }
            })
        };
        Ok(Publisher {
            state: Mutex::new(State {
                broadcast,
                catalog_track,
                catalog,
                tracks: BTreeMap::new(),
                audio: None,
            }),
            connected,
            sessions,
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            events,
            _origin: origin,
            cache,
            supervisor,
        })
    }

    /// Appends a frame of `rendition` to its track (a keyframe starts a group). Never waits.
    pub fn push(&self, rendition: u32, frame: &Frame) {
        if frame.header.refine {
            return;
        }
        let mut unsupported = None;
        {
            let mut guard = self.state.lock().unwrap();
            let st = &mut *guard;
            if !st.tracks.contains_key(&rendition) {
                match st.broadcast.create_track(
                    track_name(rendition),
                    hang::container::track_info(hang::catalog::PRIORITY.video)
                        .with_max_age(GROUP_MAX_AGE),
                ) {
                    Ok(producer) => {
                        st.tracks.insert(
                            rendition,
                            Track {
                                producer,
                                group: None,
                                config_id: None,
                                unsupported: false,
                                rate: Rate::default(),
                            },
                        );
                    }
                    Err(_) => return,
                }
            }
            let track = st.tracks.get_mut(&rendition).unwrap();
            if track.config_id != Some(frame.config.id) {
                track.config_id = Some(frame.config.id);
                // The old configuration's last group ends here (the new one starts at its
                // keyframe).
                if let Some(group) = track.group.take() {
                    let _ = group.finish();
                }
                let name = track_name(rendition);
                st.catalog.video.remove(&name);
                // A new entry without a `bitrate`: measured again for this configuration.
                track.rate = Rate::default();
                match video_config(&frame.config.codec) {
                    Some(video) => {
                        track.unsupported = false;
                        let _ = st.catalog.video.insert(&name, video);
                    }
                    None => {
                        if !track.unsupported {
                            unsupported = Some(frame.config.codec.codec.name());
                        }
                        track.unsupported = true;
                    }
                }
                if let Err(e) = write_catalog(&mut st.catalog_track, &st.catalog) {
                    gst::warning!(crate::CAT, "relay: catalog not written: {e}");
                }
            }
            if !track.unsupported {
                if frame.is_key() {
                    if let Some(group) = track.group.take() {
                        let _ = group.finish();
                    }
                    track.group = track.producer.append_group().ok();
                }
                if let Some(group) = track.group.as_mut() {
                    if write_frame(group, frame.header.timestamp_us, &frame.payload) {
                        self.frames.fetch_add(1, Ordering::Relaxed);
                        self.bytes
                            .fetch_add(frame.payload.len() as u64, Ordering::Relaxed);
                        let len = frame.payload.len();
                        if let Some(bps) = track.rate.note(frame.header.timestamp_us, len) {
                            let name = track_name(rendition);
                            if let Some(entry) = st.catalog.video.renditions.get_mut(&name) {
                                entry.bitrate = Some(bps);
                                if let Err(e) = write_catalog(&mut st.catalog_track, &st.catalog) {
                                    gst::warning!(crate::CAT, "relay: catalog not written: {e}");
                                }
                            }
                        }
                    } else {
                        // Wait for the next keyframe rather than send a broken group.
                        track.group = None;
                    }
                }
            }
        }
        if let Some(codec) = unsupported {
            (self.events)(RelayEvent::Unsupported { rendition, codec });
        }
    }

    /// Appends an Opus packet to the sound's track (`audio0`, in the catalog's `audio` section
    /// from its first packet on). Never waits.
    pub fn push_audio(&self, packet: &AudioPacket) {
        let mut guard = self.state.lock().unwrap();
        let st = &mut *guard;
        if st.audio.is_none() {
            match st.broadcast.create_track(
                AUDIO_TRACK,
                hang::container::track_info(hang::catalog::PRIORITY.audio)
                    .with_max_age(GROUP_MAX_AGE),
            ) {
                Ok(producer) => {
                    st.audio = Some(AudioTrack {
                        producer,
                        group: None,
                        config_id: None,
                    })
                }
                Err(e) => {
                    gst::warning!(crate::CAT, "relay: no sound track: {e}");
                    return;
                }
            }
        }
        let Some(track) = st.audio.as_mut() else {
            return;
        };
        if track.config_id != Some(packet.config.id) {
            track.config_id = Some(packet.config.id);
            // The old format's sound ends with its group.
            if let Some((group, _)) = track.group.take() {
                let _ = group.finish();
            }
            st.catalog.audio.remove(AUDIO_TRACK);
            let _ = st
                .catalog
                .audio
                .insert(AUDIO_TRACK, audio_config(&packet.config));
            if let Err(e) = write_catalog(&mut st.catalog_track, &st.catalog) {
                gst::warning!(crate::CAT, "relay: catalog not written: {e}");
            }
        }
        let ts = packet.timestamp_us.max(0);
        if track
            .group
            .as_ref()
            .is_some_and(|(_, first)| ts - first >= AUDIO_GROUP_US || ts < *first)
        {
            if let Some((group, _)) = track.group.take() {
                let _ = group.finish();
            }
        }
        if track.group.is_none() {
            track.group = track.producer.append_group().ok().map(|g| (g, ts));
        }
        let Some((group, _)) = track.group.as_mut() else {
            return;
        };
        if write_frame(group, ts, &packet.payload) {
            self.bytes
                .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
        } else {
            track.group = None;
        }
    }

    /// A rendition pad went away: its track ends and leaves the catalog.
    pub fn remove_rendition(&self, rendition: u32) {
        let mut guard = self.state.lock().unwrap();
        let st = &mut *guard;
        if let Some(track) = st.tracks.remove(&rendition) {
            if let Some(group) = track.group {
                let _ = group.finish();
            }
            let _ = track.producer.finish();
            st.catalog.video.remove(&track_name(rendition));
            let _ = write_catalog(&mut st.catalog_track, &st.catalog);
        }
    }

    pub fn stats(&self) -> RelayStats {
        RelayStats {
            connected: self.connected.load(Ordering::Relaxed),
            sessions: self.sessions.load(Ordering::Relaxed),
            frames: self.frames.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            cache_bytes: self.cache.used(),
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.supervisor.abort();
        // The broadcast leaves the relay with the session; the connection's loop ends when its
        // last handle (this one) drops.
        self.state.lock().unwrap().broadcast.close();
    }
}

/// Follows one connection's sessions until its redial loop ends; returns why it ended.
async fn watch(
    mut connection: moq_tokio::Connection,
    connected: &AtomicBool,
    sessions: &AtomicU64,
    events: &(dyn Fn(RelayEvent) + Send + Sync),
) -> String {
    let mut since = std::time::Instant::now();
    let mut short = 0;
    let mut refused_said = false;
    loop {
        let status = match connection.status().await {
            Ok(status) => status,
            Err(e) => return e.to_string(),
        };
        let up = status == moq_tokio::Status::Connected;
        if connected.swap(up, Ordering::Relaxed) == up {
            continue;
        }
        if up {
            since = std::time::Instant::now();
            let n = sessions.fetch_add(1, Ordering::Relaxed) + 1;
            events(RelayEvent::Connected { sessions: n });
            continue;
        }
        events(RelayEvent::Disconnected);
        short = if since.elapsed() < SHORT_SESSION {
            short + 1
        } else {
            0
        };
        if short >= REFUSED_AFTER && !refused_said {
            refused_said = true;
            events(RelayEvent::Refused {
                sessions: sessions.load(Ordering::Relaxed),
            });
        }
    }
}

/// The catalog entry of a stream configuration, or None for what hang does not carry (still
/// images, rfbsink's own lossless tiles).
pub(crate) fn video_config(
    codec: &crate::codec::CodecConfig,
) -> Option<hang::catalog::VideoConfig> {
    if codec.codec.is_image() || codec.codec == Codec::Raw {
        return None;
    }
    let parsed: hang::catalog::VideoCodec = codec.codec_string.parse().ok()?;
    if matches!(parsed, hang::catalog::VideoCodec::Unknown(_)) {
        return None;
    }
    let mut video = hang::catalog::VideoConfig::new(parsed);
    // avcC for length-prefixed H.264; Annex B (and VP8, VP9, AV1) needs none.
    video.description = match codec.format {
        Format::Avc => codec.description.clone().map(bytes::Bytes::from),
        _ => None,
    };
    video.coded_width = Some(codec.width);
    video.coded_height = Some(codec.height);
    video.optimize_for_latency = Some(true);
    Some(video)
}

/// The catalog entry of the sound: Opus at 48 kHz, as WebCodecs' AudioDecoder takes it.
fn audio_config(config: &crate::audio::AudioConfig) -> hang::catalog::AudioConfig {
    hang::catalog::AudioConfig::new(
        hang::catalog::AudioCodec::Opus,
        crate::audio::OPUS_RATE,
        config.channels,
    )
}

/// Appends one hang frame (a varint timestamp in microseconds, then the payload, shared, not
/// copied) to `group`; false when it could not.
fn write_frame(group: &mut group::Producer, timestamp_us: i64, payload: &bytes::Bytes) -> bool {
    Timestamp::from_micros(timestamp_us.max(0) as u64)
        .ok()
        .is_some_and(|timestamp| {
            hang::container::Frame {
                timestamp,
                payload: payload.clone(),
            }
            .write_to(group)
            .is_ok()
        })
}

fn write_catalog(track: &mut track::Producer, catalog: &hang::Catalog) -> Result<(), RelayError> {
    let json = catalog
        .to_json()
        .map_err(|e| RelayError::Client(e.to_string()))?;
    track
        .write_frame(Timestamp::now(), json)
        .map_err(|e| RelayError::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::CodecConfig;

    #[test]
    fn a_tracks_rate_is_published_once_then_when_it_halved_or_doubled() {
        let mut rate = Rate::default();
        // 30 frames a second of 4 KB: 983 kbit/s, said after the first 2 s span.
        let mut said = Vec::new();
        for i in 0..=120 {
            said.extend(rate.note(i * 33_333, 4096));
        }
        assert_eq!(said, vec![983_049], "once, after the first span");
        // 1.8 times as much for 10 s: not worth a catalog.
        for i in 121..=420 {
            said.extend(rate.note(i * 33_333, 7373));
        }
        assert_eq!(said.len(), 1);
        // Twice as much, sooner than 10 s after the first: not yet; then said.
        let mut rate = Rate::default();
        let mut said = Vec::new();
        for i in 0..=120 {
            said.extend(rate.note(i * 33_333, 4096));
        }
        for i in 121..=420 {
            said.extend(rate.note(i * 33_333, 8192));
            if i < 300 {
                assert_eq!(said.len(), 1, "frame {i}");
            }
        }
        assert_eq!(said.len(), 2, "{said:?}");
        assert!((1_900_000..2_000_000).contains(&said[1]), "{said:?}");
        // Half as much is said too (10 s later).
        for i in 421..=780 {
            said.extend(rate.note(i * 33_333, 2048));
        }
        assert_eq!(said.len(), 3, "{said:?}");
        // Timestamps that go back start a new span, not a rate.
        assert_eq!(rate.note(0, 8192), None);
    }

    #[test]
    fn catalog_entries_carry_what_webcodecs_needs() {
        let h264 = CodecConfig {
            codec: Codec::H264,
            format: Format::Avc,
            codec_string: "avc1.42c01f".into(),
            width: 640,
            height: 480,
            description: Some(vec![1, 0x42, 0xc0, 0x1f]),
        };
        let v = video_config(&h264).unwrap();
        assert_eq!(v.codec.to_string(), "avc1.42c01f");
        assert_eq!(v.description.as_deref(), Some(&[1, 0x42, 0xc0, 0x1f][..]));
        assert_eq!((v.coded_width, v.coded_height), (Some(640), Some(480)));
        let annexb = CodecConfig {
            format: Format::AnnexB,
            description: None,
            ..h264.clone()
        };
        assert_eq!(video_config(&annexb).unwrap().description, None);
        let jpeg = CodecConfig {
            codec: Codec::Jpeg,
            format: Format::Jpeg,
            codec_string: "image/jpeg".into(),
            ..h264
        };
        assert!(video_config(&jpeg).is_none());
        let opus = audio_config(&crate::audio::AudioConfig { id: 1, channels: 1 });
        assert_eq!(opus.codec.to_string(), "opus");
        assert_eq!((opus.sample_rate, opus.channel_count), (48_000, 1));
    }
}
