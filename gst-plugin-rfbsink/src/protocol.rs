// SPDX-License-Identifier: MPL-2.0

//! The wire format between rfbsink and its clients; docs/protocol.md describes it and must stay
//! true to this file. Pure: no sockets, no GStreamer.

use bytes::{BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::codec::CodecConfig;
use crate::input::{self, Input};

pub const PROTOCOL_VERSION: u32 = 1;
pub const BINARY_MAGIC: [u8; 2] = *b"RF";
pub const BINARY_VERSION: u8 = 1;
pub const BINARY_HEADER_LEN: usize = 24;
pub const FLAG_KEY: u8 = 1;
/// A lossless still (raw tiles, docs/protocol.md "Refine") painted over the lossy picture.
pub const FLAG_REFINE: u8 = 2;
/// The largest message a client may send.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// A WebSocket close frame carries at most 123 bytes of reason (RFC 6455 section 5.5).
pub const MAX_CLOSE_REASON: usize = 123;

pub const CHANNEL_MAIN: &str = "rfb.main";
pub const CHANNEL_CONTROL: &str = "rfb.control";
pub const CHANNEL_STATS: &str = "rfb.stats";
pub const CHANNEL_EVENTS: &str = "rfb.events";

/// WebSocket close codes used by the server (RFC 6455 section 7.4.1).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const UNSUPPORTED: u16 = 1003;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// What a client's link lets it do (docs/security.md): a control link sends input and
/// application messages; a view link only watches (what it sends is counted and ignored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Control,
    View,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Control => "control",
            Role::View => "view",
        }
    }
}

/// A close reason cut to `MAX_CLOSE_REASON` bytes, on a character boundary.
pub fn close_reason(mut reason: String) -> String {
    let len = truncate(&reason, MAX_CLOSE_REASON).len();
    reason.truncate(len);
    reason
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Envelope {
    /// A JSON text header, then the payload as a binary message (docs/protocol.md, envelope=json).
    #[default]
    Json,
    /// One binary message per frame: 24-byte header + payload.
    Binary,
}

impl Envelope {
    pub fn name(self) -> &'static str {
        match self {
            Envelope::Json => "json",
            Envelope::Binary => "binary",
        }
    }

    /// The `envelope` query parameter; refused with the close code and reason the client is told.
    pub fn parse(s: Option<&str>) -> Result<Self, ProtocolError> {
        match s {
            None | Some("") | Some("json") => Ok(Envelope::Json),
            Some("binary") => Ok(Envelope::Binary),
            Some(other) => Err(ProtocolError {
                code: close::POLICY,
                reason: format!(
                    "unknown envelope '{}'; use json or binary",
                    truncate(other, 32)
                ),
            }),
        }
    }
}

/// A stream configuration as the clients see it: the codec setup and the id that frames refer to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamConfig {
    pub id: u32,
    pub codec: CodecConfig,
}

/// The per-frame fields every envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub config_id: u32,
    pub frame_id: u64,
    pub timestamp_us: i64,
    pub key: bool,
    /// The payload is a whole raw picture in tiles that refines the stream's last picture; it is
    /// outside the stream's chain of references (never a keyframe, never a reference).
    pub refine: bool,
}

impl FrameHeader {
    pub fn encode_binary(&self, payload: &[u8]) -> Bytes {
        let mut buf = BytesMut::with_capacity(BINARY_HEADER_LEN + payload.len());
        buf.put_slice(&BINARY_MAGIC);
        buf.put_u8(BINARY_VERSION);
        let mut flags = 0;
        if self.key {
            flags |= FLAG_KEY;
        }
        if self.refine {
            flags |= FLAG_REFINE;
        }
        buf.put_u8(flags);
        buf.put_u32_le(self.config_id);
        buf.put_u64_le(self.frame_id);
        buf.put_i64_le(self.timestamp_us);
        buf.put_slice(payload);
        buf.freeze()
    }

