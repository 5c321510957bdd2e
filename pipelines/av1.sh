#!/bin/sh
# AV1 (libaom, the av1enc element): the fewest bits for a given picture.
#
# Latency: low in the realtime usage profile without lookahead, but libaom is CPU hungry: this
# line uses 640x360 so that a laptop keeps up (svtav1enc or a hardware AV1 encoder do better).
# Quality: best per bit of the codecs here. Browsers decode AV1 in software if need be.
# max-quantizer=63: libaom (GStreamer 1.22) aborts in CBR mode with av1enc's default of 0.
gst-launch-1.0 -e \
  videotestsrc is-live=true pattern=ball \
  ! video/x-raw,format=I420,width=640,height=360,framerate=30/1 \
  ! av1enc usage-profile=realtime cpu-used=10 lag-in-frames=0 end-usage=cbr min-quantizer=0 max-quantizer=63 target-bitrate=1000 keyframe-max-dist=60 row-mt=true \
  ! av1parse ! video/x-av1,stream-format=obu-stream,alignment=tu \
  ! rfbsink port=8080
