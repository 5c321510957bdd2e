// SPDX-License-Identifier: MPL-2.0

//! The encoder upstream whose bitrate rate control sets (docs/protocol.md, "Rate control"):
//! found by walking up from the sink pad through elements with one sink pad (queues, parsers,
//! capsfilters), recognised by its factory, and driven through its own bitrate property in its
//! own unit.

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
    property: &'static str,
    unit: u64,
}

impl Encoder {
    /// The encoder feeding `pad`, if rfbsink knows how to drive it.
    pub fn upstream_of(pad: &gst::Pad) -> Option<Encoder> {
        let mut pad = pad.peer()?;
        for _ in 0..MAX_HOPS {
            let element = pad.parent_element()?;
            let factory = element.factory().map(|f| f.name().to_string());
            if let Some(&(_, property, unit)) = KNOWN
                .iter()
                .find(|(name, ..)| factory.as_deref() == Some(*name))
            {
                if element.find_property(property).is_some() {
                    return Some(Encoder {
                        element: element.downgrade(),
                        name: element.name().to_string(),
                        property,
                        unit,
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

    /// The bitrate the encoder is set to, in bits per second.
    pub fn bitrate(&self) -> u64 {
        let Some(element) = self.element.upgrade() else {
            return 0;
        };
        let value = element.property_value(self.property);
        let units = value
            .get::<u32>()
            .map(u64::from)
            .or_else(|_| value.get::<i32>().map(|v| v.max(0) as u64))
            .or_else(|_| value.get::<u64>())
            .unwrap_or(0);
        units * self.unit
    }

    /// Sets the encoder's bitrate (in its unit, within its property's range).
    pub fn set_bitrate(&self, bps: u64) {
        let units = (bps / self.unit).max(1);
        let Some(element) = self.element.upgrade() else {
            return;
        };
        let Some(pspec) = element.find_property(self.property) else {
            return;
        };
        if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt>() {
            let v = units.clamp(p.minimum().into(), p.maximum().into()) as u32;
            element.set_property(self.property, v);
        } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecInt>() {
            let v = units.min(p.maximum().max(0) as u64) as i32;
            element.set_property(self.property, v.max(p.minimum()));
        } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt64>() {
            element.set_property(self.property, units.clamp(p.minimum(), p.maximum()));
        }
    }
}
