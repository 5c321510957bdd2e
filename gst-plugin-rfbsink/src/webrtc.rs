// SPDX-License-Identifier: MPL-2.0

//! WebRTC peers (docs/protocol.md, "WebRTC"): a third wire adapter for the session layer.
//!
//! Each peer is a small pipeline of the element's own, `appsrc ! <payloader> ! webrtcbin`, fed by
//! the peer's place in the hub like any WebSocket client: the encoded frames are the stream's own
//! buffers (shared, never copied, never encoded again); a peer adds only its packetization (its
//! payload type and sequence numbers, so that the hub can skip it to a keyframe frame by frame),
//! SRTP and DTLS. The browser's offer is answered once ICE gathering is done (no trickle needed;
//! trickled candidates are taken too). Text messages (input, acks, `app.*`) travel on the data
//! channel the viewer opens, `rfb`, through the same session layer. A PLI or FIR from the peer asks
//! the hub for a keyframe (rate-limited and shared with the other clients, as for WebSocket).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, c_void, CString};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gst::prelude::*;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use crate::codec::{Codec, CodecConfig, Format};
use crate::hub::{Client, Frame, Peer};
use crate::protocol::{self, Envelope, StreamConfig, MAX_CLIENT_MESSAGE};
use crate::runtime::RUNTIME;
use crate::session::{self, Context, Inbound, Keepalive, WireError, WireRecv, WireSend};
use crate::stats::NetworkStats;
use crate::CAT;

/// An offer is an SDP text of a few KiB; more is refused (413).
pub(crate) const MAX_OFFER_BYTES: u64 = 64 * 1024;
/// Offers being answered at once; more get 503 at once (each one is a pipeline and ICE
/// gathering while it lasts).
const MAX_NEGOTIATIONS: usize = 8;
/// An answer must be ready within this long.
const NEGOTIATION_TIMEOUT: Duration = Duration::from_secs(10);
/// ICE gathering: host candidates take milliseconds; STUN and TURN get this long.
const GATHERING_TIMEOUT: Duration = Duration::from_secs(3);
/// A peer must connect (ICE and DTLS) within this long after its answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Encoded bytes waiting in a peer's pipeline (its socket is slow); past this it skips to a
/// keyframe instead.
const MAX_QUEUED_BYTES: u64 = 8 * 1024 * 1024;
/// Text waiting in a peer's data channel; past this the peer is not reading.
const MAX_CHANNEL_BUFFERED: u64 = 4 * 1024 * 1024;
/// Messages from the data channel waiting for the session's read loop.
const INBOUND_QUEUE: usize = 256;
/// Candidates taken from one `PATCH`.
const MAX_TRICKLED_CANDIDATES: usize = 32;
/// The data channel the viewer opens for the protocol's text messages.
pub(crate) const CHANNEL_LABEL: &str = "rfb";
/// Packets leave with this MTU (room for SRTP and TURN headers on a 1500-byte path).
const RTP_MTU: u32 = 1200;

/// ICE settings (the element's `stun-server` and `turn-server`, and the bound address).
#[derive(Clone, Debug, Default)]
pub(crate) struct IceSettings {
    pub stun_server: Option<String>,
    pub turn_server: Option<String>,
    /// Host candidates on this address only; every interface when `None` (bound to 0.0.0.0).
    pub local_address: Option<IpAddr>,
}

/// Why an offer got no answer: an HTTP status and words for the person reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OfferError {
    pub status: u16,
    pub message: String,
}

impl OfferError {
    fn new(status: u16, message: impl Into<String>) -> OfferError {
        OfferError {
            status,
            message: message.into(),
        }
    }
}

/// A peer's handle for `PATCH` and `DELETE`.
struct Session {
    client: Arc<Client>,
    webrtcbin: gst::Element,
}

/// The WebRTC side of one element: its sessions and its limits.
pub(crate) struct WebRtc {
    ice: IceSettings,
    sessions: Mutex<HashMap<String, Session>>,
    negotiations: Arc<Semaphore>,
}

/// What an answered offer gives the HTTP side.
pub(crate) struct Answer {
    /// The session's id, for `/whep/<id>`.
    pub id: String,
    pub sdp: String,
}

impl WebRtc {
    pub fn new(ice: IceSettings) -> Arc<WebRtc> {
        Arc::new(WebRtc {
            ice,
            sessions: Mutex::default(),
            negotiations: Arc::new(Semaphore::new(MAX_NEGOTIATIONS)),
        })
    }

