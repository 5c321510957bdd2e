#!/usr/bin/python3
"""Pulls a WHEP stream with GStreamer's own WHEP client (gst-plugins-rs' whepclientsrc) into a
pipeline, as a media engineer would, and reports what it decoded as JSON lines on stdout:

    whep-pull.py --endpoint http://127.0.0.1:8080/whep --token TOKEN --frames 60 \
        --points 80,100 240,100

{"event": "frame", "n": N, "width": W, "height": H} for the first frame, then
{"event": "done", "frames": N, "width": W, "height": H, "caps": "...", "pixels": [[r, g, b], ...]}
(the last frame's pixels at --points, in stream coordinates) once --frames frames were decoded,
or {"event": "error", "message": ...}. With --seconds S instead: from the first frame, each second's
{"event": "second", "frames": N} for S seconds, then "done" (no pixels). Gives up after --timeout
seconds. WHEP_DUMP=FILE writes the
last frame's RGB bytes to FILE (to look at a failure).
"""

import argparse
import json
import os
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--token", default="")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--points", nargs="*", default=[])
    ap.add_argument("--seconds", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=40)
    args = ap.parse_args()
    points = [tuple(int(v) for v in p.split(",")) for p in args.points]

    Gst.init(None)
    line = (
        f'whepclientsrc name=src signaller::whep-endpoint="{args.endpoint}" '
        + (f'signaller::auth-token="{args.token}" ' if args.token else "")
        + "! videoconvert ! video/x-raw,format=RGB ! appsink name=sink emit-signals=true sync=false max-buffers=2 drop=true"
    )
    pipeline = Gst.parse_launch(line)
    # No STUN server: the test's network has none (the default is a public one).
    pipeline.get_by_name("src").set_property("stun-server", None)
    loop = GLib.MainLoop()
    state = {"frames": 0, "rc": 1}

    def finish(obj, rc):
        if state.get("done"):
            return
        state["done"] = True
        state["rc"] = rc
        out(obj)
        GLib.idle_add(loop.quit)

    def on_sample(sink):
        sample = sink.emit("pull-sample")
        s = sample.get_caps().get_structure(0)
        width, height = s.get_value("width"), s.get_value("height")
        state["frames"] += 1
        if state["frames"] == 1:
            out({"event": "frame", "n": 1, "width": width, "height": height})
            if args.seconds:
                state["counted"] = 0
                state["seconds"] = 0
                state["size"] = (width, height, sample.get_caps().to_string())
                GLib.timeout_add(1000, each_second)
        if not args.seconds and state["frames"] >= args.frames:
            buf = sample.get_buffer()
            ok, info = buf.map(Gst.MapFlags.READ)
            stride = (width * 3 + 3) & ~3
            pixels = []
            if ok:
                data = info.data
                if os.environ.get("WHEP_DUMP"):
                    open(os.environ["WHEP_DUMP"], "wb").write(bytes(data))
                for x, y in points:
                    o = y * stride + x * 3
                    pixels.append(list(data[o:o + 3]))
                buf.unmap(info)
            finish({"event": "done", "frames": state["frames"], "width": width, "height": height,
                    "caps": sample.get_caps().to_string(), "pixels": pixels}, 0)
        return Gst.FlowReturn.OK

    def each_second():
        frames = state["frames"]
        out({"event": "second", "frames": frames - state["counted"]})
        state["counted"] = frames
        state["seconds"] += 1
        if state["seconds"] < args.seconds:
            return True
        width, height, caps = state["size"]
        finish({"event": "done", "frames": frames, "width": width, "height": height, "caps": caps,
                "pixels": []}, 0)
        return False

    pipeline.get_by_name("sink").connect("new-sample", on_sample)

    def on_message(_bus, msg):
        if msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            finish({"event": "error", "message": f"{err.message} ({dbg})", "frames": state["frames"]}, 1)
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    GLib.timeout_add(int(args.timeout * 1000),
                     lambda: finish({"event": "error", "message": f"timed out after {args.timeout} s",
                                     "frames": state["frames"]}, 1) or False)
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        out({"event": "error", "message": "cannot start the pipeline (is whepclientsrc on GST_PLUGIN_PATH?)"})
        return 1
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    return state["rc"]


if __name__ == "__main__":
    sys.exit(main())
