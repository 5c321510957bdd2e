// SPDX-License-Identifier: MPL-2.0

// The element's integration tests, one test binary: real pipelines through gst-check's harness,
// real clients on loopback. One crate rather than one per file: each test binary links the whole
// plugin and its dependencies. The abuse tests measure the whole process (descriptors, threads,
// panics) and stay a binary of their own (tests/abuse.rs).

#[path = "../common/mod.rs"]
mod common;

mod audio;
mod codec;
mod http;
mod overload;
mod rate;
mod raw;
mod renditions;
mod rfbsink;
mod webtransport;
