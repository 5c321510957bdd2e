// SPDX-License-Identifier: MPL-2.0

//! What a browser needs to configure its decoder, read from the stream itself.
//!
//! WebCodecs wants a codec string (`avc1.64001F`, `vp09.00.31.08`, `av01.0.08M.08`) and, for
//! length-prefixed H.264, the avcC record. Caps rarely carry enough for that (no level for VP9 or
//! AV1, no constraint flags for H.264), so this module reads the H.264 SPS, the VP9 and VP8 keyframe
//! headers and the AV1 sequence header. Pure logic: no GStreamer, no allocation beyond the
//! unescaped SPS, and no panic on any input.

use std::fmt;

/// The codecs rfbsink streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    H264,
    Vp8,
    Vp9,
    Av1,
    Jpeg,
    Png,
    Webp,
    /// Raw video, sent losslessly as tiles (`tiles.rs`).
    Raw,
}

impl Codec {
    /// The `codec` field of the `config` message.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::Vp8 => "vp8",
            Codec::Vp9 => "vp9",
            Codec::Av1 => "av1",
            Codec::Jpeg => "jpeg",
            Codec::Png => "png",
            Codec::Webp => "webp",
            Codec::Raw => "raw",
        }
    }

    /// Images are decoded one by one (`ImageDecoder`), not by a `VideoDecoder`.
    pub fn is_image(self) -> bool {
        matches!(self, Codec::Jpeg | Codec::Png | Codec::Webp)
    }

    /// Whether `data` starts like a file of this image codec (the browser decodes it; garbage is
    /// skipped before it reaches anyone). Always true for video codecs.
    pub fn looks_valid(self, data: &[u8]) -> bool {
        match self {
            Codec::Jpeg => data.starts_with(&[0xff, 0xd8, 0xff]),
            Codec::Png => data.starts_with(b"\x89PNG\r\n\x1a\n"),
            Codec::Webp => data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP",
            Codec::H264 | Codec::Vp8 | Codec::Vp9 | Codec::Av1 | Codec::Raw => true,
        }
    }

    /// The MIME type of an image codec; `None` for video codecs.
    pub fn mime(self) -> Option<&'static str> {
        match self {
            Codec::Jpeg => Some("image/jpeg"),
            Codec::Png => Some("image/png"),
            Codec::Webp => Some("image/webp"),
            Codec::H264 | Codec::Vp8 | Codec::Vp9 | Codec::Av1 | Codec::Raw => None,
        }
    }
}

/// How the payload of each frame is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    AnnexB,
    Avc,
    Vp8,
    Vp9,
    Obu,
    Jpeg,
    Png,
    Webp,
    /// rfbsink's own lossless tiles.
    Tiles,
}

impl Format {
    /// The `format` field of the `config` message.
    pub fn name(self) -> &'static str {
        match self {
            Format::AnnexB => "annexb",
            Format::Avc => "avc",
            Format::Vp8 => "vp8",
            Format::Vp9 => "vp9",
            Format::Obu => "obu",
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Tiles => "tiles",
        }
    }
}

/// What a browser needs to configure its decoder (serialized elsewhere into the `config` message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecConfig {
    pub codec: Codec,
    pub format: Format,
    /// WebCodecs codec string, or the MIME type for images.
    pub codec_string: String,
    pub width: u32,
    pub height: u32,
    /// avcC record for [`Format::Avc`], else `None`.
    pub description: Option<Vec<u8>>,
}

/// The parts of an H.264 sequence parameter set that the codec string and the picture size need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpsInfo {
    pub profile_idc: u8,
    pub constraint_flags: u8,
    pub level_idc: u8,
    /// Display width: coded width minus frame cropping.
    pub width: u32,
    /// Display height: coded height minus frame cropping.
    pub height: u32,
}

/// A stream header that could not be read; the message says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError(pub String);

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

fn err<T>(msg: impl Into<String>) -> Result<T, CodecError> {
    Err(CodecError(msg.into()))
}

/// Larger than any decoder accepts; bounds what garbage can make us report.
const MAX_DIMENSION: u64 = 65_536;

/// MSB-first bit reader over a byte slice. Every read names the field it reads so that a
/// truncated header says where it ended.
struct BitReader<'a> {
    data: &'a [u8],
    /// Position in bits.
    pos: usize,
    /// What is being read ("SPS", "AV1 sequence header"), for error messages.
    what: &'static str,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8], what: &'static str) -> Self {
        Self { data, pos: 0, what }
    }

    fn bits_left(&self) -> usize {
        (self.data.len() * 8).saturating_sub(self.pos)
    }

    fn truncated<T>(&self, field: &str) -> Result<T, CodecError> {
        err(format!(
            "{} truncated reading {field} (at bit {} of {})",
            self.what,
            self.pos,
            self.data.len() * 8
        ))
    }

    fn flag(&mut self, field: &str) -> Result<bool, CodecError> {
        Ok(self.bits(1, field)? == 1)
    }

    /// Reads `n` bits (at most 32) as an unsigned integer.
    fn bits(&mut self, n: u32, field: &str) -> Result<u32, CodecError> {
        debug_assert!(n <= 32);
        if self.bits_left() < n as usize {
            return self.truncated(field);
        }
        let mut v: u64 = 0;
        for _ in 0..n {
            let byte = self.data[self.pos / 8];
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            v = (v << 1) | u64::from(bit);
            self.pos += 1;
        }
        Ok(v as u32)
    }

    fn skip(&mut self, n: usize, field: &str) -> Result<(), CodecError> {
        if self.bits_left() < n {
            return self.truncated(field);
        }
        self.pos += n;
        Ok(())
    }

    /// Unsigned exp-Golomb, ue(v) in H.264.
    fn ue(&mut self, field: &str) -> Result<u32, CodecError> {
        let mut zeros = 0u32;
        while !self.flag(field)? {
            zeros += 1;
            if zeros > 31 {
                return err(format!(
                    "{}: {field} exp-Golomb code longer than 32 bits",
                    self.what
                ));
            }
        }
        let rest = self.bits(zeros, field)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }

    /// Unsigned exp-Golomb with an upper bound, for fields whose range the spec limits.
    fn ue_max(&mut self, field: &str, max: u32) -> Result<u32, CodecError> {
        let v = self.ue(field)?;
        if v > max {
            return err(format!("{}: {field} is {v}, more than {max}", self.what));
        }
        Ok(v)
    }

    /// Signed exp-Golomb, se(v) in H.264.
    fn se(&mut self, field: &str) -> Result<i32, CodecError> {
        let k = i64::from(self.ue(field)?);
        let v = if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) };
        Ok(v as i32)
    }

    /// uvlc() of AV1 (section 4.10.3).
    fn uvlc(&mut self, field: &str) -> Result<u32, CodecError> {
        let mut zeros = 0u32;
        while !self.flag(field)? {
            zeros += 1;
        }
        if zeros >= 32 {
            return Ok(u32::MAX);
        }
        let rest = self.bits(zeros, field)?;
        Ok(((1u64 << zeros) - 1 + u64::from(rest)) as u32)
    }
}

/// Removes emulation-prevention bytes (00 00 03 -> 00 00) from a NAL unit payload.
fn unescape_rbsp(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
    out
}

const NAL_IDR: u8 = 5;
const NAL_SPS: u8 = 7;

fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| h & 0x1f)
}

/// Profiles whose SPS carries chroma_format_idc, bit depths and scaling matrices (7.3.2.1.1).
fn has_chroma_info(profile_idc: u8) -> bool {
    matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    )
}

fn skip_scaling_list(r: &mut BitReader, size: usize) -> Result<(), CodecError> {
    let mut last_scale: i32 = 8;
    let mut next_scale: i32 = 8;
    for _ in 0..size {
        if next_scale != 0 {
            let delta = r.se("delta_scale")?;
            if !(-128..=127).contains(&delta) {
                return err(format!("SPS: delta_scale {delta} out of range"));
            }
            next_scale = (last_scale + delta + 256) % 256;
        }
        if next_scale != 0 {
            last_scale = next_scale;
        }
    }
    Ok(())
}

/// Parse an H.264 SPS NAL unit (starting with the NAL header byte, emulation-prevention bytes
/// still in).
pub fn parse_h264_sps(nal: &[u8]) -> Result<SpsInfo, CodecError> {
    let Some(&header) = nal.first() else {
        return err("SPS is empty");
    };
    if header & 0x80 != 0 {
        return err("SPS NAL header has forbidden_zero_bit set");
    }
    if header & 0x1f != NAL_SPS {
        return err(format!(
            "not an SPS: nal_unit_type is {}, expected {NAL_SPS}",
            header & 0x1f
        ));
    }
    let rbsp = unescape_rbsp(&nal[1..]);
    let mut r = BitReader::new(&rbsp, "SPS");

    let profile_idc = r.bits(8, "profile_idc")? as u8;
    let constraint_flags = r.bits(8, "constraint_set flags")? as u8;
    let level_idc = r.bits(8, "level_idc")? as u8;
    r.ue_max("seq_parameter_set_id", 31)?;

    let mut chroma_format_idc = 1;
    let mut separate_colour_plane = false;
    if has_chroma_info(profile_idc) {
        chroma_format_idc = r.ue_max("chroma_format_idc", 3)?;
        if chroma_format_idc == 3 {
            separate_colour_plane = r.flag("separate_colour_plane_flag")?;
        }
        r.ue_max("bit_depth_luma_minus8", 6)?;
        r.ue_max("bit_depth_chroma_minus8", 6)?;
        r.flag("qpprime_y_zero_transform_bypass_flag")?;
        if r.flag("seq_scaling_matrix_present_flag")? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if r.flag("seq_scaling_list_present_flag")? {
                    skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }

    r.ue_max("log2_max_frame_num_minus4", 12)?;
    match r.ue_max("pic_order_cnt_type", 2)? {
        0 => {
            r.ue_max("log2_max_pic_order_cnt_lsb_minus4", 12)?;
        }
        1 => {
            r.flag("delta_pic_order_always_zero_flag")?;
            r.se("offset_for_non_ref_pic")?;
            r.se("offset_for_top_to_bottom_field")?;
            let cycle = r.ue_max("num_ref_frames_in_pic_order_cnt_cycle", 255)?;
            for _ in 0..cycle {
                r.se("offset_for_ref_frame")?;
            }
        }
        _ => {}
    }
    r.ue("max_num_ref_frames")?;
    r.flag("gaps_in_frame_num_value_allowed_flag")?;
    let width_mbs = u64::from(r.ue("pic_width_in_mbs_minus1")?) + 1;
    let height_map_units = u64::from(r.ue("pic_height_in_map_units_minus1")?) + 1;
    let frame_mbs_only = r.flag("frame_mbs_only_flag")?;
    if !frame_mbs_only {
        r.flag("mb_adaptive_frame_field_flag")?;
    }
    r.flag("direct_8x8_inference_flag")?;
    let (mut crop_left, mut crop_right, mut crop_top, mut crop_bottom) = (0u64, 0u64, 0u64, 0u64);
    if r.flag("frame_cropping_flag")? {
        crop_left = r.ue("frame_crop_left_offset")?.into();
        crop_right = r.ue("frame_crop_right_offset")?.into();
        crop_top = r.ue("frame_crop_top_offset")?.into();
        crop_bottom = r.ue("frame_crop_bottom_offset")?.into();
    }

    // Fields: a map unit is a pair of macroblocks, one per field.
    let field_factor = if frame_mbs_only { 1 } else { 2 };
    let coded_width = width_mbs * 16;
    let coded_height = height_map_units * 16 * field_factor;
    if coded_width > MAX_DIMENSION || coded_height > MAX_DIMENSION {
        return err(format!(
            "SPS: implausible coded size {coded_width}x{coded_height}"
        ));
    }

    // Crop units, from ChromaArrayType (7.4.2.1.1, frame_crop_*_offset).
    let chroma_array_type = if separate_colour_plane {
        0
    } else {
        chroma_format_idc
    };
    let (crop_unit_x, crop_unit_y) = match chroma_array_type {
        0 => (1, field_factor),
        1 => (2, 2 * field_factor),
        2 => (2, field_factor),
        _ => (1, field_factor),
    };
    let crop_x = (crop_left + crop_right).saturating_mul(crop_unit_x);
    let crop_y = (crop_top + crop_bottom).saturating_mul(crop_unit_y);
    if crop_x >= coded_width || crop_y >= coded_height {
        return err(format!(
            "SPS: frame cropping ({crop_x} columns, {crop_y} rows) leaves nothing of the \
             {coded_width}x{coded_height} picture"
        ));
    }

    Ok(SpsInfo {
        profile_idc,
        constraint_flags,
        level_idc,
        width: (coded_width - crop_x) as u32,
        height: (coded_height - crop_y) as u32,
    })
}

/// "avc1.PPCCLL" (uppercase hex, like "avc1.64001F") from an SpsInfo.
pub fn h264_codec_string(sps: &SpsInfo) -> String {
    format!(
        "avc1.{:02X}{:02X}{:02X}",
        sps.profile_idc, sps.constraint_flags, sps.level_idc
    )
}

/// NAL units of an Annex B byte stream, without start codes or trailing zero bytes.
fn annexb_nals(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    // Start of the next NAL unit's payload, just after a 00 00 01.
    fn next_start(data: &[u8], from: usize) -> Option<usize> {
        data.get(from..)?
            .windows(3)
            .position(|w| w == [0, 0, 1])
            .map(|p| from + p + 3)
    }

    let mut next = next_start(data, 0);
    std::iter::from_fn(move || {
        let start = next?;
        next = next_start(data, start);
        // A 4-byte start code and trailing_zero_8bits leave zeros before the next 00 00 01;
        // a NAL unit never ends with a zero byte (rbsp_stop_one_bit).
        let mut end = next.map_or(data.len(), |n| n - 3);
        while end > start && data[end - 1] == 0 {
            end -= 1;
        }
        Some(&data[start..end])
    })
}

/// Iterate Annex B NAL units (3- and 4-byte start codes); return the first SPS found, parsed.
pub fn h264_sps_from_annexb(data: &[u8]) -> Option<Result<SpsInfo, CodecError>> {
    annexb_nals(data)
        .find(|nal| nal_type(nal) == Some(NAL_SPS))
        .map(parse_h264_sps)
}

/// Is there an IDR slice (nal type 5) in this Annex B access unit?
pub fn annexb_has_idr(data: &[u8]) -> bool {
    annexb_nals(data).any(|nal| nal_type(nal) == Some(NAL_IDR))
}

/// Whether an H.264 access unit of this stream carries its SPS in-band (x264enc repeats it before
/// every IDR; some encoders keep it in codec_data only).
pub fn h264_has_inband_sps(data: &[u8], codec: &CodecConfig) -> bool {
    match (&codec.format, &codec.description) {
        (Format::Avc, Some(avcc)) => avcc_nal_length_size(avcc)
            .ok()
            .and_then(|size| h264_sps_from_avc(data, size))
            .is_some(),
        _ => annexb_nals(data).any(|nal| nal_type(nal) == Some(NAL_SPS)),
    }
}

/// The parts of an AVCDecoderConfigurationRecord (ISO/IEC 14496-15, 5.3.3.1) we use.
struct Avcc<'a> {
    nal_length_size: usize,
    first_sps: &'a [u8],
}

