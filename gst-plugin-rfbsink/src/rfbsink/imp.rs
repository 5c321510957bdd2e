// SPDX-License-Identifier: MPL-2.0

//! The element's GStreamer glue: properties, caps, start/stop, render. The servers, sessions and
//! access rules live in the crate's other modules.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;
use gst_video::subclass::prelude::*;

use super::{Auth, RateControl};
use crate::access::{self, Tokens};
use crate::audio::{self, AudioConfig, AudioPacket};
use crate::encoder::Encoder;
use crate::hub::{Frame, Hub, HubSettings};
use crate::input::Input;
use crate::protocol::{self, ClientMessage, FrameHeader};
use crate::rate::Policy;
use crate::raw::{RawEncoder, RawFrame};
use crate::relay::{Publisher, RelayEvent, RelaySettings};
use crate::runtime::RUNTIME;
use crate::server::{Handlers, Server, ServerSettings};
use crate::session::Limits;
use crate::stats::ClientStats;
use crate::stream::{caps_info, streamable_caps_info, StreamError, StreamTracker, MAX_DIMENSION};
use crate::CAT;

const DEFAULT_ADDRESS: &str = "127.0.0.1";
const DEFAULT_PORT: u32 = 8080;
const DEFAULT_MAX_CLIENTS: u32 = 64;
const DEFAULT_GOP_CACHE: bool = true;
const DEFAULT_CLIENT_QUEUE_BYTES: u64 = 32 * 1024 * 1024;
const DEFAULT_CLIENT_QUEUE_FRAMES: u32 = 16;
const DEFAULT_KEYFRAME_REQUEST_INTERVAL_MS: u32 = 500;
const DEFAULT_VIEW_ONLY: bool = false;
const DEFAULT_STATS_INTERVAL_MS: u32 = 0;
/// Rate control's ceiling for an encoder driven by quality (jpegenc, webpenc) when max-bitrate
/// is not set: its own quality is its top, and the target only has to be above what it makes.
const QUALITY_MAX_BITRATE: u64 = 100_000_000;
const DEFAULT_WEBTRANSPORT: bool = true;
/// -1: the same port number as the HTTP server's, on UDP.
const DEFAULT_WEBTRANSPORT_PORT: i32 = -1;
const DEFAULT_AUTH: Auth = Auth::Token;
const DEFAULT_HTTPS: bool = false;
const DEFAULT_CLIENT_TIMEOUT_MS: u32 = 15_000;
const DEFAULT_REFINE_DELAY_MS: u32 = 300;
const DEFAULT_H264_HIGH_444: bool = false;
const DEFAULT_MAX_LATENCY_MS: u32 = 400;
const DEFAULT_RATE_CONTROL: RateControl = RateControl::Auto;
/// kbit/s: below this a picture is no longer worth showing.
const DEFAULT_MIN_BITRATE: u32 = 150;
/// 0: the bitrate the encoder was set to when the element started.
const DEFAULT_MAX_BITRATE: u32 = 0;
/// The broadcast's name on the relay when `relay-url` is set and `relay-broadcast` is not.
const DEFAULT_RELAY_BROADCAST: &str = "rfbsink";
/// The H.264 profiles every browser decodes (4:2:0, 8-bit): what an encoder linked to rfbsink
/// negotiates by itself.
const H264_PROFILES: [&str; 5] = [
    "constrained-baseline",
    "baseline",
    "main",
    "constrained-high",
    "high",
];
/// Added by `h264-high-444`: no chroma subsampling (crisp text), decoded in software by
/// Chromium, refused by hardware decoders and Safari.
const H264_PROFILES_444: [&str; 2] = ["high-4:4:4", "high-4:4:4-intra"];

#[derive(Debug, Clone)]
struct Settings {
    address: String,
    port: u32,
    max_clients: u32,
    gop_cache: bool,
    client_queue_bytes: u64,
    client_queue_frames: u32,
    keyframe_request_interval_ms: u32,
    view_only: bool,
    stats_interval_ms: u32,
    webtransport: bool,
    webtransport_port: i32,
    certificate_file: Option<String>,
    private_key_file: Option<String>,
    auth: Auth,
    token: Option<String>,
    view_token: Option<String>,
    allowed_origins: Option<String>,
    https: bool,
    client_timeout_ms: u32,
    gray_window: Option<(u16, u16)>,
    refine_delay_ms: u32,
    h264_high_444: bool,
    max_latency_ms: u32,
    stun_server: Option<String>,
    turn_server: Option<String>,
    webrtc_ports: Option<String>,
    rate_control: RateControl,
    min_bitrate_kbps: u32,
    max_bitrate_kbps: u32,
    relay_url: Option<String>,
    relay_broadcast: String,
    relay_token: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            address: DEFAULT_ADDRESS.into(),
            port: DEFAULT_PORT,
            max_clients: DEFAULT_MAX_CLIENTS,
            gop_cache: DEFAULT_GOP_CACHE,
            client_queue_bytes: DEFAULT_CLIENT_QUEUE_BYTES,
            client_queue_frames: DEFAULT_CLIENT_QUEUE_FRAMES,
            keyframe_request_interval_ms: DEFAULT_KEYFRAME_REQUEST_INTERVAL_MS,
            view_only: DEFAULT_VIEW_ONLY,
            stats_interval_ms: DEFAULT_STATS_INTERVAL_MS,
            webtransport: DEFAULT_WEBTRANSPORT,
            webtransport_port: DEFAULT_WEBTRANSPORT_PORT,
            certificate_file: None,
            private_key_file: None,
            auth: DEFAULT_AUTH,
            token: None,
            view_token: None,
            allowed_origins: None,
            https: DEFAULT_HTTPS,
            client_timeout_ms: DEFAULT_CLIENT_TIMEOUT_MS,
            gray_window: None,
            refine_delay_ms: DEFAULT_REFINE_DELAY_MS,
            h264_high_444: DEFAULT_H264_HIGH_444,
            max_latency_ms: DEFAULT_MAX_LATENCY_MS,
            stun_server: None,
            turn_server: None,
            webrtc_ports: None,
            rate_control: DEFAULT_RATE_CONTROL,
            min_bitrate_kbps: DEFAULT_MIN_BITRATE,
            max_bitrate_kbps: DEFAULT_MAX_BITRATE,
            relay_url: None,
            relay_broadcast: DEFAULT_RELAY_BROADCAST.into(),
            relay_token: None,
        }
    }
}

impl Settings {
    /// The run these settings describe, checked: an error names the property to fix.
    /// `rate`: rate control's policy and bounds in bits per second, None when off.
    fn server(
        &self,
        rate: Option<(Policy, u64, u64, u32)>,
    ) -> Result<ServerSettings, gst::ErrorMessage> {
        let certificate_files = match (&self.certificate_file, &self.private_key_file) {
            (Some(cert), Some(key)) => Some((cert.into(), key.into())),
            (None, None) => None,
            _ => {
                return Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    ("certificate-file and private-key-file go together: set both or neither")
                ))
            }
        };
        let limits =
            Limits::from_client_timeout(Duration::from_millis(self.client_timeout_ms.into()));
        Ok(ServerSettings {
            address: self.address.clone(),
            port: self.port as u16,
            tokens: self.tokens()?,
            allowed_origins: self.allowed_origins(),
            view_only: self.view_only,
            https: self.https,
            certificate_files,
            webtransport: self.webtransport,
            webtransport_port: u16::try_from(self.webtransport_port).ok(),
            hub: HubSettings {
                max_clients: self.max_clients,
                gop_cache: self.gop_cache,
                queue_bytes: self.client_queue_bytes as usize,
                queue_frames: self.client_queue_frames as usize,
                keyframe_interval: Duration::from_millis(self.keyframe_request_interval_ms.into()),
                ping_interval: limits.ping_interval,
                max_latency: (self.max_latency_ms > 0)
                    .then(|| Duration::from_millis(self.max_latency_ms.into())),
                rate: rate.map(|(policy, min, max, _)| (policy, min, max)),
                rate_rendition: rate.map_or(0, |r| r.3),
            },
            gray_window: self.gray_window,
            limits,
            stun_server: self.stun_server.clone(),
            turn_server: self.turn_server.clone(),
            webrtc_ports: self.webrtc_ports()?,
            relay: None,
        })
    }

    /// `webrtc-ports` as the first and last port, checked.
    fn webrtc_ports(&self) -> Result<Option<(u16, u16)>, gst::ErrorMessage> {
        let Some(text) = &self.webrtc_ports else {
            return Ok(None);
        };
        let range = text.split_once('-').and_then(|(first, last)| {
            let first = first.trim().parse::<u16>().ok()?;
            let last = last.trim().parse::<u16>().ok()?;
            (first > 0 && first <= last).then_some((first, last))
        });
        range.map(Some).ok_or_else(|| {
            gst::error_msg!(
                gst::ResourceError::Settings,
                ("webrtc-ports is {text:?}: give the first and last UDP port, e.g. 40000-40099")
            )
        })
    }

    /// The two links' tokens: set by the application or generated at each start.
    fn tokens(&self) -> Result<Option<Tokens>, gst::ErrorMessage> {
        if self.auth == Auth::None {
            return Ok(None);
        }
        let pick = |set: &Option<String>, name: &str| -> Result<String, gst::ErrorMessage> {
            match set.as_deref().filter(|t| !t.is_empty()) {
                Some(t) if access::valid_token(t) => Ok(t.to_owned()),
                Some(_) => Err(gst::error_msg!(
                    gst::ResourceError::Settings,
                    ("Invalid {name}"),
                    ["{name} must be 8 to 256 characters of A-Z a-z 0-9 - . _ ~"]
                )),
                None => access::generate_token().map_err(|e| {
                    gst::error_msg!(
                        gst::ResourceError::Failed,
                        ("Cannot make a {name}: no randomness: {e}")
                    )
                }),
            }
        };
        let tokens = Tokens {
            control: pick(&self.token, "token")?,
            view: pick(&self.view_token, "view-token")?,
        };
        if tokens.control == tokens.view {
            return Err(gst::error_msg!(
                gst::ResourceError::Settings,
                ("token and view-token must differ")
            ));
        }
        Ok(Some(tokens))
    }

    /// Where to publish, checked; None without `relay-url`.
    fn relay(&self) -> Result<Option<RelaySettings>, gst::ErrorMessage> {
        let Some(url) = self.relay_url.as_deref().filter(|u| !u.is_empty()) else {
            return Ok(None);
        };
        RelaySettings::new(url, &self.relay_broadcast, self.relay_token.as_deref())
            .map(Some)
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{e}")))
    }

    fn allowed_origins(&self) -> Vec<String> {
        self.allowed_origins
            .as_deref()
            .unwrap_or("")
            .split([',', ' '])
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

#[derive(Default)]
enum State {
    #[default]
    Stopped,
    Started(Server),
}

/// The `refine` request pad's side (docs/protocol.md, "Refine"): when neither pad got a buffer
/// for `refine-delay`, the last raw picture goes out whole and lossless, painted over the lossy
/// one.
#[derive(Default)]
struct Refine {
    pad: Option<gst::Pad>,
    /// Bumped by every buffer on either pad: a still made for an older generation is stale.
    generation: u64,
    /// When a still is due: `refine-delay` after the last buffer.
    due: Option<Instant>,
    /// A timer task waits for `due`.
    timer: bool,
    /// This generation's still went out.
    sent: bool,
    /// The last encoded frame's timestamp: the still replaces that picture on screen.
    timestamp_us: i64,
    /// Stills sent (stats).
    sent_count: u64,
    size_warned: bool,
}

/// One `rendition_%u` request pad (docs/protocol.md, "Renditions"): another encoding of the
/// same picture for the viewers whose link carries less; its id is the pad's number.
struct RenditionPad {
    pad: gst::Pad,
    stream: StreamTracker,
    segment: gst::FormattedSegment<gst::ClockTime>,
}

/// The `audio` request pad (docs/protocol.md, "Audio"): Opus packets, to every viewer that
/// asked for sound.
#[derive(Default)]
struct AudioPad {
    pad: Option<gst::Pad>,
    segment: gst::FormattedSegment<gst::ClockTime>,
    config: Option<Arc<AudioConfig>>,
    /// The last config's id (a new one for every caps change).
    config_id: u32,
    seq: u64,
    /// The element switched BaseSink's preroll off because only the audio pad is linked.
    unset_async: bool,
}

/// Rendition pads are `rendition_1` to `rendition_MAX_RENDITIONS` (0 is the sink pad's stream).
const MAX_RENDITIONS: u32 = 8;

/// The figures of one run, for stats: zeroed at each start.
#[derive(Default)]
struct Counters {
    input_events: AtomicU64,
    input_ignored: AtomicU64,
    /// Buffers skipped as unstreamable (empty, garbage, a corrupt header).
    frames_skipped: AtomicU64,
    /// Time spent in render(), for the CPU cost per frame.
    render_ns: AtomicU64,
    /// The running time of the last frame rendered (the QoS event's timestamp), ns.
    last_running_time: AtomicU64,
    /// A refused profile was explained on the bus (once a run).
    caps_explained: AtomicBool,
    /// Buffers render() took, sent or not (`frames` counts those handed to the clients).
    frames_rendered: AtomicU64,
    /// Opus packets handed to the clients, and those skipped as broken.
    audio_packets: AtomicU64,
    audio_skipped: AtomicU64,
}

impl Counters {
    fn reset(&self) {
        for n in [
            &self.input_events,
            &self.input_ignored,
            &self.frames_skipped,
            &self.render_ns,
            &self.last_running_time,
            &self.frames_rendered,
            &self.audio_packets,
            &self.audio_skipped,
        ] {
            n.store(0, Ordering::Relaxed);
        }
        self.caps_explained.store(false, Ordering::Relaxed);
    }
}

#[derive(Default)]
pub struct RfbSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    stream: Mutex<StreamTracker>,
    /// The raw path's previous picture; taken before `stream` when both are.
    raw: Mutex<RawEncoder>,
    /// Whether the caps are raw video (the raw path's keyframes are the element's own).
    raw_active: AtomicBool,
    /// The `refine` pad's last picture; taken before `refine` when both are.
    refine_raw: Mutex<RawEncoder>,
    /// Taken before `stream` when both are.
    refine: Mutex<Refine>,
    /// This run's figures (stats); zeroed by start().
    counters: Counters,
    /// The encoder upstream that rate control drives, for this run, and the target it was given
    /// last (bit/s).
    encoder: Mutex<Option<Encoder>>,
    applied_target: Mutex<Option<u64>>,
    /// The rendition pads, by rendition id. Taken before `stream` when both are.
    renditions: Mutex<std::collections::BTreeMap<u32, RenditionPad>>,
    audio: Mutex<AudioPad>,
}