    /// Parses a binary-envelope message into its header and payload.
    pub fn decode_binary(msg: &[u8]) -> Result<(FrameHeader, &[u8]), FrameError> {
        if msg.len() < BINARY_HEADER_LEN {
            return Err(FrameError::Short(msg.len()));
        }
        if msg[0..2] != BINARY_MAGIC {
            return Err(FrameError::Magic);
        }
        if msg[2] != BINARY_VERSION {
            return Err(FrameError::Version(msg[2]));
        }
        let u32_at = |o: usize| u32::from_le_bytes(msg[o..o + 4].try_into().unwrap());
        let u64_at = |o: usize| u64::from_le_bytes(msg[o..o + 8].try_into().unwrap());
        Ok((
            FrameHeader {
                key: msg[3] & FLAG_KEY != 0,
                refine: msg[3] & FLAG_REFINE != 0,
                config_id: u32_at(4),
                frame_id: u64_at(8),
                timestamp_us: u64_at(16) as i64,
            },
            &msg[BINARY_HEADER_LEN..],
        ))
    }

    /// The JSON text header of `envelope=json` (docs/protocol.md).
    pub fn encode_json(&self, config: &StreamConfig, byte_length: usize) -> String {
        let (type_, codec, format) = if self.refine {
            ("refine", "raw", "tiles")
        } else {
            (
                "video",
                config.codec.codec.name(),
                config.codec.format.name(),
            )
        };
        serde_json::to_string(&JsonFrameHeader {
            type_,
            channel: CHANNEL_MAIN,
            codec,
            format,
            timestamp_us: self.timestamp_us,
            frame_id: self.frame_id,
            chunk_type: if self.key || self.refine {
                "key"
            } else {
                "delta"
            },
            byte_length,
            config_id: self.config_id,
        })
        .expect("serializing a frame header cannot fail")
    }
}

#[derive(Serialize)]
struct JsonFrameHeader {
    #[serde(rename = "type")]
    type_: &'static str,
    channel: &'static str,
    codec: &'static str,
    format: &'static str,
    timestamp_us: i64,
    frame_id: u64,
    chunk_type: &'static str,
    byte_length: usize,
    config_id: u32,
}

/// Messages the server sends as JSON text.
#[derive(Serialize, Debug, Clone)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ServerMessage<'a> {
    Hello {
        channel: &'static str,
        protocol: u32,
        client_id: u64,
        envelope: &'static str,
        role: &'static str,
        server: &'static str,
    },
    Config {
        channel: &'static str,
        config_id: u32,
        #[serde(rename = "type")]
        type_: &'static str,
        codec: &'static str,
        codec_string: &'a str,
        format: &'static str,
        width: u32,
        height: u32,
        description: Option<String>,
    },
    Eos {
        channel: &'static str,
    },
    Error {
        channel: &'static str,
        message: &'a str,
    },
}

impl ServerMessage<'_> {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("serializing a server message cannot fail")
    }
}

pub fn hello(client_id: u64, envelope: Envelope, role: Role) -> String {
    ServerMessage::Hello {
        channel: CHANNEL_CONTROL,
        protocol: PROTOCOL_VERSION,
        client_id,
        envelope: envelope.name(),
        role: role.name(),
        server: concat!("rfbsink/", env!("CARGO_PKG_VERSION")),
    }
    .to_json()
}

pub fn config(config: &StreamConfig) -> String {
    let c = &config.codec;
    ServerMessage::Config {
        channel: CHANNEL_CONTROL,
        config_id: config.id,
        type_: if c.codec.is_image() {
            "image"
        } else if c.codec == crate::codec::Codec::Raw {
            "raw"
        } else {
            "video"
        },
        codec: c.codec.name(),
        codec_string: &c.codec_string,
        format: c.format.name(),
        width: c.width,
        height: c.height,
        description: c.description.as_deref().map(base64),
    }
    .to_json()
}

/// A client's own figures, sent to it every second (the viewer's overlay shows them).
pub(crate) fn client_stats(s: &crate::stats::ClientStats) -> String {
    serde_json::json!({
        "channel": CHANNEL_STATS,
        "kind": "stats",
        "transport": s.transport,
        "latency_p50_us": s.latency_p50_us,
        "latency_p95_us": s.latency_p95_us,
        "latency_max_us": s.latency_max_us,
        "paint_p50_us": s.paint_p50_us,
        "paint_p95_us": s.paint_p95_us,
        "fps": s.fps,
        "bitrate_bps": s.bitrate_bps,
        "delivered_bps": s.delivered_bps,
        "capacity_bps": (s.capacity_bps > 0).then_some(s.capacity_bps),
        "target_bps": (s.target_bps > 0).then_some(s.target_bps),
        "frames_dropped": s.frames_dropped,
        "queued_bytes": s.queued_bytes,
        "keyframe_requests": s.keyframe_requests,
        "rendition": s.rendition,
        "rendition_switches": s.rendition_switches,
    })
    .to_string()
}

