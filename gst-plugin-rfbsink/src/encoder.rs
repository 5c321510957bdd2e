// SPDX-License-Identifier: MPL-2.0

//! The encoder upstream whose bitrate rate control sets (docs/protocol.md, "Rate control"):
//! found by walking up from the sink pad through elements with one sink pad (queues, parsers,
//! capsfilters), recognised by its factory, and driven through its own bitrate property in its
//! own unit, or, for image encoders that have no bitrate (jpegenc, webpenc), through their
//! quality, steered so that the stream's measured rate meets the target.

use gst::glib;
use gst::prelude::*;

/// Elements rfbsink drives: factory, bitrate property, bits per unit of that property.
const KNOWN: &[(&str, &str, u64)] = &[
    ("x264enc", "bitrate", 1000),
    ("openh264enc", "bitrate", 1),
    ("nvh264enc", "bitrate", 1000),
    ("nvh265enc", "bitrate", 1000),
    ("nvv4l2h264enc", "bitrate", 1),
    ("vah264enc", "bitrate", 1000),
    ("vah264lpenc", "bitrate", 1000),
    ("vaapih264enc", "bitrate", 1000),
    ("vp8enc", "target-bitrate", 1),
    ("vp9enc", "target-bitrate", 1),
    ("av1enc", "target-bitrate", 1000),
    ("svtav1enc", "target-bitrate", 1000),
    ("rav1enc", "bitrate", 1),
];
/// Image encoders driven by quality: factory, quality property (0-100).
const BY_QUALITY: &[(&str, &str)] = &[("jpegenc", "quality"), ("webpenc", "quality")];
/// The lowest quality rate control sets: below it JPEG and WebP pictures are blocks.
pub(crate) const QUALITY_MIN: f64 = 10.0;
/// Quality points per halving of the bitrate, near the defaults (85-90): jpegenc's frames of
/// natural pictures about halve from quality 85 to 70, and again to 50.
const QUALITY_PER_HALVING: f64 = 15.0;

