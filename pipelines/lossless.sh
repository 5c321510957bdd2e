#!/bin/sh
# Lossless raw video: rfbsink takes the pixels as they are and compresses them itself (64x64
# tiles, LZ4, only the tiles that changed), once for every viewer; the viewer paints them exact.
#
# Latency: no encoder, so a frame goes out as soon as it is compressed (a few milliseconds for a
# 1080p frame); the cost is bandwidth: gigabits a second for changing full-screen content, far
# less when little changes (an unchanged frame costs nothing). For loopback, a LAN or sparse
# pictures. Quality: pixel exact (RGB as sent, GRAY16 values exact with window/level).
gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=ball \
  ! video/x-raw,format=RGBx,width=1280,height=720,framerate=30/1 \
  ! rfbsink port=8080