/// One rendition, as viewers are told of it.
pub(crate) struct Rendition {
    pub id: u32,
    /// None until its first keyframe.
    pub config: Option<std::sync::Arc<StreamConfig>>,
    /// What its stream sent lately, in bits per second.
    pub bitrate_bps: u64,
}

/// The renditions a viewer may get, and the one it gets (`current`): sent on connect and at
/// each switch, just before the new rendition's configuration (docs/protocol.md, "Renditions").
pub(crate) fn renditions(list: &[Rendition], current: u32) -> String {
    let list: Vec<Value> = list
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id,
                "codec": r.config.as_ref().map(|c| c.codec.codec.name()),
                "codec_string": r.config.as_ref().map(|c| &c.codec.codec_string),
                "width": r.config.as_ref().map(|c| c.codec.width),
                "height": r.config.as_ref().map(|c| c.codec.height),
                "bitrate_bps": r.bitrate_bps,
            })
        })
        .collect();
    serde_json::json!({
        "channel": CHANNEL_CONTROL,
        "kind": "renditions",
        "current": current,
        "renditions": list,
    })
    .to_string()
}

/// The gray16 window the pipeline chose: values `low`..`high` shown black..white; `None`: the
/// viewer follows the picture's range.
pub fn window(bounds: Option<(u16, u16)>) -> String {
    serde_json::json!({
        "channel": CHANNEL_CONTROL,
        "kind": "window",
        "low": bounds.map(|b| b.0),
        "high": bounds.map(|b| b.1),
    })
    .to_string()
}

pub fn eos() -> String {
    ServerMessage::Eos {
        channel: CHANNEL_CONTROL,
    }
    .to_json()
}

pub fn error(message: &str) -> String {
    ServerMessage::Error {
        channel: CHANNEL_CONTROL,
        message,
    }
    .to_json()
}

/// An application message from the element to clients: `json` must be an object; `channel` is
/// set and `kind` defaults to "message".
pub fn app_message(channel: &str, json: &str) -> Result<String, AppMessageError> {
    if !channel.starts_with("app.") || channel.len() <= 4 {
        return Err(AppMessageError::Channel(channel.into()));
    }
    let mut obj = match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(obj)) => obj,
        Ok(_) => return Err(AppMessageError::NotAnObject),
        Err(e) => return Err(AppMessageError::NotJson(e)),
    };
    obj.insert("channel".into(), Value::String(channel.into()));
    obj.entry("kind")
        .or_insert_with(|| Value::String("message".into()));
    let text = Value::Object(obj).to_string();
    if text.len() > MAX_CLIENT_MESSAGE {
        return Err(AppMessageError::TooBig(text.len()));
    }
    Ok(text)
}

/// Why `send-message` sent nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppMessageError {
    #[error("channel '{0}' is not an application channel (app.<name>)")]
    Channel(String),
    #[error("the message is not a JSON object")]
    NotAnObject,
    #[error("the message is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    #[error("the message is {0} bytes, over the limit of {MAX_CLIENT_MESSAGE}")]
    TooBig(usize),
}

/// Why a binary-envelope message is not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("binary frame of {0} bytes is shorter than its {BINARY_HEADER_LEN}-byte header")]
    Short(usize),
    #[error("binary frame does not start with magic 'RF'")]
    Magic,
    #[error("binary frame version {0} is not supported")]
    Version(u8),
}

/// What a client may send, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    KeyframeRequest {
        reason: Option<String>,
    },
    Ack {
        frame_id: u64,
        decode_queue_size: Option<u32>,
        /// Microseconds from decoder output to painted, when the viewer acks after painting.
        paint_us: Option<u64>,
    },
    /// The viewer chooses its rendition (`Some`), or leaves it to the server (`None`).
    Rendition {
        id: Option<u32>,
    },
    /// Input on `rfb.events`, validated.
    Input(Input),
    /// A message on an `app.*` channel.
    App {
        channel: String,
        message: Map<String, Value>,
    },
    /// Well-formed but of a kind this server does not know: ignored (forward compatibility).
    Ignored {
        channel: String,
        kind: String,
    },
    /// An input event whose fields this server cannot use (a pen's eraser button, a coordinate
    /// that is not a number): counted and dropped, the connection stays.
    Rejected {
        kind: String,
        reason: String,
    },
}

