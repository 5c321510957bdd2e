// SPDX-License-Identifier: MPL-2.0
#![allow(clippy::non_send_fields_in_send_ty)]

//! rfbsink: a GStreamer sink that serves an encoded video stream to browsers, with its own HTTP
//! server, WebSocket transport and WebCodecs viewer.

use std::sync::LazyLock;

use gst::glib;

mod access;
mod audio;
pub mod codec;
mod discovery;
mod encoder;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod hub;
mod inbox;
pub mod input;
mod ladder;
pub mod protocol;
mod rate;
mod raw;
mod relay;
mod reply;
pub mod rfbsink;
mod rtcp;
mod runtime;
mod server;
mod session;
mod stats;
mod stream;
pub mod tiles;
mod tls;
mod webrtc;
mod ws;
mod wt;

/// The plugin's debug category; every line is logged through the element it is about.
pub(crate) static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rfbsink",
        gst::DebugColorFlags::empty(),
        Some("Remote framebuffer sink"),
    )
});

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    rfbsink::register(plugin)
}

gst::plugin_define!(
    rfbsink,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MPL",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