fn parse_avcc(avcc: &[u8]) -> Result<Avcc<'_>, CodecError> {
    if avcc.len() < 8 {
        return err(format!("avcC record too short: {} bytes", avcc.len()));
    }
    if avcc[0] != 1 {
        return err(format!(
            "avcC configurationVersion is {}, expected 1",
            avcc[0]
        ));
    }
    let nal_length_size = usize::from(avcc[4] & 0x03) + 1;
    let num_sps = avcc[5] & 0x1f;
    if num_sps == 0 {
        return err("avcC record has no SPS");
    }
    let len = usize::from(u16::from_be_bytes([avcc[6], avcc[7]]));
    let Some(first_sps) = avcc.get(8..8 + len) else {
        return err(format!(
            "avcC SPS length {len} exceeds the {} bytes left",
            avcc.len().saturating_sub(8)
        ));
    };
    Ok(Avcc {
        nal_length_size,
        first_sps,
    })
}

/// From an avcC record (caps codec_data): SPS parsed from it (first SPS in the record).
pub fn h264_sps_from_avcc(avcc: &[u8]) -> Result<SpsInfo, CodecError> {
    parse_h264_sps(parse_avcc(avcc)?.first_sps)
}

/// The NAL unit length size (1, 2 or 4 bytes) an avcC record declares, for
/// [`h264_sps_from_avc`].
pub fn avcc_nal_length_size(avcc: &[u8]) -> Result<usize, CodecError> {
    Ok(parse_avcc(avcc)?.nal_length_size)
}

/// Iterate length-prefixed (AVC, nal_length_size from avcC) NAL units; first SPS if any
/// (in-band SPS).
pub fn h264_sps_from_avc(
    data: &[u8],
    nal_length_size: usize,
) -> Option<Result<SpsInfo, CodecError>> {
    if !(1..=4).contains(&nal_length_size) {
        return Some(err(format!(
            "NAL length size {nal_length_size} is not 1 to 4 bytes"
        )));
    }
    let mut rest = data;
    while !rest.is_empty() {
        let Some(prefix) = rest.get(..nal_length_size) else {
            return Some(err(format!(
                "AVC data ends inside a {nal_length_size}-byte NAL length ({} bytes left)",
                rest.len()
            )));
        };
        let len = prefix
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[nal_length_size..];
        let Some(nal) = rest.get(..len) else {
            return Some(err(format!(
                "AVC NAL unit length {len} exceeds the {} bytes left",
                rest.len()
            )));
        };
        if nal_type(nal) == Some(NAL_SPS) {
            return Some(parse_h264_sps(nal));
        }
        rest = &rest[len..];
    }
    None
}

/// VP9 levels by maximum luma picture size (webmproject.org/vp9/levels). Without a frame rate the
/// picture size is all we can go by, so the lowest level of each size class is reported.
const VP9_LEVELS: [(u64, u8); 9] = [
    (36_864, 10),
    (73_728, 11),
    (122_880, 20),
    (245_760, 21),
    (552_960, 30),
    (983_040, 31),
    (2_228_224, 40),
    (8_912_896, 50),
    (35_651_584, 60),
];

fn vp9_level(width: u32, height: u32) -> u8 {
    let size = u64::from(width) * u64::from(height);
    VP9_LEVELS
        .iter()
        .find(|(max, _)| size <= *max)
        .map_or(62, |&(_, level)| level)
}

/// Profile, bit depth and size from a single VP9 frame's uncompressed header (VP9 spec 6.2),
/// `None` when it is not a keyframe.
fn vp9_frame_keyframe_info(frame: &[u8]) -> Option<(u8, u8, u32, u32)> {
    let mut r = BitReader::new(frame, "VP9 frame header");
    if r.bits(2, "frame_marker").ok()? != 2 {
        return None;
    }
    let low = r.bits(1, "profile_low_bit").ok()?;
    let high = r.bits(1, "profile_high_bit").ok()?;
    let profile = ((high << 1) | low) as u8;
    if profile == 3 && r.flag("reserved_zero").ok()? {
        return None;
    }
    if r.flag("show_existing_frame").ok()? {
        return None;
    }
    // frame_type 0 is KEY_FRAME.
    if r.flag("frame_type").ok()? {
        return None;
    }
    r.skip(2, "show_frame, error_resilient_mode").ok()?;
    if r.bits(24, "frame_sync_code").ok()? != 0x49_83_42 {
        return None;
    }
    // color_config()
    let bit_depth = if profile >= 2 {
        if r.flag("ten_or_twelve_bit").ok()? {
            12
        } else {
            10
        }
    } else {
        8
    };
    let color_space = r.bits(3, "color_space").ok()?;
    const CS_RGB: u32 = 7;
    if color_space != CS_RGB {
        r.skip(1, "color_range").ok()?;
        if profile == 1 || profile == 3 {
            r.skip(3, "subsampling_x, subsampling_y, reserved_zero")
                .ok()?;
        }
    } else if profile == 1 || profile == 3 {
        r.skip(1, "reserved_zero").ok()?;
    }
    // frame_size()
    let width = r.bits(16, "frame_width_minus_1").ok()? + 1;
    let height = r.bits(16, "frame_height_minus_1").ok()? + 1;
    Some((profile, bit_depth, width, height))
}

/// The frames of a VP9 superframe (Annex B of the VP9 spec), or the whole buffer as one frame.
fn vp9_frames(data: &[u8]) -> Vec<&[u8]> {
    let Some(&marker) = data.last() else {
        return Vec::new();
    };
    if marker & 0xe0 == 0xc0 {
        let count = usize::from(marker & 0x07) + 1;
        let size_bytes = usize::from((marker >> 3) & 0x03) + 1;
        let index_len = 2 + size_bytes * count;
        if data.len() >= index_len && data[data.len() - index_len] == marker {
            let index = &data[data.len() - index_len + 1..data.len() - 1];
            let mut frames = Vec::with_capacity(count);
            let mut offset = 0usize;
            for size in index.chunks_exact(size_bytes) {
                let size = size
                    .iter()
                    .rev()
                    .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
                let Some(frame) = data.get(offset..offset.saturating_add(size)) else {
                    break;
                };
                frames.push(frame);
                offset += size;
            }
            return frames;
        }
    }
    vec![data]
}