/// Why a client message was refused: the close code and the reason the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: u16,
    pub reason: String,
}

impl ProtocolError {
    fn invalid(reason: impl Into<String>) -> Self {
        ProtocolError {
            code: close::INVALID_DATA,
            reason: reason.into(),
        }
    }
}

#[derive(Deserialize)]
struct AckFields {
    frame_id: u64,
    #[serde(default)]
    decode_queue_size: Option<u32>,
    #[serde(default)]
    paint_us: Option<u64>,
}

/// Validates one text message from a client.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, ProtocolError> {
    if text.len() > MAX_CLIENT_MESSAGE {
        return Err(ProtocolError {
            code: close::TOO_BIG,
            reason: format!(
                "message of {} bytes is over the limit of {MAX_CLIENT_MESSAGE}",
                text.len()
            ),
        });
    }
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ProtocolError::invalid(format!("message is not JSON: {e}")))?;
    let Value::Object(mut obj) = value else {
        return Err(ProtocolError::invalid("message is not a JSON object"));
    };
    let channel = match obj.remove("channel") {
        Some(Value::String(s)) => s,
        Some(_) => return Err(ProtocolError::invalid("'channel' is not a string")),
        None => return Err(ProtocolError::invalid("message has no 'channel'")),
    };
    let kind = match obj.get("kind") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(ProtocolError::invalid("'kind' is not a string")),
        None => return Err(ProtocolError::invalid("message has no 'kind'")),
    };

    match (channel.as_str(), kind.as_str()) {
        (CHANNEL_CONTROL, "keyframe-request") => Ok(ClientMessage::KeyframeRequest {
            reason: obj
                .get("reason")
                .and_then(Value::as_str)
                .map(|s| truncate(s, 64).to_owned()),
        }),
        (CHANNEL_CONTROL, "rendition") => match obj.get("id") {
            None | Some(Value::Null) => Ok(ClientMessage::Rendition { id: None }),
            Some(v) => match v.as_u64().and_then(|id| u32::try_from(id).ok()) {
                Some(id) => Ok(ClientMessage::Rendition { id: Some(id) }),
                None => Ok(ClientMessage::Rejected {
                    kind,
                    reason: "'id' is not a rendition id (an unsigned 32-bit integer) or null"
                        .into(),
                }),
            },
        },
        (CHANNEL_STATS, "ack") => {
            let ack: AckFields = serde_json::from_value(Value::Object(obj))
                .map_err(|e| ProtocolError::invalid(format!("bad ack: {e}")))?;
            Ok(ClientMessage::Ack {
                frame_id: ack.frame_id,
                decode_queue_size: ack.decode_queue_size,
                paint_us: ack.paint_us,
            })
        }
        (CHANNEL_EVENTS, _) => match input::parse_event(&kind, &obj) {
            Ok(Some(input)) => Ok(ClientMessage::Input(input)),
            Ok(None) => Ok(ClientMessage::Ignored { channel, kind }),
            Err(reason) => Ok(ClientMessage::Rejected { kind, reason }),
        },
        (c, _) if c.starts_with("app.") && c.len() > 4 => Ok(ClientMessage::App {
            channel,
            message: obj,
        }),
        _ => Ok(ClientMessage::Ignored { channel, kind }),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// WebTransport streams carry messages with a 4-byte little-endian length prefix: JSON text
/// (starts with `{`) or a binary-envelope frame (starts with `RF`).
pub fn length_prefix(len: usize) -> [u8; 4] {
    (len as u32).to_le_bytes()
}

/// Splits a byte stream into length-prefixed messages, whatever the chunking of the reads.
#[derive(Debug)]
pub struct MessageReader {
    buf: Vec<u8>,
    max: usize,
}

impl MessageReader {
    pub fn new(max: usize) -> MessageReader {
        MessageReader {
            buf: Vec::new(),
            max,
        }
    }

    /// Adds bytes read from the stream; returns the messages now complete, in order. A length over
    /// the limit is an error (the peer is closed with 1009).
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 4 {
                break;
            }
            let len = u32::from_le_bytes(self.buf[..4].try_into().unwrap()) as usize;
            if len > self.max {
                return Err(ProtocolError {
                    code: close::TOO_BIG,
                    reason: format!("message of {len} bytes is over the limit of {}", self.max),
                });
            }
            if self.buf.len() < 4 + len {
                break;
            }
            out.push(self.buf[4..4 + len].to_vec());
            self.buf.drain(..4 + len);
        }
        Ok(out)
    }

    /// Bytes of an incomplete message still waiting for the rest.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// Validates a message that arrived as bytes (a WebTransport stream message or datagram): it must
