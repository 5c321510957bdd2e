#!/bin/sh
# Motion JPEG: every frame is a picture of its own.
#
# Latency: lowest and steadiest (no inter-frame dependencies: a lost or late frame costs
# nothing, a new viewer sees the next frame at once). Quality: set by quality=, but it takes
# 5 to 10 times the bandwidth of H.264 for the same picture; fine on a LAN or at low frame rates.
gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=ball \
  ! video/x-raw,format=I420,width=1280,height=720,framerate=15/1 \
  ! jpegenc quality=85 \
  ! rfbsink port=8080
