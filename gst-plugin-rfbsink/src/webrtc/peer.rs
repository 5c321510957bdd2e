// SPDX-License-Identifier: MPL-2.0

//! One WebRTC peer: `appsrc ! <payloader> ! webrtcbin`, built for an offer, and its wire
//! adapter for the session layer (frames as RTP, text on the `rfb` data channel).

use std::ffi::{c_char, c_int, c_void, CString};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gst::prelude::*;
use gst_rtp::prelude::*;
use tokio::sync::{mpsc, oneshot, watch};

use super::sdp::{source_caps, twcc_id, with_candidates, OfferError, TWCC_URI};
use crate::audio::{AudioConfig, AudioPacket, OPUS_RATE};
use crate::codec::Codec;
use crate::hub::{Client, Frame};
use crate::protocol::{self, StreamConfig, MAX_CLIENT_MESSAGE};
use crate::runtime::RUNTIME;
use crate::session::{self, Context, Inbound, Keepalive, WireError, WireRecv, WireSend};
use crate::stats::NetworkStats;
use crate::CAT;

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
/// The data channel the viewer opens for the protocol's text messages.
const CHANNEL_LABEL: &str = "rfb";
/// Packets leave with this MTU (room for SRTP and TURN headers on a 1500-byte path).
const RTP_MTU: u32 = 1200;

/// ICE settings (the element's `stun-server` and `turn-server`, and the bound address).
#[derive(Clone, Debug, Default)]
pub(crate) struct IceSettings {
    pub stun_server: Option<String>,
    pub turn_server: Option<String>,
    /// The UDP ports the peers' media may use (`webrtc-ports`), first and last.
    pub ports: Option<(u16, u16)>,
    /// Host candidates on this address only; every interface when `None` (bound to 0.0.0.0).
    pub local_address: Option<IpAddr>,
}

/// Opus waiting in a peer's pipeline, at most; past this its oldest packets go (its link is
/// behind: late sound is of no use).
const MAX_QUEUED_AUDIO_BYTES: u64 = 64 * 1024;

