// SPDX-License-Identifier: MPL-2.0

//! Sound beside the picture (docs/protocol.md, "Audio"): what the `audio` pad accepts (Opus
//! packets as opusenc makes them), the packet checks that keep a broken one away from the
//! viewers' decoders, and the packet as every client's sender shares it.

use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::protocol::{BINARY_HEADER_LEN, BINARY_VERSION, CHANNEL_CONTROL};

/// The first two bytes of an audio packet in `envelope=binary` (video's are `RF`).
pub const AUDIO_MAGIC: [u8; 2] = *b"RA";
/// The query parameter of a connection's URL that asks for sound: `audio=1`, or
/// `audio=datagram` for its packets as datagrams where the transport has them (WebTransport).
pub const AUDIO_PARAM: &str = "audio";
/// `audio=datagram`.
const AUDIO_DATAGRAM: &str = "datagram";

/// Whether a connection's `audio` parameter asks for sound (clients that do not know about
/// audio never get packets they would not understand).
pub fn wants_audio(value: Option<&str>) -> bool {
    matches!(value, Some("1") | Some(AUDIO_DATAGRAM))
}

/// Whether a connection's `audio` parameter asks for its packets as datagrams (WebTransport;
/// the WebSocket has none and sends them in order as for `audio=1`).
pub fn wants_datagrams(value: Option<&str>) -> bool {
    value == Some(AUDIO_DATAGRAM)
}

/// The channel audio packets travel on.
pub const CHANNEL_AUDIO: &str = "rfb.audio";
/// Opus decodes at 48 kHz whatever rate it was encoded from (RFC 7587): the viewer's decoder
/// and player run at it.
pub const OPUS_RATE: u32 = 48_000;
/// The largest Opus packet (RFC 6716, 3.4 R2: 1275 bytes a frame, 120 ms of frames at most);
/// anything bigger is not Opus.
const MAX_PACKET: usize = 1275 * 48 + 64;

/// The audio format every viewer is told about (`audio-config`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioConfig {
    pub id: u32,
    pub channels: u32,
}

/// Why caps cannot go to browsers: the text a user sees on the bus.
pub fn config_from_caps(caps: &gst::CapsRef) -> Result<u32, String> {
    let Some(s) = caps.structure(0) else {
        return Err("empty caps".into());
    };
    if s.name() != "audio/x-opus" {
        return Err(format!(
            "the audio pad takes Opus (audio/x-opus from opusenc), not {}: put \
             audioconvert ! audioresample ! opusenc before rfbsink",
            s.name()
        ));
    }
    let family = s.get::<i32>("channel-mapping-family").unwrap_or(0);
    let channels = s.get::<i32>("channels").unwrap_or(2);
    if family != 0 || !(1..=2).contains(&channels) {
        return Err(format!(
            "Opus with {channels} channels (channel mapping family {family}): browsers decode mono \
             and stereo; put audio/x-raw,channels=2 before opusenc"
        ));
    }
    Ok(channels as u32)
}

pub fn audio_config(config: &AudioConfig) -> String {
    #[derive(Serialize)]
    struct Msg {
        channel: &'static str,
        kind: &'static str,
        config_id: u32,
        codec: &'static str,
        sample_rate: u32,
        channels: u32,
    }
    serde_json::to_string(&Msg {
        channel: CHANNEL_CONTROL,
        kind: "audio-config",
        config_id: config.id,
        codec: "opus",
        sample_rate: OPUS_RATE,
        channels: config.channels,
    })
    .expect("serializing an audio config cannot fail")
}

/// A malformed Opus packet (RFC 6716, 3.4).
#[derive(Debug, PartialEq, Eq)]
pub struct BadPacket(pub &'static str);

impl std::fmt::Display for BadPacket {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "not an Opus packet: {}", self.0)
    }
}

/// The samples (at 48 kHz) one frame of this TOC byte lasts.
fn frame_samples(toc: u8) -> u32 {
    let config = toc >> 3;
    match config {
        // SILK-only: 10, 20, 40, 60 ms.
        0..=11 => [480, 960, 1920, 2880][(config & 3) as usize],
        // Hybrid: 10, 20 ms.
        12..=15 => [480, 960][(config & 1) as usize],
        // CELT-only: 2.5, 5, 10, 20 ms.
        _ => [120, 240, 480, 960][(config & 3) as usize],
    }
}

/// Reads a frame length (RFC 6716, 3.2.1): one byte, or two when the first is 252 or more.
fn frame_length(data: &[u8]) -> Result<(usize, usize), BadPacket> {
    match data {
        [] => Err(BadPacket("a frame length is missing")),
        [b, ..] if *b < 252 => Ok((*b as usize, 1)),
        [b0, b1, ..] => Ok((*b1 as usize * 4 + *b0 as usize, 2)),
        _ => Err(BadPacket("a frame length is cut short")),
    }
}

