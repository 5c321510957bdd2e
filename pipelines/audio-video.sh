#!/bin/sh
# A picture and its sound: H.264 and Opus to every viewer, in sync (the viewer holds each picture
# until its sound is heard). Browsers play sound after a click on the page: the viewer says so.
#
# Latency: the picture's as in x264-low-latency.sh; while sound plays, the picture waits for the
# sound's own latency (a 10 ms Opus packet, a 20-30 ms jitter buffer, the browser's sound output):
# lip sync first. ?avsync=0 on the viewer page shows each picture at once instead. Quality: Opus
# at 64 kbit/s, good for voice and music (raise bitrate= for more). Replace audiotestsrc with
# pulsesrc (the desktop's sound: device=<sink>.monitor) or autoaudiosrc (a microphone).
gst-launch-1.0 -e \
  rfbsink name=sink port=8080 \
  videotestsrc is-live=true pattern=ball \
  ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
  ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 \
  ! sink. \
  audiotestsrc is-live=true wave=ticks \
  ! audioconvert ! audioresample ! opusenc frame-size=10 bitrate=64000 \
  ! sink.audio