/// VP9: parse the uncompressed header of a keyframe; "vp09.PP.LL.DD" with profile, a level from
/// the frame size (webm VP9 levels by luma picture size), bit depth (8 for profile 0/1, 10/12 from
/// the header for 2/3). Also returns width/height from the frame header. None if not a keyframe /
/// unparseable. A superframe is searched for its keyframe.
pub fn vp9_keyframe_info(frame: &[u8]) -> Option<(String, u32, u32)> {
    vp9_frames(frame)
        .into_iter()
        .find_map(vp9_frame_keyframe_info)
        .map(|(profile, bit_depth, width, height)| {
            let level = vp9_level(width, height);
            (
                format!("vp09.{profile:02}.{level:02}.{bit_depth:02}"),
                width,
                height,
            )
        })
}

/// VP8: width/height from a keyframe's header (frame tag + start code 9d 01 2a). None if not a
/// keyframe.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    let header = frame.get(..10)?;
    // Frame tag bit 0 is 0 for a keyframe (RFC 6386, 9.1).
    if header[0] & 0x01 != 0 || header[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    // 14 bits of size, 2 bits of upscaling hint.
    let width = u32::from(u16::from_le_bytes([header[6], header[7]]) & 0x3fff);
    let height = u32::from(u16::from_le_bytes([header[8], header[9]]) & 0x3fff);
    if width == 0 || height == 0 {
        return None;
    }
    Some((width, height))
}

const OBU_SEQUENCE_HEADER: u8 = 1;

/// leb128() of AV1 (section 4.10.5); returns the value and the bytes it took.
fn leb128(data: &[u8]) -> Result<(u64, usize), CodecError> {
    let mut value = 0u64;
    for i in 0..8 {
        let Some(&b) = data.get(i) else {
            return err("AV1 OBU size (leb128) truncated");
        };
        value |= u64::from(b & 0x7f) << (i * 7);
        if b & 0x80 == 0 {
            if value > u64::from(u32::MAX) {
                return err(format!("AV1 OBU size {value} exceeds 2^32 - 1"));
            }
            return Ok((value, i + 1));
        }
    }
    err("AV1 OBU size (leb128) longer than 8 bytes")
}

/// Profile, level, tier, bit depth and maximum frame size from a sequence_header_obu()
/// payload (AV1 spec 5.5).
fn parse_av1_sequence_header(payload: &[u8]) -> Result<(String, u32, u32), CodecError> {
    let mut r = BitReader::new(payload, "AV1 sequence header");
    let seq_profile = r.bits(3, "seq_profile")?;
    if seq_profile > 2 {
        return err(format!("AV1 seq_profile {seq_profile} is reserved"));
    }
    r.flag("still_picture")?;
    let reduced_still_picture_header = r.flag("reduced_still_picture_header")?;

    let seq_level_idx;
    let mut seq_tier = false;
    if reduced_still_picture_header {
        seq_level_idx = r.bits(5, "seq_level_idx[0]")?;
    } else {
        let mut decoder_model_info_present = false;
        let mut buffer_delay_length = 0;
        if r.flag("timing_info_present_flag")? {
            // timing_info()
            r.skip(64, "num_units_in_display_tick, time_scale")?;
            if r.flag("equal_picture_interval")? {
                r.uvlc("num_ticks_per_picture_minus_1")?;
            }
            decoder_model_info_present = r.flag("decoder_model_info_present_flag")?;
            if decoder_model_info_present {
                // decoder_model_info()
                buffer_delay_length = r.bits(5, "buffer_delay_length_minus_1")? + 1;
                r.skip(32, "num_units_in_decoding_tick")?;
                r.skip(
                    10,
                    "buffer_removal_time_length_minus_1, frame_presentation_time_length_minus_1",
                )?;
            }
        }
        let initial_display_delay_present = r.flag("initial_display_delay_present_flag")?;
        let operating_points = r.bits(5, "operating_points_cnt_minus_1")? + 1;
        let mut first = None;
        for _ in 0..operating_points {
            r.skip(12, "operating_point_idc")?;
            let level = r.bits(5, "seq_level_idx")?;
            let tier = level > 7 && r.flag("seq_tier")?;
            if decoder_model_info_present && r.flag("decoder_model_present_for_this_op")? {
                // operating_parameters_info(): decoder and encoder buffer delays, low delay flag.
                r.skip(
                    2 * buffer_delay_length as usize + 1,
                    "operating_parameters_info",
                )?;
            }
            if initial_display_delay_present
                && r.flag("initial_display_delay_present_for_this_op")?
            {
                r.skip(4, "initial_display_delay_minus_1")?;
            }
            first.get_or_insert((level, tier));
        }
        (seq_level_idx, seq_tier) = first.unwrap_or_default();
    }

    let width_bits = r.bits(4, "frame_width_bits_minus_1")? + 1;
    let height_bits = r.bits(4, "frame_height_bits_minus_1")? + 1;
    let width = u64::from(r.bits(width_bits, "max_frame_width_minus_1")?) + 1;
    let height = u64::from(r.bits(height_bits, "max_frame_height_minus_1")?) + 1;
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return err(format!(
            "AV1 sequence header: implausible maximum frame size {width}x{height}"
        ));
    }
    if !reduced_still_picture_header && r.flag("frame_id_numbers_present_flag")? {
        r.skip(
            7,
            "delta_frame_id_length_minus_2, additional_frame_id_length_minus_1",
        )?;
    }
    r.skip(
        3,
        "use_128x128_superblock, enable_filter_intra, enable_intra_edge_filter",
    )?;
    if !reduced_still_picture_header {
        r.skip(
            4,
            "enable_interintra_compound, enable_masked_compound, enable_warped_motion, \
             enable_dual_filter",
        )?;
        let enable_order_hint = r.flag("enable_order_hint")?;
        if enable_order_hint {
            r.skip(2, "enable_jnt_comp, enable_ref_frame_mvs")?;
        }
        // seq_force_screen_content_tools is SELECT_SCREEN_CONTENT_TOOLS (> 0) when chosen.
        let force_screen_content_tools = if r.flag("seq_choose_screen_content_tools")? {
            true
        } else {
            r.flag("seq_force_screen_content_tools")?
        };
        if force_screen_content_tools && !r.flag("seq_choose_integer_mv")? {
            r.skip(1, "seq_force_integer_mv")?;
        }
        if enable_order_hint {
            r.skip(3, "order_hint_bits_minus_1")?;
        }
    }
    r.skip(3, "enable_superres, enable_cdef, enable_restoration")?;
    // color_config(), as far as the bit depth.
    let high_bitdepth = r.flag("high_bitdepth")?;
    let bit_depth = if seq_profile == 2 && high_bitdepth {
        match r.flag("twelve_bit")? {
            true => 12,
            false => 10,
        }
    } else if high_bitdepth {
        10
    } else {
        8
    };

    let tier = if seq_tier { 'H' } else { 'M' };
    Ok((
        format!("av01.{seq_profile}.{seq_level_idx:02}{tier}.{bit_depth:02}"),
        width as u32,
        height as u32,
    ))
}

