#!/bin/sh
# Video from another program piped in: ffmpeg (or a desktop app that runs ffmpeg) writes
# Matroska to stdout, GStreamer reads it from stdin, decodes and re-encodes it for browsers.
#
# Latency: the producer's encoder plus one decode and one encode (a few frames with the zerolatency
# settings on both sides). Quality: the re-encode loses a little; when the producer already makes
# browser-friendly H.264, skip it: `fdsrc fd=0 ! matroskademux ! h264parse ! rfbsink`.
ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=1280x720:rate=30 \
  -c:v libx264 -preset ultrafast -tune zerolatency -pix_fmt yuv420p -f matroska - \
| gst-launch-1.0 -e \
  fdsrc fd=0 ! decodebin ! videoconvert ! video/x-raw,format=I420 \
  ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=4000 key-int-max=60 \
  ! rfbsink port=8080
