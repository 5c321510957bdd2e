#!/bin/sh
# H.264 from x264, tuned for the lowest latency: the default choice for a live view.
#
# Latency: lowest of the software encoders (tune=zerolatency: no B-frames, no lookahead, each
# frame leaves the encoder at once; ultrafast preset). Quality: good at 4 Mbit/s for 720p; the
# ultrafast preset spends more bits than slower presets for the same picture. Every browser
# decodes it (format=I420 keeps it 8-bit 4:2:0, which hardware decoders need).
gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=ball \
  ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
  ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=4000 key-int-max=60 \
  ! rfbsink port=8080
