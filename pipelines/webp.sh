#!/bin/sh
# WebP stills: smaller than JPEG at the same quality, and lossless=true for exact pictures.
#
# Latency: each frame is on its own (like JPEG), but webpenc is slower than jpegenc, so keep the
# frame rate modest. Quality: lossy at quality=80 looks like JPEG at 90 for about 2/3 of the
# bytes; lossless=true is pixel exact and usually smaller than PNG.
gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=ball \
  ! video/x-raw,format=I420,width=1280,height=720,framerate=10/1 \
  ! webpenc quality=80 speed=0 \
  ! rfbsink port=8080