impl RfbSink {
    /// A viewer fell behind by more than `max-latency` and skips to the next keyframe: said on
    /// the bus; when every viewer is behind, a QoS event asks upstream for less (proportion: the
    /// rate sent over the rate they decode).
    fn client_overloaded(&self, o: &crate::hub::Overload) {
        gst::info!(
            CAT,
            imp = self,
            "client {} is {} ms behind: the stream has {} fps, it sustains {:.1} fps; it skips to a keyframe",
            o.client_id,
            o.latency.as_millis(),
            o.stream_fps,
            o.sustainable_fps
        );
        let msg = gst::Structure::builder("rfbsink-client-overloaded")
            .field("client-id", o.client_id)
            .field("latency-us", o.latency.as_micros() as u64)
            .field("stream-fps", o.stream_fps)
            .field("decoded-fps", o.decoded_fps)
            .field("sustainable-fps", o.sustainable_fps)
            .field("all-clients", o.all)
            .build();
        let _ = self.obj().post_message(
            gst::message::Element::builder(msg)
                .src(&*self.obj())
                .build(),
        );
        if !o.all {
            return;
        }
        // Above 1: upstream produces faster than the viewers take (GstQOSType Overflow).
        let proportion = if o.sustainable_fps > 0.0 {
            (o.stream_fps / o.sustainable_fps).max(1.0)
        } else {
            2.0
        };
        let timestamp =
            gst::ClockTime::from_nseconds(self.counters.last_running_time.load(Ordering::Relaxed));
        let event = gst::event::Qos::new(
            gst::QOSType::Overflow,
            proportion,
            o.latency.as_nanos().min(i64::MAX as u128) as i64,
            timestamp,
        );
        if !self.obj().sink_pad().push_event(event) {
            gst::debug!(CAT, imp = self, "upstream did not handle the QoS event");
        }
    }

    /// The sink pad's caps: the template's, with High 4:4:4 when `h264-high-444` allows it.
    fn sink_caps(&self) -> gst::Caps {
        let mut caps = self.obj().sink_pad().pad_template_caps();
        if self.settings.lock().unwrap().h264_high_444 {
            let caps = caps.make_mut();
            for s in caps.iter_mut() {
                if s.name() == "video/x-h264" {
                    s.set(
                        "profile",
                        gst::List::new(H264_PROFILES.iter().chain(&H264_PROFILES_444).copied()),
                    );
                }
            }
        }
        caps
    }

    /// Caps that rfbsink refuses for a reason a user can fix: says how, once.
    fn explain_refused_caps(&self, caps: &gst::Caps) {
        let Some(s) = caps.structure(0) else { return };
        let hint = match (s.name().as_str(), s.get::<&str>("profile")) {
            ("video/x-h264", Ok(p)) if H264_PROFILES_444.contains(&p) => format!(
                "H.264 profile {p} is refused: most browsers cannot decode it. Put \
                 video/x-raw,format=I420 before the encoder, or set h264-high-444=true for \
                 Chromium only"
            ),
            ("video/x-h264", Ok(p)) => format!(
                "H.264 profile {p} is refused: browsers decode constrained-baseline, baseline, \
                 main and high (4:2:0, 8-bit). Put video/x-raw,format=I420 before the encoder"
            ),
            _ => return,
        };
        if !self.counters.caps_explained.swap(true, Ordering::Relaxed) {
            gst::element_imp_warning!(self, gst::StreamError::Format, ("{hint}"));
        } else {
            gst::debug!(CAT, imp = self, "{hint}");
        }
    }

    /// Rate control for this run: the encoder upstream it drives and its bounds (bits per
    /// second). Without an encoder rfbsink knows, the target goes on the bus only, and needs
    /// `max-bitrate`; `auto` is then off (raw video, pngenc and other encoders it does not know
    /// keep their settings without a word).
    /// With renditions it drives the lowest one's encoder (the viewers on the others move down
    /// the ladder instead); returns that rendition too.
    fn rate_control(&self, settings: &Settings) -> Option<(Policy, u64, u64, u32)> {
        let policy = match settings.rate_control {
            RateControl::Off => return None,
            RateControl::Slowest => Policy::Slowest,
            RateControl::Control | RateControl::Auto => Policy::Control,
        };
        let mut pads = vec![(0, self.obj().sink_pad().clone())];
        pads.extend(
            self.renditions
                .lock()
                .unwrap()
                .iter()
                .map(|(id, r)| (*id, r.pad.clone())),
        );
        let (rendition, encoder) = pads
            .iter()
            .filter_map(|(id, pad)| Encoder::upstream_of(pad).map(|e| (*id, Some(e))))
            .min_by_key(|(_, e)| e.as_ref().map(|e| e.bitrate()))
            .unwrap_or((0, None));
        if settings.rate_control == RateControl::Auto
            && encoder.as_ref().is_none_or(|e| e.constant_quantizer())
        {
            gst::debug!(
                CAT,
                imp = self,
                "rate control (auto) is off: no encoder upstream whose bitrate rfbsink drives"
            );
            return None;
        }
        let max = match (settings.max_bitrate_kbps, &encoder) {
            // Its quality at start is its top; the target has no bitrate to start from.
            (0, Some(e)) if e.by_quality() => QUALITY_MAX_BITRATE,
            (0, Some(e)) => e.bitrate(),
            (0, None) => {
                gst::element_imp_warning!(
                    self,
                    gst::CoreError::Negotiation,
                    ("rate-control is off: no encoder upstream that rfbsink drives; set max-bitrate to get the target on the bus (rfbsink-target-bitrate) and apply it yourself")
                );
                return None;
            }
            (kbps, _) => u64::from(kbps) * 1000,
        };
        let min = (u64::from(settings.min_bitrate_kbps) * 1000).min(max);
        match &encoder {
            Some(e) => {
                let bounded = e.bound_keyframes();
                gst::info!(
                    CAT,
                    imp = self,
                    "rate control drives {} (rendition {rendition}) between {min} and {max} bit/s; keyframes bounded by {bounded:?}",
                    e.name()
                )
            }
            None => gst::info!(
                CAT,
                imp = self,
                "rate control: targets between {min} and {max} bit/s go on the bus"
            ),
        }
        *self.encoder.lock().unwrap() = encoder;
        // Rate control starts at `max` (RateController::new): only changes from it are posted.
        *self.applied_target.lock().unwrap() = Some(max);
        Some((policy, min, max, rendition))
    }

