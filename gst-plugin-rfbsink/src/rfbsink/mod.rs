// SPDX-License-Identifier: MPL-2.0

/**
 * element-rfbsink:
 *
 * Serves an encoded video stream to any number of browsers. The element runs its own HTTP server:
 * the viewer page at `/` (embedded in the plugin), the stream over WebSocket at `/ws`. The viewer
 * decodes with WebCodecs in a worker and paints to an OffscreenCanvas.
 *
 * Every client shares the same buffers (no per-client copies). A client that falls behind skips
 * to the next keyframe, which the element asks upstream for; it never slows the pipeline or the
 * other clients. A late joiner gets the current picture at once from the cached group of pictures.
 *
 * ## Example launch line
 * ```sh
 * gst-launch-1.0 videotestsrc is-live=true ! x264enc tune=zerolatency ! rfbsink
 * ```
 * then open <http://127.0.0.1:8080/>.
 *
 * The wire format is in docs/protocol.md.
 */
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RfbSink(ObjectSubclass<imp::RfbSink>) @extends gst_base::BaseSink, gst::Element, gst::Object, @implements gst_video::Navigation;
}

pub(crate) use imp::CAT;

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rfbsink",
        gst::Rank::NONE,
        RfbSink::static_type(),
    )
}
