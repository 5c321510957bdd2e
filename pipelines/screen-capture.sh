#!/bin/sh
# The X11 screen (ximagesrc) as H.264: share a desktop or one window (xid= or xname=).
#
# Latency: low (x264 zerolatency; use-damage=false grabs whole frames, cheaper than damage
# tracking on most servers). Quality: screen content is sharp text, so give it bitrate; the
# screen's width and height must be even for 4:2:0. Needs an X display ($DISPLAY).
gst-launch-1.0 -e \
  ximagesrc use-damage=false show-pointer=true \
  ! video/x-raw,framerate=30/1 \
  ! videoconvert ! video/x-raw,format=I420 \
  ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=6000 key-int-max=60 \
  ! rfbsink port=8080