    /// Rate control's tick (about a second) or a new target: an encoder driven by quality is
    /// steered toward the target by what the stream made the last second; a new target goes to a
    /// bitrate encoder and on the bus.
    fn apply_target_bitrate(&self) {
        // The hub's current target, not the one this call was made for: calls from the blocking
        // pool may run out of order.
        let Some(hub) = self.hub() else {
            return;
        };
        let Some(bps) = hub.target_bitrate() else {
            return;
        };
        let encoder = self.encoder.lock().unwrap().clone();
        let changed = self.applied_target.lock().unwrap().replace(bps) != Some(bps);
        if let Some(e) = encoder.as_ref().filter(|e| changed || e.by_quality()) {
            e.set_bitrate(bps, hub.stream_bitrate());
            if let Some(q) = e.quality() {
                gst::debug!(CAT, imp = self, "{} quality {q}", e.name());
            }
        }
        if !changed {
            return;
        }
        gst::debug!(CAT, imp = self, "target bitrate {bps} bit/s");
        let msg = gst::Structure::builder("rfbsink-target-bitrate")
            .field("bitrate", bps)
            .field("encoder", encoder.map(|e| e.name()).unwrap_or_default())
            .build();
        let _ = self.obj().post_message(
            gst::message::Element::builder(msg)
                .src(&*self.obj())
                .build(),
        );
    }

    fn hub(&self) -> Option<Arc<Hub>> {
        match &*self.state.lock().unwrap() {
            State::Started(s) => Some(s.hub.clone()),
            State::Stopped => None,
        }
    }

    fn request_keyframe(&self, rendition: u32) {
        if rendition != 0 {
            let pad = self
                .renditions
                .lock()
                .unwrap()
                .get(&rendition)
                .map(|r| r.pad.clone());
            let event = gst_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            if !pad.is_some_and(|pad| pad.push_event(event)) {
                gst::debug!(
                    CAT,
                    imp = self,
                    "upstream of rendition {rendition} did not handle the keyframe request"
                );
            }
            return;
        }
        // Not `raw`'s lock: the hub calls this from inside render_raw's push.
        if self.raw_active.load(Ordering::Relaxed) {
            // The raw path's keyframes are the element's own: the last picture, whole, made at
            // once off the caller's thread (a still source may send nothing new for a long time).
            let weak = self.obj().downgrade();
            RUNTIME.spawn_blocking(move || {
                if let Some(obj) = weak.upgrade() {
                    obj.imp().push_raw_keyframe();
                }
            });
            return;
        }
        gst::debug!(CAT, imp = self, "asking upstream for a keyframe");
        let event = gst_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        if !self.obj().sink_pad().push_event(event) {
            gst::debug!(
                CAT,
                imp = self,
                "upstream did not handle the keyframe request"
            );
        }
    }

    /// Runs on the element's input thread, one message at a time, in the order clients sent them.
    fn on_client_message(&self, client_id: u64, msg: ClientMessage) {
        gst::trace!(CAT, imp = self, "client {client_id}: {msg:?}");
        // view-only may be set while playing: every link is then a view link.
        if matches!(msg, ClientMessage::Input(_) | ClientMessage::App { .. })
            && self.settings.lock().unwrap().view_only
        {
            self.counters.input_ignored.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match msg {
            ClientMessage::Input(input) => {
                self.counters.input_events.fetch_add(1, Ordering::Relaxed);
                match input {
                    Input::Navigation(nav) => {
                        if !self.obj().sink_pad().push_event(nav.build()) {
                            gst::trace!(CAT, imp = self, "no element upstream handled {nav:?}");
                        }
                    }
                    Input::Resize { width, height } => {
                        let s = gst::Structure::builder("rfbsink-resize")
                            .field("client-id", client_id)
                            .field("width", width)
                            .field("height", height)
                            .build();
                        let _ = self.obj().post_message(
                            gst::message::Element::builder(s).src(&*self.obj()).build(),
                        );
                    }
                }
            }
            ClientMessage::App { channel, message } => {
                let json = serde_json::Value::Object(message).to_string();
                self.obj()
                    .emit_by_name::<()>("client-message", &[&client_id, &channel, &json]);
            }
            _ => {}
        }
    }

    /// The `send-message` action signal: `json` (an object) on `channel` (app.*) to one client
    /// (`client_id`) or all (0). Returns whether it was queued for at least one client.
    fn send_message(&self, channel: &str, json: &str, client_id: u64) -> bool {
        let text = match protocol::app_message(channel, json) {
            Ok(t) => t,
            Err(e) => {
                gst::warning!(CAT, imp = self, "send-message: {e}");
                return false;
            }
        };
        let Some(hub) = self.hub() else {
            gst::debug!(CAT, imp = self, "send-message while not running");
            return false;
        };
        hub.send_text((client_id != 0).then_some(client_id), &text) > 0
    }

    /// The relay publisher's news, on the bus (`rfbsink-relay`); a rendition it cannot carry is
    /// a warning.
    fn relay_event(&self, event: RelayEvent, url: &str, broadcast: &str) {
        let builder = gst::Structure::builder("rfbsink-relay")
            .field("url", url)
            .field("broadcast", broadcast);
        let structure = match event {
            RelayEvent::Connected { sessions } => {
                gst::info!(CAT, imp = self, "relay connected (session {sessions})");
                builder
                    .field("status", "connected")
                    .field("sessions", sessions)
                    .build()
            }
            RelayEvent::Disconnected => {
                gst::warning!(CAT, imp = self, "relay disconnected; redialing");
                builder.field("status", "disconnected").build()
            }
            RelayEvent::Refused { sessions } => {
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::OpenWrite,
                    ("The relay at {url} closed the last {sessions} sessions at once: it most likely does not let this element publish there (its access rules; relay-token). Still redialing; direct viewers are unaffected.")
                );
                builder
                    .field("status", "refused")
                    .field("sessions", sessions)
                    .build()
            }
            RelayEvent::Failed { reason } => {
                let hint = if reason.contains("unauthorized") {
                    " (the relay's access rules: is relay-token set, and allowed to publish under this path?)"
                } else {
                    ""
                };
                gst::element_imp_warning!(
                    self,
                    gst::ResourceError::OpenWrite,
                    ("Cannot publish to the relay at {url}: {reason}{hint}. Dialing again in 30 s; direct viewers are unaffected.")
                );
                builder
                    .field("status", "failed")
                    .field("reason", reason)
                    .build()
            }
            RelayEvent::Unsupported { rendition, codec } => {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Format,
                    ("The relay's media format (hang) does not carry {codec}: relay viewers get nothing of rendition {rendition}; direct viewers are unaffected. Publish H.264, VP8, VP9 or AV1 to a relay.")
                );
                builder
                    .field("status", "unsupported")
                    .field("rendition", rendition)
                    .field("codec", codec)
                    .build()
            }
        };
        let _ = self.obj().post_message(
            gst::message::Element::builder(structure)
                .src(&*self.obj())
                .build(),
        );
    }

    fn stats(&self) -> gst::Structure {
        let Some(hub) = self.hub() else {
            return gst::Structure::builder("rfbsink-stats")
                .field("clients", 0u32)
                .field(
                    "input-events",
                    self.counters.input_events.load(Ordering::Relaxed),
                )
                .field(
                    "input-ignored",
                    self.counters.input_ignored.load(Ordering::Relaxed),
                )
                .field(
                    "frames-skipped",
                    self.counters.frames_skipped.load(Ordering::Relaxed),
                )
                .build();
        };
        let stats = hub.stats();
        let clients: Vec<glib::SendValue> = stats
            .clients
            .iter()
            .map(|c| client_structure(c).to_send_value())
            .collect();
        let renditions: Vec<glib::SendValue> = stats
            .renditions
            .iter()
            .map(|r| {
                let config = r.config.as_ref();
                gst::Structure::builder("rendition")
                    .field("id", r.id)
                    .field("codec", config.map(|c| c.codec.codec.name()).unwrap_or(""))
                    .field("width", config.map(|c| c.codec.width).unwrap_or(0))
                    .field("height", config.map(|c| c.codec.height).unwrap_or(0))
                    .field("bitrate", r.bitrate_bps)
                    .field("frames", r.frames)
                    .field("viewers", r.viewers)
                    .build()
                    .to_send_value()
            })
            .collect();
        let config = stats.config.as_ref();
        let (tiles_sent, tiles_total) = {
            let raw = self.raw.lock().unwrap();
            (raw.tiles_sent, raw.tiles_total)
        };
        let relay = hub.relay().map(|r| r.stats()).unwrap_or_default();
        gst::Structure::builder("rfbsink-stats")
            .field("clients", stats.clients.len() as u32)
            .field("frames", stats.frames)
            .field(
                "frames-rendered",
                self.counters.frames_rendered.load(Ordering::Relaxed),
            )
            .field("bytes", stats.bytes)
            .field("keyframe-requests", stats.keyframe_requests)
            .field("target-bitrate", stats.target_bps)
            .field("config-id", config.map(|c| c.id).unwrap_or(0))
            .field("codec", config.map(|c| c.codec.codec.name()).unwrap_or(""))
            .field(
                "codec-string",
                config.map(|c| c.codec.codec_string.as_str()).unwrap_or(""),
            )
            .field("width", config.map(|c| c.codec.width).unwrap_or(0))
            .field("height", config.map(|c| c.codec.height).unwrap_or(0))
            .field(
                "input-events",
                self.counters.input_events.load(Ordering::Relaxed),
            )
            .field(
                "input-ignored",
                self.counters.input_ignored.load(Ordering::Relaxed)
                    + stats.clients.iter().map(|c| c.input_ignored).sum::<u64>(),
            )
            .field(
                "frames-skipped",
                self.counters.frames_skipped.load(Ordering::Relaxed),
            )
            .field(
                "render-time-us",
                self.counters.render_ns.load(Ordering::Relaxed) / 1000,
            )
            .field("tiles-sent", tiles_sent)
            .field("tiles-total", tiles_total)
            .field("refines", self.refine.lock().unwrap().sent_count)
            .field(
                "audio-packets",
                self.counters.audio_packets.load(Ordering::Relaxed),
            )
            .field(
                "audio-skipped",
                self.counters.audio_skipped.load(Ordering::Relaxed),
            )
            .field("client-stats", gst::Array::from_values(clients))
            .field("renditions", gst::Array::from_values(renditions))
            .field("relay-connected", relay.connected)
            .field("relay-sessions", relay.sessions)
            .field("relay-frames", relay.frames)
            .field("relay-bytes", relay.bytes)
            .field("relay-cache-bytes", relay.cache_bytes)
            .build()
    }
}

/// `"auto"` or `"LOW,HIGH"` (0..65535, LOW < HIGH).
fn parse_gray_window(text: &str) -> Result<Option<(u16, u16)>, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("auto") || text.is_empty() {
        return Ok(None);
    }
    let (low, high) = text
        .split_once(',')
        .ok_or_else(|| format!("'{text}' is neither \"auto\" nor \"LOW,HIGH\""))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u16>()
            .map_err(|_| format!("'{v}' is not a value from 0 to 65535"))
    };
    let (low, high) = (parse(low)?, parse(high)?);
    if low >= high {
        return Err(format!("LOW ({low}) must be below HIGH ({high})"));
    }
    Ok(Some((low, high)))
}

