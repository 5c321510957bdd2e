// SPDX-License-Identifier: MPL-2.0

//! The lossless raw path's wire format: a picture cut into square tiles, each compressed on its
//! own (LZ4 block, or stored raw when that does not pay). A keyframe carries every tile; a delta
//! only the tiles that differ from the previous picture, so an unchanged region costs nothing.
//! The format is in docs/protocol.md ("Raw frames"); `web/tiles.js` decodes it.
//!
//! Pure logic: no GStreamer. The encoder copies each tile once (converting BGR orders to RGB on
//! the way) and compresses it; the decoder here serves the tests and the fuzz targets.

use std::fmt;

/// Tile side in pixels.
pub const TILE: u32 = 64;
/// The payload's header: magic, version, pixel format, size, tile size, tile count.
pub const HEADER_LEN: usize = 16;
/// Before each tile's data: column, row, encoding, length.
pub const RECORD_LEN: usize = 12;
const MAGIC: [u8; 2] = *b"RT";
const VERSION: u8 = 1;

/// How a tile's bytes are stored.
pub const ENCODING_RAW: u8 = 0;
/// LZ4 block format (no frame); the decompressed size is the tile's.
pub const ENCODING_LZ4: u8 = 1;
/// 16-bit samples split into byte planes (all high bytes, then all low bytes), then LZ4: a
/// 12-bit detector's high bytes are nearly constant and compress where interleaved bytes do not.
pub const ENCODING_LZ4_PLANES: u8 = 2;

/// What the browser receives: the pixel layout inside a tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// R, G, B, A bytes.
    Rgba8 = 1,
    /// R, G, B bytes.
    Rgb8 = 2,
    Gray8 = 3,
    /// One little-endian u16 per pixel.
    Gray16Le = 4,
}

impl PixelFormat {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgba8 => 4,
            PixelFormat::Rgb8 => 3,
            PixelFormat::Gray8 => 1,
            PixelFormat::Gray16Le => 2,
        }
    }

    /// The `codec_string` of a raw stream's `config`.
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgba8 => "rgba8",
            PixelFormat::Rgb8 => "rgb8",
            PixelFormat::Gray8 => "gray8",
            PixelFormat::Gray16Le => "gray16le",
        }
    }

    fn from_code(code: u8) -> Option<PixelFormat> {
        Some(match code {
            1 => PixelFormat::Rgba8,
            2 => PixelFormat::Rgb8,
            3 => PixelFormat::Gray8,
            4 => PixelFormat::Gray16Le,
            _ => return None,
        })
    }
}

/// What arrives from upstream (GStreamer's names) and how it maps to the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceFormat {
    Rgba,
    Bgra,
    Argb,
    Abgr,
    Rgbx,
    Bgrx,
    Xrgb,
    Xbgr,
    Rgb,
    Bgr,
    Gray8,
    Gray16Le,
}

/// The GStreamer format names rfbsink accepts as raw video, in the pad template's order.
pub const SOURCE_FORMATS: &[&str] = &[
    "RGBA",
    "BGRA",
    "ARGB",
    "ABGR",
    "RGBx",
    "BGRx",
    "xRGB",
    "xBGR",
    "RGB",
    "BGR",
    "GRAY8",
    "GRAY16_LE",
];

impl SourceFormat {
    pub fn from_name(name: &str) -> Option<SourceFormat> {
        Some(match name {
            "RGBA" => SourceFormat::Rgba,
            "BGRA" => SourceFormat::Bgra,
            "ARGB" => SourceFormat::Argb,
            "ABGR" => SourceFormat::Abgr,
            "RGBx" => SourceFormat::Rgbx,
            "BGRx" => SourceFormat::Bgrx,
            "xRGB" => SourceFormat::Xrgb,
            "xBGR" => SourceFormat::Xbgr,
            "RGB" => SourceFormat::Rgb,
            "BGR" => SourceFormat::Bgr,
            "GRAY8" => SourceFormat::Gray8,
            "GRAY16_LE" => SourceFormat::Gray16Le,
            _ => return None,
        })
    }

    pub fn bytes_per_pixel(self) -> usize {
        match self {
            SourceFormat::Rgb | SourceFormat::Bgr => 3,
            SourceFormat::Gray8 => 1,
            SourceFormat::Gray16Le => 2,
            _ => 4,
        }
    }