    /// Answers an SDP offer: checks it, takes a place in the hub, builds the peer's pipeline and
    /// returns the answer with its candidates; the peer then runs on its own.
    pub async fn answer(
        self: &Arc<Self>,
        ctx: &Context,
        offer: &str,
        peer: Peer,
    ) -> Result<Answer, OfferError> {
        let _permit = self.negotiations.clone().try_acquire_owned().map_err(|_| {
            OfferError::new(503, "too many WebRTC offers at once: try again in a moment")
        })?;
        let offer = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes())
            .map_err(|_| OfferError::new(400, "the offer is not an SDP text"))?;
        let config = ctx.hub.config().ok_or_else(|| {
            OfferError::new(
                503,
                "no stream yet: the pipeline has not sent a picture; try again in a moment",
            )
        })?;
        let (rtp_caps, mline) = choose_format(&offer, &config.codec)?;
        let client = session::join(ctx, Envelope::Binary, "webrtc", peer)
            .map_err(|refused| OfferError::new(503, refused.to_string()))?;
        let id = match crate::access::generate_token() {
            Ok(id) => id,
            Err(e) => {
                ctx.hub.remove_client(client.id);
                return Err(OfferError::new(500, e));
            }
        };
        let built = tokio::time::timeout(
            NEGOTIATION_TIMEOUT,
            negotiate(
                ctx,
                &self.ice,
                offer,
                (rtp_caps, mline),
                &config,
                client.clone(),
            ),
        )
        .await
        .unwrap_or_else(|_| Err(OfferError::new(504, "the answer took too long")));
        let (link, sdp) = match built {
            Ok(built) => built,
            Err(e) => {
                ctx.hub.remove_client(client.id);
                gst::info!(
                    CAT,
                    obj = &ctx.obj,
                    "webrtc: offer not answered: {}",
                    e.message
                );
                return Err(e);
            }
        };
        self.sessions.lock().unwrap().insert(
            id.clone(),
            Session {
                client: client.clone(),
                webrtcbin: link.webrtcbin.clone(),
            },
        );
        let this = self.clone();
        let ctx = ctx.clone();
        let session_id = id.clone();
        RUNTIME.spawn(async move {
            run_peer(&ctx, client, link).await;
            this.sessions.lock().unwrap().remove(&session_id);
        });
        Ok(Answer { id, sdp })
    }

    /// Candidates trickled by the peer (`PATCH`, an SDP fragment). False: no such session.
    pub fn add_candidates(&self, id: &str, fragment: &str) -> bool {
        let sessions = self.sessions.lock().unwrap();
        let Some(session) = sessions.get(id) else {
            return false;
        };
        // A few candidates per m-line is what browsers trickle; more is not a client's.
        let candidates = fragment
            .lines()
            .filter_map(|line| line.trim_end().strip_prefix("a="))
            .filter(|c| c.starts_with("candidate:") && c.len() < 512)
            .take(MAX_TRICKLED_CANDIDATES);
        for candidate in candidates {
            // One transport for everything (max-bundle): m-line 0.
            session
                .webrtcbin
                .emit_by_name::<()>("add-ice-candidate", &[&0u32, &candidate]);
        }
        true
    }

    /// Ends a session (`DELETE`). False: no such session.
    pub fn delete(&self, id: &str) -> bool {
        match self.sessions.lock().unwrap().remove(id) {
            Some(session) => {
                session
                    .client
                    .close(protocol::close::NORMAL, "the WebRTC session was deleted");
                true
            }
            None => false,
        }
    }
}

/// The RTP caps of the offer's payload type that carries the stream's codec as it is, or why
/// there is none.
/// Also returns the index of the video m-line it is in.
///
/// H.264 is chosen the way receivers behave rather than to the letter of the offer (RFC 6184
/// section 8.2.2), because the stream is one encode for every peer and cannot be re-encoded for
/// one: in order of preference a format with packetization-mode=1 and the stream's profile, one
/// whose profile the stream's fits in (constrained baseline in a baseline or high offer), any
/// other packetization-mode=1 format, and last a format without it (mode 0). Real receivers
/// depacketize FU-A whatever mode they offered and decode any level: GStreamer's whepclientsrc
/// offers `profile-level-id=42e016` with no packetization-mode for every stream, and webrtcsink
/// answers it. The offered level is not a bound either (a one-encode stream's level is the
/// encoder's).
fn choose_format(
    offer: &gst_sdp::SDPMessage,
    codec: &CodecConfig,
) -> Result<(gst::Caps, u32), OfferError> {
    let encoding = match codec.codec {
        Codec::H264 => "H264",
        Codec::Vp8 => "VP8",
        Codec::Vp9 => "VP9",
        other => {
            return Err(OfferError::new(
                415,
                format!(
                    "the stream is {}: WebRTC carries H.264, VP8 and VP9 here; watch this stream over WebSocket (the viewer without ?transport=webrtc)",
                    other.name()
                ),
            ))
        }
    };
    let (mline, video) = offer
        .medias()
        .enumerate()
        .find(|(_, m)| m.media() == Some("video") && m.port() != 0)
        .ok_or_else(|| OfferError::new(400, "the offer has no video m-line to send on"))?;
    let mline = mline as u32;
    let profile = codec_profile(codec);
    // (rank, caps): the lowest rank wins, the offer's order breaks ties.
    let mut best: Option<(u8, gst::Caps)> = None;
    let mut offered = Vec::new();
    for format in video.formats() {
        let Ok(pt) = format.parse::<i32>() else {
            continue;
        };
        let Some(caps) = video.caps_from_media(pt) else {
            continue;
        };
        let Some(s) = caps.structure(0) else { continue };
        let name = s.get::<&str>("encoding-name").unwrap_or_default();
        // What it offers, for a refusal: codecs, not the retransmission and FEC formats.
        let repair = ["rtx", "red", "ulpfec", "flexfec-03"];
        if !repair.iter().any(|r| r.eq_ignore_ascii_case(name))
            && !offered
                .iter()
                .any(|o: &String| o.eq_ignore_ascii_case(name))
        {
            offered.push(name.to_owned());
        }
        if !name.eq_ignore_ascii_case(encoding) {
            continue;
        }
        let rank = match codec.codec {
            Codec::H264 => h264_rank(s, profile),
            Codec::Vp9 if s.get::<&str>("profile-id").is_ok_and(|p| p != "0") => continue,
            _ => 0,
        };
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, caps));
        }
    }
    best.map(|(_, caps)| (rtp_caps(caps), mline)).ok_or_else(|| {
        OfferError::new(
            415,
            format!(
                "this client's WebRTC offer does not receive {encoding} (it offers {}; the stream is {}): encode with vp8enc for WebRTC, or watch over WebSocket (the viewer without ?transport=webrtc)",
                if offered.is_empty() {
                    "no video format".to_owned()
                } else {
                    offered.join(", ")
                },
                codec.codec_string
            ),
        )
    })
}

/// How well an offered H.264 format fits the stream (see `choose_format`): 0 is best.
fn h264_rank(s: &gst::StructureRef, stream_profile: Option<&str>) -> u8 {
    let offered = format_h264_profile(s);
    let fit = if offered.is_some() && offered == stream_profile {
        0
    } else if stream_profile
        .zip(offered)
        .is_some_and(|(ours, theirs)| h264_profile_fits(ours, theirs))
    {
        1
    } else {
        2
    };
    // Single NAL units and FU-A: packetization-mode 1; without it, mode 0 (single NAL units).
    let mode = if s.get::<&str>("packetization-mode").ok() == Some("1") {
        0
    } else {
        3
    };
    mode + fit
}