/// How rfbsink sets an encoder's rate.
#[derive(Clone, Copy, Debug)]
enum Drive {
    /// A bitrate property, in bits per `unit`.
    Bitrate { property: &'static str, unit: u64 },
    /// A quality property; `top` is the quality the encoder had at start (the user's).
    Quality { property: &'static str, top: f64 },
}

/// Keyframe bounds (docs/protocol.md, "Rate control"): at a rate near the link's, an
/// unbounded keyframe (x264enc's default VBV is 600 ms of the bitrate) queues for longer than a
/// frame interval on its own. Rate control sets these where the encoder still has its
/// default, as webrtcsink does: a keyframe of at most ~120-150 ms of the target.
/// (factory, property, value)
const KEYFRAME_BOUNDS: &[(&str, &str, u32)] = &[
    ("x264enc", "vbv-buf-capacity", 120),
    ("vp8enc", "buffer-initial-size", 100),
    ("vp8enc", "buffer-optimal-size", 120),
    ("vp8enc", "buffer-size", 150),
    ("vp8enc", "max-intra-bitrate", 250),
    ("vp9enc", "buffer-initial-size", 100),
    ("vp9enc", "buffer-optimal-size", 120),
    ("vp9enc", "buffer-size", 150),
    ("vp9enc", "max-intra-bitrate", 250),
    ("av1enc", "buf-initial-sz", 100),
    ("av1enc", "buf-optimal-sz", 120),
    ("av1enc", "buf-sz", 150),
];
/// How far up the walk goes.
const MAX_HOPS: usize = 16;

/// An encoder upstream and how to set its bitrate. Held weakly: the element is in the same
/// pipeline as rfbsink, which must not keep it alive.
#[derive(Clone, Debug)]
pub(crate) struct Encoder {
    element: glib::WeakRef<gst::Element>,
    name: String,
    drive: Drive,
}

impl Encoder {
    /// The encoder feeding `pad`, if rfbsink knows how to drive it.
    pub fn upstream_of(pad: &gst::Pad) -> Option<Encoder> {
        let mut pad = pad.peer()?;
        for _ in 0..MAX_HOPS {
            let element = pad.parent_element()?;
            let factory = element.factory().map(|f| f.name().to_string());
            let drive = KNOWN
                .iter()
                .find(|(name, ..)| factory.as_deref() == Some(*name))
                .map(|&(_, property, unit)| Drive::Bitrate { property, unit })
                .or_else(|| {
                    BY_QUALITY
                        .iter()
                        .find(|(name, _)| factory.as_deref() == Some(*name))
                        .map(|&(_, property)| Drive::Quality { property, top: 0.0 })
                });
            let property = match drive {
                Some(Drive::Bitrate { property, .. } | Drive::Quality { property, .. }) => {
                    Some(property)
                }
                None => None,
            };
            if let (Some(drive), Some(property)) = (drive, property) {
                if element.find_property(property).is_some() {
                    let drive = match drive {
                        Drive::Quality { property, .. } => Drive::Quality {
                            property,
                            top: quality_of(&element, property),
                        },
                        bitrate => bitrate,
                    };
                    return Some(Encoder {
                        element: element.downgrade(),
                        name: element.name().to_string(),
                        drive,
                    });
                }
            }
            let mut sinks = element.sink_pads().into_iter();
            let (Some(sink), None) = (sinks.next(), sinks.next()) else {
                return None;
            };
            pad = sink.peer()?;
        }
        None
    }

    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Bounds the encoder's keyframes (`KEYFRAME_BOUNDS`) where the user left its default:
    /// the properties it set, as `name=value`.
    pub fn bound_keyframes(&self) -> Vec<String> {
        let Some(element) = self.element.upgrade() else {
            return Vec::new();
        };
        let factory = element.factory().map(|f| f.name().to_string());
        let mut set = Vec::new();
        for &(_, property, value) in KEYFRAME_BOUNDS
            .iter()
            .filter(|(name, ..)| factory.as_deref() == Some(*name))
        {
            let Some(pspec) = element.find_property(property) else {
                continue;
            };
            let as_text = |v: &glib::Value| {
                v.transform::<String>()
                    .ok()
                    .and_then(|s| s.get::<String>().ok())
            };
            if as_text(&element.property_value(property)) != as_text(pspec.default_value()) {
                continue;
            }
            element.set_property_from_str(property, &value.to_string());
            set.push(format!("{property}={value}"));
        }
        set
    }

    /// Whether it is driven by quality (its bitrate is measured, not set).
    pub fn by_quality(&self) -> bool {
        matches!(self.drive, Drive::Quality { .. })
    }

    /// Whether it is set to a constant quantizer, which ignores the bitrate it is given (x264enc
    /// `pass=quant`). At a constant quality (`pass=qual`, x264's CRF) x264enc's bitrate is the
    /// most it makes (its VBV's rate), and a change applies within a second (measured: snow that
    /// quality would make 4 Mbit/s of came out at 500 kbit/s the second after 500 was set, and
    /// back at 4 Mbit/s after): rfbsink drives that.
    pub fn constant_quantizer(&self) -> bool {
        let Some(element) = self.element.upgrade() else {
            return false;
        };
        element.factory().is_some_and(|f| f.name() == "x264enc")
            && element.find_property("pass").is_some()
            && glib::EnumValue::from_value(&element.property_value("pass"))
                .is_some_and(|(_, pass)| pass.nick() == "quant")
    }

    /// The quality it is set to (by_quality() encoders).
    pub fn quality(&self) -> Option<f64> {
        let Drive::Quality { property, .. } = self.drive else {
            return None;
        };
        Some(quality_of(&self.element.upgrade()?, property))
    }

    /// The bitrate the encoder is set to, in bits per second; 0 for one driven by quality.
    pub fn bitrate(&self) -> u64 {
        let Some(element) = self.element.upgrade() else {
            return 0;
        };
        let Drive::Bitrate { property, unit } = self.drive else {
            return 0;
        };
        let value = element.property_value(property);
        let units = value
            .get::<u32>()
            .map(u64::from)
            .or_else(|_| value.get::<i32>().map(|v| v.max(0) as u64))
            .or_else(|_| value.get::<u64>())
            .unwrap_or(0);
        units * unit
    }

    /// Moves the encoder's rate toward `bps`: its bitrate, or for one driven by quality its
    /// quality, by how far the stream's measured rate (`stream_bps`, 0: not known yet) is from
    /// the target, never above the quality it started with.
    pub fn set_bitrate(&self, bps: u64, stream_bps: u64) {
        let Some(element) = self.element.upgrade() else {
            return;
        };
        let (property, unit) = match self.drive {
            Drive::Bitrate { property, unit } => (property, unit),
            Drive::Quality { property, top } => {
                let q = quality_of(&element, property);
                let next = next_quality(q, top, bps, stream_bps);
                if next != q {
                    set_quality(&element, property, next);
                }
                return;
            }
        };
        let units = (bps / unit).max(1);
        let Some(pspec) = element.find_property(property) else {
            return;
        };
        if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt>() {
            let v = units.clamp(p.minimum().into(), p.maximum().into()) as u32;
            element.set_property(property, v);
        } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecInt>() {
            let v = units.min(p.maximum().max(0) as u64) as i32;
            element.set_property(property, v.max(p.minimum()));
        } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt64>() {
            element.set_property(property, units.clamp(p.minimum(), p.maximum()));
        }
    }
}

/// An image encoder's quality property (jpegenc: int, webpenc: float).
fn quality_of(element: &gst::Element, property: &str) -> f64 {
    let value = element.property_value(property);
    value
        .get::<i32>()
        .map(f64::from)
        .or_else(|_| value.get::<f32>().map(f64::from))
        .or_else(|_| value.get::<f64>())
        .unwrap_or(0.0)
}

fn set_quality(element: &gst::Element, property: &str, q: f64) {
    let Some(pspec) = element.find_property(property) else {
        return;
    };
    if pspec.downcast_ref::<glib::ParamSpecInt>().is_some() {
        element.set_property(property, q.round() as i32);
    } else if pspec.downcast_ref::<glib::ParamSpecFloat>().is_some() {
        element.set_property(property, q as f32);
    } else if pspec.downcast_ref::<glib::ParamSpecDouble>().is_some() {
        element.set_property(property, q);
    }
}

/// The next quality for a `target` bitrate when quality `q` makes `stream` bit/s: down (up to 20
/// points a step) when the stream is over the target, up (up to 8) when well under it, never
/// over `top` nor under QUALITY_MIN; unchanged within 10 % under the target.
pub(crate) fn next_quality(q: f64, top: f64, target: u64, stream: u64) -> f64 {
    if stream == 0 || target == 0 {
        return q;
    }
    let ratio = target as f64 / stream as f64;
    if (1.0..=1.0 / 0.9).contains(&ratio) {
        return q;
    }
    let step = (QUALITY_PER_HALVING * ratio.log2()).clamp(-20.0, 8.0);
    (q + step).round().clamp(QUALITY_MIN.min(top), top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_follows_the_target_and_stays_between_its_bounds() {
        // Twice the target: 15 points down; far over: at most 20 a step, never under the floor.
        assert_eq!(next_quality(85.0, 85.0, 1_000_000, 2_000_000), 70.0);
        assert_eq!(next_quality(85.0, 85.0, 100_000, 10_000_000), 65.0);
        assert_eq!(next_quality(15.0, 85.0, 100_000, 10_000_000), QUALITY_MIN);
        // Under the target by a lot: up, at most 8 a step, never past the user's quality.
        assert_eq!(next_quality(50.0, 85.0, 4_000_000, 1_000_000), 58.0);
        assert_eq!(next_quality(80.0, 85.0, 4_000_000, 1_000_000), 85.0);
        // Close under the target, or nothing measured yet: as it is.
        assert_eq!(next_quality(60.0, 85.0, 1_050_000, 1_000_000), 60.0);
        assert_eq!(next_quality(60.0, 85.0, 1_000_000, 0), 60.0);
    }
}