/// be UTF-8 JSON text.
pub fn parse_client_bytes(data: &[u8]) -> Result<ClientMessage, ProtocolError> {
    let text = std::str::from_utf8(data)
        .map_err(|_| ProtocolError::invalid("message is not UTF-8 text"))?;
    parse_client_message(text)
}

/// Standard base64 with padding (RFC 4648), for the small avcC description.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Codec, Format};

    fn h264_config() -> StreamConfig {
        StreamConfig {
            id: 3,
            codec: CodecConfig {
                codec: Codec::H264,
                format: Format::Avc,
                codec_string: "avc1.64001F".into(),
                width: 1280,
                height: 720,
                description: Some(vec![1, 0x64, 0, 0x1f, 0xff]),
            },
        }
    }

    #[test]
    fn binary_header_layout() {
        let h = FrameHeader {
            config_id: 0x01020304,
            frame_id: 0x1122334455667788,
            timestamp_us: -5,
            key: true,
            refine: false,
        };
        let msg = h.encode_binary(b"abc");
        assert_eq!(msg.len(), 27);
        assert_eq!(&msg[0..4], &[b'R', b'F', 1, 1]);
        assert_eq!(&msg[4..8], &[4, 3, 2, 1]);
        assert_eq!(
            &msg[8..16],
            &[0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11]
        );
        assert_eq!(&msg[16..24], &(-5i64).to_le_bytes());
        let (back, payload) = FrameHeader::decode_binary(&msg).unwrap();
        assert_eq!(back, h);
        assert_eq!(payload, b"abc");
        let delta = FrameHeader { key: false, ..h }.encode_binary(b"");
        assert_eq!(delta[3], 0);
        let refine = FrameHeader {
            key: false,
            refine: true,
            ..h
        };
        let msg = refine.encode_binary(b"");
        assert_eq!(msg[3], FLAG_REFINE);
        assert_eq!(FrameHeader::decode_binary(&msg).unwrap().0, refine);
        assert!(FrameHeader::decode_binary(&msg[..23]).is_err());
        assert!(FrameHeader::decode_binary(b"XX\x01\x00xxxxxxxxxxxxxxxxxxxxxx").is_err());
    }

    #[test]
    fn json_header_matches_seed_fields() {
        let h = FrameHeader {
            config_id: 3,
            frame_id: 42,
            timestamp_us: 1234567,
            key: false,
            refine: false,
        };
        let v: Value = serde_json::from_str(&h.encode_json(&h264_config(), 48123)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"video","channel":"rfb.main","codec":"h264","format":"avc",
                "timestamp_us":1234567,"frame_id":42,"chunk_type":"delta","byte_length":48123,"config_id":3})
        );
        let refine = FrameHeader { refine: true, ..h };
        let v: Value = serde_json::from_str(&refine.encode_json(&h264_config(), 9)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type":"refine","channel":"rfb.main","codec":"raw","format":"tiles",
                "timestamp_us":1234567,"frame_id":42,"chunk_type":"key","byte_length":9,"config_id":3})
        );
    }

    #[test]
    fn config_message() {
        let v: Value = serde_json::from_str(&config(&h264_config())).unwrap();
        assert_eq!(v["kind"], "config");
        assert_eq!(v["channel"], "rfb.control");
        assert_eq!(v["type"], "video");
        assert_eq!(v["codec_string"], "avc1.64001F");
        assert_eq!(v["width"], 1280);
        assert_eq!(v["description"], "AWQAH/8=");
        let v: Value = serde_json::from_str(&hello(7, Envelope::Binary, Role::View)).unwrap();
        assert_eq!(v["kind"], "hello");
        assert_eq!(v["client_id"], 7);
        assert_eq!(v["envelope"], "binary");
        assert_eq!(v["role"], "view");
    }

    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn client_messages() {
        assert_eq!(
            parse_client_message(
                r#"{"channel":"rfb.stats","kind":"ack","frame_id":9,"decode_queue_size":2}"#
            ),
            Ok(ClientMessage::Ack {
                frame_id: 9,
                decode_queue_size: Some(2),
                paint_us: None
            })
        );
        assert_eq!(
            parse_client_message(
                r#"{"channel":"rfb.control","kind":"keyframe-request","reason":"decoder-error"}"#
            ),
            Ok(ClientMessage::KeyframeRequest {
                reason: Some("decoder-error".into())
            })
        );
        assert!(matches!(
            parse_client_message(r#"{"channel":"app.chat","kind":"say","text":"hi"}"#),
            Ok(ClientMessage::App { ref channel, .. }) if channel == "app.chat"
        ));
        assert!(matches!(
            parse_client_message(
                r#"{"channel":"rfb.events","kind":"resize","width":640,"height":480}"#
            ),
            Ok(ClientMessage::Input(Input::Resize {
                width: 640,
                height: 480
            }))
        ));
        // Input a real viewer may send that this server cannot use is dropped, not a violation.
        for rejected in [
            r#"{"channel":"rfb.events","kind":"pointer-move","x":"left"}"#,
            r#"{"channel":"rfb.events","kind":"pointer-down","x":1,"y":2,"button":5}"#,
        ] {
            assert!(
                matches!(
                    parse_client_message(rejected),
                    Ok(ClientMessage::Rejected { .. })
                ),
                "{rejected}"
            );
        }
        assert!(matches!(
            parse_client_message(r#"{"channel":"rfb.future","kind":"x"}"#),
            Ok(ClientMessage::Ignored { .. })
        ));
        for bad in [
            "not json",
            "[1,2]",
            r#"{"kind":"ack"}"#,
            r#"{"channel":5,"kind":"ack"}"#,
            r#"{"channel":"rfb.stats"}"#,
            r#"{"channel":"rfb.stats","kind":"ack","frame_id":"x"}"#,
        ] {
            let e = parse_client_message(bad).unwrap_err();
            assert_eq!(e.code, close::INVALID_DATA, "{bad}");
            assert!(!e.reason.is_empty());
        }
        let big = format!(
            r#"{{"channel":"app.x","kind":"y","pad":"{}"}}"#,
            "a".repeat(MAX_CLIENT_MESSAGE)
        );
        assert_eq!(parse_client_message(&big).unwrap_err().code, close::TOO_BIG);
    }

    #[test]
    fn length_prefixed_framing_survives_any_chunking() {
        let msgs: Vec<Vec<u8>> = vec![
            b"{\"a\":1}".to_vec(),
            vec![],
            vec![7u8; 300],
            b"RF..".to_vec(),
        ];
        let mut wire = Vec::new();
        for m in &msgs {
            wire.extend_from_slice(&length_prefix(m.len()));
            wire.extend_from_slice(m);
        }
        for chunk in [1, 2, 3, 5, 7, 64, wire.len()] {
            let mut r = MessageReader::new(1000);
            let mut got = Vec::new();
            for c in wire.chunks(chunk) {
                got.extend(r.push(c).unwrap());
            }
            assert_eq!(got, msgs, "chunk size {chunk}");
            assert_eq!(r.pending(), 0);
        }
        let mut r = MessageReader::new(16);
        let err = r.push(&length_prefix(17)).unwrap_err();
        assert_eq!(err.code, close::TOO_BIG);
        assert!(err.reason.contains("17"));
    }

    #[test]
    fn datagrams_must_be_json_text() {
        assert!(matches!(
            parse_client_bytes(br#"{"channel":"rfb.stats","kind":"ack","frame_id":1}"#),
            Ok(ClientMessage::Ack { frame_id: 1, .. })
        ));
        assert_eq!(
            parse_client_bytes(&[0xff, 0xfe]).unwrap_err().code,
            close::INVALID_DATA
        );
        assert_eq!(
            parse_client_bytes(b"RF\x01").unwrap_err().code,
            close::INVALID_DATA
        );
    }

    #[test]
    fn envelope_parse() {
        assert_eq!(Envelope::parse(None), Ok(Envelope::Json));
        assert_eq!(Envelope::parse(Some("binary")), Ok(Envelope::Binary));
        assert!(Envelope::parse(Some("xml"))
            .unwrap_err()
            .reason
            .contains("xml"));
    }
}