/// Whether a decoder of the `offered` profile decodes a stream of profile `ours`: each profile
/// here decodes the ones before it (as webrtcsink's list of compatible profiles).
fn h264_profile_fits(ours: &str, offered: &str) -> bool {
    const COMPATIBLE: [&str; 6] = [
        "constrained-baseline",
        "baseline",
        "main",
        "constrained-high",
        "high",
        "high-4:4:4",
    ];
    let at = |p: &str| COMPATIBLE.iter().position(|c| *c == p);
    at(ours).zip(at(offered)).is_some_and(|(o, t)| o <= t)
}

/// The offer's caps for one payload type, as webrtcbin wants them on its sink pad.
fn rtp_caps(mut caps: gst::Caps) -> gst::Caps {
    {
        let s = caps.make_mut().structure_mut(0).expect("one structure");
        s.set_name("application/x-rtp");
        // The offer's RTCP feedback (nack, pli, ccm fir) and the rest stay as offered.
    }
    caps
}

/// The stream's H.264 profile, from the codec string `avc1.PPCCLL`.
fn codec_profile(codec: &CodecConfig) -> Option<&'static str> {
    let hex = codec.codec_string.strip_prefix("avc1.")?;
    let idc = u8::from_str_radix(hex.get(..2)?, 16).ok()?;
    let constraints = u8::from_str_radix(hex.get(2..4)?, 16).ok()?;
    Some(h264_profile_name(idc, constraints))
}

/// GStreamer's name of an H.264 profile from `profile-level-id`'s first two bytes (as
/// rtph264pay maps the peer's profile-level-id to its sink caps' `profile`).
fn h264_profile_name(profile_idc: u8, constraints: u8) -> &'static str {
    match profile_idc {
        66 if constraints & 0x40 != 0 => "constrained-baseline",
        66 => "baseline",
        77 => "main",
        88 => "extended",
        100 if constraints & 0x0c == 0x0c => "constrained-high",
        100 if constraints & 0x08 != 0 => "progressive-high",
        100 => "high",
        110 => "high-10",
        122 => "high-4:2:2",
        _ => "high-4:4:4",
    }
}

fn format_h264_profile(s: &gst::StructureRef) -> Option<&str> {
    if let Ok(profile) = s.get::<&str>("profile") {
        return Some(profile);
    }
    let id = s.get::<&str>("profile-level-id").ok()?;
    let idc = u8::from_str_radix(id.get(..2)?, 16).ok()?;
    let constraints = u8::from_str_radix(id.get(2..4)?, 16).ok()?;
    Some(h264_profile_name(idc, constraints))
}

/// The appsrc's caps for a stream configuration.
fn source_caps(codec: &CodecConfig) -> gst::Caps {
    match codec.codec {
        Codec::H264 => match (&codec.format, &codec.description) {
            (Format::Avc, Some(avcc)) => gst::Caps::builder("video/x-h264")
                .field("stream-format", "avc")
                .field("alignment", "au")
                .field("codec_data", gst::Buffer::from_slice(avcc.clone()))
                .build(),
            _ => gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
        },
        Codec::Vp8 => gst::Caps::builder("video/x-vp8").build(),
        _ => gst::Caps::builder("video/x-vp9").build(),
    }
}

/// A peer's pipeline and what its callbacks tell.
struct Link {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    payloader: gst::Element,
    webrtcbin: gst::Element,
    codec: Codec,
    /// The data channel, once the peer opened it.
    channel: Arc<Mutex<Option<gst_webrtc::WebRTCDataChannel>>>,
    inbound: mpsc::Receiver<Inbound>,
    /// Set when the connection failed or closed, or the pipeline failed.
    dead: watch::Receiver<bool>,
    connected: watch::Receiver<bool>,
}

impl Drop for Link {
    fn drop(&mut self) {
        // webrtcbin's shutdown joins its threads: never on the runtime's workers.
        let pipeline = self.pipeline.clone();
        let channel = self.channel.lock().unwrap().take();
        RUNTIME.spawn_blocking(move || {
            if let Some(channel) = channel {
                channel.close();
            }
            let _ = pipeline.set_state(gst::State::Null);
        });
    }
}

/// A reply from a webrtcbin promise, owned.
type Reply = Result<Option<gst::Structure>, gst::PromiseError>;

fn promise() -> (gst::Promise, oneshot::Receiver<Reply>) {
    let (tx, rx) = oneshot::channel();
    let promise = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(reply.map(|s| s.map(|s| s.to_owned())));
    });
    (promise, rx)
}

/// The error a reply carries, if any.
fn reply_error(reply: &Reply) -> Option<String> {
    match reply {
        Err(e) => Some(format!("{e:?}")),
        Ok(Some(s)) => s
            .get::<glib::Error>("error")
            .ok()
            .map(|e| e.message().to_owned()),
        Ok(None) => None,
    }
}

fn make(factory: &str) -> Result<gst::Element, OfferError> {
    gst::ElementFactory::make(factory).build().map_err(|_| {
        OfferError::new(
            500,
            format!("the GStreamer element {factory} is missing (install gstreamer1.0-plugins-bad, gstreamer1.0-plugins-good and gstreamer1.0-nice)"),
        )
    })
}

