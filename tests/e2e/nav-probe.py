#!/usr/bin/python3
# Runs a pipeline that contains `rfbsink name=sink` and reports, one JSON object a line on stdout,
# what the browser tests need to see from the GStreamer side:
#
#   {"listening": "http://127.0.0.1:PORT/", "port": PORT}   rfbsink-listening element message
#   {"event": "mouse-button-press", "button": 1, "x": .., "y": .., "state": ..}
#                                   each navigation event rfbsink pushes upstream (a probe on its
#                                   sink pad); key events have "key", scrolls "delta_x"/"delta_y",
#                                   touch events "identifier"/"pressure"
#   {"resize": {"client-id": .., "width": .., "height": ..}}   rfbsink-resize element messages
#   {"stats": {"clients": .., "input-events": .., "input-ignored": ..}}   rfbsink-stats messages
#   {"client_message": {"client_id": .., "channel": .., "json": .., "replied": bool}}
#                                   client-message signal; it is answered with send-message on the
#                                   same channel (or the message's "reply_on" app.* channel):
#                                   {"kind": "pong", "n": <n>, "echo": <message>}
#   {"error": "..."}                a bus error (then it exits 1)
#
# A/V sources: an `appsrc name=avvideo` in the pipeline gets 320x240 RGBx pictures at 30 fps,
# white for the 3 frames from each whole second of running time, else black; an
# `appsrc name=avaudio` gets 48 kHz stereo S16LE in 10 ms blocks, silent but for a 5 ms 1 kHz tick
# at each whole second. Each buffer goes out when its capture ends (a camera's or a microphone's
# timing): the flash and the tick of a second are made at the same instant.
#
# Usage: /usr/bin/python3 nav-probe.py 'videotestsrc ! ... ! rfbsink name=sink port=0'
# (Debian's python3, which has python3-gi.) Stops on SIGINT/SIGTERM and on EOS.

import json
import math
import re
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstVideo  # noqa: E402

Nav = GstVideo.Navigation
NavType = GstVideo.NavigationEventType


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def modifier_state(event):
    # The structure's field: gst_navigation_event_parse_modifier_state has no (out) annotation in
    # 1.22, so Python cannot call it.
    s = event.get_structure()
    return int(s.get_value("state")) if s.has_field("state") else None


def describe(event):
    """The navigation event as a dict, or None when it is not one."""
    kind = Nav.event_get_type(event)
    if kind == NavType.INVALID:
        return None
    s = event.get_structure()
    out = {"event": s.get_string("event")}
    if kind in (NavType.MOUSE_BUTTON_PRESS, NavType.MOUSE_BUTTON_RELEASE):
        _, out["button"], out["x"], out["y"] = Nav.event_parse_mouse_button_event(event)
    elif kind == NavType.MOUSE_MOVE:
        _, out["x"], out["y"] = Nav.event_parse_mouse_move_event(event)
    elif kind == NavType.MOUSE_SCROLL:
        _, out["x"], out["y"], out["delta_x"], out["delta_y"] = Nav.event_parse_mouse_scroll_event(event)
    elif kind in (NavType.KEY_PRESS, NavType.KEY_RELEASE):
        _, out["key"] = Nav.event_parse_key_event(event)
    elif kind in (NavType.TOUCH_DOWN, NavType.TOUCH_MOTION):
        _, out["identifier"], out["x"], out["y"], out["pressure"] = Nav.event_parse_touch_event(event)
    elif kind == NavType.TOUCH_UP:
        _, out["identifier"], out["x"], out["y"] = Nav.event_parse_touch_up_event(event)
    out["state"] = modifier_state(event)
    # NaN (no pressure) is not JSON.
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in out.items()}


def on_upstream_event(_pad, info):
    event = info.get_event()
    if event is not None and event.type == Gst.EventType.NAVIGATION:
        d = describe(event)
        if d is not None:
            emit(d)
    return Gst.PadProbeReturn.OK


def client_summaries(s):
    """Each client's transport, frames sent and (WebRTC) round trip, from the serialized
    client-stats (PyGObject cannot read a GstValueArray of structures)."""
    text = s.to_string().replace("\\", "")
    out = []
    for body in re.findall(r'"client, ([^"]*)"', text):
        def num(field):
            m = re.search(rf"(?:^|[ ,]){field}=\([a-z0-9]+\)(-?[0-9]+)", body)
            return int(m.group(1)) if m else None
        m = re.search(r"transport=\(string\)([a-z]+)", body)
        out.append({"transport": m.group(1) if m else None, "frames-sent": num("frames-sent"),
                    "rtt-us": num("rtt-us"), "packets-lost": num("packets-lost")})
    return out


def structure_fields(s, names):
    out = {}
    for name in names:
        if s.has_field(name):
            out[name] = s.get_value(name)
    return out


AV_FPS = 30
AV_WIDTH, AV_HEIGHT = 320, 240
AV_RATE = 48000
AV_BLOCK = AV_RATE // 100


def av_caps(name):
    if name == "avvideo":
        return Gst.Caps.from_string(
            f"video/x-raw,format=RGBx,width={AV_WIDTH},height={AV_HEIGHT},framerate={AV_FPS}/1")
    return Gst.Caps.from_string(f"audio/x-raw,format=S16LE,layout=interleaved,rate={AV_RATE},channels=2")


