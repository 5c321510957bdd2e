#!/bin/sh
# VP9 (libvpx): about a third fewer bits than VP8/H.264 for the same picture.
#
# Latency: low with deadline=1 and lag-in-frames=0, but the encoder needs 2-3 times the CPU of
# VP8 (row-mt spreads it over cores). Quality: better than VP8 and x264 ultrafast at the same
# bitrate; good for screen content.
gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=ball \
  ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
  ! vp9enc deadline=1 cpu-used=8 row-mt=true lag-in-frames=0 end-usage=cbr target-bitrate=2000000 keyframe-max-dist=60 \
  ! rfbsink port=8080