/// Builds the peer's pipeline and answers the offer.
async fn negotiate(
    ctx: &Context,
    ice: &IceSettings,
    offer: gst_sdp::SDPMessage,
    (rtp_caps, _mline): (gst::Caps, u32),
    config: &StreamConfig,
    client: Arc<Client>,
) -> Result<(Link, String), OfferError> {
    let codec = config.codec.codec;
    let pipeline = gst::Pipeline::with_name(&format!("rfbsink-webrtc-{}", client.id));
    gst::debug!(
        CAT,
        obj = &ctx.obj,
        "webrtc client {}: sending as {rtp_caps}",
        client.id
    );
    let appsrc = gst_app::AppSrc::builder()
        .caps(&source_caps(&config.codec))
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(true)
        .max_bytes(MAX_QUEUED_BYTES * 2)
        .block(false)
        .build();
    let payloader = match codec {
        Codec::H264 => {
            let p = make("rtph264pay")?;
            // Parameter sets before every IDR, so that a peer can start at any keyframe, unless
            // the stream has them in-band (see `RtcSend::frame`).
            p.set_property("config-interval", -1i32);
            p.set_property_from_str("aggregate-mode", "zero-latency");
            p
        }
        Codec::Vp8 => {
            let p = make("rtpvp8pay")?;
            p.set_property_from_str("picture-id-mode", "15-bit");
            p
        }
        _ => {
            let p = make("rtpvp9pay")?;
            p.set_property_from_str("picture-id-mode", "15-bit");
            p
        }
    };
    let pt = rtp_caps
        .structure(0)
        .and_then(|s| s.get::<i32>("payload").ok())
        .unwrap_or(96);
    payloader.set_property("pt", pt as u32);
    payloader.set_property("mtu", RTP_MTU);
    // The payloader sees the payload type and little else downstream. The offer's format
    // parameters (profile-level-id, level) stay in the transceiver's codec preferences for the
    // answer: on the payloader they would become `profile` and `level` requirements on the
    // stream's caps, which the browser does not need (it decodes what it offered, and
    // level-asymmetry-allowed lets the sender's level differ).
    let mut pad_caps = gst::Caps::builder("application/x-rtp")
        .field("media", "video")
        .field("clock-rate", 90000i32)
        .field("payload", pt);
    if let Some(encoding) = rtp_caps
        .structure(0)
        .and_then(|s| s.get::<&str>("encoding-name").ok())
    {
        pad_caps = pad_caps.field("encoding-name", encoding);
    }
    let pad_caps = pad_caps.build();
    payloader
        .static_pad("src")
        .expect("payloaders have a src pad")
        .add_probe(gst::PadProbeType::QUERY_DOWNSTREAM, move |_, info| {
            let Some(gst::PadProbeData::Query(query)) = &mut info.data else {
                return gst::PadProbeReturn::Ok;
            };
            let gst::QueryViewMut::Caps(q) = query.view_mut() else {
                return gst::PadProbeReturn::Ok;
            };
            let caps = match q.filter() {
                Some(filter) => filter.intersect(&pad_caps),
                None => pad_caps.clone(),
            };
            q.set_result(&caps);
            gst::PadProbeReturn::Handled
        });
    if codec == Codec::H264 {
        // Nor does webrtcbin see the stream's profile-level-id on the payloader's caps: when
        // they reach it before the answer is made (the stream's frames come at once), it
        // compares them with the offer's (whepclientsrc offers 42e016 whatever it decodes) and
        // answers the video `inactive`. The answer takes the offer's values instead.
        payloader
            .static_pad("src")
            .expect("payloaders have a src pad")
            .add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, |_, info| {
                let Some(gst::PadProbeData::Event(event)) = &mut info.data else {
                    return gst::PadProbeReturn::Ok;
                };
                let gst::EventView::Caps(c) = event.view() else {
                    return gst::PadProbeReturn::Ok;
                };
                let mut caps = c.caps_owned();
                if let Some(s) = caps.make_mut().structure_mut(0) {
                    s.remove_fields(["profile-level-id", "profile", "level"]);
                }
                *event = gst::event::Caps::new(&caps);
                gst::PadProbeReturn::Ok
            });
    }
    let webrtcbin = make("webrtcbin")?;
    webrtcbin.set_property_from_str("bundle-policy", "max-bundle");
    if let Some(stun) = &ice.stun_server {
        webrtcbin.set_property("stun-server", stun);
    }
    if let Some(turn) = &ice.turn_server {
        webrtcbin.set_property("turn-server", turn);
    }
    let agent = webrtcbin.property::<gst_webrtc::WebRTCICE>("ice-agent");
    // No ICE-TCP: browsers rarely use it and it would listen on more ports.
    if agent.has_property("ice-tcp") {
        agent.set_property("ice-tcp", false);
    }
    if let Some(address) = ice.local_address {
        if !address.is_unspecified() {
            restrict_host_candidates(&ctx.obj, &agent, address);
        }
    }
    pipeline
        .add_many([appsrc.upcast_ref(), &payloader, &webrtcbin])
        .map_err(|e| OfferError::new(500, e.to_string()))?;
    appsrc
        .link(&payloader)
        .map_err(|e| OfferError::new(500, e.to_string()))?;
    let (dead_tx, dead) = watch::channel(false);
    let dead_tx = Arc::new(dead_tx);
    let (connected_tx, connected) = watch::channel(false);
    let connected_tx = Arc::new(connected_tx);
    let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
    let channel: Arc<Mutex<Option<gst_webrtc::WebRTCDataChannel>>> = Arc::default();
    let candidates: Arc<Mutex<Vec<(u32, String)>>> = Arc::default();
    let (gathered_tx, mut gathered) = watch::channel(false);

    // Errors end the peer; nothing else on its bus is kept (a bus nobody reads would grow).
    if let Some(bus) = pipeline.bus() {
        let dead_tx = dead_tx.clone();
        let obj = ctx.obj.clone();
        let id = client.id;
        bus.set_sync_handler(move |_, msg| {
            if let gst::MessageView::Error(e) = msg.view() {
                gst::info!(CAT, obj = &obj, "webrtc client {id}: {}", e.error());
                let _ = dead_tx.send(true);
            }
            gst::BusSyncReply::Drop
        });
    }
    {
        let candidates = candidates.clone();
        webrtcbin.connect("on-ice-candidate", false, move |values| {
            let mline = values[1].get::<u32>().unwrap_or(0);
            if let Ok(candidate) = values[2].get::<String>() {
                candidates.lock().unwrap().push((mline, candidate));
            }
            None
        });
    }
    webrtcbin.connect_notify(Some("ice-gathering-state"), move |el, _| {
        let state = el.property::<gst_webrtc::WebRTCICEGatheringState>("ice-gathering-state");
        if state == gst_webrtc::WebRTCICEGatheringState::Complete {
            let _ = gathered_tx.send(true);
        }
    });
    {
        let dead_tx = dead_tx.clone();
        let obj = ctx.obj.clone();
        let id = client.id;
        // ICE connected counts as connected: webrtcbin 1.22 leaves an answerer's connection-state
        // at `connecting` with some peers (a webrtcbin offerer) although media flows.
        let (ice_connected, ice_dead) = (connected_tx.clone(), dead_tx.clone());
        webrtcbin.connect_notify(Some("ice-connection-state"), move |el, _| {
            use gst_webrtc::WebRTCICEConnectionState as S;
            let state = el.property::<S>("ice-connection-state");
            gst::debug!(CAT, obj = &obj, "webrtc client {id}: ICE {state:?}");
            match state {
                S::Connected | S::Completed => {
                    let _ = ice_connected.send(true);
                }
                S::Failed | S::Closed => {
                    let _ = ice_dead.send(true);
                }
                _ => {}
            }
        });
        let obj = ctx.obj.clone();
        webrtcbin.connect_notify(Some("connection-state"), move |el, _| {
            use gst_webrtc::WebRTCPeerConnectionState as S;
            let state = el.property::<S>("connection-state");
            gst::debug!(CAT, obj = &obj, "webrtc client {id}: {state:?}");
            match state {
                S::Connected => {
                    let _ = connected_tx.send(true);
                }
                S::Failed | S::Closed => {
                    let _ = dead_tx.send(true);
                }
                _ => {}
            }
        });
    }
    {
        let channel = channel.clone();
        let inbound_tx = inbound_tx.clone();
        webrtcbin.connect("on-data-channel", false, move |values| {
            let Ok(dc) = values[1].get::<gst_webrtc::WebRTCDataChannel>() else {
                return None;
            };
            if dc.label().as_deref() != Some(CHANNEL_LABEL) {
                dc.close();
                return None;
            }
            let tx = inbound_tx.clone();
            dc.connect_on_message_string(move |_, text| {
                let text = text.unwrap_or_default();
                let inbound = if text.len() > MAX_CLIENT_MESSAGE {
                    Inbound::TooBig
                } else {
                    Inbound::Message(Bytes::copy_from_slice(text.as_bytes()))
                };
                // A peer that floods faster than the session reads loses the surplus (bounded).
                let _ = tx.try_send(inbound);
            });
            let tx = inbound_tx.clone();
            dc.connect_on_message_data(move |_, _| {
                let _ = tx.try_send(Inbound::Binary);
            });
            *channel.lock().unwrap() = Some(dc);
            None
        });
    }
    // The peer's RTCP (receiver reports, about every second) is hearing from it: a browser that
    // vanished without a DELETE goes quiet and is closed after `client-timeout`.
    if let Some(rtpbin) = webrtcbin
        .downcast_ref::<gst::Bin>()
        .and_then(|bin| bin.by_name("rtpbin"))
    {
        let tx = inbound_tx.clone();
        rtpbin.connect("on-ssrc-active", false, move |_| {
            let _ = tx.try_send(Inbound::Heard);
            None
        });
    }
    // PLI and FIR from the peer arrive at the appsrc as force-key-unit events.
    {
        let hub = Arc::downgrade(&ctx.hub);
        let weak_client = Arc::downgrade(&client);
        appsrc
            .static_pad("src")
            .expect("appsrc has a src pad")
            .add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
                let is_key_request = info
                    .event()
                    .is_some_and(|e| gst_video::UpstreamForceKeyUnitEvent::parse(e).is_ok());
                if !is_key_request {
                    return gst::PadProbeReturn::Ok;
                }
                if let (Some(hub), Some(client)) = (hub.upgrade(), weak_client.upgrade()) {
                    hub.client_needs_keyframe(&client);
                }
                gst::PadProbeReturn::Drop
            });
    }

    let link = Link {
        pipeline: pipeline.clone(),
        appsrc,
        payloader: payloader.clone(),
        webrtcbin: webrtcbin.clone(),
        codec,
        channel,
        inbound,
        dead,
        connected,
    };
    let start = pipeline.clone();
    tokio::task::spawn_blocking(move || start.set_state(gst::State::Playing))
        .await
        .map_err(|e| OfferError::new(500, e.to_string()))?
        .map_err(|_| OfferError::new(500, "the WebRTC pipeline did not start"))?;

    // Our transceiver, before the offer: webrtcbin 1.22 matches the offer's video m-line to an
    // unassociated transceiver of the same kind whose codec preferences fit the offer.
    let sink = webrtcbin
        .request_pad_simple("sink_%u")
        .ok_or_else(|| OfferError::new(500, "webrtcbin gave no sink pad"))?;
    let transceiver = sink
        .property::<Option<gst_webrtc::WebRTCRTPTransceiver>>("transceiver")
        .ok_or_else(|| OfferError::new(500, "webrtcbin's sink pad has no transceiver"))?;
    transceiver.set_direction(gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly);
    // The offer's format without its H.264 profile and level: webrtcbin checks the payloader's
    // caps (the stream's own profile-level-id) against these, and the answer takes the offer's
    // values for what is left out.
    let mut preferences = rtp_caps.clone();
    if let Some(s) = preferences.make_mut().structure_mut(0) {
        s.remove_fields([
            "profile",
            "profile-level-id",
            "level",
            "sprop-parameter-sets",
        ]);
    }
    transceiver.set_codec_preferences(Some(&preferences));
    payloader
        .static_pad("src")
        .expect("payloaders have a src pad")
        .link(&sink)
        .map_err(|e| OfferError::new(500, format!("{e:?}")))?;
    let remote = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
    let (p, reply) = promise();
    webrtcbin.emit_by_name::<()>("set-remote-description", &[&remote, &p]);
    let reply = reply
        .await
        .map_err(|_| OfferError::new(500, "webrtcbin dropped the offer"))?;
    if let Some(e) = reply_error(&reply) {
        return Err(OfferError::new(400, format!("the offer was refused: {e}")));
    }
    let (p, reply) = promise();
    webrtcbin.emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, &p]);
    let reply = reply
        .await
        .map_err(|_| OfferError::new(500, "webrtcbin gave no answer"))?;
    let answer = match &reply {
        Ok(Some(s)) => s.get::<gst_webrtc::WebRTCSessionDescription>("answer").ok(),
        _ => None,
    }
    .ok_or_else(|| {
        OfferError::new(
            400,
            format!(
                "the offer cannot be answered: {}",
                reply_error(&reply).unwrap_or_else(|| "no common media".into())
            ),
        )
    })?;
    let (p, reply) = promise();
    webrtcbin.emit_by_name::<()>("set-local-description", &[&answer, &p]);
    let reply = reply
        .await
        .map_err(|_| OfferError::new(500, "webrtcbin dropped the answer"))?;
    if let Some(e) = reply_error(&reply) {
        return Err(OfferError::new(500, format!("the answer was refused: {e}")));
    }
    let _ = tokio::time::timeout(GATHERING_TIMEOUT, gathered.wait_for(|done| *done)).await;
    let sdp = answer
        .sdp()
        .as_text()
        .map_err(|e| OfferError::new(500, e.to_string()))?;
    let candidates = candidates.lock().unwrap().clone();
    if candidates.is_empty() {
        return Err(OfferError::new(
            500,
            "no ICE candidate: no usable network address here",
        ));
    }
    Ok((link, with_candidates(&sdp, &candidates)))
}

