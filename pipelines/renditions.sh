#!/bin/sh
# Viewers on different links: one picture, two encodings. Rendition 0 (the sink pad) is 1280x720
# at 2 Mbit/s; rendition_1 is 640x360 at 500 kbit/s. Each encoding is done once, for every
# viewer on it; each viewer gets the best one its link carries and moves at a keyframe of the
# other when its link changes (?rendition=N in the viewer's URL chooses one).
#
# Latency: the same on both (each branch has its own leaky queue and encoder thread).
# Quality: full for fast links; viewers on slow links see a smaller picture at full frame rate
# instead of skipping frames or queueing.
gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=ball \
  ! video/x-raw,width=1280,height=720,framerate=30/1 \
  ! videoconvert ! video/x-raw,format=I420 \
  ! tee name=t \
  t. ! queue max-size-buffers=1 leaky=downstream \
     ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bitrate=2000 \
     ! rfbsink name=sink port=8080 \
  t. ! queue max-size-buffers=1 leaky=downstream \
     ! videoscale ! video/x-raw,width=640,height=360 \
     ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60 bitrate=500 \
     ! sink.rendition_1
