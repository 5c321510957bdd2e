#!/usr/bin/env bash
# Builds gst-plugins-rs' WebRTC plugin (gst-plugin-webrtc from crates.io, the `whep` feature only:
# whepclientsrc, and webrtcsink's whepserversink) once per version, into a cache outside the
# clone, and prints the folder that holds libgstrswebrtc.so (for GST_PLUGIN_PATH). The e2e test
# tests/e2e/whepclient.test.mjs pulls the stream with it: GStreamer's own WHEP client, the one a
# media engineer uses; the bench runs whepserversink as the reference on shaped links.
#
#   GST_PLUGIN_PATH=$(bash scripts/whepclientsrc.sh) gst-inspect-1.0 whepclientsrc
#
# Safe to run again: with the library built for this version it only prints the folder.
# Progress goes to stderr; a fresh build takes about 10 minutes on 2 cores.
set -euo pipefail
exec bash "$(dirname "$0")/gst-rs-plugin.sh" gst-plugin-webrtc 0.15.4 libgstrswebrtc.so \
  --no-default-features --features whep,rustls-ring