/// A peer's pipeline and what its callbacks tell.
pub(super) struct Link {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    /// The sound's source (`appsrc ! rtpopuspay ! webrtcbin`), when the peer receives sound.
    audio: Option<gst_app::AppSrc>,
    payloader: gst::Element,
    pub webrtcbin: gst::Element,
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

/// Emits webrtcbin's action `signal` with `arg` and a promise, and waits for the promise's
/// reply; None when webrtcbin dropped it. (Emitted at once: the future holds only the reply's
/// receiver.)
fn ask(
    webrtcbin: &gst::Element,
    signal: &str,
    arg: &dyn ToValue,
) -> impl std::future::Future<Output = Option<Reply>> + Send + 'static {
    let (tx, rx) = oneshot::channel();
    let promise = gst::Promise::with_change_func(move |reply| {
        let _ = tx.send(reply.map(|s| s.map(|s| s.to_owned())));
    });
    webrtcbin.emit_by_name::<()>(signal, &[arg, &promise]);
    async move { rx.await.ok() }
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
pub(super) async fn negotiate(
    ctx: &Context,
    ice: &IceSettings,
    offer: gst_sdp::SDPMessage,
    (rtp_caps, mline): (gst::Caps, u32),
    audio: Option<(gst::Caps, Arc<AudioConfig>)>,
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
    let payloader = payloader(codec, &rtp_caps)?;
    // Transport-wide congestion control where the offer has it (browsers): each packet gets a
    // transport-wide sequence number, and the peer's feedback on them, about ten times a
    // second, tells the hub what reached it (rtcp.rs). The answer maps the extension as
    // offered (the caps' extmap field).
    let rtp_caps = match twcc_id(&offer, mline) {
        Some(id) if with_twcc(&payloader, id) => {
            let mut caps = rtp_caps;
            if let Some(s) = caps.make_mut().structure_mut(0) {
                s.set(format!("extmap-{id}"), TWCC_URI);
            }
            caps
        }
        _ => rtp_caps,
    };
    let webrtcbin = webrtcbin(ctx, ice)?;
    pipeline
        .add_many([appsrc.upcast_ref(), &payloader, &webrtcbin])
        .map_err(|e| OfferError::new(500, e.to_string()))?;
    appsrc
        .link(&payloader)
        .map_err(|e| OfferError::new(500, e.to_string()))?;
    let sound = match &audio {
        Some((caps, config)) => Some(audio_branch(&pipeline, caps, config)?),
        None => None,
    };
    let mut watched = watch_peer(ctx, &pipeline, &webrtcbin, &appsrc, &client);
    let link = Link {
        pipeline: pipeline.clone(),
        appsrc,
        audio: sound.as_ref().map(|(src, _, _)| src.clone()),
        payloader: payloader.clone(),
        webrtcbin: webrtcbin.clone(),
        codec,
        channel: watched.channel,
        inbound: watched.inbound,
        dead: watched.dead,
        connected: watched.connected,
    };
    let start = pipeline.clone();
    tokio::task::spawn_blocking(move || start.set_state(gst::State::Playing))
        .await
        .map_err(|e| OfferError::new(500, e.to_string()))?
        .map_err(|_| OfferError::new(500, "the WebRTC pipeline did not start"))?;
    let answer = exchange(
        &webrtcbin,
        &payloader,
        sound.as_ref().map(|(_, pay, caps)| (pay, caps)),
        offer,
        &rtp_caps,
    )
    .await?;
    let _ = tokio::time::timeout(GATHERING_TIMEOUT, watched.gathered.wait_for(|done| *done)).await;
    let sdp = answer
        .sdp()
        .as_text()
        .map_err(|e| OfferError::new(500, e.to_string()))?;
    let candidates = watched.candidates.lock().unwrap().clone();
    if candidates.is_empty() {
        return Err(OfferError::new(
            500,
            "no ICE candidate: no usable network address here",
        ));
    }
    Ok((link, with_candidates(&sdp, &candidates)))
}

/// `appsrc ! rtpopuspay` for the sound, in the offer's Opus payload type; returns the source,
/// the payloader and the RTP caps for the transceiver.
fn audio_branch(
    pipeline: &gst::Pipeline,
    rtp_caps: &gst::Caps,
    config: &AudioConfig,
) -> Result<(gst_app::AppSrc, gst::Element, gst::Caps), OfferError> {
    let caps = gst::Caps::builder("audio/x-opus")
        .field("channel-mapping-family", 0i32)
        .field("channels", config.channels as i32)
        .field("rate", OPUS_RATE as i32)
        .build();
    // Stamped as it arrives, like the pictures (do-timestamp): the browser lines the two up
    // from their RTCP sender reports.
    let appsrc = gst_app::AppSrc::builder()
        .caps(&caps)
        .is_live(true)
        .format(gst::Format::Time)
        .do_timestamp(true)
        .max_bytes(MAX_QUEUED_AUDIO_BYTES)
        .leaky_type(gst_app::AppLeakyType::Downstream)
        .block(false)
        .build();
    let payloader = make("rtpopuspay")?;
    send_as(&payloader, rtp_caps, 111);
    pipeline
        .add_many([appsrc.upcast_ref(), &payloader])
        .map_err(|e| OfferError::new(500, e.to_string()))?;
    appsrc
        .link(&payloader)
        .map_err(|e| OfferError::new(500, e.to_string()))?;
    Ok((appsrc, payloader, rtp_caps.clone()))
}

/// Adds the TWCC header extension to the payloader's packets, with the offer's `id`; false
/// when GStreamer has no such extension (rtpmanager, gst-plugins-good).
fn with_twcc(payloader: &gst::Element, id: u32) -> bool {
    let Some(extension) = gst_rtp::RTPHeaderExtension::create_from_uri(TWCC_URI) else {
        return false;
    };
    extension.set_id(id);
    payloader.emit_by_name::<()>("add-extension", &[&extension]);
    true
}

/// A payloader sends with the offer's payload type (`default_pt` when the caps have none), which
/// it returns, and rfbsink's MTU.
fn send_as(payloader: &gst::Element, rtp_caps: &gst::Caps, default_pt: i32) -> i32 {
    let pt = rtp_caps
        .structure(0)
        .and_then(|s| s.get::<i32>("payload").ok())
        .unwrap_or(default_pt);
    payloader.set_property("pt", pt as u32);
    payloader.set_property("mtu", RTP_MTU);
    pt
}

/// The payloader for the stream's codec, sending as the offer's chosen format (`rtp_caps`).
fn payloader(codec: Codec, rtp_caps: &gst::Caps) -> Result<gst::Element, OfferError> {
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
    let pt = send_as(&payloader, rtp_caps, 96);
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
    Ok(payloader)
}

/// webrtcbin with the element's ICE settings, its host candidates on the bound address only.
fn webrtcbin(ctx: &Context, ice: &IceSettings) -> Result<gst::Element, OfferError> {
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
    if let Some((first, last)) = ice.ports {
        agent.set_property("min-rtp-port", u32::from(first));
        agent.set_property("max-rtp-port", u32::from(last));
    }
    if let Some(address) = ice.local_address {
        if !address.is_unspecified() {
            restrict_host_candidates(&ctx.obj, &agent, address);
        }
    }
    Ok(webrtcbin)
}

/// What a peer's callbacks tell, from the moment its pipeline runs.
struct Watched {
    /// The data channel, once the peer opened it.
    channel: Arc<Mutex<Option<gst_webrtc::WebRTCDataChannel>>>,
    inbound: mpsc::Receiver<Inbound>,
    dead: watch::Receiver<bool>,
    connected: watch::Receiver<bool>,
    /// The element's ICE candidates, by m-line, and whether gathering is done.
    candidates: Arc<Mutex<Vec<(u32, String)>>>,
    gathered: watch::Receiver<bool>,
}

/// Connects the peer's signals: errors on its bus, ICE and connection states, gathered
/// candidates, the data channel's messages, RTCP heard and keyframe requests (PLI, FIR).
fn watch_peer(
    ctx: &Context,
    pipeline: &gst::Pipeline,
    webrtcbin: &gst::Element,
    appsrc: &gst_app::AppSrc,
    client: &Arc<Client>,
) -> Watched {
    let (dead_tx, dead) = watch::channel(false);
    let dead_tx = Arc::new(dead_tx);
    let (connected_tx, connected) = watch::channel(false);
    let connected_tx = Arc::new(connected_tx);
    let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
    let channel: Arc<Mutex<Option<gst_webrtc::WebRTCDataChannel>>> = Arc::default();
    let candidates: Arc<Mutex<Vec<(u32, String)>>> = Arc::default();
    let (gathered_tx, gathered) = watch::channel(false);

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
        let weak_client = Arc::downgrade(client);
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

    Watched {
        channel,
        inbound,
        dead,
        connected,
        candidates,
        gathered,
    }
}

/// The offer in, the answer out: our send-only transceiver with the offer's format as its
/// preference, linked to the payloader, then webrtcbin's remote description, answer and local
/// description.
/// A sendonly transceiver fed by `payloader`, made before the offer is set: webrtcbin 1.22
/// matches each of the offer's m-lines to an unassociated transceiver of the same kind whose
/// codec preferences (`caps`) fit it.
fn send_on(
    webrtcbin: &gst::Element,
    payloader: &gst::Element,
    caps: &gst::Caps,
) -> Result<(), OfferError> {
    let sink = webrtcbin
        .request_pad_simple("sink_%u")
        .ok_or_else(|| OfferError::new(500, "webrtcbin gave no sink pad"))?;
    let transceiver = sink
        .property::<Option<gst_webrtc::WebRTCRTPTransceiver>>("transceiver")
        .ok_or_else(|| OfferError::new(500, "webrtcbin's sink pad has no transceiver"))?;
    transceiver.set_direction(gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly);
    transceiver.set_codec_preferences(Some(caps));
    payloader
        .static_pad("src")
        .expect("payloaders have a src pad")
        .link(&sink)
        .map(|_| ())
        .map_err(|e| OfferError::new(500, format!("{e:?}")))
}

async fn exchange(
    webrtcbin: &gst::Element,
    payloader: &gst::Element,
    audio: Option<(&gst::Element, &gst::Caps)>,
    offer: gst_sdp::SDPMessage,
    rtp_caps: &gst::Caps,
) -> Result<gst_webrtc::WebRTCSessionDescription, OfferError> {
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
    send_on(webrtcbin, payloader, &preferences)?;
    if let Some((payloader, caps)) = audio {
        // The sound's transceiver after the picture's, as the offer's m-lines usually are.
        send_on(webrtcbin, payloader, caps)?;
    }
    let remote = gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
    let reply = ask(webrtcbin, "set-remote-description", &remote)
        .await
        .ok_or_else(|| OfferError::new(500, "webrtcbin dropped the offer"))?;
    if let Some(e) = reply_error(&reply) {
        return Err(OfferError::new(400, format!("the offer was refused: {e}")));
    }
    let reply = ask(webrtcbin, "create-answer", &None::<gst::Structure>)
        .await
        .ok_or_else(|| OfferError::new(500, "webrtcbin gave no answer"))?;
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
    let reply = ask(webrtcbin, "set-local-description", &answer)
        .await
        .ok_or_else(|| OfferError::new(500, "webrtcbin dropped the answer"))?;
    if let Some(e) = reply_error(&reply) {
        return Err(OfferError::new(500, format!("the answer was refused: {e}")));
    }
    Ok(answer)
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
pub(super) async fn run_peer(ctx: &Context, client: Arc<Client>, mut link: Link) {
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
        early: Vec::new(),
        early_bytes: 0,
        opened: false,
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

/// How often a peer's statistics are read: its receiver reports stand in for acks (rtcp.rs).
const STATS_PERIOD: Duration = Duration::from_millis(500);
/// Our sender reports go out about this often (RTCP's default is 5 s): the round trip a
/// receiver report gives is measured from the last one, and is that old.
const SENDER_REPORT_INTERVAL: Duration = Duration::from_millis(500);

/// The peer's path figures, from webrtcbin's statistics (its RTCP receiver reports), every
/// `STATS_PERIOD`: a WebRTC peer sends no acks, so these stand in for its latency in the stats
/// and for its acks in rate control and the ladder.
async fn poll_network(webrtcbin: gst::Element, client: Arc<Client>) {
    let mut ticks = tokio::time::interval(STATS_PERIOD);
    let mut watched = false;
    let nacked = Arc::new(Nacked::default());
    loop {
        ticks.tick().await;
        if !watched {
            watched = watch_session(&webrtcbin, &client, &nacked);
        }
        if let Some(Ok(Some(stats))) = ask(&webrtcbin, "get-stats", &None::<gst::Pad>).await {
            if let Some((network, report)) = network_stats(&stats, watched.then_some(&*nacked)) {
                client.set_network(network, report);
            }
        }
    }
}

/// The packets a peer asked for again, per media SSRC, from its NACKs' FCIs (rtcp.rs, "Asked
/// again"): webrtcbin's statistics count NACK messages, and one asks for up to 17 packets per
/// FCI. A packet counts once: only one newer than the newest asked for before counts, as
/// libwebrtc's `RtcpNackStats` counts unique requests (a receiver asks again and again for
/// a packet that does not come: GStreamer's rtpjitterbuffer until it gives up on it). At most
/// `MAX_NACKED_SSRCS` SSRCs (a peer may name any).
#[derive(Debug, Default)]
struct Nacked(Mutex<Vec<NackCount>>);

#[derive(Debug)]
struct NackCount {
    ssrc: u32,
    /// The newest sequence number asked for.
    newest: u16,
    packets: u64,
}

/// A peer receives our video and audio: more SSRCs than this in its NACKs are not ours.
const MAX_NACKED_SSRCS: usize = 4;
/// RTCP's transport-layer feedback (RFC 4585) and its generic NACK.
const RTCP_RTPFB: u32 = 205;
const RTPFB_NACK: u32 = 1;

impl Nacked {
    /// A NACK about `ssrc` with these FCIs: each a packet id and a bitmask of the 16 after it.
    fn add(&self, ssrc: u32, fci: &[u8]) {
        let mut counts = self.0.lock().unwrap();
        let count = match counts.iter().position(|c| c.ssrc == ssrc) {
            Some(i) => &mut counts[i],
            None if counts.len() < MAX_NACKED_SSRCS => {
                counts.push(NackCount {
                    ssrc,
                    newest: 0,
                    packets: 0,
                });
                counts.last_mut().unwrap()
            }
            None => return,
        };
        for f in fci.chunks_exact(4) {
            let id = u16::from_be_bytes([f[0], f[1]]);
            let mask = u16::from_be_bytes([f[2], f[3]]);
            let asked = std::iter::once(id).chain(
                (0..16)
                    .filter(|bit| mask & (1 << bit) != 0)
                    .map(|bit| id.wrapping_add(bit + 1)),
            );
            for seq in asked {
                // Newer by RTP's wrapping order (RFC 3550 A.1), or the first.
                let newer = seq != count.newest && seq.wrapping_sub(count.newest) < 0x8000;
                if count.packets == 0 || newer {
                    count.newest = seq;
                    count.packets += 1;
                }
            }
        }
    }

    fn of(&self, ssrc: u32) -> u64 {
        let counts = self.0.lock().unwrap();
        counts
            .iter()
            .find(|c| c.ssrc == ssrc)
            .map_or(0, |c| c.packets)
    }
}

/// Once the RTP session exists (true then): our RTCP sender reports go out every
/// `SENDER_REPORT_INTERVAL`, each TWCC feedback the peer sends, as rtpsession sums it up
/// (`twcc-stats`), goes to the hub, and the packets its NACKs ask for are counted in `nacked`.
fn watch_session(webrtcbin: &gst::Element, client: &Arc<Client>, nacked: &Arc<Nacked>) -> bool {
    let Some(rtpbin) = webrtcbin
        .downcast_ref::<gst::Bin>()
        .and_then(|bin| bin.by_name("rtpbin"))
    else {
        return true;
    };
    let Some(session) =
        rtpbin.emit_by_name::<Option<glib::Object>>("get-internal-session", &[&0u32])
    else {
        return false;
    };
    if let Some(element) = rtpbin.emit_by_name::<Option<gst::Element>>("get-session", &[&0u32]) {
        if element.has_property_with_type("twcc-stats", gst::Structure::static_type()) {
            let client = Arc::downgrade(client);
            element.connect_notify(Some("twcc-stats"), move |element, _| {
                let Some(client) = client.upgrade() else {
                    return;
                };
                let stats = element.property::<gst::Structure>("twcc-stats");
                if let Some(twcc) = twcc_summary(&stats) {
                    client.set_twcc(twcc);
                }
            });
        }
    }
    let counts = Arc::downgrade(nacked);
    session.connect("on-feedback-rtcp", false, move |values| {
        let field = |i: usize| values.get(i).and_then(|v| v.get::<u32>().ok());
        if field(1) != Some(RTCP_RTPFB) || field(2) != Some(RTPFB_NACK) {
            return None;
        }
        let (Some(ssrc), Some(counts)) = (field(4), counts.upgrade()) else {
            return None;
        };
        let fci = values
            .get(5)
            .and_then(|v| v.get::<Option<gst::Buffer>>().ok().flatten());
        if let Some(map) = fci.as_ref().and_then(|b| b.map_readable().ok()) {
            counts.add(ssrc, &map);
        }
        None
    });
    if session.has_property_with_type("rtcp-min-interval", u64::static_type()) {
        session.set_property(
            "rtcp-min-interval",
            SENDER_REPORT_INTERVAL.as_nanos() as u64,
        );
        gst::debug!(
            CAT,
            "webrtc: sender reports every {SENDER_REPORT_INTERVAL:?}"
        );
    }
    true
}

/// rtpsession's `twcc-stats`, once it summed up a feedback with packets in it.
fn twcc_summary(s: &gst::StructureRef) -> Option<crate::rtcp::Twcc> {
    let bps = |field: &str| s.get::<u32>(field).ok().map(u64::from);
    let twcc = crate::rtcp::Twcc {
        sent_bps: bps("bitrate-sent")?,
        received_bps: bps("bitrate-recv")?,
        lost: (s.get::<f64>("packet-loss-pct").ok()? / 100.0).clamp(0.0, 1.0),
    };
    (twcc.sent_bps > 0).then_some(twcc)
}

/// The `remote-inbound-rtp` entries of webrtcbin's statistics (the video's first), if the peer
/// reported yet, and the video's receiver report with what was sent; the packets asked for
/// again from `nacked` where the session is watched, else webrtcbin's count of NACKs.
fn network_stats(
    stats: &gst::StructureRef,
    nacked: Option<&Nacked>,
) -> Option<(NetworkStats, Option<crate::rtcp::Report>)> {
    let entries: Vec<gst::Structure> = stats
        .iter()
        .filter_map(|(_, v)| v.get::<gst::Structure>().ok())
        .collect();
    let video = |s: &gst::Structure| s.get::<&str>("kind").is_ok_and(|k| k == "video");
    let remote: Vec<&gst::Structure> = entries
        .iter()
        .filter(|s| s.name() == "remote-inbound-rtp")
        .collect();
    let s = remote
        .iter()
        .find(|s| video(s))
        .or_else(|| remote.first())
        .copied()?;
    let seconds = |field: &str| {
        s.get::<f64>(field)
            .map(|v| (v.max(0.0) * 1e6) as u64)
            .unwrap_or(0)
    };
    let packets_lost = s
        .get::<i64>("packets-lost")
        .or_else(|_| s.get::<i32>("packets-lost").map(i64::from))
        .unwrap_or(0);
    let network = NetworkStats {
        rtt_us: seconds("round-trip-time"),
        jitter_us: seconds("jitter"),
        packets_lost,
    };
    // Its receiver report's highest sequence number is in the RTP source's own figures; what
    // was sent, in the outbound entry the report is of.
    let report = video(s)
        .then(|| {
            let source = s.get::<gst::Structure>("gst-rtpsource-stats").ok()?;
            let local = s.get::<&str>("local-id").ok()?;
            let sent = entries.iter().find(|e| {
                e.name() == "outbound-rtp" && e.get::<&str>("id").is_ok_and(|id| id == local)
            })?;
            Some(crate::rtcp::Report {
                highest_seq: u64::from(source.get::<u32>("rb-exthighestseq").ok()?),
                lost: packets_lost,
                rtt: Duration::from_micros(network.rtt_us),
                packets_sent: sent.get::<u64>("packets-sent").ok()?,
                bytes_sent: sent.get::<u64>("bytes-sent").ok()?,
                nacks: match (nacked, sent.get::<u32>("ssrc")) {
                    (Some(nacked), Ok(ssrc)) => nacked.of(ssrc),
                    _ => sent.get::<u32>("nack-count").map_or(0, u64::from),
                },
                sent_ntp: match (source.get::<u32>("rb-lsr"), source.get::<u32>("rb-dlsr")) {
                    (Ok(lsr), Ok(dlsr)) if lsr != 0 => lsr.wrapping_add(dlsr),
                    _ => 0,
                },
            })
        })
        .flatten();
    Some((network, report))
}

struct RtcSend {
    link: Arc<Link>,
    client: Arc<Client>,
    hub: Arc<crate::hub::Hub>,
    config_id: Option<u32>,
    /// The stream's H.264 keyframes carry their SPS and PPS: the payloader adds none.
    inband_parameter_sets: bool,
    /// Text sent before the data channel opened (the hub's `hello` and `renditions` come at
    /// once), at most `MAX_EARLY_TEXT` bytes: it goes out when the channel opens. A peer
    /// without a channel (a WHEP player) never gets it.
    early: Vec<String>,
    early_bytes: usize,
    /// The data channel was open once: text for a channel closed since goes nowhere.
    opened: bool,
}

/// Text held for a data channel that has not opened yet, at most.
const MAX_EARLY_TEXT: usize = 64 * 1024;

impl RtcSend {
    fn dead(&self) -> Result<(), WireError> {
        if *self.link.dead.borrow() {
            return Err(WireError::Transport("the peer connection closed".into()));
        }
        Ok(())
    }

    /// The data channel when it is open; the text held for it goes out first.
    fn open_channel(&mut self) -> Result<Option<gst_webrtc::WebRTCDataChannel>, WireError> {
        let channel = self.link.channel.lock().unwrap().clone();
        let Some(channel) =
            channel.filter(|c| c.ready_state() == gst_webrtc::WebRTCDataChannelState::Open)
        else {
            return Ok(None);
        };
        self.opened = true;
        self.early_bytes = 0;
        for text in std::mem::take(&mut self.early) {
            channel
                .send_string_full(Some(&text))
                .map_err(|e| WireError::Transport(e.to_string()))?;
        }
        Ok(Some(channel))
    }
}

impl WireSend for RtcSend {
    async fn text(&mut self, text: &str) -> Result<(), WireError> {
        self.dead()?;
        let Some(channel) = self.open_channel()? else {
            // Not open yet: held for it, within bounds (past them it is dropped, as text for a
            // peer without a channel is).
            if !self.opened && self.early_bytes + text.len() <= MAX_EARLY_TEXT {
                self.early_bytes += text.len();
                self.early.push(text.to_owned());
            }
            return Ok(());
        };
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
        if !self.early.is_empty() {
            self.open_channel()?;
        }
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

    /// An Opus packet as RTP on the sound's track (only peers whose offer receives Opus get
    /// any: their `Peer::audio`). A full queue drops its oldest (the appsrc is leaky).
    async fn audio(&mut self, packet: &Arc<AudioPacket>) -> Result<(), WireError> {
        self.dead()?;
        let Some(src) = &self.link.audio else {
            return Ok(());
        };
        src.push_buffer(gst::Buffer::from_slice(packet.payload.clone()))
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

    #[test]
    fn nacks_count_every_packet_their_fcis_ask_for() {
        let nacked = Nacked::default();
        // One FCI for packet 100 and the 16 after it (all bits), one for 300 and 302, 303.
        nacked.add(7, &[0, 100, 0xff, 0xff, 1, 44, 0b0000_0000, 0b0000_0110]);
        assert_eq!(nacked.of(7), 17 + 3);
        // Asked again (rtpjitterbuffer retries): once is enough. A trailing part of an FCI
        // asks for nothing.
        nacked.add(7, &[0, 100, 0xff, 0xff, 1, 46, 0, 0, 9]);
        assert_eq!(nacked.of(7), 20);
        // Sequence numbers wrap: 0 and 1 are newer than 65535; 65535 is older than 303.
        nacked.add(7, &[0xff, 0xff, 0, 0]);
        assert_eq!(nacked.of(7), 20);
        nacked.add(9, &[0xff, 0xfe, 0, 0b11, 0xff, 0xff, 0, 0b1]);
        assert_eq!(nacked.of(9), 3);
        assert_eq!(nacked.of(8), 0);
        // A peer that names many SSRCs keeps only the first few.
        for ssrc in 0..100 {
            nacked.add(1000 + ssrc, &[0, 1, 0, 0]);
        }
        assert_eq!(nacked.0.lock().unwrap().len(), MAX_NACKED_SSRCS);
        assert_eq!(nacked.of(7), 20);
    }
}
