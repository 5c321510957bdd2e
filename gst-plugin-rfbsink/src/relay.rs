// SPDX-License-Identifier: MPL-2.0

//! Publishing to a Media over QUIC relay (docs/protocol.md, "Relays"): the stream goes out once,
//! to `moq-relay` or any relay that speaks moq-lite, in the `hang` media format that moq's own
//! players read; the relay fans it out to any number of viewers, and relays cluster.
//!
//! The protocol is moq's own crates' (moq-net through moq-tokio's client, hang's catalog and
//! frame container), not a copy: this module only maps rfbsink's renditions onto a hang
//! broadcast. One track per rendition (`video0`, `video1`...), one group per keyframe, the
//! catalog rewritten when a rendition's configuration changes.
//!
//! Nothing here waits on the relay. `push` appends the shared frame (no copy) to the track in
//! memory and returns; moq-net's session sends it, and a relay link slower than the stream skips
//! to the newest group as a slow viewer does. The client redials with backoff for as long as the
//! element runs, and re-announces the broadcast when it is back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moq_net::{broadcast, group, track, Timestamp};

use crate::codec::{Codec, Format};
use crate::hub::Frame;
use crate::runtime::RUNTIME;

/// The hang name of the track that carries rendition `id`.
pub(crate) fn track_name(id: u32) -> String {
    format!("video{id}")
}

/// How long a track keeps a group that is no longer the newest for a subscriber that asks for
/// it: live viewers skip to the newest group at once; the newest is always kept. A short
/// retention bounds the memory a publisher holds (hang's media default is 30 s, for HLS egress).
const GROUP_MAX_AGE: Duration = Duration::from_secs(2);
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

/// Where and what to publish (the element's `relay-*` properties), checked.
#[derive(Clone, Debug)]
pub(crate) struct RelaySettings {
    /// The relay's URL with the token in its `jwt` query parameter, if any.
    pub url: url::Url,
    /// The broadcast's name under the URL's path.
    pub broadcast: String,
}

/// A `relay-url` that cannot be used, said with the property to fix.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RelayError {
    #[error("relay-url {0:?} is not a URL: {1}")]
    Url(String, url::ParseError),
    #[error(
        "relay-url {0:?}: the scheme must be https:// (a relay with a real certificate) or \
         http:// (a relay with a generated one: its fingerprint is read from /certificate.sha256)"
    )]
    Scheme(String),
    #[error("relay-broadcast {0:?}: a name of 1 to 256 characters, without '?' '#' or spaces")]
    Broadcast(String),
    #[error("relay-token: a JWT of A-Z a-z 0-9 - _ . characters")]
    Token,
    #[error("cannot publish to the relay: {0}")]
    Client(String),
}

impl RelaySettings {
    /// `token` goes into the URL's `jwt` parameter (moq-relay's way), replacing one there.
    pub fn new(url: &str, broadcast: &str, token: Option<&str>) -> Result<Self, RelayError> {
        let mut url = url::Url::parse(url).map_err(|e| RelayError::Url(url.into(), e))?;
        if !matches!(url.scheme(), "https" | "http") || url.host().is_none() {
            return Err(RelayError::Scheme(url.to_string()));
        }
        if broadcast.is_empty()
            || broadcast.len() > 256
            || broadcast
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        {
            return Err(RelayError::Broadcast(broadcast.into()));
        }
        if let Some(token) = token.filter(|t| !t.is_empty()) {
            if !token
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(RelayError::Token);
            }
            let others = query_without_token(&url);
            url.query_pairs_mut()
                .clear()
                .extend_pairs(others)
                .append_pair("jwt", token);
        }
        Ok(RelaySettings {
            url,
            broadcast: broadcast.trim_matches('/').to_owned(),
        })
    }

    /// `scheme://host[:port]` of the relay (what the viewer page may connect to).
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// The URL without its credential, for logs, the bus and stats.
    pub fn public_url(&self) -> String {
        let mut url = self.url.clone();
        let others = query_without_token(&url);
        if others.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(others);
        }
        url.to_string()
    }
}

