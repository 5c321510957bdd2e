// SPDX-License-Identifier: MPL-2.0

//! The offer and answer texts (docs/protocol.md, "WebRTC"): which of the offer's formats carries
//! the stream as it is, the RTP caps for it, and the answer with its gathered candidates. Pure:
//! unit-tested against real offers.

use crate::codec::{Codec, CodecConfig, Format};

/// Why an offer got no answer: an HTTP status and words for the person reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OfferError {
    pub status: u16,
    pub message: String,
}

impl OfferError {
    pub fn new(status: u16, message: impl Into<String>) -> OfferError {
        OfferError {
            status,
            message: message.into(),
        }
    }
}

/// The header extension of transport-wide congestion control (TWCC): each packet carries a
/// sequence number across the transport, and the receiver reports when each arrived, about ten
/// times a second (draft-holmer-rmcat-transport-wide-cc-extensions-01).
pub(super) const TWCC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

/// The id the offer's m-line `mline` gives the TWCC header extension (`a=extmap:<id>[/dir] <uri>`),
/// when it offers it: browsers do; GStreamer's whepclientsrc does not.
pub(super) fn twcc_id(offer: &gst_sdp::SDPMessage, mline: u32) -> Option<u32> {
    let media = offer.media(mline)?;
    media
        .attributes()
        .filter(|a| a.key() == "extmap")
        .find_map(|a| {
            let (id, rest) = a.value()?.split_once(' ')?;
            let uri = rest.split_whitespace().next()?;
            if uri != TWCC_URI {
                return None;
            }
            let id = id.split('/').next()?.parse::<u32>().ok()?;
            // One-byte header ids are 1-14 (RFC 8285); two-byte up to 255.
            (1..=255).contains(&id).then_some(id)
        })
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
pub(super) fn choose_format(
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

/// The offer's Opus format on its first audio m-line that receives, as RTP caps; None when it
/// offers no sound or not Opus (the peer then gets the picture alone).
pub(super) fn choose_audio(offer: &gst_sdp::SDPMessage) -> Option<gst::Caps> {
    let audio = offer.medias().find(|m| {
        m.media() == Some("audio")
            && m.port() != 0
            && m.attribute_val("sendonly").is_none()
            && m.attribute_val("inactive").is_none()
    })?;
    audio
        .formats()
        .filter_map(|f| f.parse::<i32>().ok())
        .filter_map(|pt| audio.caps_from_media(pt))
        .find(|caps| {
            caps.structure(0)
                .and_then(|s| s.get::<&str>("encoding-name").ok())
                .is_some_and(|n| n.eq_ignore_ascii_case("OPUS"))
        })
        .map(rtp_caps)
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
pub(super) fn source_caps(codec: &CodecConfig) -> gst::Caps {
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

/// The SDP with each m-section's gathered candidates and an end-of-candidates.
pub(super) fn with_candidates(sdp: &str, candidates: &[(u32, String)]) -> String {
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
    fn finds_the_offered_twcc_extension_id() {
        let with = |extmaps: &str| {
            let offer = OFFER.replace("a=mid:0\r\n", &format!("a=mid:0\r\n{extmaps}"));
            twcc_id(
                &gst_sdp::SDPMessage::parse_buffer(offer.as_bytes()).unwrap(),
                0,
            )
        };
        assert_eq!(with(""), None);
        assert_eq!(
            with(&format!(
                "a=extmap:1 urn:ietf:params:rtp-hdrext:toffset\r\na=extmap:3 {TWCC_URI}\r\n"
            )),
            Some(3)
        );
        assert_eq!(
            with(&format!("a=extmap:5/recvonly {TWCC_URI}\r\n")),
            Some(5)
        );
        assert_eq!(with(&format!("a=extmap:x {TWCC_URI}\r\n")), None);
        assert_eq!(with(&format!("a=extmap:0 {TWCC_URI}\r\n")), None);
        let offer = gst_sdp::SDPMessage::parse_buffer(OFFER.as_bytes()).unwrap();
        assert_eq!(twcc_id(&offer, 7), None, "no such m-line");
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
    fn sound_goes_to_an_offer_that_receives_opus() {
        gst::init().unwrap();
        let parse = |s: &str| gst_sdp::SDPMessage::parse_buffer(s.as_bytes()).unwrap();
        let caps = choose_audio(&parse(WHEPCLIENTSRC_OFFER)).expect("whepclientsrc receives Opus");
        let s = caps.structure(0).unwrap();
        assert_eq!(s.name(), "application/x-rtp");
        assert_eq!(s.get::<i32>("payload").unwrap(), 101);
        assert_eq!(s.get::<&str>("media").unwrap(), "audio");
        // No audio m-line (the browser's offer above), or one that only sends: no sound.
        assert!(choose_audio(&parse(OFFER)).is_none());
        let sends =
            WHEPCLIENTSRC_OFFER.replace("a=mid:audio1\r\na=recvonly", "a=mid:audio1\r\na=sendonly");
        assert!(choose_audio(&parse(&sends)).is_none());
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
