#!/bin/sh
# PNG: lossless stills, for pictures that must be exact (plots, images to measure, text).
#
# Latency: each frame is on its own, but PNG is slow to encode and large (megabytes for a
# detailed 720p frame): use it for slowly changing pictures, a few frames a second. Quality:
# lossless, pixel exact (RGB, no chroma subsampling). snapshot=false keeps pngenc streaming.
gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=smpte \
  ! video/x-raw,width=1280,height=720,framerate=2/1 \
  ! videoconvert ! video/x-raw,format=RGB \
  ! pngenc snapshot=false compression-level=1 \
  ! rfbsink port=8080