def av_buffer(name, n):
    """The n-th buffer of an A/V source: (bytes, pts ns, duration ns)."""
    if name == "avvideo":
        pts = n * Gst.SECOND // AV_FPS
        white = n % AV_FPS < 3
        data = (b"\xff" if white else b"\x00") * (AV_WIDTH * AV_HEIGHT * 4)
        return data, pts, Gst.SECOND // AV_FPS
    start = n * AV_BLOCK
    pts = start * Gst.SECOND // AV_RATE
    return av_block(start % AV_RATE), pts, AV_BLOCK * Gst.SECOND // AV_RATE


_blocks = {}


def av_block(start):
    """The samples of the block at `start` within its second (made once)."""
    if start in _blocks:
        return _blocks[start]
    out = bytearray(AV_BLOCK * 4)
    for i in range(AV_BLOCK):
        k = start + i
        if k < AV_RATE // 200:
            v = int(24000 * math.sin(2 * math.pi * 1000 * k / AV_RATE))
            out[4 * i:4 * i + 4] = v.to_bytes(2, "little", signed=True) * 2
    _blocks[start] = bytes(out)
    return _blocks[start]


def feed_av(pipeline, src, stop):
    name = src.get_name()
    clock = pipeline.get_clock()
    while clock is None and not stop.wait(0.01):
        clock = pipeline.get_clock()
    if clock is None:
        return
    base = pipeline.get_base_time()
    n = 0
    while not stop.is_set():
        data, pts, duration = av_buffer(name, n)
        # Out when its capture ends, as a device delivers it.
        wait = (base + pts + duration - clock.get_time()) / Gst.SECOND
        if wait > 0 and stop.wait(wait):
            return
        buf = Gst.Buffer.new_wrapped(data)
        buf.pts = pts
        buf.duration = duration
        if src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
            return
        n += 1


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: nav-probe.py 'PIPELINE WITH rfbsink name=sink'\n")
        return 2
    Gst.init(None)
    try:
        pipeline = Gst.parse_launch(sys.argv[1])
    except GLib.Error as e:
        emit({"error": f"cannot build the pipeline: {e.message}"})
        return 1
    sink = pipeline.get_by_name("sink")
    if sink is None:
        emit({"error": "the pipeline has no element named 'sink'"})
        return 1
    sink.get_static_pad("sink").add_probe(Gst.PadProbeType.EVENT_UPSTREAM, on_upstream_event)

    def on_client_message(element, client_id, channel, message):
        try:
            parsed = json.loads(message)
        except ValueError:
            parsed = None
        reply = {"kind": "pong", "echo": parsed}
        if isinstance(parsed, dict) and "n" in parsed:
            reply["n"] = parsed["n"]
        # {"reply_on": "app.other"} asks for the reply on another channel.
        reply_on = parsed.get("reply_on") if isinstance(parsed, dict) else None
        reply_channel = reply_on if isinstance(reply_on, str) and reply_on.startswith("app.") else channel
        replied = element.emit("send-message", reply_channel, json.dumps(reply), client_id)
        emit({"client_message": {"client_id": client_id, "channel": channel, "json": parsed,
                                 "reply_channel": reply_channel, "replied": bool(replied)}})

    sink.connect("client-message", on_client_message)

    loop = GLib.MainLoop()
    status = {"code": 0}

    def on_message(_bus, message):
        t = message.type
        if t == Gst.MessageType.ELEMENT:
            s = message.get_structure()
            name = s.get_name() if s else ""
            if name == "rfbsink-listening":
                emit({"listening": s.get_string("url"), "port": s.get_value("port")})
            elif name == "rfbsink-resize":
                emit({"resize": structure_fields(s, ["client-id", "width", "height"])})
            elif name == "rfbsink-stats":
                stats = structure_fields(s, ["clients", "frames", "input-events", "input-ignored"])
                stats["per-client"] = client_summaries(s)
                emit({"stats": stats})
        elif t == Gst.MessageType.ERROR:
            err, debug = message.parse_error()
            emit({"error": f"{err.message} ({debug})"})
            status["code"] = 1
            loop.quit()
        elif t == Gst.MessageType.EOS:
            loop.quit()
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)

    def on_signal():
        loop.quit()
        return GLib.SOURCE_REMOVE

    for signum in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, on_signal)

    av_sources = [e for e in (pipeline.get_by_name("avvideo"), pipeline.get_by_name("avaudio")) if e]
    for src in av_sources:
        src.set_property("caps", av_caps(src.get_name()))
        src.set_property("format", Gst.Format.TIME)
        src.set_property("is-live", True)
    av_stop = threading.Event()
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        # The bus has the why; read it before giving up.
        msg = bus.timed_pop_filtered(0, Gst.MessageType.ERROR)
        if msg is not None:
            err, debug = msg.parse_error()
            emit({"error": f"{err.message} ({debug})"})
        else:
            emit({"error": "the pipeline did not start"})
        pipeline.set_state(Gst.State.NULL)
        return 1
    # Not waiting for the state change: a live sink completes it with the first buffer.
    feeders = [threading.Thread(target=feed_av, args=(pipeline, s, av_stop), daemon=True) for s in av_sources]
    for f in feeders:
        f.start()
    try:
        loop.run()
    finally:
        av_stop.set()
        bus.remove_signal_watch()
        pipeline.set_state(Gst.State.NULL)
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
