#!/bin/sh
# H.264 from Cisco's OpenH264: Constrained Baseline, for machines without x264 (licensing).
#
# Latency: low (no B-frames, no lookahead). Quality: below x264 at the same bitrate (Baseline
# profile only); usage-type=screen suits text and UI, camera suits natural pictures. Every
# browser decodes Constrained Baseline.
gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=ball \
  ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
  ! openh264enc usage-type=screen complexity=low rate-control=bitrate bitrate=4000000 gop-size=60 \
  ! rfbsink port=8080