/// The SDP with each m-section's gathered candidates and an end-of-candidates.
fn with_candidates(sdp: &str, candidates: &[(u32, String)]) -> String {
    let mut out = String::with_capacity(sdp.len() + candidates.len() * 80);
    let mut section: Option<u32> = None;
    let flush = |out: &mut String, section: Option<u32>| {
        if let Some(index) = section {
            for (_, c) in candidates.iter().filter(|(m, _)| *m == index) {
                out.push_str("a=");
                out.push_str(c);
                out.push_str("\r\n");
            }
            out.push_str("a=end-of-candidates\r\n");
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("m=") {
            flush(&mut out, section);
            section = Some(section.map_or(0, |s| s + 1));
        }
        if line.starts_with("a=candidate:") || line == "a=end-of-candidates" {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    flush(&mut out, section);
    out
}

/// Host candidates on `address` only (libnice's `nice_agent_add_local_address`): an element
/// bound to loopback or one LAN address must not offer the machine's other addresses.
fn restrict_host_candidates(obj: &gst::Object, ice: &gst_webrtc::WebRTCICE, address: IpAddr) {
    type Init = unsafe extern "C" fn(*mut c_void);
    type FromString = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;
    type AddLocal = unsafe extern "C" fn(*mut c_void, *const c_void) -> c_int;
    if !ice.has_property("agent") {
        gst::warning!(
            CAT,
            obj = obj,
            "webrtc: cannot hold ICE to {address}: no libnice agent"
        );
        return;
    }
    let agent = ice.property::<glib::Object>("agent");
    // SAFETY: the library is already loaded (webrtcbin's ICE is libnice's), RTLD_NOLOAD only
    // finds it; the three functions have these C signatures in libnice 0.1 (nice/address.h,
    // nice/agent.h); NiceAddress is a union of socket addresses, 28 bytes, given 64 here; the
    // agent pointer is a live NiceAgent held by `agent` for the call.
    unsafe {
        let lib = CString::new("libnice.so.10").unwrap();
        let handle = libc::dlopen(lib.as_ptr(), libc::RTLD_NOW | libc::RTLD_NOLOAD);
        if handle.is_null() {
            gst::warning!(
                CAT,
                obj = obj,
                "webrtc: cannot hold ICE to {address}: libnice not found"
            );
            return;
        }
        let sym = |name: &str| {
            let name = CString::new(name).unwrap();
            libc::dlsym(handle, name.as_ptr())
        };
        let (init, from_string, add) = (
            sym("nice_address_init"),
            sym("nice_address_set_from_string"),
            sym("nice_agent_add_local_address"),
        );
        if init.is_null() || from_string.is_null() || add.is_null() {
            gst::warning!(
                CAT,
                obj = obj,
                "webrtc: cannot hold ICE to {address}: libnice lacks nice_agent_add_local_address"
            );
            libc::dlclose(handle);
            return;
        }
        let init: Init = std::mem::transmute(init);
        let from_string: FromString = std::mem::transmute(from_string);
        let add: AddLocal = std::mem::transmute(add);
        let mut nice_address = [0u64; 8];
        let text = CString::new(address.to_string()).unwrap();
        init(nice_address.as_mut_ptr().cast());
        if from_string(nice_address.as_mut_ptr().cast(), text.as_ptr()) == 0
            || add(agent.as_ptr().cast(), nice_address.as_ptr().cast()) == 0
        {
            gst::warning!(CAT, obj = obj, "webrtc: cannot hold ICE to {address}");
        }
        libc::dlclose(handle);
    }
}

/// Runs a peer once it connects: the session layer sends it frames and takes its messages.
async fn run_peer(ctx: &Context, client: Arc<Client>, mut link: Link) {
    let mut connected = link.connected.clone();
    let mut dead = link.dead.clone();
    let up = tokio::select! {
        r = tokio::time::timeout(CONNECT_TIMEOUT, connected.wait_for(|c| *c)) => matches!(r, Ok(Ok(_))),
        _ = dead.wait_for(|d| *d) => false,
    };
    if !up {
        gst::info!(
            CAT,
            obj = &ctx.obj,
            "webrtc client {}: did not connect (ICE or DTLS failed)",
            client.id
        );
        ctx.hub.remove_client(client.id);
        return;
    }
    // What was queued while it connected went nowhere: start it at a keyframe.
    ctx.hub.client_needs_keyframe(&client);
    let inbound = std::mem::replace(&mut link.inbound, mpsc::channel(1).1);
    let link = Arc::new(link);
    let tx = RtcSend {
        link: link.clone(),
        client: client.clone(),
        hub: ctx.hub.clone(),
        config_id: None,
        inband_parameter_sets: false,
    };
    let rx = RtcRecv {
        inbound,
        dead: link.dead.clone(),
    };
    let poll = poll_network(link.webrtcbin.clone(), client.clone());
    tokio::select! {
        _ = session::run(ctx.clone(), client, tx, rx) => {}
        _ = poll => {}
    }
}

/// The peer's path figures, every second, from webrtcbin's statistics (its RTCP receiver
/// reports): a WebRTC peer sends no acks, so these stand in for its latency in the stats.
async fn poll_network(webrtcbin: gst::Element, client: Arc<Client>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticks.tick().await;
        let (p, reply) = promise();
        webrtcbin.emit_by_name::<()>("get-stats", &[&None::<gst::Pad>, &p]);
        if let Ok(Ok(Some(stats))) = reply.await {
            if let Some(network) = network_stats(&stats) {
                client.set_network(network);
            }
        }
    }
}

/// The `remote-inbound-rtp` entry of webrtcbin's statistics, if the peer reported yet.
fn network_stats(stats: &gst::StructureRef) -> Option<NetworkStats> {
    let s = stats
        .iter()
        .filter_map(|(_, v)| v.get::<gst::Structure>().ok())
        .find(|s| s.name() == "remote-inbound-rtp")?;
    let seconds = |field: &str| {
        s.get::<f64>(field)
            .map(|v| (v.max(0.0) * 1e6) as u64)
            .unwrap_or(0)
    };
    Some(NetworkStats {
        rtt_us: seconds("round-trip-time"),
        jitter_us: seconds("jitter"),
        packets_lost: s
            .get::<i64>("packets-lost")
            .or_else(|_| s.get::<i32>("packets-lost").map(i64::from))
            .unwrap_or(0),
    })
}

struct RtcSend {
    link: Arc<Link>,
    client: Arc<Client>,
    hub: Arc<crate::hub::Hub>,
    config_id: Option<u32>,
    /// The stream's H.264 keyframes carry their SPS and PPS: the payloader adds none.
    inband_parameter_sets: bool,
}

impl RtcSend {
    fn dead(&self) -> Result<(), WireError> {
        if *self.link.dead.borrow() {
            return Err(WireError::Transport("the peer connection closed".into()));
        }
        Ok(())
    }
}

impl WireSend for RtcSend {
    async fn text(&mut self, text: &str) -> Result<(), WireError> {
        self.dead()?;
        let channel = self.link.channel.lock().unwrap().clone();
        let Some(channel) = channel else {
            // No data channel (a WHEP player): the text has no one to go to.
            return Ok(());
        };
        if channel.ready_state() != gst_webrtc::WebRTCDataChannelState::Open {
            return Ok(());
        }
        if channel.buffered_amount() > MAX_CHANNEL_BUFFERED {
            return Err(WireError::Timeout);
        }
        channel
            .send_string_full(Some(text))
            .map_err(|e| WireError::Transport(e.to_string()))
    }

    async fn config(&mut self, config: &Arc<StreamConfig>) -> Result<(), WireError> {
        self.text(&protocol::config(config)).await
    }

    async fn frame(&mut self, frame: &Arc<Frame>) -> Result<(), WireError> {
        self.dead()?;
        if frame.header.refine {
            // A raw still: not video; WebRTC peers see the encoded stream only.
            return Ok(());
        }
        if self.config_id != Some(frame.config.id) {
            if frame.config.codec.codec != self.link.codec {
                return Err(WireError::Transport(format!(
                    "the stream's codec changed to {}: WebRTC peers must offer again",
                    frame.config.codec.codec.name()
                )));
            }
            self.link
                .appsrc
                .set_caps(Some(&source_caps(&frame.config.codec)));
            self.config_id = Some(frame.config.id);
            self.text(&protocol::config(&frame.config)).await?;
        }
        if self.link.appsrc.current_level_bytes() > MAX_QUEUED_BYTES {
            // Its network does not take the stream: skip to a keyframe rather than queue.
            self.hub.client_needs_keyframe(&self.client);
            return Ok(());
        }
        if frame.is_key() && self.link.codec == Codec::H264 {
            // rtph264pay's config-interval=-1 puts SPS and PPS before each IDR slice, between the
            // slices of a multi-slice keyframe (x264enc's sliced threads) too. Browsers put the
            // frame together by RTP timestamp; GStreamer's h264parse (whepclientsrc, any
            // webrtcbin receiver) takes an SPS as the start of a new picture and decodes the
            // first slice alone: the top of the picture stays green. A stream that repeats its
            // parameter sets in-band needs no insertion.
            let inband = crate::codec::h264_has_inband_sps(&frame.payload, &frame.config.codec);
            if inband != self.inband_parameter_sets {
                self.inband_parameter_sets = inband;
                self.link
                    .payloader
                    .set_property("config-interval", if inband { 0i32 } else { -1 });
            }
        }
        let mut buffer = gst::Buffer::from_slice(frame.payload.clone());
        if !frame.is_key() {
            buffer
                .get_mut()
                .expect("new buffer")
                .set_flags(gst::BufferFlags::DELTA_UNIT);
        }
        self.link
            .appsrc
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|e| WireError::Transport(format!("the peer's pipeline stopped: {e:?}")))
    }

    async fn keepalive(&mut self) -> Result<Keepalive, WireError> {
        self.dead()?;
        // RTCP from the peer counts as hearing from it (see `negotiate`).
        Ok(Keepalive::Ping)
    }

    async fn close(&mut self, _code: u16, reason: &str) {
        // No close frame in WebRTC: the reason goes as an error message, then the channel
        // closes (the pipeline goes when the session ends).
        let _ = self.text(&protocol::error(reason)).await;
        if let Some(channel) = self.link.channel.lock().unwrap().take() {
            channel.close();
        }
    }
}

struct RtcRecv {
    inbound: mpsc::Receiver<Inbound>,
    dead: watch::Receiver<bool>,
}

impl WireRecv for RtcRecv {
    async fn next(&mut self) -> Inbound {
        tokio::select! {
            inbound = self.inbound.recv() => inbound.unwrap_or(Inbound::Gone),
            _ = self.dead.wait_for(|d| *d) => Inbound::Gone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chromium's offer (trimmed): H.264 in several profiles and packetization modes, VP8, VP9.
    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 98 102 103 106 112\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
        a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\n\
        a=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\n\
        a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
        a=rtpmap:103 H264/90000\r\na=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n\
        a=rtpmap:106 H264/90000\r\na=fmtp:106 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:112 H264/90000\r\na=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=64001f\r\n\
        m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\n";

    fn codec(codec: Codec, codec_string: &str) -> CodecConfig {
        CodecConfig {
            codec,
            format: Format::AnnexB,
            codec_string: codec_string.into(),
            width: 640,
            height: 480,
            description: None,
        }
    }

    fn chosen(offer: &str, c: &CodecConfig) -> Result<(i32, Option<String>), OfferError> {
        gst::init().unwrap();
        let offer = gst_sdp::SDPMessage::parse_buffer(offer.as_bytes()).unwrap();
        let (caps, _) = choose_format(&offer, c)?;
        let s = caps.structure(0).unwrap();
        Ok((
            s.get::<i32>("payload").unwrap(),
            format_h264_profile(s).map(str::to_owned),
        ))
    }

    #[test]
    fn picks_the_offered_format_of_the_stream_profile() {
        // Constrained baseline (x264's avc1.42c01e): 106, not the first H.264 (baseline, 102)
        // nor packetization-mode 0 (103).
        let got = chosen(OFFER, &codec(Codec::H264, "avc1.42c01e")).unwrap();
        assert_eq!(got, (106, Some("constrained-baseline".into())));
        assert_eq!(
            chosen(OFFER, &codec(Codec::H264, "avc1.640028")).unwrap().0,
            112
        );
        // A profile the browser did not offer: the format whose decoder takes it (high decodes
        // main), not the first packetization-mode 1 format (baseline).
        assert_eq!(
            chosen(OFFER, &codec(Codec::H264, "avc1.4d401f")).unwrap().0,
            112
        );
        assert_eq!(chosen(OFFER, &codec(Codec::Vp8, "vp8")).unwrap().0, 96);
        assert_eq!(
            chosen(OFFER, &codec(Codec::Vp9, "vp09.00.10.08"))
                .unwrap()
                .0,
            98
        );
    }

    /// What gst-plugins-rs' whepclientsrc 0.15 offers (its video m-line): H.264 as
    /// constrained baseline level 2.2 with no packetization-mode, whatever it decodes.
    const WHEPCLIENTSRC_OFFER: &str = "v=0\r\no=- 1 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE video0 audio1\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100\r\nc=IN IP4 0.0.0.0\r\na=mid:video0\r\na=recvonly\r\n\
        a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\n\
        a=rtpmap:97 H264/90000\r\na=rtcp-fb:97 nack pli\r\na=fmtp:97 profile-level-id=42e016\r\n\
        a=rtpmap:98 VP9/90000\r\na=rtpmap:99 H265/90000\r\na=rtpmap:100 AV1/90000\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 101\r\nc=IN IP4 0.0.0.0\r\na=mid:audio1\r\na=recvonly\r\n\
        a=rtpmap:101 OPUS/48000/2\r\n";

    #[test]
    fn answers_gstreamers_whep_client() {
        // The stream's level (3.1) is above the offered 2.2 and the offer names no
        // packetization-mode: its receiver decodes it all the same (RFC 6184 aside).
        assert_eq!(
            chosen(WHEPCLIENTSRC_OFFER, &codec(Codec::H264, "avc1.42c01f")).unwrap(),
            (97, Some("constrained-baseline".into()))
        );
        // A main-profile stream to a constrained-baseline offer: the last resort, still sent.
        assert_eq!(
            chosen(WHEPCLIENTSRC_OFFER, &codec(Codec::H264, "avc1.4d401f"))
                .unwrap()
                .0,
            97
        );
        assert_eq!(
            chosen(WHEPCLIENTSRC_OFFER, &codec(Codec::Vp8, "vp8"))
                .unwrap()
                .0,
            96
        );
    }

    #[test]
    fn prefers_packetization_mode_1_then_a_profile_the_stream_fits_in() {
        let offer = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 100 101 102\r\na=mid:0\r\n\
            a=rtpmap:100 H264/90000\r\na=fmtp:100 profile-level-id=42e01f\r\n\
            a=rtpmap:101 H264/90000\r\na=fmtp:101 packetization-mode=1;profile-level-id=4d001f\r\n\
            a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=64001f\r\n";
        // Constrained baseline: mode 1 first (101, main decodes it) over the exact profile in
        // mode 0 (100).
        assert_eq!(
            chosen(offer, &codec(Codec::H264, "avc1.42c01e")).unwrap().0,
            101
        );
        // High fits in no main decoder: the high format.
        assert_eq!(
            chosen(offer, &codec(Codec::H264, "avc1.640028")).unwrap().0,
            102
        );
    }

    #[test]
    fn refuses_what_webrtc_cannot_carry_with_the_reason() {
        let e = chosen(OFFER, &codec(Codec::Jpeg, "image/jpeg")).unwrap_err();
        assert_eq!(e.status, 415);
        assert!(e.message.contains("WebSocket"), "{}", e.message);
        let audio = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        let e = chosen(audio, &codec(Codec::H264, "avc1.42c01e")).unwrap_err();
        assert_eq!((e.status, e.message.contains("no video")), (400, true));
        let vp8_only = OFFER
            .replace(" 98 102 103 106 112", " 97")
            .replace("a=rtpmap:98 ", "a=rtpmap:97 rtx/90000\r\na=rtpmap:98 ");
        let e = chosen(&vp8_only, &codec(Codec::H264, "avc1.42c01e")).unwrap_err();
        assert_eq!(e.status, 415);
        assert!(e.message.contains("does not receive H264"), "{}", e.message);
        assert!(e.message.contains("it offers VP8;"), "{}", e.message);
        // Said to any client: no browser named.
        assert!(
            !e.message.contains("browser") && !e.message.contains("Firefox"),
            "{}",
            e.message
        );
    }

    #[test]
    fn candidates_go_into_their_m_sections() {
        let sdp = "v=0\r\ns=-\r\nm=video 9 X 96\r\na=mid:0\r\na=candidate:old\r\nm=application 9 Y\r\na=mid:1\r\n";
        let out = with_candidates(
            sdp,
            &[(0, "candidate:1 1 UDP 1 127.0.0.1 5000 typ host".into())],
        );
        assert_eq!(
            out,
            "v=0\r\ns=-\r\nm=video 9 X 96\r\na=mid:0\r\n\
             a=candidate:1 1 UDP 1 127.0.0.1 5000 typ host\r\na=end-of-candidates\r\n\
             m=application 9 Y\r\na=mid:1\r\na=end-of-candidates\r\n"
        );
    }
}