    /// What the browser gets. Padding bytes (`x`) become an opaque alpha.
    pub fn wire(self) -> PixelFormat {
        match self {
            SourceFormat::Rgb | SourceFormat::Bgr => PixelFormat::Rgb8,
            SourceFormat::Gray8 => PixelFormat::Gray8,
            SourceFormat::Gray16Le => PixelFormat::Gray16Le,
            _ => PixelFormat::Rgba8,
        }
    }

    /// For 4-byte formats: where R, G, B and A sit in a source pixel, and whether A is padding.
    fn rgba_order(self) -> Option<([usize; 4], bool)> {
        Some(match self {
            SourceFormat::Rgba => ([0, 1, 2, 3], false),
            SourceFormat::Bgra => ([2, 1, 0, 3], false),
            SourceFormat::Argb => ([1, 2, 3, 0], false),
            SourceFormat::Abgr => ([3, 2, 1, 0], false),
            SourceFormat::Rgbx => ([0, 1, 2, 3], true),
            SourceFormat::Bgrx => ([2, 1, 0, 3], true),
            SourceFormat::Xrgb => ([1, 2, 3, 0], true),
            SourceFormat::Xbgr => ([3, 2, 1, 0], true),
            _ => return None,
        })
    }
}

/// One raw picture as upstream laid it out.
#[derive(Clone, Copy, Debug)]
pub struct Picture<'a> {
    pub data: &'a [u8],
    /// Bytes from one row's start to the next's.
    pub stride: usize,
    pub width: u32,
    pub height: u32,
    pub format: SourceFormat,
}

/// Why a picture cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl Picture<'_> {
    fn row_bytes(&self) -> usize {
        self.width as usize * self.format.bytes_per_pixel()
    }

    /// Whether `data` holds `height` rows of `stride` bytes (the last row need only be complete).
    pub fn check(&self) -> Result<(), Error> {
        if self.width == 0 || self.height == 0 {
            return Err(Error(format!(
                "empty picture {}x{}",
                self.width, self.height
            )));
        }
        if self.width > u16::MAX as u32 || self.height > u16::MAX as u32 {
            return Err(Error(format!(
                "{}x{} is too large",
                self.width, self.height
            )));
        }
        if self.stride < self.row_bytes() {
            return Err(Error(format!(
                "stride {} is shorter than a row of {} bytes",
                self.stride,
                self.row_bytes()
            )));
        }
        let needed = self.stride * (self.height as usize - 1) + self.row_bytes();
        if self.data.len() < needed {
            return Err(Error(format!(
                "{} bytes is less than the {needed} a {}x{} {:?} picture needs",
                self.data.len(),
                self.width,
                self.height,
                self.format
            )));
        }
        Ok(())
    }

    fn row(&self, y: u32, x: u32, w: u32) -> &[u8] {
        let bpp = self.format.bytes_per_pixel();
        let start = y as usize * self.stride + x as usize * bpp;
        &self.data[start..start + w as usize * bpp]
    }

    /// Whether the tile at pixel (x, y) of size (w, h) has the same bytes in `other`.
    fn same_tile(&self, other: &Picture, x: u32, y: u32, w: u32, h: u32) -> bool {
        (y..y + h).all(|row| self.row(row, x, w) == other.row(row, x, w))
    }

    /// Appends the tile's pixels in wire order (rows of `w` pixels, no padding).
    fn copy_tile(&self, x: u32, y: u32, w: u32, h: u32, out: &mut Vec<u8>) {
        let order = self.format.rgba_order();
        for row in y..y + h {
            let src = self.row(row, x, w);
            match (self.format, order) {
                (_, Some(([0, 1, 2, 3], false))) => out.extend_from_slice(src),
                (_, Some((o, opaque))) => {
                    for p in src.chunks_exact(4) {
                        out.extend_from_slice(&[
                            p[o[0]],
                            p[o[1]],
                            p[o[2]],
                            if opaque { 255 } else { p[o[3]] },
                        ]);
                    }
                }
                (SourceFormat::Bgr, None) => {
                    for p in src.chunks_exact(3) {
                        out.extend_from_slice(&[p[2], p[1], p[0]]);
                    }
                }
                _ => out.extend_from_slice(src),
            }
        }
    }
}

/// Figures of one encoded frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Encoded {
    pub tiles: usize,
    pub tiles_total: usize,
}

