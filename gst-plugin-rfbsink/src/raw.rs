// SPDX-License-Identifier: MPL-2.0

//! The element's side of the lossless raw path: it keeps the previous picture (a reference to
//! upstream's buffer, not a copy) so that each new one is sent as the tiles that changed, and it
//! makes a full picture (the raw stream's keyframe) whenever a client needs one.

use gst_video::VideoFrameExt;

use crate::tiles::{self, Encoded, Picture, SourceFormat};

/// The last picture: mapped for reading as long as it is kept.
struct Previous {
    frame: gst_video::VideoFrame<gst_video::video_frame::Readable>,
    timestamp_us: i64,
}

#[derive(Default)]
pub(crate) struct RawEncoder {
    layout: Option<(gst_video::VideoInfo, SourceFormat)>,
    previous: Option<Previous>,
    /// The next picture goes out whole: a client waits for a keyframe.
    force_key: bool,
    /// Tiles sent and tiles that a full picture has, since start (stats).
    pub tiles_sent: u64,
    pub tiles_total: u64,
}

/// One encoded raw frame, ready for the hub.
pub(crate) struct RawFrame {
    pub payload: Vec<u8>,
    pub key: bool,
    pub timestamp_us: i64,
}

/// Why a raw picture cannot be encoded (the buffer is skipped) or its caps taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RawError {
    #[error("raw caps that GStreamer cannot read: {0}")]
    Caps(#[source] glib::BoolError),
    #[error("raw buffer before caps")]
    BeforeCaps,
    #[error("cannot map the raw buffer (smaller than its caps say?)")]
    Map,
    #[error("{0}")]
    Tiles(#[from] tiles::Error),
}

fn picture<'a>(
    frame: &'a gst_video::VideoFrame<gst_video::video_frame::Readable>,
    format: SourceFormat,
) -> Result<Picture<'a>, RawError> {
    let data = frame.plane_data(0).map_err(|_| RawError::Map)?;
    Ok(Picture {
        data,
        stride: frame.plane_stride()[0].max(0) as usize,
        width: frame.width(),
        height: frame.height(),
        format,
    })
}

impl RawEncoder {
    /// New caps: the next picture is a keyframe of the new size or format.
    pub fn set_caps(&mut self, caps: &gst::CapsRef, format: SourceFormat) -> Result<(), RawError> {
        let info = gst_video::VideoInfo::from_caps(caps).map_err(RawError::Caps)?;
        self.layout = Some((info, format));
        self.previous = None;
        Ok(())
    }

    pub fn is_active(&self) -> bool {
        self.layout.is_some()
    }

    /// The negotiated picture size.
    pub fn size(&self) -> Option<(u32, u32)> {
        self.layout
            .as_ref()
            .map(|(info, _)| (info.width(), info.height()))
    }

    /// Forgets the previous picture (a flush: it belongs to the old position).
    pub fn forget(&mut self) {
        self.previous = None;
    }

    /// Stops being the raw path (the caps are no longer raw video).
    pub fn clear(&mut self) {
        self.layout = None;
        self.previous = None;
    }

    /// A client needs a full picture: the next one is sent whole.
    pub fn force_key(&mut self) {
        self.force_key = true;
    }

    /// Keeps `buffer` as the picture the next delta compares with, without encoding it: nobody
    /// is watching (the hub forgot its cache, a newcomer asks for a keyframe).
    pub fn keep(&mut self, buffer: &gst::Buffer, timestamp_us: i64) -> Result<(), RawError> {
        let (info, _) = self.layout.as_ref().ok_or(RawError::BeforeCaps)?;
        let frame = gst_video::VideoFrame::from_buffer_readable(buffer.clone(), info)
            .map_err(|_| RawError::Map)?;
        self.previous = Some(Previous {
            frame,
            timestamp_us,
        });
        self.force_key = true;
        Ok(())
    }

    /// Encodes `buffer` against the previous picture. `Ok(None)`: nothing changed.
    pub fn encode(
        &mut self,
        buffer: &gst::Buffer,
        timestamp_us: i64,
    ) -> Result<Option<RawFrame>, RawError> {
        let (info, format) = self.layout.as_ref().ok_or(RawError::BeforeCaps)?;
        let format = *format;
        let frame = gst_video::VideoFrame::from_buffer_readable(buffer.clone(), info)
            .map_err(|_| RawError::Map)?;
        let key = self.force_key || self.previous.is_none();
        let encoded = {
            let cur = picture(&frame, format)?;
            let prev = match (&self.previous, key) {
                (Some(p), false) => Some(picture(&p.frame, format)?),
                _ => None,
            };
            tiles::encode(&cur, prev.as_ref())?
        };
        self.previous = Some(Previous {
            frame,
            timestamp_us,
        });
        self.force_key = false;
        Ok(encoded.map(|(payload, figures)| {
            self.count(figures);
            RawFrame {
                payload,
                // Every tile changed: the delta is a whole picture, a client that skipped
                // frames can start from it (latest wins without asking for a keyframe).
                key: key || figures.tiles == figures.tiles_total,
                timestamp_us,
            }
        }))
    }

    /// The previous picture, whole: what a client that waits for a keyframe gets at once, even
    /// when upstream sends nothing new (a still picture).
    pub fn keyframe(&mut self) -> Option<RawFrame> {
        let (_, format) = self.layout.as_ref()?;
        let previous = self.previous.as_ref()?;
        let cur = picture(&previous.frame, *format).ok()?;
        let (payload, figures) = tiles::encode(&cur, None).ok()??;
        let timestamp_us = previous.timestamp_us;
        self.force_key = false;
        self.count(figures);
        Some(RawFrame {
            payload,
            key: true,
            timestamp_us,
        })
    }

    fn count(&mut self, figures: Encoded) {
        self.tiles_sent += figures.tiles as u64;
        self.tiles_total += figures.tiles_total as u64;
    }
}
