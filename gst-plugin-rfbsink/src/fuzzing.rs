// SPDX-License-Identifier: MPL-2.0

//! Entry points for the fuzz targets in `fuzz/` (see docs/security.md): every parser fed by the
//! network or by the stream, driven with arbitrary bytes. Not an API.

use std::net::Ipv4Addr;
use std::str::FromStr;
use std::sync::Once;

use crate::access::{self, Access, AccessSettings, Request, Tokens};
use crate::protocol::{self, MessageReader};
use crate::stream::{caps_info, StreamTracker};

/// A client message, as WebSocket text, a control-stream message or a datagram.
pub fn client_message(data: &[u8]) {
    let _ = protocol::parse_client_bytes(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = protocol::parse_client_message(text);
    }
}

/// The length-prefixed reader of WebTransport streams, fed in chunks of sizes the first byte
/// picks; what it buffers stays bounded by the message limit.
pub fn length_prefixed(data: &[u8]) {
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let max = 4096;
    let mut reader = MessageReader::new(max);
    for piece in rest.chunks(chunk) {
        match reader.push(piece) {
            Ok(messages) => {
                for m in &messages {
                    assert!(m.len() <= max, "a message over the limit came out");
                    client_message(m);
                }
            }
            Err(e) => {
                assert_eq!(e.code, protocol::close::TOO_BIG);
                return;
            }
        }
        assert!(reader.pending() <= max + 4 + chunk, "unbounded buffering");
    }
}

/// The codec headers read from keyframes: H.264 SPS (Annex B, avcC), VP8, VP9 and AV1.
pub fn codec_headers(data: &[u8]) {
    use crate::codec;
    if let Some(Ok(sps)) = codec::h264_sps_from_annexb(data) {
        let _ = codec::h264_codec_string(&sps);
    }
    if let Ok(sps) = codec::h264_sps_from_avcc(data) {
        let _ = codec::h264_codec_string(&sps);
    }
    let _ = codec::parse_h264_sps(data);
    let _ = codec::annexb_has_idr(data);
    let _ = codec::vp8_keyframe_size(data);
    let _ = codec::vp9_keyframe_info(data);
    let _ = codec::av1_sequence_info(data);
}

/// Caps (a caps string up to the first NUL) and then a buffer of that stream.
pub fn caps(data: &[u8]) {
    static INIT: Once = Once::new();
    INIT.call_once(|| gst::init().expect("gst::init"));
    let (head, payload) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(head) else {
        return;
    };
    let Ok(caps) = gst::Caps::from_str(text) else {
        return;
    };
    let Ok(info) = caps_info(&caps) else {
        return;
    };
    let mut tracker = StreamTracker::default();
    if tracker.set_caps(info).is_ok() {
        let _ = tracker.config_for(payload, true);
        let _ = tracker.config_for(payload, false);
    }
}

/// The access checks: Host, Origin, query, Authorization and Cookie values (lines of the input),
/// against rules with one allowed origin.
pub fn access(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut next = || lines.next().filter(|l| !l.is_empty());
    let (host, origin, query, authorization, cookie, allowed) =
        (next(), next(), next(), next(), next(), next());
    let access = Access::new(AccessSettings {
        tokens: Some(Tokens {
            control: "fuzz-control-token".into(),
            view: "fuzz-view-token".into(),
        }),
        allowed_origins: allowed.map(|a| vec![a.to_owned()]).unwrap_or_default(),
        address: "127.0.0.1".into(),
        bound: Ipv4Addr::LOCALHOST.into(),
        http_port: 8080,
        view_only: false,
        relay_origin: None,
    });
    let token = query.and_then(|q| access::query_param(q, access::TOKEN_PARAM));
    let req = Request {
        host,
        origin,
        query_token: token.as_deref(),
        authorization,
        cookie,
    };
    if access.admit(&req).is_ok() {
        // Only the right token gets in.
        let presented = [token.as_deref(), authorization, cookie];
        assert!(
            presented
                .iter()
                .flatten()
                .any(|p| p.contains("fuzz-control-token") || p.contains("fuzz-view-token")),
            "admitted without a token: {req:?}"
        );
    }
    let _ = access.connect_sources(host, Some(4433));
    let _ = access.cookie_for(&req);
    let _ = protocol::close_reason(text.into_owned());
}

/// Raw tiles, both ways: a hostile payload must be an error, never a panic or an allocation
/// larger than the picture it claims (at most 65535x65535x2 bytes... bounded by the header);
/// and any bytes encoded as a picture must decode to themselves.
pub fn tiles(data: &[u8]) {
    use crate::tiles::{self, Picture, SourceFormat};
    // Decoding: keep the claimed picture small so that the fuzzer explores records, not memory.
    if let Ok((_, w, h)) = tiles::header(data) {
        if w as usize * h as usize <= 1 << 20 {
            let mut out = None;
            let _ = tiles::decode(data, &mut out);
        }
    }
    // Encoding: the first bytes choose the layout, the rest are pixels.
    if data.len() < 4 {
        return;
    }
    let format = SourceFormat::from_name(
        tiles::SOURCE_FORMATS[data[0] as usize % tiles::SOURCE_FORMATS.len()],
    )
    .unwrap();
    let width = 1 + data[1] as u32 % 150;
    let pixels = &data[4..];
    let bpp = format.bytes_per_pixel();
    let stride = width as usize * bpp + data[2] as usize % 8;
    let height = (pixels.len() / stride) as u32;
    if height == 0 {
        return;
    }
    let picture = Picture {
        data: pixels,
        stride,
        width,
        height,
        format,
    };
    let (payload, _) = tiles::encode(&picture, None)
        .expect("a consistent picture encodes")
        .expect("a keyframe is never empty");
    let mut out = None;
    tiles::decode(&payload, &mut out).expect("what was encoded decodes");
    assert_eq!(
        out.unwrap().pixels.len(),
        (width * height) as usize * format.wire().bytes_per_pixel()
    );
}
