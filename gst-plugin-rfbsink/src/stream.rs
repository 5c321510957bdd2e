// SPDX-License-Identifier: MPL-2.0

// Follows the stream's format: from the negotiated caps and the keyframes' own headers it derives
// what a browser needs to configure its decoder, and numbers each distinct configuration so that
// clients get a new `config` exactly when the stream changes (size, codec, profile).

use std::sync::Arc;

use crate::codec::{self, Codec, CodecConfig, CodecError, Format};
use crate::protocol::StreamConfig;
use crate::raw::RawError;
use crate::tiles::{self, SourceFormat};

/// The largest picture side rfbsink streams (browsers' decoders stop well before).
pub const MAX_DIMENSION: u32 = 16384;

/// Why caps or a buffer cannot be streamed. Caps errors stop the pipeline with the reason;
/// a buffer's are skipped (a warning, a count in stats, a keyframe asked for).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamError {
    #[error("empty caps")]
    EmptyCaps,
    #[error("cannot stream '{0}'")]
    Unsupported(String),
    #[error("H.264 stream-format '{0}' is not supported; use byte-stream or avc")]
    H264StreamFormat(String),
    #[error("raw caps without a format")]
    RawWithoutFormat,
    #[error("not raw video")]
    NotRaw,
    #[error("raw video: a rendition is an encoded stream (x264enc, vp8enc, ...)")]
    NotEncoded,
    #[error("raw format {0} is not supported; use one of {formats}", formats = tiles::SOURCE_FORMATS.join(", "))]
    RawFormat(String),
    #[error("H.264 stream-format=avc caps without codec_data")]
    NoCodecData,
    #[error("bad avcC codec_data: {0}")]
    CodecData(#[source] CodecError),
    #[error("{width}x{height} is larger than {MAX_DIMENSION}x{MAX_DIMENSION}")]
    TooLarge { width: u32, height: u32 },
    #[error("buffer before caps")]
    BeforeCaps,
    #[error("empty buffer")]
    Empty,
    #[error("not a {0} image")]
    NotAnImage(&'static str),
    #[error("cannot parse the H.264 SPS: {0}")]
    Sps(#[source] CodecError),
    #[error("H.264 keyframe without SPS, and no profile/level in the caps")]
    NoSps,
    #[error("cannot parse the AV1 sequence header: {0}")]
    Av1Header(#[source] CodecError),
    #[error("AV1 keyframe without a sequence header")]
    NoAv1Header,
    /// The lossless path's own encoder.
    #[error(transparent)]
    Raw(#[from] RawError),
}

/// What the negotiated caps say; built by the element from its caps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapsInfo {
    pub codec: Codec,
    pub format: Format,
    pub width: u32,
    pub height: u32,
    /// `codec_data` (the avcC record for H.264 stream-format=avc).
    pub codec_data: Option<Vec<u8>>,
    /// H.264 `profile` and `level` from the caps, the fallback when no SPS is seen.
    pub profile: Option<String>,
    pub level: Option<String>,
    /// Raw video: the pixel layout upstream sends (the element encodes it into tiles).
    pub raw: Option<SourceFormat>,
}

#[derive(Default)]
pub struct StreamTracker {
    caps: Option<CapsInfo>,
    /// The codec string from avcC, parsed once when the caps arrive.
    avc_codec_string: Option<String>,
    current: Option<Arc<StreamConfig>>,
    /// New caps since `current` was derived: still images must derive it again.
    caps_changed: bool,
    last_id: u32,
    next_frame_id: u64,
}

impl StreamTracker {
    /// A tracker for rendition `id` (docs/protocol.md, "Renditions"): its configuration ids
    /// never meet another rendition's, so that a viewer that switches gets the new one.
    pub fn for_rendition(id: u32) -> StreamTracker {
        StreamTracker {
            last_id: id << 24,
            ..StreamTracker::default()
        }
    }

    pub fn set_caps(&mut self, caps: CapsInfo) -> Result<(), StreamError> {
        self.avc_codec_string = None;
        if caps.format == Format::Avc {
            let avcc = caps.codec_data.as_deref().ok_or(StreamError::NoCodecData)?;
            let sps = codec::h264_sps_from_avcc(avcc).map_err(StreamError::CodecData)?;
            self.avc_codec_string = Some(codec::h264_codec_string(&sps));
        }
        self.caps = Some(caps);
        self.caps_changed = true;
        Ok(())
    }

    /// Whether the stream is still images (JPEG, PNG, WebP), each decodable on its own.
    pub fn is_image(&self) -> bool {
        self.caps.as_ref().is_some_and(|c| c.codec.is_image())
    }

    /// Whether every buffer is decodable on its own by the browser's own rule (images), or the
    /// configuration depends on the caps alone (images and raw tiles).
    fn config_from_caps(&self) -> bool {
        self.caps
            .as_ref()
            .is_some_and(|c| c.codec.is_image() || c.codec == Codec::Raw)
    }

    pub fn next_frame_id(&mut self) -> u64 {
        let id = self.next_frame_id;
        self.next_frame_id += 1;
        id
    }

    /// The configuration a frame belongs to. A keyframe may start a new configuration; a delta
    /// frame belongs to the current one. `Ok(None)`: nothing decodable yet (deltas before the
    /// first keyframe), the frame is dropped.
    pub fn config_for(
        &mut self,
        data: &[u8],
        key: bool,
    ) -> Result<Option<Arc<StreamConfig>>, StreamError> {
        let Some(caps) = &self.caps else {
            return Err(StreamError::BeforeCaps);
        };
        if data.is_empty() && caps.codec != Codec::Raw {
            return Err(StreamError::Empty);
        }
        if !caps.codec.looks_valid(data) {
            return Err(StreamError::NotAnImage(caps.codec.name()));
        }
        // A still image's configuration depends on the caps alone: derive it once per caps, not
        // per frame (every image is a keyframe).
        if !key || (self.config_from_caps() && !self.caps_changed && self.current.is_some()) {
            return Ok(self.current.clone());
        }
        let candidate = self.derive(caps, data)?;
        if candidate.width > MAX_DIMENSION || candidate.height > MAX_DIMENSION {
            return Err(StreamError::TooLarge {
                width: candidate.width,
                height: candidate.height,
            });
        }
        self.caps_changed = false;
        if let Some(current) = &self.current {
            if current.codec == candidate {
                return Ok(Some(current.clone()));
            }
        }
        self.last_id += 1;
        let config = Arc::new(StreamConfig {
            id: self.last_id,
            codec: candidate,
        });
        self.current = Some(config.clone());
        Ok(Some(config))
    }

    fn derive(&self, caps: &CapsInfo, data: &[u8]) -> Result<CodecConfig, StreamError> {
        let mut config = CodecConfig {
            codec: caps.codec,
            format: caps.format,
            codec_string: String::new(),
            width: caps.width,
            height: caps.height,
            description: None,
        };
        // What the last configuration said, when this keyframe does not say it again.
        let previous = self
            .current
            .as_ref()
            .filter(|c| c.codec.codec == caps.codec && c.codec.format == caps.format)
            .map(|c| c.codec.codec_string.clone());
        match caps.format {
            Format::AnnexB => match codec::h264_sps_from_annexb(data) {
                Some(Ok(sps)) => {
                    config.codec_string = codec::h264_codec_string(&sps);
                    config.width = sps.width;
                    config.height = sps.height;
                }
                Some(Err(e)) => return Err(StreamError::Sps(e)),
                None => {
                    config.codec_string = previous
                        .or_else(|| h264_string_from_caps(caps))
                        .ok_or(StreamError::NoSps)?;
                }
            },
            Format::Avc => {
                config.codec_string = self.avc_codec_string.clone().unwrap_or_default();
                config.description = caps.codec_data.clone();
            }
            Format::Vp8 => {
                config.codec_string = "vp8".into();
                if let Some((w, h)) = codec::vp8_keyframe_size(data) {
                    (config.width, config.height) = (w, h);
                }
            }
            Format::Vp9 => match codec::vp9_keyframe_info(data) {
                Some((s, w, h)) => {
                    config.codec_string = s;
                    (config.width, config.height) = (w, h);
                }
                None => config.codec_string = previous.unwrap_or_else(|| "vp09.00.10.08".into()),
            },
            Format::Obu => match codec::av1_sequence_info(data) {
                Some(Ok((s, w, h))) => {
                    config.codec_string = s;
                    (config.width, config.height) = (w, h);
                }
                Some(Err(e)) => return Err(StreamError::Av1Header(e)),
                None => config.codec_string = previous.ok_or(StreamError::NoAv1Header)?,
            },
            Format::Jpeg | Format::Png | Format::Webp => {
                config.codec_string = caps.codec.mime().unwrap_or_default().into();
            }
            Format::Tiles => {
                let format = caps.raw.ok_or(StreamError::RawWithoutFormat)?;
                config.codec_string = format.wire().name().into();
            }
        }
        Ok(config)
    }
}

/// `caps_info` for a stream that goes to viewers: at most `MAX_DIMENSION` each way.
pub(crate) fn streamable_caps_info(caps: &gst::CapsRef) -> Result<CapsInfo, StreamError> {
    let info = caps_info(caps)?;
    if info.width > MAX_DIMENSION || info.height > MAX_DIMENSION {
        return Err(StreamError::TooLarge {
            width: info.width,
            height: info.height,
        });
    }
    Ok(info)
}

/// What the negotiated caps say, or why they cannot be streamed.
pub(crate) fn caps_info(caps: &gst::CapsRef) -> Result<CapsInfo, StreamError> {
    let s = caps.structure(0).ok_or(StreamError::EmptyCaps)?;
    let (codec, format) = match s.name().as_str() {
        "video/x-h264" => match s.get::<&str>("stream-format").unwrap_or("byte-stream") {
            "byte-stream" => (Codec::H264, Format::AnnexB),
            "avc" => (Codec::H264, Format::Avc),
            other => return Err(StreamError::H264StreamFormat(other.into())),
        },
        "video/x-vp8" => (Codec::Vp8, Format::Vp8),
        "video/x-vp9" => (Codec::Vp9, Format::Vp9),
        "video/x-av1" => (Codec::Av1, Format::Obu),
        "image/jpeg" => (Codec::Jpeg, Format::Jpeg),
        "image/png" => (Codec::Png, Format::Png),
        "image/webp" => (Codec::Webp, Format::Webp),
        "video/x-raw" => (Codec::Raw, Format::Tiles),
        other => return Err(StreamError::Unsupported(other.into())),
    };
    let raw = match codec {
        Codec::Raw => {
            let name = s
                .get::<&str>("format")
                .map_err(|_| StreamError::RawWithoutFormat)?;
            Some(SourceFormat::from_name(name).ok_or_else(|| StreamError::RawFormat(name.into()))?)
        }
        _ => None,
    };
    let dim = |name| {
        s.get::<i32>(name)
            .ok()
            .map(|v| v.max(0) as u32)
            .unwrap_or(0)
    };
    let codec_data = s
        .get::<gst::Buffer>("codec_data")
        .ok()
        .and_then(|b| b.map_readable().ok().map(|m| m.to_vec()));
    Ok(CapsInfo {
        codec,
        format,
        width: dim("width"),
        height: dim("height"),
        codec_data,
        profile: s.get::<String>("profile").ok(),
        level: s.get::<String>("level").ok(),
        raw,
    })
}

/// "avc1.PPCCLL" from the caps' profile and level names.
fn h264_string_from_caps(caps: &CapsInfo) -> Option<String> {
    let (profile, constraints) = match caps.profile.as_deref()? {
        "constrained-baseline" => (66, 0xc0),
        "baseline" => (66, 0x40),
        "main" => (77, 0x40),
        "extended" => (88, 0),
        "high" => (100, 0),
        "high-10" => (110, 0),
        "high-4:2:2" => (122, 0),
        "high-4:4:4" => (244, 0),
        _ => return None,
    };
    let level = caps.level.as_deref()?;
    let level = match level {
        "1b" => 9,
        _ => {
            let mut parts = level.splitn(2, '.');
            let major: u8 = parts.next()?.parse().ok()?;
            let minor: u8 = parts.next().unwrap_or("0").parse().ok()?;
            major * 10 + minor
        }
    };
    Some(format!("avc1.{profile:02X}{constraints:02X}{level:02X}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg_caps(w: u32, h: u32) -> CapsInfo {
        CapsInfo {
            codec: Codec::Jpeg,
            format: Format::Jpeg,
            width: w,
            height: h,
            codec_data: None,
            profile: None,
            level: None,
            raw: None,
        }
    }

    /// The start of a JPEG file (what the browser will decode; only the signature is checked).
    const JPEG: &[u8] = &[0xff, 0xd8, 0xff, 0xe0, 0, 0x10];

    #[test]
    fn config_ids_follow_changes() {
        let mut t = StreamTracker::default();
        assert!(t.config_for(JPEG, true).is_err(), "buffer before caps");
        t.set_caps(jpeg_caps(320, 240)).unwrap();
        let a = t.config_for(JPEG, true).unwrap().unwrap();
        assert_eq!(a.id, 1);
        assert_eq!(a.codec.codec_string, "image/jpeg");
        let b = t.config_for(JPEG, true).unwrap().unwrap();
        assert!(Arc::ptr_eq(&a, &b), "same format, same config");
        t.set_caps(jpeg_caps(640, 480)).unwrap();
        let c = t.config_for(JPEG, true).unwrap().unwrap();
        assert_eq!((c.id, c.codec.width), (2, 640));
    }

    #[test]
    fn unstreamable_buffers_are_errors_not_configs() {
        let mut t = StreamTracker::default();
        t.set_caps(jpeg_caps(320, 240)).unwrap();
        assert!(t.config_for(b"", true).is_err(), "empty");
        assert!(matches!(
            t.config_for(b"garbage", true),
            Err(StreamError::NotAnImage("jpeg"))
        ));
        t.set_caps(jpeg_caps(20000, 240)).unwrap();
        let err = t.config_for(JPEG, true).unwrap_err();
        assert!(
            matches!(err, StreamError::TooLarge { width: 20000, .. })
                && err.to_string() == "20000x240 is larger than 16384x16384",
            "{err}"
        );
    }

    #[test]
    fn deltas_before_any_keyframe_have_no_config() {
        let mut t = StreamTracker::default();
        t.set_caps(CapsInfo {
            codec: Codec::Vp8,
            format: Format::Vp8,
            ..jpeg_caps(320, 240)
        })
        .unwrap();
        assert!(matches!(t.config_for(b"delta", false), Ok(None)));
    }

    #[test]
    fn h264_string_from_caps_names() {
        let caps = |p: &str, l: &str| CapsInfo {
            codec: Codec::H264,
            format: Format::AnnexB,
            profile: Some(p.into()),
            level: Some(l.into()),
            ..jpeg_caps(0, 0)
        };
        assert_eq!(
            h264_string_from_caps(&caps("high", "3.1")).as_deref(),
            Some("avc1.64001F")
        );
        assert_eq!(
            h264_string_from_caps(&caps("constrained-baseline", "3")).as_deref(),
            Some("avc1.42C01E")
        );
        assert_eq!(h264_string_from_caps(&caps("weird", "3")), None);
    }

    #[test]
    fn avc_caps_need_codec_data() {
        let mut t = StreamTracker::default();
        let err = t
            .set_caps(CapsInfo {
                codec: Codec::H264,
                format: Format::Avc,
                ..jpeg_caps(320, 240)
            })
            .unwrap_err();
        assert!(matches!(err, StreamError::NoCodecData), "{err}");
    }
}