/// AV1: find the OBU_SEQUENCE_HEADER in a low-overhead OBU stream and return
/// ("av01.P.LLT.DD" e.g. "av01.0.08M.08", max_frame_width, max_frame_height) from it.
/// `None` if the stream holds no sequence header; an error if the OBUs or the header are broken.
pub fn av1_sequence_info(obus: &[u8]) -> Option<Result<(String, u32, u32), CodecError>> {
    let mut rest = obus;
    while let Some(&header) = rest.first() {
        if header & 0x80 != 0 {
            return Some(err("AV1 OBU header has obu_forbidden_bit set"));
        }
        let obu_type = (header >> 3) & 0x0f;
        let has_extension = header & 0x04 != 0;
        let has_size = header & 0x02 != 0;
        let header_len = if has_extension { 2 } else { 1 };
        let Some(after_header) = rest.get(header_len..) else {
            return Some(err("AV1 OBU extension header truncated"));
        };
        let (payload, next) = if has_size {
            let (size, size_len) = match leb128(after_header) {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            };
            let body = &after_header[size_len..];
            let size = size as usize;
            if size > body.len() {
                return Some(err(format!(
                    "AV1 OBU (type {obu_type}) size {size} exceeds the {} bytes left",
                    body.len()
                )));
            }
            (&body[..size], &body[size..])
        } else {
            // Without a size field the OBU runs to the end of the data.
            (after_header, &after_header[after_header.len()..])
        };
        if obu_type == OBU_SEQUENCE_HEADER {
            return Some(parse_av1_sequence_header(payload));
        }
        rest = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        assert!(s.len().is_multiple_of(2), "odd hex length");
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Deterministic xorshift, so that a failing random input can be reproduced.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    // SPS NAL units captured from x264enc / openh264enc (GStreamer 1.22) on this machine:
    // (name, SPS hex, codec string, width, height).
    const H264_SPS: &[(&str, &str, &str, u32, u32)] = &[
        (
            "x264 baseline 1280x720",
            "6742c01fd9005005bb016a02020280000003008000001e478c1924",
            "avc1.42C01F",
            1280,
            720,
        ),
        (
            "x264 baseline 1918x1078",
            "6742c028d900780227a9b016a0202028000003000800000301e478c19240",
            "avc1.42C028",
            1918,
            1078,
        ),
        (
            "x264 baseline 320x240",
            "6742c015d90141fb016a0c0c0d4a000003000200000300791e2c5c90",
            "avc1.42C015",
            320,
            240,
        ),
        (
            "x264 main 1280x720",
            "674d401feca02802dd80b501010140000003004000000f23c60c6580",
            "avc1.4D401F",
            1280,
            720,
        ),
        (
            "x264 main 1918x1078",
            "674d4028eca03c0113d4d80b50101014000003000400000300f23c60c658",
            "avc1.4D4028",
            1918,
            1078,
        ),
        (
            "x264 main 320x240",
            "674d4015eca0a0fd80b5060606a50000030001000003003c8f162d96",
            "avc1.4D4015",
            320,
            240,
        ),
        (
            "x264 high 1280x720",
            "6764001facd9405005bb016a02020280000003008000001e478c18cb",
            "avc1.64001F",
            1280,
            720,
        ),
        (
            "x264 high 1918x1078",
            "67640028acd940780227a9b016a0202028000003000800000301e478c18cb0",
            "avc1.640028",
            1918,
            1078,
        ),
        (
            "x264 high 320x240",
            "67640014acd94141fb016a0c0c0d4a000003000200000300791e28532c",
            "avc1.640014",
            320,
            240,
        ),
        (
            "x264 high interlaced 640x480",
            "6764001eacd940a03db016a0c0c0d4a0000003002000000791e2c5b2c0",
            "avc1.64001E",
            640,
            480,
        ),
        (
            "x264 main interlaced (field pattern 2:2) 1920x1080",
            "674d4028eca03c0227ef016a02020280000003008000001e4f8b16cb",
            "avc1.4D4028",
            1920,
            1080,
        ),
        (
            "x264 main interlaced (field pattern 2:2) 720x576",
            "674d401feca05a126c05a830303528000003000800000301e4f8b16cb0",
            "avc1.4D401F",
            720,
            576,
        ),
        (
            "x264 high-10 352x288",
            "676e000da6cd9416096c05a830303528000003000800000301e478a14cb0",
            "avc1.6E000D",
            352,
            288,
        ),
        (
            "x264 high-4:2:2 1918x1078",
            "677a0028bcd940780227a8bc05a808080a000003000200000300791e30632c",
            "avc1.7A0028",
            1918,
            1078,
        ),
        (
            "x264 high-4:4:4 353x289",
            "67f40015919b282e13f0842180b506060640000003004000000f23c58b6580",
            "avc1.F40015",
            353,
            289,
        ),
        (
            "x264 high-4:4:4 interlaced 640x480",
            "67f4001e90d9b281407b602d41818190000003001000000303c8f162d960",
            "avc1.F4001E",
            640,
            480,
        ),
        (
            "x264 high-4:4:4 cqm=jvt (SPS scaling lists) 352x288",
            "67f4000d919b282c12d80b50606064000003000400000300f23c50a658",
            "avc1.F4000D",
            352,
            288,
        ),
        (
            "openh264 constrained baseline 1918x1078",
            "6742c0288c8d403c0113d4d00f08846a",
            "avc1.42C028",
            1918,
            1078,
        ),
    ];

    // PPS of the x264 high 1280x720 stream, from its avcC.
    const PPS_HIGH_720: &str = "68ebecb22c";
    // codec_data of x264enc ! video/x-h264,profile=high,stream-format=avc at 1280x720.
    const AVCC_HIGH_720: &str = "0164001fffe1001c6764001facd9405005bb016a02020280000003008000001e\
                                 478c18cb01000568ebecb22c";

    #[test]
    fn names() {
        assert_eq!(Codec::H264.name(), "h264");
        assert_eq!(Codec::Av1.name(), "av1");
        assert_eq!(Codec::Webp.name(), "webp");
        assert!(Codec::Jpeg.is_image() && Codec::Png.is_image() && Codec::Webp.is_image());
        assert!(!Codec::H264.is_image() && !Codec::Vp9.is_image());
        assert_eq!(Codec::Png.mime(), Some("image/png"));
        assert_eq!(Codec::Vp8.mime(), None);
        assert_eq!(Format::AnnexB.name(), "annexb");
        assert_eq!(Format::Obu.name(), "obu");
    }

    #[test]
    fn exp_golomb() {
        // 1 | 010 | 011 | 00100 | 00101 | 0001000 -> ue 0, 1, 2, 3, 4, 7
        let data = [0b1010_0110, 0b0100_0010, 0b1000_1000];
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.ue("a").unwrap(), 0);
        assert_eq!(r.ue("b").unwrap(), 1);
        assert_eq!(r.ue("c").unwrap(), 2);
        assert_eq!(r.ue("d").unwrap(), 3);
        assert_eq!(r.ue("e").unwrap(), 4);
        assert_eq!(r.ue("f").unwrap(), 7);
        assert!(r.ue("g").unwrap_err().0.contains("truncated reading g"));
        // se: codes 1, 2, 3, 4 -> +1, -1, +2, -2
        let data = [0b0100_1100, 0b1000_0101];
        let mut r = BitReader::new(&data, "test");
        assert_eq!(r.se("a").unwrap(), 1);
        assert_eq!(r.se("b").unwrap(), -1);
        assert_eq!(r.se("c").unwrap(), 2);
        assert_eq!(r.se("d").unwrap(), -2);
        // The largest value: 31 zeros, a one, 31 ones.
        let data = [0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe];
        assert_eq!(BitReader::new(&data, "t").ue("x").unwrap(), u32::MAX - 1);
        let data = [0; 8];
        assert!(BitReader::new(&data, "t").ue("x").is_err());
    }

    #[test]
    fn emulation_prevention() {
        assert_eq!(
            unescape_rbsp(&[0, 0, 3, 1, 0, 0, 3, 0, 0, 3]),
            [0, 0, 1, 0, 0, 0, 0]
        );
        assert_eq!(unescape_rbsp(&[0, 3, 0, 0, 3]), [0, 3, 0, 0]);
    }

    #[test]
    fn real_sps() {
        for &(name, sps, codec, width, height) in H264_SPS {
            let info = parse_h264_sps(&hex(sps)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(h264_codec_string(&info), codec, "{name}");
            assert_eq!((info.width, info.height), (width, height), "{name}");
        }
    }

    #[test]
    fn sps_fields() {
        let info = parse_h264_sps(&hex(H264_SPS[6].1)).unwrap();
        assert_eq!(
            info,
            SpsInfo {
                profile_idc: 100,
                constraint_flags: 0,
                level_idc: 31,
                width: 1280,
                height: 720
            }
        );
    }

    #[test]
    fn sps_errors() {
        assert!(parse_h264_sps(&[]).unwrap_err().0.contains("empty"));
        let e = parse_h264_sps(&hex(PPS_HIGH_720)).unwrap_err();
        assert!(e.0.contains("nal_unit_type is 8"), "{e}");
        let e = parse_h264_sps(&[0xe7, 0x42]).unwrap_err();
        assert!(e.0.contains("forbidden_zero_bit"), "{e}");
        let e = parse_h264_sps(&hex("6742c01f")).unwrap_err();
        assert!(e.0.contains("SPS truncated reading"), "{e}");
    }

    #[test]
    fn sps_prefixes_and_garbage_do_not_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for &(name, sps, ..) in H264_SPS {
            let sps = hex(sps);
            for len in 0..sps.len() {
                let r = parse_h264_sps(&sps[..len]);
                // The fields end before the VUI, so long prefixes still parse.
                if len < 4 {
                    assert!(r.is_err(), "{name}: prefix {len} parsed");
                }
            }
            for _ in 0..200 {
                let mut bad = sps.clone();
                let i = (rng.next() as usize) % bad.len();
                bad[i] ^= 1 << (rng.next() % 8);
                let _ = parse_h264_sps(&bad);
            }
        }
        for _ in 0..5000 {
            let len = (rng.next() % 64) as usize;
            let mut data = rng.bytes(len);
            if let Some(b) = data.first_mut() {
                *b = (*b & 0x60) | NAL_SPS;
            }
            let _ = parse_h264_sps(&data);
            let _ = h264_sps_from_annexb(&data);
            let _ = annexb_has_idr(&data);
            let _ = h264_sps_from_avcc(&data);
            let _ = h264_sps_from_avc(&data, 4);
            let _ = h264_sps_from_avc(&data, 1);
        }
    }

    fn access_unit(four_byte: bool) -> Vec<u8> {
        let sc: &[u8] = if four_byte { &[0, 0, 0, 1] } else { &[0, 0, 1] };
        let mut au = Vec::new();
        // Access unit delimiter, SPS, PPS, IDR slice header bytes.
        au.extend_from_slice(sc);
        au.extend_from_slice(&[0x09, 0xf0]);
        au.extend_from_slice(sc);
        au.extend_from_slice(&hex(H264_SPS[6].1));
        au.extend_from_slice(&[0, 0]); // trailing_zero_8bits
        au.extend_from_slice(sc);
        au.extend_from_slice(&hex(PPS_HIGH_720));
        au.extend_from_slice(sc);
        au.extend_from_slice(&[0x65, 0x88, 0x84, 0x00, 0x33]);
        au
    }

    #[test]
    fn annexb() {
        for four_byte in [false, true] {
            let au = access_unit(four_byte);
            let nals: Vec<_> = annexb_nals(&au).collect();
            assert_eq!(nals.len(), 4);
            assert_eq!(nals[1], hex(H264_SPS[6].1).as_slice());
            assert_eq!(nals[3], [0x65, 0x88, 0x84, 0x00, 0x33]);
            let sps = h264_sps_from_annexb(&au).unwrap().unwrap();
            assert_eq!(h264_codec_string(&sps), "avc1.64001F");
            assert!(annexb_has_idr(&au));
        }
        // A delta frame: no SPS, no IDR.
        let delta = [0, 0, 0, 1, 0x09, 0xf0, 0, 0, 1, 0x41, 0x9a, 0x21];
        assert!(h264_sps_from_annexb(&delta).is_none());
        assert!(!annexb_has_idr(&delta));
        assert!(h264_sps_from_annexb(&[]).is_none());
        assert!(h264_sps_from_annexb(&[0, 0, 1]).is_none());
        // A broken SPS is reported, not skipped.
        let broken = h264_sps_from_annexb(&[0, 0, 1, 0x67, 0x64]);
        assert!(broken.unwrap().is_err());
    }

    #[test]
    fn avcc() {
        let avcc = hex(AVCC_HIGH_720);
        let sps = h264_sps_from_avcc(&avcc).unwrap();
        assert_eq!(sps, parse_h264_sps(&hex(H264_SPS[6].1)).unwrap());
        assert_eq!(avcc_nal_length_size(&avcc).unwrap(), 4);
        for len in 0..avcc.len() {
            let _ = h264_sps_from_avcc(&avcc[..len]);
        }
        let e = h264_sps_from_avcc(&avcc[..20]).unwrap_err();
        assert!(e.0.contains("exceeds"), "{e}");
        let mut v2 = avcc.clone();
        v2[0] = 2;
        let e = h264_sps_from_avcc(&v2).unwrap_err();
        assert!(e.0.contains("configurationVersion"), "{e}");
        let mut none = avcc.clone();
        none[5] = 0xe0;
        assert!(h264_sps_from_avcc(&none).unwrap_err().0.contains("no SPS"));
    }

    #[test]
    fn avc_length_prefixed() {
        let sps = hex(H264_SPS[0].1);
        for size in [1usize, 2, 4] {
            let mut data = Vec::new();
            for nal in [&[0x09, 0xf0][..], &sps, &[0x65, 0x88, 0x84]] {
                let len = (nal.len() as u32).to_be_bytes();
                data.extend_from_slice(&len[4 - size..]);
                data.extend_from_slice(nal);
            }
            let info = h264_sps_from_avc(&data, size).unwrap().unwrap();
            assert_eq!(h264_codec_string(&info), "avc1.42C01F");
            for len in 0..data.len() {
                let _ = h264_sps_from_avc(&data[..len], size);
            }
        }
        assert!(h264_sps_from_avc(&[0, 0, 0, 2, 0x41, 0x9a], 4).is_none());
        assert!(h264_sps_from_avc(&[0, 0, 0, 9, 0x41], 4).unwrap().is_err());
        assert!(h264_sps_from_avc(&[0, 0], 4).unwrap().is_err());
        assert!(h264_sps_from_avc(&[1, 0x67], 0).unwrap().is_err());
        assert!(h264_sps_from_avc(&[], 4).is_none());
    }

    // Starts of single VP9 keyframes from vp9enc (libvpx): (format, hex, codec string, w, h).
    const VP9_KEYFRAMES: &[(&str, &str, &str, u32, u32)] = &[
        (
            "I420 640x480",
            "824983422027f01df60238241c18d01005507f91",
            "vp09.00.30.08",
            640,
            480,
        ),
        (
            "I420 1280x720",
            "82498342404ff02cf60638241c19541802a47f91",
            "vp09.00.31.08",
            1280,
            720,
        ),
        (
            "I420 1918x1078",
            "824983424077d043561438241c19ae1803f07fd5",
            "vp09.00.40.08",
            1918,
            1078,
        ),
        (
            "I420 3840x2160",
            "8249834240eff086f60c38241c19c01c02787ffd",
            "vp09.00.50.08",
            3840,
            2160,
        ),
        (
            "Y444 352x288",
            "a24983422002be023ec107048383084001087f91",
            "vp09.01.20.08",
            352,
            288,
        ),
        (
            "I420_10LE 352x288",
            "92498342100af808fb011c120e0c290004707f91",
            "vp09.02.20.10",
            352,
            288,
        ),
        (
            "I420_12LE 352x288",
            "92498342900af808fb011c120e0c290004887f91",
            "vp09.02.20.12",
            352,
            288,
        ),
        (
            "Y444_10LE 320x240",
            "b124c1a108009f8077b011c120e0c2900043007f",
            "vp09.03.20.10",
            320,
            240,
        ),
    ];

    #[test]
    fn vp9_real_keyframes() {
        for &(name, frame, codec, width, height) in VP9_KEYFRAMES {
            let info = vp9_keyframe_info(&hex(frame));
            assert_eq!(info, Some((codec.to_string(), width, height)), "{name}");
        }
    }

    #[test]
    fn vp9_levels() {
        assert_eq!(vp9_level(1, 1), 10);
        assert_eq!(vp9_level(192, 192), 10);
        assert_eq!(vp9_level(320, 240), 20);
        assert_eq!(vp9_level(1920, 1080), 40);
        assert_eq!(vp9_level(4096, 2176), 50);
        assert_eq!(vp9_level(8192, 4352), 60);
        assert_eq!(vp9_level(16384, 16384), 62);
    }

    #[test]
    fn vp9_not_keyframes() {
        // An inter frame: frame_type 1.
        assert_eq!(vp9_keyframe_info(&[0x86, 0x00, 0x40]), None);
        // show_existing_frame.
        assert_eq!(vp9_keyframe_info(&[0x88]), None);
        // Bad frame marker.
        assert_eq!(
            vp9_keyframe_info(&[0x02, 0x49, 0x83, 0x42, 0, 0, 0, 0, 0]),
            None
        );
        assert_eq!(vp9_keyframe_info(&[]), None);
    }

    #[test]
    fn vp9_superframe() {
        // A hidden inter frame, then the keyframe, then the superframe index (2 frames,
        // 1 byte per size: marker 0b110_00_001).
        let hidden = [0x84, 0x00, 0x40, 0x11];
        let key = hex(VP9_KEYFRAMES[1].1);
        let mut data = hidden.to_vec();
        data.extend_from_slice(&key);
        data.extend_from_slice(&[0xc1, hidden.len() as u8, key.len() as u8, 0xc1]);
        let info = vp9_keyframe_info(&data).unwrap();
        assert_eq!(info, ("vp09.00.31.08".to_string(), 1280, 720));
        // Sizes past the end are ignored, not a panic.
        let bad = [0x84, 0xc1, 0xff, 0xff, 0xc1];
        assert_eq!(vp9_keyframe_info(&bad), None);
    }

    #[test]
    fn vp9_prefixes_and_garbage_do_not_panic() {
        for &(name, frame, ..) in VP9_KEYFRAMES {
            let frame = hex(frame);
            for len in 0..frame.len() {
                let info = vp9_keyframe_info(&frame[..len]);
                // The header up to the frame size is at most 10 bytes.
                if len >= 10 {
                    assert!(info.is_some(), "{name}: prefix {len}");
                }
            }
        }
        let mut rng = Rng(42);
        for _ in 0..5000 {
            let len = (rng.next() % 48) as usize;
            let _ = vp9_keyframe_info(&rng.bytes(len));
        }
    }

    // Starts of VP8 keyframes from vp8enc.
    const VP8_KEYFRAMES: &[(&str, u32, u32)] = &[
        ("90b0009d012a8002e0010147088585889984880f", 640, 480),
        ("905e029d012a7e0736040787088585889984883f", 1918, 1078),
        ("3066009d012a4101f10000470885858899848802", 321, 241),
    ];

    #[test]
    fn vp8() {
        for &(frame, width, height) in VP8_KEYFRAMES {
            let frame = hex(frame);
            assert_eq!(vp8_keyframe_size(&frame), Some((width, height)));
            for len in 0..10 {
                assert_eq!(vp8_keyframe_size(&frame[..len]), None);
            }
        }
        // Inter frame (bit 0 of the frame tag set).
        let mut inter = hex(VP8_KEYFRAMES[0].0);
        inter[0] |= 1;
        assert_eq!(vp8_keyframe_size(&inter), None);
        // Wrong start code.
        let mut bad = hex(VP8_KEYFRAMES[0].0);
        bad[4] = 0;
        assert_eq!(vp8_keyframe_size(&bad), None);
    }

    // Temporal delimiter and sequence header OBUs from av1enc (libaom, cpu-used=8 realtime):
    // (input format and size, hex, codec string, width, height).
    const AV1_SEQUENCE_HEADERS: &[(&str, &str, &str, u32, u32)] = &[
        (
            "I420 640x480",
            "12000a0c00000024c4ffdfe06d7c8020",
            "av01.0.04M.08",
            640,
            480,
        ),
        (
            "I420 1280x720",
            "12000a0c0000002d4cffb3f81b5f2008",
            "av01.0.05M.08",
            1280,
            720,
        ),
        (
            "I420 1918x1078",
            "12000a0c00000042abbec35e0ed7c802",
            "av01.0.08M.08",
            1918,
            1078,
        ),
        (
            "I420 1920x1080",
            "12000a0c00000042abbfc37e0ed7c802",
            "av01.0.08M.08",
            1920,
            1080,
        ),
        (
            "Y444 352x288",
            "12000a0b20000004457e3fc0daf902",
            "av01.1.00M.08",
            352,
            288,
        ),
        (
            "Y42B 320x240",
            "12000a0b400000043cffbf81b5f202",
            "av01.2.00M.08",
            320,
            240,
        ),
    ];

    #[test]
    fn av1_real_sequence_headers() {
        for &(name, obus, codec, width, height) in AV1_SEQUENCE_HEADERS {
            let info = av1_sequence_info(&hex(obus))
                .unwrap_or_else(|| panic!("{name}: no sequence header"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(info, (codec.to_string(), width, height), "{name}");
        }
    }

    /// MSB-first bit writer for building AV1 sequence headers the encoders here do not make.
    #[derive(Default)]
    struct BitWriter {
        bytes: Vec<u8>,
        bits: usize,
    }

    impl BitWriter {
        fn put(&mut self, n: u32, value: u64) -> &mut Self {
            for i in (0..n).rev() {
                if self.bits.is_multiple_of(8) {
                    self.bytes.push(0);
                }
                let bit = ((value >> i) & 1) as u8;
                *self.bytes.last_mut().unwrap() |= bit << (7 - self.bits % 8);
                self.bits += 1;
            }
            self
        }
    }

    struct OperatingPoint {
        level: u64,
        tier: u64,
        decoder_model: bool,
        display_delay: bool,
    }

    /// sequence_header_obu() with timing info, a decoder model and several operating points,
    /// wrapped in a temporal delimiter and a sequence header OBU (with an extension byte).
    fn av1_stream(
        profile: u64,
        high_bitdepth: bool,
        twelve_bit: bool,
        ops: &[OperatingPoint],
    ) -> Vec<u8> {
        let mut w = BitWriter::default();
        w.put(3, profile).put(1, 0).put(1, 0); // seq_profile, still_picture, reduced
        w.put(1, 1); // timing_info_present_flag
        w.put(32, 1001).put(32, 60000).put(1, 1); // ticks, time scale, equal_picture_interval
        w.put(5, 0).put(1, 1).put(1, 0); // uvlc(0b0000_1_0000 = 15): 4 zeros, 1, 4 bits
        w.put(4, 0);
        w.put(1, 1); // decoder_model_info_present_flag
        w.put(5, 9).put(32, 90000).put(5, 31).put(5, 15); // buffer_delay_length_minus_1 = 9
        w.put(1, 1); // initial_display_delay_present_flag
        w.put(5, ops.len() as u64 - 1);
        for op in ops {
            w.put(12, 0x103).put(5, op.level);
            if op.level > 7 {
                w.put(1, op.tier);
            }
            w.put(1, op.decoder_model as u64);
            if op.decoder_model {
                w.put(10, 1000).put(10, 2).put(1, 1);
            }
            w.put(1, op.display_delay as u64);
            if op.display_delay {
                w.put(4, 9);
            }
        }
        w.put(4, 11).put(4, 10); // frame width/height bits minus 1
        w.put(12, 2559).put(11, 1439); // 2560x1440
        w.put(1, 1).put(4, 5).put(3, 2); // frame ids
        w.put(3, 0b011); // superblock, filter intra, intra edge
        w.put(4, 0b1010); // interintra, masked, warped, dual filter
        w.put(1, 1).put(2, 0b11); // enable_order_hint, jnt comp, ref frame mvs
        w.put(1, 0).put(1, 1).put(1, 0).put(1, 1); // screen content forced, integer mv forced
        w.put(3, 6); // order_hint_bits_minus_1
        w.put(3, 0b011); // superres, cdef, restoration
        w.put(1, high_bitdepth as u64);
        if profile == 2 && high_bitdepth {
            w.put(1, twelve_bit as u64);
        }
        w.put(8, 0x5a); // rest of color_config(), film grain; not read
        let payload = w.bytes;

        let mut data = vec![0x12, 0x00]; // temporal delimiter
        data.extend_from_slice(&[0x2e, 0x08]); // metadata OBU with extension, 3 bytes
        data.extend_from_slice(&[0x03, 1, 2, 3]);
        // Sequence header with an extension byte; its size as a padded two-byte leb128, as some
        // muxers write it.
        data.extend_from_slice(&[0x0e, 0x10]);
        data.extend_from_slice(&[
            0x80 | (payload.len() as u8 & 0x7f),
            (payload.len() >> 7) as u8,
        ]);
        data.extend_from_slice(&payload);
        data.extend_from_slice(&[0x32, 0x01, 0xff]); // frame OBU
        data
    }

    #[test]
    fn av1_full_sequence_header() {
        let ops = [
            OperatingPoint {
                level: 12,
                tier: 1,
                decoder_model: true,
                display_delay: true,
            },
            OperatingPoint {
                level: 8,
                tier: 0,
                decoder_model: false,
                display_delay: true,
            },
            OperatingPoint {
                level: 3,
                tier: 0,
                decoder_model: true,
                display_delay: false,
            },
        ];
        let data = av1_stream(0, false, false, &ops);
        let info = av1_sequence_info(&data).unwrap().unwrap();
        assert_eq!(info, ("av01.0.12H.08".to_string(), 2560, 1440));
        assert_eq!(
            av1_sequence_info(&av1_stream(2, true, true, &ops[1..]))
                .unwrap()
                .unwrap()
                .0,
            "av01.2.08M.12"
        );
        assert_eq!(
            av1_sequence_info(&av1_stream(2, true, false, &ops[2..]))
                .unwrap()
                .unwrap()
                .0,
            "av01.2.03M.10"
        );
        assert_eq!(
            av1_sequence_info(&av1_stream(1, true, true, &ops[..1]))
                .unwrap()
                .unwrap()
                .0,
            "av01.1.12H.10"
        );
        for len in 0..data.len() {
            let _ = av1_sequence_info(&data[..len]);
        }
    }

    #[test]
    fn av1_reduced_still_picture_header() {
        let mut w = BitWriter::default();
        w.put(3, 0).put(1, 1).put(1, 1); // still picture, reduced header
        w.put(5, 9); // seq_level_idx[0]: tier is not coded and is Main
        w.put(4, 9).put(4, 8).put(10, 1023).put(9, 511); // 1024x512
        w.put(3, 0).put(3, 0).put(1, 1); // sb/filter/edge, superres/cdef/restoration, high_bitdepth
        let payload = w.bytes;
        // No size field: the OBU runs to the end.
        let mut data = vec![0x08];
        data.extend_from_slice(&payload);
        let info = av1_sequence_info(&data).unwrap().unwrap();
        assert_eq!(info, ("av01.0.09M.10".to_string(), 1024, 512));
    }

    #[test]
    fn av1_errors() {
        // No sequence header: a temporal delimiter and a frame.
        assert_eq!(av1_sequence_info(&[0x12, 0x00, 0x32, 0x01, 0xff]), None);
        assert_eq!(av1_sequence_info(&[]), None);
        // OBU size past the end.
        let e = av1_sequence_info(&[0x12, 0x00, 0x0a, 0x20, 0x00])
            .unwrap()
            .unwrap_err();
        assert!(e.0.contains("exceeds"), "{e}");
        // Forbidden bit.
        assert!(av1_sequence_info(&[0x92, 0x00]).unwrap().is_err());
        // Reserved profile.
        let e = av1_sequence_info(&[0x0a, 0x01, 0xe0]).unwrap().unwrap_err();
        assert!(e.0.contains("seq_profile 7"), "{e}");
        // Truncated header.
        let e = av1_sequence_info(&[0x0a, 0x01, 0x00]).unwrap().unwrap_err();
        assert!(e.0.contains("AV1 sequence header truncated"), "{e}");
        // leb128 over 8 bytes.
        assert!(
            av1_sequence_info(&[0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01])
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn av1_prefixes_and_garbage_do_not_panic() {
        for &(name, obus, ..) in AV1_SEQUENCE_HEADERS {
            let obus = hex(obus);
            for len in 0..obus.len() {
                // Every prefix cuts into the sequence header OBU or its size.
                let r = av1_sequence_info(&obus[..len]);
                assert!(!matches!(r, Some(Ok(_))), "{name}: prefix {len} parsed");
            }
        }
        let mut rng = Rng(7);
        for _ in 0..5000 {
            let len = (rng.next() % 48) as usize;
            let mut data = rng.bytes(len);
            if let Some(b) = data.first_mut() {
                *b = 0x0a;
            }
            let _ = av1_sequence_info(&data);
        }
    }
}