/// The URL's query parameters but its token (`jwt`).
fn query_without_token(url: &url::Url) -> Vec<(String, String)> {
    url.query_pairs()
        .filter(|(k, _)| k != "jwt")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// What the publisher tells the element (posted on the bus).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RelayEvent {
    /// A session to the relay is up (again): `sessions` counts them, 1 the first.
    Connected { sessions: u64 },
    /// The session dropped; the client redials.
    Disconnected,
    /// A rendition's codec is not one the media format carries: relay viewers go without it.
    Unsupported { rendition: u32, codec: &'static str },
    /// The relay closed the last `REFUSED_AFTER` sessions at once: most likely it does not let
    /// this element publish there (its access rules; a missing or wrong `relay-token`). Said once
    /// a connection; the client keeps redialing.
    Refused { sessions: u64 },
    /// The client stopped redialing: the relay refused for good (`reason`, moq's words). Dialed
    /// again after `RETRY_AFTER_FAILURE`.
    Failed { reason: String },
}

/// The publisher's figures (stats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RelayStats {
    pub connected: bool,
    /// Sessions that were up, reconnections included.
    pub sessions: u64,
    /// Frames and bytes handed to the broadcast.
    pub frames: u64,
    pub bytes: u64,
}

/// One rendition's track.
struct Track {
    producer: track::Producer,
    /// The open group: from the last keyframe on. None until the first keyframe.
    group: Option<group::Producer>,
    /// The stream configuration this track's catalog entry describes.
    config_id: Option<u32>,
    /// Not carried by the format (said once).
    unsupported: bool,
}

struct State {
    broadcast: broadcast::Producer,
    catalog_track: track::Producer,
    catalog: hang::Catalog,
    tracks: BTreeMap<u32, Track>,
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
        let origin = moq_tokio::origin::spawn();
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
        let client = connect
            .init(Default::default())
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
            }),
            connected,
            sessions,
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            events,
            _origin: origin,
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
                    let timestamp = Timestamp::from_micros(frame.header.timestamp_us.max(0) as u64);
                    let written = timestamp.ok().is_some_and(|timestamp| {
                        hang::container::Frame {
                            timestamp,
                            payload: frame.payload.clone(),
                        }
                        .write_to(group)
                        .is_ok()
                    });
                    if written {
                        self.frames.fetch_add(1, Ordering::Relaxed);
                        self.bytes
                            .fetch_add(frame.payload.len() as u64, Ordering::Relaxed);
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
    fn token_goes_in_the_jwt_parameter_and_never_in_the_public_url() {
        let s = RelaySettings::new(
            "http://127.0.0.1:4443/anon?jwt=old&x=1",
            "cam",
            Some("a.b-c_d"),
        )
        .unwrap();
        let q: Vec<_> = s.url.query_pairs().collect();
        assert!(q.contains(&("jwt".into(), "a.b-c_d".into())), "{q:?}");
        assert!(!q.contains(&("jwt".into(), "old".into())), "{q:?}");
        assert_eq!(s.public_url(), "http://127.0.0.1:4443/anon?x=1");
        let s = RelaySettings::new("https://relay.example/anon?jwt=secret", "cam", None).unwrap();
        assert_eq!(s.public_url(), "https://relay.example/anon");
    }

    #[test]
    fn bad_settings_are_refused_with_the_property_to_fix() {
        for (url, name, token, says) in [
            ("relay.example/anon", "cam", None, "relay-url"),
            ("ws://relay.example/anon", "cam", None, "scheme"),
            ("https://relay.example/anon", "", None, "relay-broadcast"),
            ("https://relay.example/anon", "a b", None, "relay-broadcast"),
            (
                "https://relay.example/anon",
                "cam",
                Some("x&y=z"),
                "relay-token",
            ),
        ] {
            let e = RelaySettings::new(url, name, token)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{url} {name}: {e}");
        }
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
    }
}