fn client_structure(c: &ClientStats) -> gst::Structure {
    let builder = gst::Structure::builder("client");
    // WebRTC peers: what their RTCP says of the path (they send no acks).
    let builder = match c.network {
        Some(n) => builder
            .field("rtt-us", n.rtt_us)
            .field("jitter-us", n.jitter_us)
            .field("packets-lost", n.packets_lost),
        None => builder,
    };
    builder
        .field("id", c.id)
        .field("transport", c.transport)
        .field("envelope", c.envelope)
        .field("role", c.role)
        .field("input-ignored", c.input_ignored)
        .field("messages-rejected", c.messages_rejected)
        .field("remote", &c.remote)
        .field("frames-sent", c.frames_sent)
        .field("bytes-sent", c.bytes_sent)
        .field("frames-dropped", c.frames_dropped)
        .field("keyframe-requests", c.keyframe_requests)
        .field("queued-frames", c.queued_frames)
        .field("queued-bytes", c.queued_bytes)
        .field("acks", c.acks)
        .field("decode-queue-size", c.decode_queue_size)
        .field("latency-p50-us", c.latency_p50_us)
        .field("latency-p95-us", c.latency_p95_us)
        .field("latency-p99-us", c.latency_p99_us)
        .field("latency-max-us", c.latency_max_us)
        .field("paint-p50-us", c.paint_p50_us)
        .field("paint-p95-us", c.paint_p95_us)
        .field("fps", c.fps)
        .field("decoded-fps", c.decoded_fps)
        .field("overloads", c.overloads)
        .field("bitrate", c.bitrate_bps)
        .field("delivered-bitrate", c.delivered_bps)
        .field("link-capacity", c.capacity_bps)
        .field("still-window", c.still_window)
        .field("rendition", c.rendition)
        .field("rendition-switches", c.rendition_switches)
        .field("audio-sent", c.audio_sent)
        .field("audio-dropped", c.audio_dropped)
        .build()
}

#[glib::object_subclass]
impl ObjectSubclass for RfbSink {
    const NAME: &'static str = "GstRfbSink";
    type Type = super::RfbSink;
    type ParentType = gst_base::BaseSink;
    type Interfaces = (gst_video::Navigation,);
}

/// Applications can inject navigation through the element too (`gst_navigation_send_*`): it
/// travels upstream like the browsers' input.
impl NavigationImpl for RfbSink {
    fn send_event(&self, structure: gst::Structure) {
        let _ = self
            .obj()
            .sink_pad()
            .push_event(gst::event::Navigation::new(structure));
    }
}

