// SPDX-License-Identifier: MPL-2.0

/**
 * element-rfbsink:
 *
 * Serves an encoded video stream to any number of browsers. The element runs its own HTTP server:
 * the viewer page at `/` (embedded in the plugin), the stream over WebSocket at `/ws` and
 * WebTransport at `/wt`. The viewer decodes with WebCodecs in a worker and paints to an
 * OffscreenCanvas.
 *
 * Safe by default (docs/security.md): it listens on 127.0.0.1, every link carries a token
 * generated at start (`url` for control, `view-url` for watching only; printed on stderr and
 * posted in the `rfbsink-listening` message), and only pages of its own origin (or of
 * `allowed-origins`) may connect.
 *
 * Every client shares the same buffers (no per-client copies). A client that falls behind skips
 * to the next keyframe, which the element asks upstream for; it never slows the pipeline or the
 * other clients. A late joiner gets the current picture at once from the cached group of pictures.
 *
 * ## Example launch line
 * ```sh
 * gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency ! rfbsink
 * ```
 * then open the URL it prints (`http://127.0.0.1:8080/?rfb_token=...`).
 *
 * Raw video (`video/x-raw`) is sent losslessly: the element compresses the tiles that changed
 * itself. An encoded stream can be refined to the exact picture: link the same pictures, raw, to
 * the `refine` request pad; when no buffer came for `refine-delay` ms the last one is sent
 * losslessly and painted over the lossy picture:
 * ```sh
 * gst-launch-1.0 videotestsrc is-live=true ! video/x-raw,format=RGBx,framerate=2/1 ! tee name=t \
 *   t. ! queue ! videoconvert ! x264enc tune=zerolatency ! rfbsink name=sink \
 *   t. ! queue ! sink.refine
 * ```
 *
 * Sound goes to every viewer that asks for it: link Opus to the `audio` request pad. The viewer
 * plays it in sync with the picture after a click on the page (browsers' autoplay rule):
 * ```sh
 * gst-launch-1.0 rfbsink name=sink videotestsrc is-live=true ! x264enc tune=zerolatency ! sink. \
 *   audiotestsrc is-live=true wave=ticks ! audioconvert ! opusenc frame-size=10 ! sink.audio
 * ```
 *
 * The wire format is in docs/protocol.md.
 */
use gst::glib;
use gst::prelude::*;

mod imp;

/// Who may connect (the `auth` property).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstRfbSinkAuth")]
pub enum Auth {
    #[enum_value(name = "Token: every link needs its token", nick = "token")]
    Token = 0,
    #[enum_value(name = "None: anyone who reaches the port (opt-out)", nick = "none")]
    None = 1,
}

/// Whom the encoder's bitrate follows (the `rate-control` property; docs/protocol.md, "Rate
/// control").
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstRfbSinkRateControl")]
pub enum RateControl {
    #[enum_value(
        name = "Off: the encoder keeps its settings; slow viewers skip to keyframes",
        nick = "off"
    )]
    Off = 0,
    #[enum_value(
        name = "Slowest: the bitrate follows the slowest viewer that acknowledges frames",
        nick = "slowest"
    )]
    Slowest = 1,
    #[enum_value(
        name = "Control: the bitrate follows the slowest viewer on the control link; view-link viewers skip or move down the ladder",
        nick = "control"
    )]
    Control = 2,
    #[enum_value(
        name = "Auto: as control when rfbsink drives the encoder upstream (one it knows); otherwise off, silently",
        nick = "auto"
    )]
    Auto = 3,
}

glib::wrapper! {
    pub struct RfbSink(ObjectSubclass<imp::RfbSink>) @extends gst_base::BaseSink, gst::Element, gst::Object, @implements gst_video::Navigation;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rfbsink",
        gst::Rank::NONE,
        RfbSink::static_type(),
    )
}