/// Checks an Opus packet's framing (RFC 6716, 3.4, rules R1 to R7) and returns how long it
/// plays, in samples at 48 kHz. A packet that fails would make a browser's decoder fail (and
/// close): it never leaves the element.
pub fn packet_samples(packet: &[u8]) -> Result<u32, BadPacket> {
    let Some((&toc, rest)) = packet.split_first() else {
        return Err(BadPacket("empty"));
    };
    if packet.len() > MAX_PACKET {
        return Err(BadPacket("longer than 120 ms of frames can be"));
    }
    let per_frame = frame_samples(toc);
    let frames = match toc & 3 {
        0 => {
            if rest.len() > 1275 {
                return Err(BadPacket("a frame over 1275 bytes"));
            }
            1
        }
        1 => {
            if rest.len() % 2 != 0 || rest.len() / 2 > 1275 {
                return Err(BadPacket("two equal frames of odd or oversized length"));
            }
            2
        }
        2 => {
            let (first, used) = frame_length(rest)?;
            if first > rest.len() - used || rest.len() - used - first > 1275 {
                return Err(BadPacket("a frame length beyond the packet"));
            }
            2
        }
        _ => {
            let Some((&count, mut rest)) = rest.split_first() else {
                return Err(BadPacket("a frame count is missing"));
            };
            let frames = (count & 0x3f) as usize;
            if frames == 0 || frames as u32 * per_frame > 5760 {
                return Err(BadPacket("no frames, or more than 120 ms of them"));
            }
            if count & 0x40 != 0 {
                // Padding: bytes of 255 add 254 each, the last byte adds itself.
                let mut padding = 0usize;
                loop {
                    let Some((&p, r)) = rest.split_first() else {
                        return Err(BadPacket("padding length cut short"));
                    };
                    rest = r;
                    padding += if p == 255 { 254 } else { p as usize };
                    if p != 255 {
                        break;
                    }
                }
                if padding > rest.len() {
                    return Err(BadPacket("more padding than packet"));
                }
                rest = &rest[..rest.len() - padding];
            }
            if count & 0x80 != 0 {
                // Variable bitrate: every frame but the last has its length.
                let mut total = 0usize;
                for _ in 1..frames {
                    let (len, used) = frame_length(rest)?;
                    rest = &rest[used..];
                    if len > 1275 {
                        return Err(BadPacket("a frame over 1275 bytes"));
                    }
                    total += len;
                }
                if total > rest.len() || rest.len() - total > 1275 {
                    return Err(BadPacket("frame lengths beyond the packet"));
                }
            } else if rest.len() % frames != 0 || rest.len() / frames > 1275 {
                return Err(BadPacket(
                    "constant-bitrate frames that do not divide the packet",
                ));
            }
            frames as u32
        }
    };
    Ok(per_frame * frames)
}

/// One Opus packet, shared by every client that sends it.
#[derive(Debug)]
pub(crate) struct AudioPacket {
    pub config: Arc<AudioConfig>,
    /// Increasing by one per packet the element takes (gaps: packets a client missed).
    pub seq: u64,
    /// The buffer's running time, on the same clock as the video's `timestamp_us`.
    pub timestamp_us: i64,
    pub payload: Bytes,
    binary: OnceLock<Bytes>,
    json_header: OnceLock<String>,
}

impl AudioPacket {
    pub fn new(config: Arc<AudioConfig>, seq: u64, timestamp_us: i64, payload: Bytes) -> Arc<Self> {
        Arc::new(AudioPacket {
            config,
            seq,
            timestamp_us,
            payload,
            binary: OnceLock::new(),
            json_header: OnceLock::new(),
        })
    }

    /// `envelope=binary`: video's 24-byte header with the magic `RA`, built once for every
    /// client.
    pub fn binary_message(&self) -> Bytes {
        self.binary
            .get_or_init(|| {
                let mut buf = BytesMut::with_capacity(BINARY_HEADER_LEN + self.payload.len());
                buf.put_slice(&AUDIO_MAGIC);
                buf.put_u8(BINARY_VERSION);
                buf.put_u8(0);
                buf.put_u32_le(self.config.id);
                buf.put_u64_le(self.seq);
                buf.put_i64_le(self.timestamp_us);
                buf.put_slice(&self.payload);
                buf.freeze()
            })
            .clone()
    }