impl ObjectImpl for RfbSink {
    fn constructed(&self) {
        self.parent_constructed();
        // render() only hands the buffer to the clients' queues: it needs no processing time.
        // BaseSink's default (20 ms) is added to the pipeline latency as soon as a queue sits
        // upstream (rfb serve's leaky queue, a tee), and every frame then waited that long
        // before going out (measured: 1080p30 capture -> on screen p50 36 ms -> 19 ms).
        self.obj().set_processing_deadline(gst::ClockTime::ZERO);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("address")
                    .nick("Address")
                    .blurb("Address the HTTP/WebSocket server listens on (IP address or host name)")
                    .default_value(Some(DEFAULT_ADDRESS))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("port")
                    .nick("Port")
                    .blurb("TCP port of the HTTP/WebSocket server (0 = pick a free port, see bound-port)")
                    .maximum(u16::MAX as u32)
                    .default_value(DEFAULT_PORT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("bound-port")
                    .nick("Bound port")
                    .blurb("The port the server actually listens on (0 when not running)")
                    .maximum(u16::MAX as u32)
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("url")
                    .nick("URL")
                    .blurb("The viewer's URL while the element runs, with the control link's token (input allowed)")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("view-url")
                    .nick("View URL")
                    .blurb("The view link while the element runs: its token shows the stream, its input is ignored")
                    .read_only()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("auth", DEFAULT_AUTH)
                    .nick("Authentication")
                    .blurb("token: the page, /rfb.json, /ws and /wt need a token (rfb_token in the URL, a cookie or Authorization: Bearer); none: anyone who can reach the port may watch and send input")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("token")
                    .nick("Token")
                    .blurb("The control link's token (8-256 of A-Z a-z 0-9 - . _ ~); unset: a new random one at each start, see url")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("view-token")
                    .nick("View token")
                    .blurb("The view link's token; unset: a new random one at each start, see view-url")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("allowed-origins")
                    .nick("Allowed origins")
                    .blurb("Other origins whose pages may connect, read /rfb.json, import the viewer and frame it, comma-separated (e.g. tauri://localhost,http://127.0.0.1:8888); the server's own origin always may")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("stun-server")
                    .nick("STUN server")
                    .blurb("WebRTC peers: a STUN server, stun://host:port, for a server-reflexive candidate behind NAT; none by default (nothing outside is contacted, host candidates on the bound address only)")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("turn-server")
                    .nick("TURN server")
                    .blurb("WebRTC peers: a TURN relay, turn(s)://user:password@host:port, for viewers no direct path reaches; none by default")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("webrtc-ports")
                    .nick("WebRTC ports")
                    .blurb("WebRTC peers: the UDP ports their media may use, first-last (e.g. 40000-40099, for a firewall); any free port by default")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("https")
                    .nick("HTTPS")
                    .blurb("Serve the page and WebSocket over TLS (https/wss) on the same port, with certificate-file/private-key-file or else a self-signed certificate (a browser asks once); on by itself when certificate-file is set")
                    .default_value(DEFAULT_HTTPS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("gray-window")
                    .nick("Gray window")
                    .blurb("For GRAY16 raw video: the values shown black and white, \"LOW,HIGH\" (e.g. \"100,4000\"), or \"auto\" to follow each picture's range; viewers may change their own")
                    .default_value(Some("auto"))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("refine-delay")
                    .nick("Refine delay")
                    .blurb("With raw frames on the refine pad: milliseconds without a new frame after which the last raw picture is sent losslessly over the lossy one")
                    .minimum(10)
                    .maximum(60_000)
                    .default_value(DEFAULT_REFINE_DELAY_MS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("h264-high-444")
                    .nick("H.264 High 4:4:4")
                    .blurb("Also accept H.264 High 4:4:4 (no chroma subsampling: crisp text). Chromium decodes it in software; hardware decoders, Safari and most phones do not. Off: an encoder linked to rfbsink negotiates 4:2:0 8-bit by itself")
                    .default_value(DEFAULT_H264_HIGH_444)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-latency")
                    .nick("Max latency")
                    .blurb("Milliseconds from render() to a viewer's acknowledgement (decoded and painted) beyond which that viewer skips to the next keyframe instead of queueing: its latency stays bounded, it shows fewer frames, the others are not affected (still images, jpeg, png, webp, are paced by acks instead: docs/protocol.md, Backpressure); it is reported in an rfbsink-client-overloaded message, and a QoS event goes upstream when every viewer is behind. 0: no bound but the client queue")
                    .maximum(60_000)
                    .default_value(DEFAULT_MAX_LATENCY_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("rate-control", DEFAULT_RATE_CONTROL)
                    .nick("Rate control")
                    .blurb("Whom the encoder's bitrate follows: auto (the default: control when the encoder upstream is one rfbsink drives, otherwise off), off (the encoder keeps its settings, slow viewers skip to keyframes), slowest (the slowest viewer that acknowledges frames: the target falls below what its link delivered when it queues, and probes back up when it does not) or control (the same for the viewers on the control link only: a view-link audience cannot lower the controller's quality). With renditions it drives the lowest rendition's encoder. rfbsink sets the bitrate of x264enc, openh264enc, nvh264enc, vah264enc, vp8enc, vp9enc, av1enc, svtav1enc and rav1enc, and the quality of jpegenc and webpenc, upstream itself; for others slowest and control post rfbsink-target-bitrate and set target-bitrate")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("min-bitrate")
                    .nick("Minimum bitrate")
                    .blurb("kbit/s: rate control never asks for less")
                    .minimum(1)
                    .maximum(1_000_000)
                    .default_value(DEFAULT_MIN_BITRATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-bitrate")
                    .nick("Maximum bitrate")
                    .blurb("kbit/s: rate control never asks for more; 0: the bitrate the encoder was set to at start (100000 for jpegenc and webpenc, driven by quality; needed when the encoder is not one rfbsink drives)")
                    .maximum(1_000_000)
                    .default_value(DEFAULT_MAX_BITRATE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("target-bitrate")
                    .nick("Target bitrate")
                    .blurb("kbit/s: rate control's current target for the encoder; 0 when rate control is off")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("client-timeout")
                    .nick("Client timeout")
                    .blurb("Milliseconds after which a client that sent nothing (not even a pong to the pings sent every third of it), or whose socket takes no data, is closed")
                    .minimum(300)
                    .maximum(3_600_000)
                    .default_value(DEFAULT_CLIENT_TIMEOUT_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-clients")
                    .nick("Max clients")
                    .blurb("Most clients connected at once; more are refused (0 = no limit)")
                    .default_value(DEFAULT_MAX_CLIENTS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("gop-cache")
                    .nick("GOP cache")
                    .blurb("Keep the last keyframe and the frames since, so that a new client sees the current picture at once")
                    .default_value(DEFAULT_GOP_CACHE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("client-queue-bytes")
                    .nick("Client queue bytes")
                    .blurb("Bytes queued for one client beyond which it is behind and skips to the next keyframe")
                    .minimum(1024)
                    .default_value(DEFAULT_CLIENT_QUEUE_BYTES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("client-queue-frames")
                    .nick("Client queue frames")
                    .blurb("Frames queued for one client beyond which it is behind and skips to the next keyframe")
                    .minimum(1)
                    .default_value(DEFAULT_CLIENT_QUEUE_FRAMES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("keyframe-request-interval")
                    .nick("Keyframe request interval")
                    .blurb("Shortest time between two keyframe requests sent upstream, in milliseconds")
                    .maximum(60_000)
                    .default_value(DEFAULT_KEYFRAME_REQUEST_INTERVAL_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("view-only")
                    .nick("View only")
                    .blurb("Ignore input from the browsers (they are counted in stats as input-ignored)")
                    .default_value(DEFAULT_VIEW_ONLY)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("stats-interval")
                    .nick("Stats interval")
                    .blurb("Post the stats as an element message (rfbsink-stats) on the bus every this many milliseconds (0 = never)")
                    .maximum(3_600_000)
                    .default_value(DEFAULT_STATS_INTERVAL_MS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("webtransport")
                    .nick("WebTransport")
                    .blurb("Also serve WebTransport (HTTP/3 over QUIC, UDP); the viewer prefers it and falls back to WebSocket")
                    .default_value(DEFAULT_WEBTRANSPORT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecInt::builder("webtransport-port")
                    .nick("WebTransport port")
                    .blurb("UDP port of the WebTransport server (-1 = the same number as the HTTP port, 0 = pick a free port; the viewer learns it from /rfb.json)")
                    .minimum(-1)
                    .maximum(u16::MAX as i32)
                    .default_value(DEFAULT_WEBTRANSPORT_PORT)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("certificate-file")
                    .nick("Certificate file")
                    .blurb("PEM certificate (chain) for WebTransport and HTTPS (setting it turns https on); unset: a self-signed ECDSA P-256 certificate valid 14 days, renewed before expiry, whose hash the viewer gets")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("private-key-file")
                    .nick("Private key file")
                    .blurb("PEM private key of certificate-file")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("relay-url")
                    .nick("Relay URL")
                    .blurb("Also publish the stream once to this Media over QUIC relay (moq-relay), for audiences past one machine: https://HOST:PORT/PATH, or http:// for a relay with a generated certificate (its fingerprint is read from /certificate.sha256). Unset: no relay")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("relay-broadcast")
                    .nick("Relay broadcast")
                    .blurb("The broadcast's name under relay-url's path (what relay viewers ask for)")
                    .default_value(Some(DEFAULT_RELAY_BROADCAST))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("relay-token")
                    .nick("Relay token")
                    .blurb("The relay's token (a moq-relay JWT allowed to publish under the path), sent as relay-url's jwt parameter")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("Figures of the stream and of each client (client-stats: latency from render() to decoded, drops, queue)")
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            vec![
                // GstRfbSink::send-message:
                // @channel: an application channel, `app.<name>`
                // @json: a JSON object; `kind` defaults to "message"
                // @client_id: the client, or 0 for every client
                //
                // Sends an application message to the browsers. Returns whether it was queued.
                glib::subclass::Signal::builder("send-message")
                    .param_types([
                        String::static_type(),
                        String::static_type(),
                        u64::static_type(),
                    ])
                    .return_type::<bool>()
                    .action()
                    .class_handler(|args| {
                        let obj = args[0].get::<super::RfbSink>().expect("signal arg");
                        let channel = args[1].get::<String>().expect("signal arg");
                        let json = args[2].get::<String>().expect("signal arg");
                        let client = args[3].get::<u64>().expect("signal arg");
                        Some(obj.imp().send_message(&channel, &json, client).to_value())
                    })
                    .build(),
                // GstRfbSink::client-message:
                // @client_id: the client that sent it
                // @channel: its application channel, `app.<name>`
                // @json: the message, a JSON object (without `channel`)
                //
                // A browser sent a message on an application channel. Emitted from the element's
                // input thread.
                glib::subclass::Signal::builder("client-message")
                    .param_types([
                        u64::static_type(),
                        String::static_type(),
                        String::static_type(),
                    ])
                    .build(),
            ]
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        match pspec.name() {
            "address" => {
                settings.address = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| DEFAULT_ADDRESS.into())
            }
            "port" => settings.port = value.get().expect("type checked upstream"),
            "max-clients" => settings.max_clients = value.get().expect("type checked upstream"),
            "gop-cache" => settings.gop_cache = value.get().expect("type checked upstream"),
            "client-queue-bytes" => {
                settings.client_queue_bytes = value.get().expect("type checked upstream")
            }
            "client-queue-frames" => {
                settings.client_queue_frames = value.get().expect("type checked upstream")
            }
            "keyframe-request-interval" => {
                settings.keyframe_request_interval_ms = value.get().expect("type checked upstream")
            }
            "view-only" => settings.view_only = value.get().expect("type checked upstream"),
            "stats-interval" => {
                settings.stats_interval_ms = value.get().expect("type checked upstream")
            }
            "webtransport" => settings.webtransport = value.get().expect("type checked upstream"),
            "webtransport-port" => {
                settings.webtransport_port = value.get().expect("type checked upstream")
            }
            "certificate-file" => {
                settings.certificate_file = value.get().expect("type checked upstream")
            }
            "private-key-file" => {
                settings.private_key_file = value.get().expect("type checked upstream")
            }
            "auth" => settings.auth = value.get().expect("type checked upstream"),
            "token" => settings.token = value.get().expect("type checked upstream"),
            "view-token" => settings.view_token = value.get().expect("type checked upstream"),
            "allowed-origins" => {
                settings.allowed_origins = value.get().expect("type checked upstream")
            }
            "https" => settings.https = value.get().expect("type checked upstream"),
            "stun-server" => {
                settings.stun_server = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|s| !s.is_empty())
            }
            "turn-server" => {
                settings.turn_server = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|s| !s.is_empty())
            }
            "webrtc-ports" => {
                settings.webrtc_ports = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|s| !s.is_empty())
            }
            "client-timeout" => {
                settings.client_timeout_ms = value.get().expect("type checked upstream")
            }
            "refine-delay" => {
                settings.refine_delay_ms = value.get().expect("type checked upstream")
            }
            "max-latency" => settings.max_latency_ms = value.get().expect("type checked upstream"),
            "rate-control" => settings.rate_control = value.get().expect("type checked upstream"),
            "min-bitrate" => {
                settings.min_bitrate_kbps = value.get().expect("type checked upstream")
            }
            "max-bitrate" => {
                settings.max_bitrate_kbps = value.get().expect("type checked upstream")
            }
            "h264-high-444" => {
                settings.h264_high_444 = value.get().expect("type checked upstream");
                drop(settings);
                // Upstream renegotiates with the new caps.
                let _ = self
                    .obj()
                    .sink_pad()
                    .push_event(gst::event::Reconfigure::new());
            }
            "gray-window" => {
                let text: Option<String> = value.get().expect("type checked upstream");
                match parse_gray_window(text.as_deref().unwrap_or("auto")) {
                    Ok(window) => {
                        settings.gray_window = window;
                        drop(settings);
                        if let Some(hub) = self.hub() {
                            hub.set_window(protocol::window(window));
                        }
                    }
                    Err(e) => gst::warning!(CAT, imp = self, "gray-window: {e}; unchanged"),
                }
            }
            "relay-url" => {
                settings.relay_url = value.get().expect("type checked upstream");
            }
            "relay-broadcast" => {
                settings.relay_broadcast = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .unwrap_or_else(|| DEFAULT_RELAY_BROADCAST.into());
            }
            "relay-token" => {
                settings.relay_token = value.get().expect("type checked upstream");
            }
            name => unimplemented!("property {name}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "bound-port" => match &*self.state.lock().unwrap() {
                State::Started(s) => (s.local.port() as u32).to_value(),
                State::Stopped => 0u32.to_value(),
            },
            "url" => match &*self.state.lock().unwrap() {
                State::Started(s) => Some(s.url.clone()).to_value(),
                State::Stopped => None::<String>.to_value(),
            },
            "view-url" => match &*self.state.lock().unwrap() {
                State::Started(s) => Some(s.view_url.clone()).to_value(),
                State::Stopped => None::<String>.to_value(),
            },
            "stats" => self.stats().to_value(),
            "target-bitrate" => {
                let bps = self.hub().and_then(|h| h.target_bitrate()).unwrap_or(0);
                ((bps / 1000).min(u32::MAX.into()) as u32).to_value()
            }
            name => {
                let settings = self.settings.lock().unwrap();
                match name {
                    "address" => settings.address.to_value(),
                    "port" => settings.port.to_value(),
                    "max-clients" => settings.max_clients.to_value(),
                    "gop-cache" => settings.gop_cache.to_value(),
                    "client-queue-bytes" => settings.client_queue_bytes.to_value(),
                    "client-queue-frames" => settings.client_queue_frames.to_value(),
                    "keyframe-request-interval" => settings.keyframe_request_interval_ms.to_value(),
                    "view-only" => settings.view_only.to_value(),
                    "stats-interval" => settings.stats_interval_ms.to_value(),
                    "webtransport" => settings.webtransport.to_value(),
                    "webtransport-port" => settings.webtransport_port.to_value(),
                    "certificate-file" => settings.certificate_file.to_value(),
                    "private-key-file" => settings.private_key_file.to_value(),
                    "auth" => settings.auth.to_value(),
                    "token" => settings.token.to_value(),
                    "view-token" => settings.view_token.to_value(),
                    "allowed-origins" => settings.allowed_origins.to_value(),
                    "stun-server" => settings.stun_server.to_value(),
                    "webrtc-ports" => settings.webrtc_ports.to_value(),
                    "turn-server" => settings.turn_server.to_value(),
                    "https" => settings.https.to_value(),
                    "client-timeout" => settings.client_timeout_ms.to_value(),
                    "refine-delay" => settings.refine_delay_ms.to_value(),
                    "h264-high-444" => settings.h264_high_444.to_value(),
                    "max-latency" => settings.max_latency_ms.to_value(),
                    "rate-control" => settings.rate_control.to_value(),
                    "min-bitrate" => settings.min_bitrate_kbps.to_value(),
                    "max-bitrate" => settings.max_bitrate_kbps.to_value(),
                    "relay-url" => settings.relay_url.to_value(),
                    "relay-broadcast" => settings.relay_broadcast.to_value(),
                    "relay-token" => settings.relay_token.to_value(),
                    "gray-window" => match settings.gray_window {
                        Some((low, high)) => format!("{low},{high}").to_value(),
                        None => "auto".to_value(),
                    },
                    name => unimplemented!("property {name}"),
                }
            }
        }
    }
}

impl GstObjectImpl for RfbSink {}

impl ElementImpl for RfbSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Remote framebuffer sink",
                "Sink/Network",
                "Serves encoded video to browsers over WebSocket with a WebCodecs viewer at http://ADDRESS:PORT/ \
                 (example: gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency ! rfbsink, \
                 then open http://127.0.0.1:8080/)",
                "rfbsink developers",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let raw = gst::Structure::builder("video/x-raw")
                .field(
                    "format",
                    gst::List::new(crate::tiles::SOURCE_FORMATS.iter().copied()),
                )
                .field("width", gst::IntRange::new(1, MAX_DIMENSION as i32))
                .field("height", gst::IntRange::new(1, MAX_DIMENSION as i32))
                .field(
                    "framerate",
                    gst::FractionRange::new(
                        gst::Fraction::new(0, 1),
                        gst::Fraction::new(i32::MAX, 1),
                    ),
                )
                .build();
            let caps = gst::Caps::builder_full()
                .structure(
                    gst::Structure::builder("video/x-h264")
                        .field("stream-format", gst::List::new(["byte-stream", "avc"]))
                        .field("alignment", "au")
                        .field("profile", gst::List::new(H264_PROFILES))
                        .build(),
                )
                .structure(gst::Structure::new_empty("video/x-vp8"))
                // Any profile: vp9enc does not follow downstream's (it fails instead of
                // converting); set_caps() warns about those that browsers may not decode.
                .structure(gst::Structure::new_empty("video/x-vp9"))
                .structure(
                    gst::Structure::builder("video/x-av1")
                        .field("stream-format", "obu-stream")
                        .field("alignment", "tu")
                        .build(),
                )
                .structure(gst::Structure::new_empty("image/jpeg"))
                .structure(gst::Structure::new_empty("image/png"))
                .structure(gst::Structure::new_empty("image/webp"))
                .build();
            // Raw video: rfbsink encodes it losslessly itself (docs/protocol.md, "Raw frames").
            let mut sink = caps.clone();
            sink.make_mut().append_structure(raw.clone());
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &sink,
                )
                .unwrap(),
                // Other encodings of the same picture, for viewers on slower links
                // (docs/protocol.md, "Renditions"): encoded only, each viewer switches at
                // keyframes.
                gst::PadTemplate::new(
                    "rendition_%u",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
                    &caps,
                )
                .unwrap(),
                // Sound: Opus packets, to every viewer that asks for it (docs/protocol.md,
                // "Audio").
                gst::PadTemplate::new(
                    "audio",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
                    &gst::Caps::builder("audio/x-opus")
                        .field("channel-mapping-family", 0i32)
                        .field("channels", gst::IntRange::new(1, 2))
                        .build(),
                )
                .unwrap(),
                // The same pictures as the encoded stream, raw: the lossless stills that refine
                // it once it idles (docs/protocol.md, "Refine").
                gst::PadTemplate::new(
                    "refine",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Request,
                    &gst::Caps::from(raw),
                )
                .unwrap(),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }

    fn change_state(
        &self,
        transition: gst::StateChange,
    ) -> Result<gst::StateChangeSuccess, gst::StateChangeError> {
        let obj = self.obj();
        match transition {
            gst::StateChange::ReadyToPaused => {
                // Sound alone (nothing linked to the sink pad): no picture will ever preroll.
                let mut audio = self.audio.lock().unwrap();
                if audio.pad.as_ref().is_some_and(|p| p.is_linked())
                    && !obj.sink_pad().is_linked()
                    && obj.is_async()
                {
                    obj.set_async(false);
                    audio.unset_async = true;
                }
            }
            gst::StateChange::PausedToReady => {
                let mut audio = self.audio.lock().unwrap();
                if std::mem::take(&mut audio.unset_async) {
                    obj.set_async(true);
                }
            }
            _ => {}
        }
        self.parent_change_state(transition)
    }

    fn request_new_pad(
        &self,
        templ: &gst::PadTemplate,
        name: Option<&str>,
        _caps: Option<&gst::Caps>,
    ) -> Option<gst::Pad> {
        if templ.name_template() == "rendition_%u" {
            return self.request_rendition_pad(templ, name);
        }
        if templ.name_template() == "audio" {
            return self.request_audio_pad(templ);
        }
        let mut refine = self.refine.lock().unwrap();
        if refine.pad.is_some() {
            gst::warning!(CAT, imp = self, "rfbsink has one refine pad, it exists");
            return None;
        }
        let pad = gst::Pad::builder_from_template(templ)
            .name("refine")
            .chain_function(|_pad, parent, buffer| {
                RfbSink::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.refine_chain(buffer),
                )
            })
            .event_function(|_pad, parent, event| {
                RfbSink::catch_panic_pad_function(parent, || false, |imp| imp.refine_event(event))
            })
            .build();
        if self.obj().current_state() > gst::State::Ready {
            let _ = pad.set_active(true);
        }
        refine.pad = Some(pad.clone());
        drop(refine);
        if self.obj().add_pad(&pad).is_err() {
            self.refine.lock().unwrap().pad = None;
            return None;
        }
        Some(pad)
    }

    fn release_pad(&self, pad: &gst::Pad) {
        let rendition = {
            let mut renditions = self.renditions.lock().unwrap();
            let id = renditions
                .iter()
                .find(|(_, r)| &r.pad == pad)
                .map(|(id, _)| *id);
            id.inspect(|id| {
                renditions.remove(id);
            })
        };
        if let Some(id) = rendition {
            if let Some(hub) = self.hub() {
                hub.remove_rendition(id);
            }
            let _ = pad.set_active(false);
            let _ = self.obj().remove_pad(pad);
            return;
        }
        {
            let mut audio = self.audio.lock().unwrap();
            if audio.pad.as_ref() == Some(pad) {
                *audio = AudioPad {
                    config_id: audio.config_id,
                    seq: audio.seq,
                    ..AudioPad::default()
                };
                drop(audio);
                let _ = pad.set_active(false);
                let _ = self.obj().remove_pad(pad);
                return;
            }
        }
        {
            let mut refine = self.refine.lock().unwrap();
            if refine.pad.as_ref() != Some(pad) {
                return;
            }
            refine.pad = None;
            refine.generation += 1;
        }
        self.refine_raw.lock().unwrap().clear();
        let _ = pad.set_active(false);
        let _ = self.obj().remove_pad(pad);
    }
}

impl BaseSinkImpl for RfbSink {
    fn caps(&self, filter: Option<&gst::Caps>) -> Option<gst::Caps> {
        let caps = self.sink_caps();
        Some(match filter {
            Some(f) => f.intersect_with_mode(&caps, gst::CapsIntersectMode::First),
            None => caps,
        })
    }

    fn query(&self, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::AcceptCaps(q) = query.view_mut() {
            let caps = q.caps_owned();
            let ok = caps.can_intersect(&self.sink_caps());
            if !ok {
                self.explain_refused_caps(&caps);
            }
            q.set_result(ok);
            return true;
        }
        BaseSinkImplExt::parent_query(self, query)
    }

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let relay = settings.relay()?;
        let mut server_settings = settings.server(self.rate_control(&settings))?;
        server_settings.relay = relay.clone();
        self.counters.reset();
        {
            let mut raw = self.raw.lock().unwrap();
            (raw.tiles_sent, raw.tiles_total) = (0, 0);
        }
        self.refine.lock().unwrap().sent_count = 0;
        *self.stream.lock().unwrap() = StreamTracker::default();

        let weak = self.obj().downgrade();
        let handlers = Handlers {
            message: {
                let weak = weak.clone();
                Box::new(move |client_id, msg| {
                    if let Some(obj) = weak.upgrade() {
                        obj.imp().on_client_message(client_id, msg);
                    }
                })
            },
            request_keyframe: {
                let weak = weak.clone();
                Box::new(move |rendition| {
                    if let Some(obj) = weak.upgrade() {
                        obj.imp().request_keyframe(rendition);
                    }
                })
            },
            overloaded: {
                let weak = weak.clone();
                Box::new(move |overload| {
                    if let Some(obj) = weak.upgrade() {
                        obj.imp().client_overloaded(overload);
                    }
                })
            },
            target_bitrate: {
                let weak = weak.clone();
                Box::new(move |_| {
                    if let Some(obj) = weak.upgrade() {
                        obj.imp().apply_target_bitrate();
                    }
                })
            },
        };
        let server = Server::start(&server_settings, handlers, self.obj().clone().upcast())
            .map_err(|e| {
                let kind = if e.is_busy() {
                    gst::ResourceError::Busy
                } else if e.is_settings() {
                    gst::ResourceError::Settings
                } else {
                    gst::ResourceError::OpenReadWrite
                };
                gst::error_msg!(kind, ("{e}"))
            })?;
        if let Some(e) = &server.webtransport_off {
            let kind = if e.is_busy() {
                gst::ResourceError::Busy
            } else {
                gst::ResourceError::OpenReadWrite
            };
            gst::element_imp_warning!(
                self,
                kind,
                ("WebTransport is off, viewers use WebSocket: {e}")
            );
        }
        let mut server = server;
        for (id, rendition) in self.renditions.lock().unwrap().iter_mut() {
            rendition.stream = StreamTracker::for_rendition(*id);
            server.hub.add_rendition(*id);
        }
        if let Some(relay) = relay {
            let public = relay.public_url();
            let broadcast = relay.broadcast.clone();
            let events = {
                let weak = weak.clone();
                let (public, broadcast) = (public.clone(), broadcast.clone());
                // Its first news may come before start() returns: it names the relay itself.
                Arc::new(move |event: RelayEvent| {
                    if let Some(obj) = weak.upgrade() {
                        obj.imp().relay_event(event, &public, &broadcast);
                    }
                })
            };
            let publisher = Publisher::start(relay, events)
                .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{e}")))?;
            server.hub.set_relay(Arc::new(publisher));
            gst::info!(
                CAT,
                imp = self,
                "publishing {broadcast} to the relay at {public}"
            );
            eprintln!("rfbsink: publishing to relay {public} as {broadcast}");
        }
        let (url, view_url, local) = (server.url.clone(), server.view_url.clone(), server.local);
        gst::info!(CAT, imp = self, "serving the viewer at {url}");
        if !server.https && !local.ip().is_loopback() {
            gst::element_imp_warning!(
                self,
                gst::ResourceError::Settings,
                ("Serving plain http on {local}: browsers on other machines get no WebCodecs there (no secure context); set https=true or use an SSH tunnel to localhost")
            );
        }
        // A gst-launch-1.0 user sees this without any flag (docs/security.md).
        eprintln!("rfbsink: viewer at {url}");
        if server_settings.tokens.is_some() {
            eprintln!("rfbsink: view-only link {view_url}");
        }
        if settings.stats_interval_ms > 0 {
            let period = Duration::from_millis(settings.stats_interval_ms.into());
            server.every(period, move || {
                let Some(obj) = weak.upgrade() else {
                    return false;
                };
                let msg = gst::message::Element::builder(obj.imp().stats())
                    .src(&obj)
                    .build();
                let _ = obj.post_message(msg);
                true
            });
        }
        let msg = gst::message::Element::builder(
            gst::Structure::builder("rfbsink-listening")
                .field("url", &url)
                .field("view-url", &view_url)
                .field("address", local.ip().to_string())
                .field("port", local.port() as u32)
                .field(
                    "webtransport-port",
                    server.webtransport_port.map_or(0, u32::from),
                )
                .build(),
        )
        .src(&*self.obj())
        .build();
        *self.state.lock().unwrap() = State::Started(server);
        let _ = self.obj().post_message(msg);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::take(&mut *self.state.lock().unwrap());
        if let State::Started(server) = state {
            let url = server.url.clone();
            drop(server);
            gst::info!(CAT, imp = self, "stopped serving {url}");
        }
        *self.encoder.lock().unwrap() = None;
        // The run's pictures go with it (the next run gets new caps); its figures stay
        // readable in stats until the next start.
        self.raw.lock().unwrap().clear();
        self.raw_active.store(false, Ordering::Relaxed);
        self.refine_raw.lock().unwrap().clear();
        let mut refine = self.refine.lock().unwrap();
        *refine = Refine {
            pad: refine.pad.take(),
            sent_count: refine.sent_count,
            ..Refine::default()
        };
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        gst::debug!(CAT, imp = self, "caps {caps}");
        if let Some(s) = caps.structure(0) {
            match s.get::<&str>("profile") {
                Ok(p)
                    if s.name() == "video/x-vp9"
                        && p != "0"
                        && !self.counters.caps_explained.swap(true, Ordering::Relaxed) =>
                {
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Format,
                        (
                            "VP9 profile {p} (4:4:4 or more than 8 bits): hardware decoders and many browsers do not decode it; put video/x-raw,format=I420 before vp9enc for profile 0"
                        )
                    );
                }
                _ => {}
            }
        }
        let result = streamable_caps_info(caps).and_then(|info| {
            let mut raw = self.raw.lock().unwrap();
            match info.raw {
                Some(format) => raw.set_caps(caps, format)?,
                None => raw.clear(),
            }
            self.raw_active.store(raw.is_active(), Ordering::Relaxed);
            self.stream.lock().unwrap().set_caps(info)
        });
        if let Err(e) = result {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("Cannot stream {caps}: {e}")
            );
            return Err(gst::loggable_error!(CAT, "cannot stream {caps}: {e}"));
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let start = std::time::Instant::now();
        self.counters
            .frames_rendered
            .fetch_add(1, Ordering::Relaxed);
        let result = self.render_frame(buffer);
        self.counters
            .render_ns
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        result
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => {
                if let Some(hub) = self.hub() {
                    hub.eos();
                }
            }
            // A flushing seek: cached and queued frames are of the old position.
            gst::EventView::FlushStop(_) => {
                if let Some(hub) = self.hub() {
                    hub.flush(None);
                }
            }
            _ => {}
        }
        self.parent_event(event)
    }
}

impl RfbSink {
    /// A buffer that cannot be streamed (empty, garbage, a corrupt header) is skipped, not the
    /// end of the pipeline: a warning on the bus the first time, a count in stats, and a
    /// keyframe asked for so that the clients recover at once.
    fn skip_frame(&self, hub: &Arc<Hub>, buffer: &gst::Buffer, why: &StreamError) {
        let skipped = self.counters.frames_skipped.fetch_add(1, Ordering::Relaxed);
        if skipped == 0 {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Decode,
                ("Skipping a buffer that cannot be streamed: {why}")
            );
        }
        gst::debug!(CAT, imp = self, "skipping {buffer:?}: {why}");
        hub.request_keyframe(0);
    }

    /// The buffer's running time in microseconds (the frame's `timestamp_us`).
    fn timestamp_us(&self, buffer: &gst::Buffer) -> i64 {
        let obj = self.obj();
        buffer
            .pts()
            .and_then(|pts| {
                obj.segment()
                    .downcast_ref::<gst::ClockTime>()
                    .and_then(|s| s.to_running_time(pts))
            })
            .or_else(|| obj.current_running_time())
            .map(|t| t.useconds() as i64)
            .unwrap_or(0)
    }

    /// Raw video: the element encodes it losslessly into tiles, once for every client.
    fn render_raw(&self, hub: &Arc<Hub>, buffer: &gst::Buffer) -> Result<(), StreamError> {
        let timestamp_us = self.timestamp_us(buffer);
        let mut raw = self.raw.lock().unwrap();
        let config = || {
            self.stream
                .lock()
                .unwrap()
                .config_for(&[], true)
                .ok()
                .flatten()
        };
        if hub.forget_if_unwatched(config) {
            gst::trace!(
                CAT,
                imp = self,
                "nobody watches: raw picture kept, not encoded"
            );
            return Ok(raw.keep(buffer, timestamp_us)?);
        }
        match raw.encode(buffer, timestamp_us)? {
            // The same picture as before: nothing on the wire.
            None => {
                gst::trace!(CAT, imp = self, "raw picture unchanged, nothing sent");
                Ok(())
            }
            // Pushed with the encoder's lock held: a keyframe made from the previous picture
            // never reaches the clients after a newer delta.
            Some(frame) => self.push_raw(hub, frame),
        }
    }

    fn push_raw(&self, hub: &Arc<Hub>, frame: RawFrame) -> Result<(), StreamError> {
        gst::trace!(
            CAT,
            imp = self,
            "raw frame: {} bytes, key {}",
            frame.payload.len(),
            frame.key
        );
        let (config, frame_id) = {
            let mut stream = self.stream.lock().unwrap();
            match stream.config_for(&frame.payload, true)? {
                Some(config) => (config, stream.next_frame_id()),
                None => return Ok(()),
            }
        };
        let header = FrameHeader {
            config_id: config.id,
            frame_id,
            timestamp_us: frame.timestamp_us,
            key: frame.key,
            refine: false,
        };
        hub.push(0, Frame::new(header, config, Bytes::from(frame.payload)));
        Ok(())
    }

    /// A client waits for a full raw picture: the last one goes out whole now.
    fn push_raw_keyframe(&self) {
        let Some(hub) = self.hub() else { return };
        let mut raw = self.raw.lock().unwrap();
        if let Some(frame) = raw.keyframe() {
            gst::debug!(CAT, imp = self, "sending the last raw picture whole");
            if let Err(e) = self.push_raw(&hub, frame) {
                gst::warning!(CAT, imp = self, "cannot send a raw keyframe: {e}");
            }
        } else {
            // No picture yet: the first one is a keyframe anyway.
            raw.force_key();
        }
    }

    fn render_frame(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(hub) = self.hub() else {
            return Err(gst::FlowError::Flushing);
        };
        if self.raw.lock().unwrap().is_active() {
            if let Err(e) = self.render_raw(&hub, buffer) {
                self.skip_frame(&hub, buffer, &e);
            }
            return Ok(gst::FlowSuccess::Ok);
        }
        let delta = buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let payload = self.payload(buffer.clone())?;

        let (config, frame_id, key) = {
            let mut stream = self.stream.lock().unwrap();
            // Every still image is a keyframe, whatever its encoder flags (pngenc and webpenc
            // mark their buffers as deltas).
            let key = !delta || stream.is_image();
            match stream.config_for(&payload, key) {
                Ok(Some(config)) => (config, stream.next_frame_id(), key),
                Ok(None) => {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "dropping a delta frame before the first keyframe"
                    );
                    return Ok(gst::FlowSuccess::Ok);
                }
                Err(e) => {
                    drop(stream);
                    self.skip_frame(&hub, buffer, &e);
                    return Ok(gst::FlowSuccess::Ok);
                }
            }
        };

        let timestamp_us = self.timestamp_us(buffer);
        self.counters
            .last_running_time
            .store(timestamp_us.max(0) as u64 * 1000, Ordering::Relaxed);
        let header = FrameHeader {
            config_id: config.id,
            frame_id,
            timestamp_us,
            key,
            refine: false,
        };
        // Before the push: a still made for the previous picture is now stale and never goes
        // out after this frame.
        self.refine_touch(Some(timestamp_us));
        hub.push(0, Frame::new(header, config, payload));
        Ok(gst::FlowSuccess::Ok)
    }

    /// A buffer's bytes, zero copy: the frame keeps the buffer mapped; every client shares that
    /// memory.
    fn payload(&self, buffer: gst::Buffer) -> Result<Bytes, gst::FlowError> {
        let mapped = buffer.into_mapped_buffer_readable().map_err(|_| {
            gst::element_imp_error!(
                self,
                gst::ResourceError::Read,
                ("Cannot map buffer readable")
            );
            gst::FlowError::Error
        })?;
        Ok(Bytes::from_owner(mapped))
    }

    /// The `audio` pad: one an element.
    fn request_audio_pad(&self, templ: &gst::PadTemplate) -> Option<gst::Pad> {
        let mut audio = self.audio.lock().unwrap();
        if audio.pad.is_some() {
            gst::warning!(CAT, imp = self, "rfbsink has one audio pad, it exists");
            return None;
        }
        let pad = gst::Pad::builder_from_template(templ)
            .name("audio")
            .chain_function(|_pad, parent, buffer| {
                RfbSink::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.audio_chain(buffer),
                )
            })
            .event_function(|_pad, parent, event| {
                RfbSink::catch_panic_pad_function(parent, || false, |imp| imp.audio_event(event))
            })
            .query_function(|pad, parent, query| {
                RfbSink::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.audio_query(pad, query),
                )
            })
            .build();
        if self.obj().current_state() > gst::State::Ready {
            let _ = pad.set_active(true);
        }
        audio.pad = Some(pad.clone());
        drop(audio);
        if self.obj().add_pad(&pad).is_err() {
            self.audio.lock().unwrap().pad = None;
            return None;
        }
        Some(pad)
    }

    /// An Opus packet: checked (a broken one would stop the viewers' decoders), then to every
    /// viewer that asked for sound. Like render(), it never waits on a client.
    fn audio_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(hub) = self.hub() else {
            return Err(gst::FlowError::Flushing);
        };
        if buffer.flags().contains(gst::BufferFlags::HEADER) {
            // OpusHead and OpusTags: the viewers' decoders need neither for mono and stereo.
            return Ok(gst::FlowSuccess::Ok);
        }
        let pts = buffer.pts();
        let payload = self.payload(buffer)?;
        if let Err(e) = audio::packet_samples(&payload) {
            if self.counters.audio_skipped.fetch_add(1, Ordering::Relaxed) == 0 {
                gst::element_imp_warning!(
                    self,
                    gst::StreamError::Decode,
                    ("Skipping an audio packet that cannot be played: {e}")
                );
            }
            gst::debug!(CAT, imp = self, "skipping an audio packet: {e}");
            return Ok(gst::FlowSuccess::Ok);
        }
        let packet = {
            let mut a = self.audio.lock().unwrap();
            let Some(config) = a.config.clone() else {
                gst::element_imp_error!(
                    self,
                    gst::CoreError::Negotiation,
                    ("The audio pad got a buffer before its caps")
                );
                return Err(gst::FlowError::NotNegotiated);
            };
            let timestamp_us = pts
                .and_then(|pts| a.segment.to_running_time(pts))
                .or_else(|| self.obj().current_running_time())
                .map_or(0, |t| t.useconds() as i64);
            a.seq += 1;
            AudioPacket::new(config, a.seq - 1, timestamp_us, payload)
        };
        self.counters.audio_packets.fetch_add(1, Ordering::Relaxed);
        hub.push_audio(packet);
        Ok(gst::FlowSuccess::Ok)
    }

    fn audio_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => {
                let caps = c.caps();
                match audio::config_from_caps(caps) {
                    Ok(channels) => {
                        let mut a = self.audio.lock().unwrap();
                        a.config_id += 1;
                        a.config = Some(Arc::new(AudioConfig {
                            id: a.config_id,
                            channels,
                        }));
                        true
                    }
                    Err(e) => {
                        gst::element_imp_error!(
                            self,
                            gst::StreamError::Format,
                            ("Cannot stream {caps} on the audio pad: {e}")
                        );
                        false
                    }
                }
            }
            gst::EventView::Segment(s) => {
                if let Some(segment) = s.segment().downcast_ref::<gst::ClockTime>() {
                    self.audio.lock().unwrap().segment = segment.clone();
                }
                true
            }
            gst::EventView::Eos(_) => {
                // Sound alone: BaseSink posts EOS for its sink pad only, so say it here.
                if !self.obj().sink_pad().is_linked() {
                    if let Some(hub) = self.hub() {
                        hub.eos();
                    }
                    let _ = self
                        .obj()
                        .post_message(gst::message::Eos::builder().src(&*self.obj()).build());
                }
                true
            }
            _ => true,
        }
    }

    /// Caps that are not Opus are refused with a reason on the bus (a decoder's raw audio
    /// linked straight to rfbsink, a multichannel encoder).
    fn audio_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::AcceptCaps(q) = query.view_mut() {
            let caps = q.caps_owned();
            let ok = caps.can_intersect(&pad.pad_template_caps());
            if !ok {
                if let Err(why) = audio::config_from_caps(&caps) {
                    if !self.counters.caps_explained.swap(true, Ordering::Relaxed) {
                        gst::element_imp_warning!(self, gst::StreamError::Format, ("{why}"));
                    }
                }
            }
            q.set_result(ok);
            return true;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }

    /// A `rendition_%u` pad: `rendition_N` when asked by name (N from 1 to `MAX_RENDITIONS`),
    /// else the lowest free number.
    fn request_rendition_pad(
        &self,
        templ: &gst::PadTemplate,
        name: Option<&str>,
    ) -> Option<gst::Pad> {
        let mut renditions = self.renditions.lock().unwrap();
        let id = match name {
            Some(name) => match name
                .strip_prefix("rendition_")
                .and_then(|n| n.parse::<u32>().ok())
            {
                Some(id) if (1..=MAX_RENDITIONS).contains(&id) => id,
                _ => {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "no pad '{name}': rendition pads are rendition_1 to rendition_{MAX_RENDITIONS}"
                    );
                    return None;
                }
            },
            None => match (1..=MAX_RENDITIONS).find(|id| !renditions.contains_key(id)) {
                Some(id) => id,
                None => {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "rfbsink takes at most {MAX_RENDITIONS} renditions"
                    );
                    return None;
                }
            },
        };
        if renditions.contains_key(&id) {
            gst::warning!(CAT, imp = self, "rendition_{id} exists");
            return None;
        }
        let pad = gst::Pad::builder_from_template(templ)
            .name(format!("rendition_{id}"))
            .chain_function(move |_pad, parent, buffer| {
                RfbSink::catch_panic_pad_function(
                    parent,
                    || Err(gst::FlowError::Error),
                    |imp| imp.rendition_chain(id, buffer),
                )
            })
            .event_function(move |_pad, parent, event| {
                RfbSink::catch_panic_pad_function(
                    parent,
                    || false,
                    |imp| imp.rendition_event(id, event),
                )
            })
            .build();
        if self.obj().current_state() > gst::State::Ready {
            let _ = pad.set_active(true);
        }
        renditions.insert(
            id,
            RenditionPad {
                pad: pad.clone(),
                stream: StreamTracker::for_rendition(id),
                segment: gst::FormattedSegment::new(),
            },
        );
        drop(renditions);
        if self.obj().add_pad(&pad).is_err() {
            self.renditions.lock().unwrap().remove(&id);
            return None;
        }
        if let Some(hub) = self.hub() {
            hub.add_rendition(id);
        }
        Some(pad)
    }

    /// A frame of rendition `id`: to the viewers on it, and to those waiting for its keyframe to
    /// move onto it. Frame ids come from the one sequence every rendition shares (a viewer's
    /// acks stay in order across a switch).
    fn rendition_chain(
        &self,
        id: u32,
        buffer: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(hub) = self.hub() else {
            return Err(gst::FlowError::Flushing);
        };
        let delta = buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
        let running_time = buffer.pts();
        let payload = self.payload(buffer)?;
        let (config, key, timestamp_us) = {
            let mut renditions = self.renditions.lock().unwrap();
            let Some(r) = renditions.get_mut(&id) else {
                return Err(gst::FlowError::Flushing);
            };
            let key = !delta || r.stream.is_image();
            let timestamp_us = running_time
                .and_then(|pts| r.segment.to_running_time(pts))
                .or_else(|| self.obj().current_running_time())
                .map_or(0, |t| t.useconds() as i64);
            match r.stream.config_for(&payload, key) {
                Ok(Some(config)) => (config, key, timestamp_us),
                Ok(None) => return Ok(gst::FlowSuccess::Ok),
                Err(e) => {
                    drop(renditions);
                    self.counters.frames_skipped.fetch_add(1, Ordering::Relaxed);
                    gst::warning!(CAT, imp = self, "rendition {id}: skipping a buffer: {e}");
                    hub.request_keyframe(id);
                    return Ok(gst::FlowSuccess::Ok);
                }
            }
        };
        let frame_id = self.stream.lock().unwrap().next_frame_id();
        let header = FrameHeader {
            config_id: config.id,
            frame_id,
            timestamp_us,
            key,
            refine: false,
        };
        hub.push(id, Frame::new(header, config, payload));
        Ok(gst::FlowSuccess::Ok)
    }

    fn rendition_event(&self, id: u32, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => {
                let caps = c.caps();
                let result = streamable_caps_info(caps).and_then(|info| {
                    if info.raw.is_some() {
                        return Err(StreamError::NotEncoded);
                    }
                    let mut renditions = self.renditions.lock().unwrap();
                    match renditions.get_mut(&id) {
                        Some(r) => r.stream.set_caps(info),
                        None => Ok(()),
                    }
                });
                if let Err(e) = result {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        ("Cannot stream {caps} on rendition_{id}: {e}")
                    );
                    return false;
                }
                true
            }
            gst::EventView::Segment(s) => {
                if let Some(segment) = s.segment().downcast_ref::<gst::ClockTime>() {
                    if let Some(r) = self.renditions.lock().unwrap().get_mut(&id) {
                        r.segment = segment.clone();
                    }
                }
                true
            }
            gst::EventView::FlushStop(_) => {
                if let Some(hub) = self.hub() {
                    hub.flush(Some(id));
                }
                true
            }
            // Nothing downstream: stream-start, EOS (the sink pad's says the stream ended) and
            // the rest end here.
            _ => true,
        }
    }

    /// A raw picture on the refine pad: kept (a reference, no copy) for the next still.
    fn refine_chain(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        if let Err(e) = self.refine_raw.lock().unwrap().keep(&buffer, 0) {
            gst::element_imp_error!(
                self,
                gst::StreamError::Format,
                ("Cannot keep the refine pad's picture: {e}")
            );
            return Err(gst::FlowError::Error);
        }
        self.refine_touch(None);
        Ok(gst::FlowSuccess::Ok)
    }

    fn refine_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => {
                let caps = c.caps();
                let result = caps_info(caps).and_then(|info| {
                    let format = info.raw.ok_or(StreamError::NotRaw)?;
                    Ok(self.refine_raw.lock().unwrap().set_caps(caps, format)?)
                });
                if let Err(e) = result {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Format,
                        ("Cannot refine with {caps}: {e}")
                    );
                    return false;
                }
                true
            }
            gst::EventView::FlushStop(_) => {
                self.refine_raw.lock().unwrap().forget();
                self.refine.lock().unwrap().generation += 1;
                true
            }
            // Nothing downstream: stream-start, segment, EOS and the rest end here.
            _ => true,
        }
    }

    /// A buffer on either pad (`Some`: the encoded stream's, with its timestamp): a still is due
    /// `refine-delay` from now, if nothing else arrives meanwhile.
    fn refine_touch(&self, timestamp_us: Option<i64>) {
        // The common case, on render()'s thread: no refine pad, nothing to do.
        if self.refine.lock().unwrap().pad.is_none() {
            return;
        }
        let delay = Duration::from_millis(self.settings.lock().unwrap().refine_delay_ms as u64);
        let mut refine = self.refine.lock().unwrap();
        if refine.pad.is_none() {
            return;
        }
        refine.generation += 1;
        refine.sent = false;
        if let Some(t) = timestamp_us {
            refine.timestamp_us = t;
        }
        refine.due = Some(Instant::now() + delay);
        if refine.timer {
            return;
        }
        refine.timer = true;
        let weak = self.obj().downgrade();
        RUNTIME.spawn(async move {
            let generation = loop {
                let due = {
                    let Some(obj) = weak.upgrade() else { return };
                    let mut refine = obj.imp().refine.lock().unwrap();
                    match refine.due {
                        Some(due) if due > Instant::now() => due,
                        _ => {
                            refine.timer = false;
                            refine.due = None;
                            break refine.generation;
                        }
                    }
                };
                tokio::time::sleep_until(due.into()).await;
            };
            // Off the runtime's threads: a whole picture takes milliseconds to compress.
            let _ = tokio::task::spawn_blocking(move || {
                if let Some(obj) = weak.upgrade() {
                    obj.imp().send_refine(generation);
                }
            })
            .await;
        });
    }

    /// Both pads idled: the last raw picture goes out whole, once for every client, unless a
    /// newer buffer arrived meanwhile.
    fn send_refine(&self, generation: u64) {
        let Some(hub) = self.hub() else { return };
        // Raw video on the main pad is lossless already.
        if self.raw_active.load(Ordering::Relaxed) {
            return;
        }
        let Some(config) = hub.config() else { return };
        let frame = {
            let mut raw = self.refine_raw.lock().unwrap();
            {
                let refine = self.refine.lock().unwrap();
                if refine.generation != generation || refine.sent {
                    return;
                }
            }
            let Some((width, height)) = raw.size() else {
                return;
            };
            if (width, height) != (config.codec.width, config.codec.height) {
                let mut refine = self.refine.lock().unwrap();
                if !std::mem::replace(&mut refine.size_warned, true) {
                    drop(refine);
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Format,
                        (
                            "Not refining: the refine pad's pictures are {width}x{height}, the stream's {}x{}",
                            config.codec.width,
                            config.codec.height
                        )
                    );
                }
                return;
            }
            match raw.keyframe() {
                Some(frame) => frame,
                None => return,
            }
        };
        // Pushed with `refine` held: render() bumps the generation before it pushes a newer
        // frame, so a still never reaches a client after the picture that replaced it.
        let mut refine = self.refine.lock().unwrap();
        if refine.generation != generation || refine.sent {
            return;
        }
        let frame_id = self.stream.lock().unwrap().next_frame_id();
        let header = FrameHeader {
            config_id: config.id,
            frame_id,
            timestamp_us: refine.timestamp_us,
            key: false,
            refine: true,
        };
        gst::debug!(
            CAT,
            imp = self,
            "refine: {} bytes of lossless still",
            frame.payload.len()
        );
        hub.push_refine(Frame::new(header, config, Bytes::from(frame.payload)));
        refine.sent = true;
        refine.sent_count += 1;
    }
}
