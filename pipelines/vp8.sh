#!/bin/sh
# VP8 (libvpx): royalty free video, decoded by every browser.
#
# Latency: low with deadline=1 (realtime) and lag-in-frames=0 (no lookahead). Quality: a bit
# below x264 at the same bitrate; cpu-used=8 trades quality for encoding speed.
gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=ball \
  ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
  ! vp8enc deadline=1 cpu-used=8 lag-in-frames=0 end-usage=cbr target-bitrate=3000000 keyframe-max-dist=60 \
  ! rfbsink port=8080
