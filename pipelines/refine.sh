#!/bin/sh
# H.264 while the picture changes, the exact picture once it stops: the raw frames go to
# rfbsink's refine pad next to the encoded stream; when no frame came for refine-delay ms the
# element sends the last raw one losslessly and the viewer paints it over the lossy one.
#
# Latency: the H.264 stream's (this line changes twice a second so that the still shows between
# frames; an interactive source that pushes only on change refines whenever the user stops).
# Quality: lossy while moving, pixel exact refine-delay after it stops.
gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=ball \
  ! video/x-raw,format=RGBx,width=1280,height=720,framerate=2/1 \
  ! tee name=t \
  t. ! queue ! videoconvert ! video/x-raw,format=I420 \
     ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=500 \
     ! rfbsink name=sink port=8080 refine-delay=200 \
  t. ! queue max-size-buffers=2 ! sink.refine