/// Encodes `cur`: every tile when `prev` is `None` (a keyframe), else only the tiles that differ
/// from `prev` (which must have the same size, format and stride). `None`: nothing changed, nothing
/// to send.
pub fn encode(cur: &Picture, prev: Option<&Picture>) -> Result<Option<(Vec<u8>, Encoded)>, Error> {
    cur.check()?;
    let prev = match prev {
        Some(p)
            if p.width == cur.width
                && p.height == cur.height
                && p.format == cur.format
                && p.stride == cur.stride
                && p.check().is_ok() =>
        {
            Some(p)
        }
        Some(_) => return Err(Error("previous picture has another layout".into())),
        None => None,
    };
    let wire = cur.format.wire();
    let bpp = wire.bytes_per_pixel();
    let cols = cur.width.div_ceil(TILE);
    let rows = cur.height.div_ceil(TILE);
    let mut out = Vec::with_capacity(HEADER_LEN + 1024);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(wire as u8);
    out.extend_from_slice(&(cur.width as u16).to_le_bytes());
    out.extend_from_slice(&(cur.height as u16).to_le_bytes());
    out.extend_from_slice(&(TILE as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut tile = Vec::with_capacity((TILE * TILE) as usize * bpp);
    let mut planes = Vec::new();
    let mut count = 0usize;
    for row in 0..rows {
        for col in 0..cols {
            let (x, y) = (col * TILE, row * TILE);
            let w = TILE.min(cur.width - x);
            let h = TILE.min(cur.height - y);
            if prev.is_some_and(|p| cur.same_tile(p, x, y, w, h)) {
                continue;
            }
            tile.clear();
            cur.copy_tile(x, y, w, h, &mut tile);
            let (encoding, data): (u8, Vec<u8>) = if wire == PixelFormat::Gray16Le {
                let n = tile.len() / 2;
                planes.clear();
                planes.resize(tile.len(), 0);
                for i in 0..n {
                    planes[i] = tile[2 * i + 1];
                    planes[n + i] = tile[2 * i];
                }
                (ENCODING_LZ4_PLANES, lz4_flex::block::compress(&planes))
            } else {
                (ENCODING_LZ4, lz4_flex::block::compress(&tile))
            };
            out.extend_from_slice(&(col as u16).to_le_bytes());
            out.extend_from_slice(&(row as u16).to_le_bytes());
            // Incompressible (noise): stored as it is, the browser copies it.
            let (encoding, data) = if data.len() >= tile.len() {
                (ENCODING_RAW, &tile[..])
            } else {
                (encoding, &data[..])
            };
            out.push(encoding);
            out.extend_from_slice(&[0, 0, 0]);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(data);
            count += 1;
        }
    }
    if count == 0 {
        return Ok(None);
    }
    out[12..16].copy_from_slice(&(count as u32).to_le_bytes());
    Ok(Some((
        out,
        Encoded {
            tiles: count,
            tiles_total: (cols * rows) as usize,
        },
    )))
}

/// A decoded picture (tests, fuzzing): wire pixels, rows without padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Reads the payload's header: pixel format, width, height.
pub fn header(payload: &[u8]) -> Result<(PixelFormat, u32, u32), Error> {
    if payload.len() < HEADER_LEN || payload[0..2] != MAGIC {
        return Err(Error("not a tiles payload".into()));
    }
    if payload[2] != VERSION {
        return Err(Error(format!(
            "tiles version {} is not supported",
            payload[2]
        )));
    }
    let format = PixelFormat::from_code(payload[3])
        .ok_or_else(|| Error(format!("unknown pixel format {}", payload[3])))?;
    let u16_at = |o: usize| u16::from_le_bytes([payload[o], payload[o + 1]]) as u32;
    Ok((format, u16_at(4), u16_at(6)))
}

/// Applies a payload onto `into` (which it creates for a keyframe or a size change). Every
/// length and index is checked: a hostile payload is an error, never a panic.
pub fn decode(payload: &[u8], into: &mut Option<Decoded>) -> Result<usize, Error> {
    let (format, width, height) = header(payload)?;
    let u16_at = |o: usize| u16::from_le_bytes([payload[o], payload[o + 1]]) as u32;
    let u32_at = |o: usize| u32::from_le_bytes(payload[o..o + 4].try_into().unwrap());
    let tile = u16_at(8);
    if tile == 0 || width == 0 || height == 0 {
        return Err(Error("zero tile size or picture size".into()));
    }
    let count = u32_at(12) as usize;
    let bpp = format.bytes_per_pixel();
    let fresh = into
        .as_ref()
        .is_none_or(|d| d.format != format || d.width != width || d.height != height);
    if fresh {
        *into = Some(Decoded {
            format,
            width,
            height,
            pixels: vec![0; width as usize * height as usize * bpp],
        });
    }
    let picture = into.as_mut().unwrap();
    let (cols, rows) = (width.div_ceil(tile), height.div_ceil(tile));
    let mut at = HEADER_LEN;
    let mut buf = Vec::new();
    for _ in 0..count {
        if payload.len() < at + RECORD_LEN {
            return Err(Error("truncated tile record".into()));
        }
        let (col, row, encoding) = (u16_at(at), u16_at(at + 2), payload[at + 4]);
        let len = u32_at(at + 8) as usize;
        at += RECORD_LEN;
        let data = payload
            .get(at..at.saturating_add(len))
            .ok_or_else(|| Error("truncated tile data".into()))?;
        at += len;
        if col >= cols || row >= rows {
            return Err(Error(format!("tile ({col}, {row}) outside the picture")));
        }
        let (x, y) = (col * tile, row * tile);
        let (w, h) = (tile.min(width - x), tile.min(height - y));
        let size = (w * h) as usize * bpp;
        let pixels: &[u8] = match encoding {
            ENCODING_RAW => data,
            ENCODING_LZ4 | ENCODING_LZ4_PLANES => {
                buf.resize(size, 0);
                let n = lz4_flex::block::decompress_into(data, &mut buf)
                    .map_err(|e| Error(format!("tile ({col}, {row}): {e}")))?;
                if n != size {
                    return Err(Error(format!("tile ({col}, {row}): {n} bytes, not {size}")));
                }
                if encoding == ENCODING_LZ4_PLANES {
                    if bpp != 2 {
                        return Err(Error("byte planes for a format that is not 16-bit".into()));
                    }
                    let planes = buf.clone();
                    let n = size / 2;
                    for i in 0..n {
                        buf[2 * i + 1] = planes[i];
                        buf[2 * i] = planes[n + i];
                    }
                }
                &buf
            }
            other => return Err(Error(format!("unknown tile encoding {other}"))),
        };
        if pixels.len() != size {
            return Err(Error(format!(
                "tile ({col}, {row}): {} bytes, not {size}",
                pixels.len()
            )));
        }
        let row_len = w as usize * bpp;
        for r in 0..h as usize {
            let dst = ((y as usize + r) * width as usize + x as usize) * bpp;
            picture.pixels[dst..dst + row_len].copy_from_slice(&pixels[r * row_len..][..row_len]);
        }
    }
    if at != payload.len() {
        return Err(Error("bytes after the last tile".into()));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                s as u8
            })
            .collect()
    }

    fn picture(data: &[u8], w: u32, h: u32, stride: usize, format: SourceFormat) -> Picture<'_> {
        Picture {
            data,
            stride,
            width: w,
            height: h,
            format,
        }
    }

    #[test]
    fn keyframe_round_trips_every_format_with_odd_sizes_and_strides() {
        for format in SOURCE_FORMATS
            .iter()
            .map(|n| SourceFormat::from_name(n).unwrap())
        {
            let (w, h) = (131u32, 67u32);
            let bpp = format.bytes_per_pixel();
            let stride = w as usize * bpp + 13;
            let data = noise(stride * h as usize, 7);
            let pic = picture(&data, w, h, stride, format);
            let (payload, figures) = encode(&pic, None).unwrap().unwrap();
            assert_eq!(figures.tiles, 3 * 2);
            let mut out = None;
            decode(&payload, &mut out).unwrap();
            let out = out.unwrap();
            assert_eq!(out.format, format.wire());
            for y in 0..h as usize {
                for x in 0..w as usize {
                    let s = &data[y * stride + x * bpp..][..bpp];
                    let d = &out.pixels[(y * w as usize + x) * format.wire().bytes_per_pixel()..]
                        [..format.wire().bytes_per_pixel()];
                    let expect: Vec<u8> = match format {
                        SourceFormat::Rgba | SourceFormat::Rgb | SourceFormat::Gray8 => s.to_vec(),
                        SourceFormat::Gray16Le => s.to_vec(),
                        SourceFormat::Bgra => vec![s[2], s[1], s[0], s[3]],
                        SourceFormat::Argb => vec![s[1], s[2], s[3], s[0]],
                        SourceFormat::Abgr => vec![s[3], s[2], s[1], s[0]],
                        SourceFormat::Rgbx => vec![s[0], s[1], s[2], 255],
                        SourceFormat::Bgrx => vec![s[2], s[1], s[0], 255],
                        SourceFormat::Xrgb => vec![s[1], s[2], s[3], 255],
                        SourceFormat::Xbgr => vec![s[3], s[2], s[1], 255],
                        SourceFormat::Bgr => vec![s[2], s[1], s[0]],
                    };
                    assert_eq!(d, &expect[..], "{format:?} at ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn deltas_carry_only_changed_tiles_and_nothing_when_unchanged() {
        let (w, h) = (640u32, 480u32);
        let a = noise((w * h * 4) as usize, 3);
        let mut b = a.clone();
        // One 64x64 region, aligned to the tiles.
        for y in 128..192usize {
            for x in 256..320usize {
                b[(y * w as usize + x) * 4] ^= 0xff;
            }
        }
        let pa = picture(&a, w, h, w as usize * 4, SourceFormat::Rgba);
        let pb = picture(&b, w, h, w as usize * 4, SourceFormat::Rgba);
        assert_eq!(encode(&pa, Some(&pa)).unwrap(), None);
        let (delta, figures) = encode(&pb, Some(&pa)).unwrap().unwrap();
        assert_eq!(figures.tiles, 1);
        assert_eq!(figures.tiles_total, 10 * 8);
        assert!(delta.len() <= HEADER_LEN + RECORD_LEN + 64 * 64 * 4);
        let mut out = None;
        decode(&encode(&pa, None).unwrap().unwrap().0, &mut out).unwrap();
        decode(&delta, &mut out).unwrap();
        assert_eq!(out.unwrap().pixels, b);
    }

    #[test]
    fn compressible_tiles_shrink_and_gray16_uses_byte_planes() {
        let (w, h) = (256u32, 256u32);
        let flat = vec![7u8; (w * h * 4) as usize];
        let (payload, _) = encode(
            &picture(&flat, w, h, w as usize * 4, SourceFormat::Rgbx),
            None,
        )
        .unwrap()
        .unwrap();
        assert!(payload.len() < flat.len() / 50, "{} bytes", payload.len());
        // 12-bit values: high bytes 0..15.
        let samples: Vec<u8> = noise((w * h) as usize, 5)
            .iter()
            .enumerate()
            .flat_map(|(i, n)| (((i % 4000) as u16 & 0xf00) | *n as u16).to_le_bytes())
            .collect();
        let pic = picture(&samples, w, h, w as usize * 2, SourceFormat::Gray16Le);
        let (payload, _) = encode(&pic, None).unwrap().unwrap();
        assert_eq!(payload[HEADER_LEN + 4], ENCODING_LZ4_PLANES);
        assert!(
            payload.len() < samples.len() * 3 / 4,
            "{} bytes",
            payload.len()
        );
        let mut out = None;
        decode(&payload, &mut out).unwrap();
        assert_eq!(out.unwrap().pixels, samples);
        // Noise does not compress: stored raw.
        let n = noise((w * h) as usize, 9);
        let (payload, _) = encode(&picture(&n, w, h, w as usize, SourceFormat::Gray8), None)
            .unwrap()
            .unwrap();
        assert_eq!(payload[HEADER_LEN + 4], ENCODING_RAW);
    }

    #[test]
    fn bad_pictures_and_payloads_are_errors() {
        let data = vec![0u8; 100];
        assert!(encode(&picture(&data, 10, 10, 40, SourceFormat::Rgba), None).is_err());
        assert!(encode(&picture(&data, 10, 10, 5, SourceFormat::Gray8), None).is_err());
        assert!(encode(&picture(&data, 0, 10, 10, SourceFormat::Gray8), None).is_err());
        let ok = picture(&data, 10, 10, 10, SourceFormat::Gray8);
        let other = picture(&data, 5, 10, 10, SourceFormat::Gray8);
        assert!(encode(&ok, Some(&other)).is_err());
        let (payload, _) = encode(&ok, None).unwrap().unwrap();
        for cut in 0..payload.len() {
            assert!(decode(&payload[..cut], &mut None).is_err(), "cut at {cut}");
        }
        let mut bad = payload.clone();
        bad[HEADER_LEN] = 9; // column outside the picture
        assert!(decode(&bad, &mut None).is_err());
        let mut bad = payload.clone();
        bad[HEADER_LEN + 4] = 7; // unknown encoding
        assert!(decode(&bad, &mut None).is_err());
    }
}
