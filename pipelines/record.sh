#!/bin/sh
# Stream and record at once: one encode, teed to rfbsink and to an MP4 file.
#
# Latency: that of the encoder (x264 zerolatency); recording adds none to the stream. Quality:
# the file has exactly the frames the viewers get. h264parse converts to the length-prefixed
# form both mp4mux and rfbsink accept. Stop with Ctrl-C: -e turns it into end-of-stream so that
# mp4mux finishes the file; fragment-duration keeps what was written playable even after a crash.
gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=ball \
  ! video/x-raw,format=I420,width=1280,height=720,framerate=30/1 \
  ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=4000 key-int-max=60 \
  ! h264parse ! tee name=t \
  t. ! queue ! rfbsink port=8080 \
  t. ! queue ! mp4mux fragment-duration=1000 ! filesink location=recording.mp4