    /// `envelope=json`: the text header before the payload's binary message.
    pub fn json_header(&self) -> &str {
        self.json_header.get_or_init(|| {
            #[derive(Serialize)]
            struct Header {
                #[serde(rename = "type")]
                type_: &'static str,
                channel: &'static str,
                codec: &'static str,
                timestamp_us: i64,
                frame_id: u64,
                byte_length: usize,
                config_id: u32,
            }
            serde_json::to_string(&Header {
                type_: "audio",
                channel: CHANNEL_AUDIO,
                codec: "opus",
                timestamp_us: self.timestamp_us,
                frame_id: self.seq,
                byte_length: self.payload.len(),
                config_id: self.config.id,
            })
            .expect("serializing an audio header cannot fail")
        })
    }

    pub fn len(&self) -> usize {
        self.payload.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sound_is_sent_to_those_who_ask_and_as_datagrams_to_those_who_ask_for_that() {
        for (value, audio, datagrams) in [
            (None, false, false),
            (Some("0"), false, false),
            (Some("yes"), false, false),
            (Some("1"), true, false),
            (Some("datagram"), true, true),
        ] {
            assert_eq!(wants_audio(value), audio, "{value:?}");
            assert_eq!(wants_datagrams(value), datagrams, "{value:?}");
        }
    }

    #[test]
    fn opus_packets_as_opusenc_makes_them_pass_with_their_duration() {
        // CELT fullband 20 ms, one frame (config 31, code 0).
        assert_eq!(packet_samples(&[31 << 3, 1, 2, 3]), Ok(960));
        // SILK wideband 60 ms.
        assert_eq!(packet_samples(&[(11 << 3), 9]), Ok(2880));
        // Two equal CELT 10 ms frames.
        assert_eq!(packet_samples(&[(30 << 3) | 1, 1, 2, 3, 4]), Ok(960));
        // Two frames, the first 2 bytes long.
        assert_eq!(packet_samples(&[(31 << 3) | 2, 2, 7, 7, 9]), Ok(1920));
        // Code 3: three CBR 2.5 ms frames of 2 bytes, with 1 byte of padding.
        assert_eq!(
            packet_samples(&[(16 << 3) | 3, 0x40 | 3, 1, 1, 1, 2, 2, 3, 3, 0]),
            Ok(360)
        );
        // Code 3 VBR: two frames, the first 1 byte.
        assert_eq!(
            packet_samples(&[(31 << 3) | 3, 0x80 | 2, 1, 5, 6, 6]),
            Ok(1920)
        );
        // A DTX packet: just the TOC byte.
        assert_eq!(packet_samples(&[31 << 3]), Ok(960));
    }

    #[test]
    fn broken_packets_are_told_apart() {
        assert!(packet_samples(&[]).is_err());
        assert!(packet_samples(&[(31 << 3) | 1, 1, 2, 3]).is_err());
        assert!(packet_samples(&[(31 << 3) | 2, 9, 1]).is_err());
        assert!(packet_samples(&[(31 << 3) | 2]).is_err());
        assert!(packet_samples(&[(31 << 3) | 3]).is_err());
        assert!(packet_samples(&[(31 << 3) | 3, 0]).is_err());
        // 7 x 20 ms is over 120 ms.
        assert!(packet_samples(&[(31 << 3) | 3, 7]).is_err());
        assert!(packet_samples(&[(31 << 3) | 3, 0x40 | 1, 200, 1]).is_err());
        assert!(packet_samples(&[(31 << 3) | 3, 0x80 | 2, 9, 1]).is_err());
        assert!(packet_samples(&[(31 << 3) | 3, 3, 1, 2, 3, 4]).is_err());
        let mut big = vec![31 << 3];
        big.resize(1277, 0);
        assert!(packet_samples(&big).is_err());
    }

    #[test]
    fn the_binary_message_is_the_video_header_with_its_own_magic() {
        let config = Arc::new(AudioConfig { id: 7, channels: 2 });
        let p = AudioPacket::new(config, 42, -5, Bytes::from_static(&[0xf8, 1]));
        let m = p.binary_message();
        assert_eq!(&m[0..4], &[b'R', b'A', 1, 0]);
        assert_eq!(u32::from_le_bytes(m[4..8].try_into().unwrap()), 7);
        assert_eq!(u64::from_le_bytes(m[8..16].try_into().unwrap()), 42);
        assert_eq!(i64::from_le_bytes(m[16..24].try_into().unwrap()), -5);
        assert_eq!(&m[24..], &[0xf8, 1]);
        assert_eq!(
            p.json_header(),
            r#"{"type":"audio","channel":"rfb.audio","codec":"opus","timestamp_us":-5,"frame_id":42,"byte_length":2,"config_id":7}"#
        );
    }
}
