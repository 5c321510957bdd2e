#!/usr/bin/env bash
# Builds gst-plugins-rs' RTP plugin (gst-plugin-rtp from crates.io) once per version into a cache
# outside the clone and prints the folder that holds libgstrsrtp.so. Its `rtpgccbwe` is the
# Google Congestion Control estimator that webrtcsink needs to adapt its encoder: without it
# webrtcsink warns "not doing any congestion control". The bench (`make bench`) runs webrtcsink
# with it as the reference on shaped links (issue 22).
#
#   GST_PLUGIN_PATH=$(bash scripts/rtpgccbwe.sh) gst-inspect-1.0 rtpgccbwe
#
# A fresh build takes a few minutes on 2 cores.
set -euo pipefail
exec bash "$(dirname "$0")/gst-rs-plugin.sh" gst-plugin-rtp 0.15.4 libgstrsrtp.so
