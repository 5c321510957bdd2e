#!/usr/bin/env python3
"""Show a numpy picture in the browser, live, and let the browser's pointer drive it.

A 2-D Gaussian (a heat map) is rendered with numpy and streamed by rfbsink:

    numpy RGB frame -> appsrc -> videoconvert -> x264enc (or jpegenc) -> rfbsink -> browser

- Frames are SPARSE: one is pushed only when the picture changes (the pointer moved, a setting
  changed), plus one at the start. Nothing changes, nothing is encoded or sent. Each frame carries
  the real time it was made (its PTS is the pipeline's running time when it is pushed), so the
  viewer sees real gaps between frames, not a made-up frame rate.
- The browser's input comes back up the pipeline as GstNavigation events; a pad probe on appsrc
  catches them: moving the pointer moves the Gaussian's centre, a click switches the colour map,
  the wheel changes its width.
- The page and this script talk over an application channel, `app.params` (JSON objects):
  the page sends {"kind": "set", "sigma": 20}, the script redraws and answers {"kind": "ack", ...};
  {"kind": "get"} answers with the current parameters. Every new viewer gets a {"kind": "hello"}.
  From the page: `rfbViewer.sendMessage('app.params', {kind: 'set', sigma: 20})` and
  `rfbViewer.onMessage((m) => console.log(m))`.

Run (see README.md):  python3 numpy_stream.py  and open the URL it prints.
Copy it and replace `render()` with your own picture.
"""

import argparse
import json
import signal
import sys
import warnings

import numpy as np

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstVideo  # noqa: E402

CHANNEL = "app.params"


# --- The picture ---------------------------------------------------------------------------------


def colour_map(anchors):
    """A 256 x 3 uint8 lookup table interpolated between (position 0..1, (r, g, b)) anchors."""
    pos = np.array([a[0] for a in anchors])
    rgb = np.array([a[1] for a in anchors], dtype=np.float64)
    x = np.linspace(0.0, 1.0, 256)
    return np.stack([np.interp(x, pos, rgb[:, c]) for c in range(3)], axis=1).round().astype(np.uint8)


COLOUR_MAPS = {
    # Close to matplotlib's "inferno": black, purple, red, orange, pale yellow.
    "inferno": colour_map([
        (0.0, (0, 0, 4)), (0.25, (87, 16, 110)), (0.5, (188, 55, 84)),
        (0.75, (249, 142, 9)), (1.0, (252, 255, 164)),
    ]),
    "gray": colour_map([(0.0, (0, 0, 0)), (1.0, (255, 255, 255))]),
}


class Heatmap:
    """exp(-r^2 / 2 sigma^2) around (cx, cy), coloured with a colour map. All in pixels."""

    def __init__(self, width, height):
        self.width, self.height = width, height
        self.cx, self.cy = width / 2, height / 2
        self.sigma = min(width, height) / 12
        self.cmap = "inferno"
        # Pixel-centre coordinates, shaped to broadcast to (height, width).
        self.xs = np.arange(width, dtype=np.float32)[np.newaxis, :]
        self.ys = np.arange(height, dtype=np.float32)[:, np.newaxis]

    def params(self):
        return {"cx": self.cx, "cy": self.cy, "sigma": self.sigma, "cmap": self.cmap}

    def set(self, **changes):
        """Applies the known, valid parameters in `changes`; raises ValueError for any other."""
        for key, value in changes.items():
            if key in ("cx", "cy", "sigma") and isinstance(value, (int, float)) and not isinstance(value, bool):
                if key == "sigma" and not 1 <= value <= 10 * max(self.width, self.height):
                    raise ValueError(f"sigma {value} is out of range")
                setattr(self, key, float(value))
            elif key == "cmap" and value in COLOUR_MAPS:
                self.cmap = value
            else:
                raise ValueError(f"cannot set {key!r} to {value!r}")

    def render(self):
        """The picture as a (height, width, 3) uint8 RGB array."""
        r2 = (self.xs - self.cx) ** 2 + (self.ys - self.cy) ** 2
        z = np.exp(-r2 / (2 * self.sigma**2))  # 0..1
        return COLOUR_MAPS[self.cmap][(z * 255).astype(np.uint8)]


# --- Streaming it --------------------------------------------------------------------------------


ENCODERS = {
    # tune=zerolatency: no lookahead, no B-frames, each frame leaves the encoder at once (a sparse
    # stream has no "next frame" to wait for). pass=qual: constant quality, whatever the frame
    # rate. format=I420: browsers decode 8-bit 4:2:0 H.264 (left free, x264enc picks 4:4:4).
    "h264": "video/x-raw,format=I420 ! x264enc name=enc tune=zerolatency speed-preset=ultrafast pass=qual quantizer=20 key-int-max=60",
    # Every JPEG frame stands alone: bigger, but simplest and loss-tolerant.
    "jpeg": "video/x-raw,format=I420 ! jpegenc name=enc quality=90",
}


class NumpyStream:
    def __init__(self, width, height, codec, port, address):
        self.heatmap = Heatmap(width, height)
        self.width, self.height = width, height
        self.loop = GLib.MainLoop()
        self.exit_code = 0
        self.redraw_pending = False
        self.clients = set()

        # framerate is nominal, for the encoder's rate control: frames still come only when the
        # picture changes, with their real times. (With 0/1, "variable", x264enc holds each
        # frame back until the next one arrives: fatal for a sparse stream.)
        caps = f"video/x-raw,format=RGB,width={width},height={height},framerate=30/1"
        self.pipeline = Gst.parse_launch(
            f"appsrc name=src is-live=true format=time do-timestamp=false caps={caps} "
            f"! videoconvert ! {ENCODERS[codec]} "
            # stats-interval: rfbsink-stats on the bus every 500 ms, to notice new viewers.
            f"! rfbsink name=sink port={port} address={address} stats-interval=500"
        )
        self.appsrc = self.pipeline.get_by_name("src")
        self.sink = self.pipeline.get_by_name("sink")

        # Browser input travels upstream as navigation events; catch them where they end.
        self.appsrc.get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_UPSTREAM, self.on_upstream_event)
        # rfbsink asks upstream for a keyframe when a viewer lost its decoder state; the encoder
        # makes the NEXT frame a keyframe, and a sparse stream may have no next frame for a long
        # time: push one now.
        encoder_src = self.pipeline.get_by_name("enc").get_static_pad("src")
        encoder_src.add_probe(Gst.PadProbeType.EVENT_UPSTREAM, self.on_encoder_event)
        # Application messages from the page (emitted on rfbsink's own thread).
        self.sink.connect("client-message", self.on_client_message)

        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self.on_bus_message)

    # Everything below that changes state runs on the GLib main loop: the probe and the signal
    # come from GStreamer threads and only hand over with GLib.idle_add (thread-safe).

    def on_upstream_event(self, pad, info):
        event = info.get_event()
        if event.type != Gst.EventType.NAVIGATION:
            return Gst.PadProbeReturn.OK
        kind = GstVideo.Navigation.event_get_type(event)
        if kind == GstVideo.NavigationEventType.MOUSE_MOVE:
            _, x, y = GstVideo.Navigation.event_parse_mouse_move_event(event)
            GLib.idle_add(self.change, {"cx": x, "cy": y})
        elif kind == GstVideo.NavigationEventType.MOUSE_BUTTON_PRESS:
            _, button, x, y = GstVideo.Navigation.event_parse_mouse_button_event(event)
            if button == 1:  # left
                GLib.idle_add(self.toggle_cmap)
        elif kind == GstVideo.NavigationEventType.MOUSE_SCROLL:
            _, x, y, dx, dy = GstVideo.Navigation.event_parse_mouse_scroll_event(event)
            GLib.idle_add(self.change, {"sigma": self.heatmap.sigma * 1.1 ** dy})
        return Gst.PadProbeReturn.OK

    def on_encoder_event(self, pad, info):
        if GstVideo.video_event_is_force_key_unit(info.get_event()):
            GLib.idle_add(self.schedule_redraw)
        return Gst.PadProbeReturn.OK

    def on_client_message(self, sink, client_id, channel, text):
        GLib.idle_add(self.handle_message, client_id, channel, text)

    def handle_message(self, client_id, channel, text):
        if channel != CHANNEL:
            return GLib.SOURCE_REMOVE
        message = json.loads(text)  # rfbsink only passes on JSON objects
        kind = message.pop("kind", None)
        if kind == "set":
            try:
                self.heatmap.set(**message)
            except ValueError as e:
                self.send({"kind": "error", "message": str(e)}, client_id)
                return GLib.SOURCE_REMOVE
            self.schedule_redraw()
            self.send({"kind": "ack", **self.heatmap.params()}, client_id)
        elif kind == "get":
            self.send({"kind": "params", **self.heatmap.params()}, client_id)
        return GLib.SOURCE_REMOVE

    def send(self, message, client_id=0):
        """Sends `message` (a dict) on app.params to one viewer, or to all with client_id 0."""
        return self.sink.emit("send-message", CHANNEL, json.dumps(message), client_id)

    def change(self, params):
        try:
            self.heatmap.set(**params)
        except ValueError:
            return GLib.SOURCE_REMOVE  # a wheel turned too far: keep the last picture
        self.schedule_redraw()
        return GLib.SOURCE_REMOVE

    def toggle_cmap(self):
        self.heatmap.cmap = "gray" if self.heatmap.cmap == "inferno" else "inferno"
        self.schedule_redraw()
        return GLib.SOURCE_REMOVE

    def schedule_redraw(self):
        # Many pointer moves can arrive before the loop gets to draw: draw once for all of them.
        if not self.redraw_pending:
            self.redraw_pending = True
            GLib.idle_add(self.push_frame)

    def push_frame(self):
        self.redraw_pending = False
        rgb = self.heatmap.render()
        # GStreamer's RGB rows start on 4-byte boundaries: pad each row when width * 3 is not.
        stride = (self.width * 3 + 3) & ~3
        data = rgb.reshape(self.height, self.width * 3)
        if stride != self.width * 3:
            data = np.pad(data, ((0, 0), (0, stride - self.width * 3)))
        buffer = Gst.Buffer.new_wrapped(data.tobytes())
        buffer.pts = self.running_time()
        self.appsrc.emit("push-buffer", buffer)
        return GLib.SOURCE_REMOVE

    def running_time(self):
        """The pipeline's running time now (clock time - base time): the real time of a frame."""
        _, state, _ = self.pipeline.get_state(0)
        if state != Gst.State.PLAYING:
            # The first frame: the pipeline only gets to PLAYING once the sink has a frame, so
            # it goes in before, at running time 0 (the moment the pipeline starts playing).
            return 0
        return self.pipeline.get_clock().get_time() - self.pipeline.get_base_time()

    def on_bus_message(self, bus, message):
        t = message.type
        s = message.get_structure()
        if t == Gst.MessageType.ELEMENT and s is not None:
            if s.get_name() == "rfbsink-listening":
                print(f"numpy_stream: open {s.get_value('url')} in a browser", flush=True)
            elif s.get_name() == "rfbsink-stats":
                self.greet_new_clients(s)
        elif t == Gst.MessageType.ERROR:
            err, debug = message.parse_error()
            print(f"numpy_stream: error from {message.src.get_name()}: {err.message}\n{debug}", file=sys.stderr)
            self.exit_code = 1
            self.loop.quit()
        elif t == Gst.MessageType.EOS:
            self.loop.quit()

    def greet_new_clients(self, stats):
        """Says hello to each viewer the first time it shows up in rfbsink's stats."""
        ok, clients = stats.get_array("client-stats")
        if not ok:
            return
        with warnings.catch_warnings():
            # GValueArray is how PyGObject reads a GstValueArray (without the gst-python overrides).
            warnings.simplefilter("ignore", DeprecationWarning)
            ids = {clients.get_nth(i).get_value("id") for i in range(clients.n_values)}
        for client_id in sorted(ids - self.clients):
            self.send({
                "kind": "hello",
                "app": "numpy_stream",
                "help": "move: centre; click: colour map; wheel: width; send {kind:'set', sigma:20}",
                **self.heatmap.params(),
            }, client_id)
        self.clients = ids

    def run(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, self.loop.quit)
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            # The bus has the reason (e.g. the port is taken); show it.
            msg = self.pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
            reason = msg.parse_error()[0].message if msg else "see GST_DEBUG=3"
            print(f"numpy_stream: cannot start the pipeline: {reason}", file=sys.stderr)
            return 1
        self.push_frame()  # the initial picture
        try:
            self.loop.run()
        finally:
            self.pipeline.set_state(Gst.State.NULL)
        return self.exit_code


def parse_size(text):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}")
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError("width and height must be even and at least 16 (4:2:0 video)")
    return w, h


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (0: any free port); default 8080")
    parser.add_argument("--address", default="127.0.0.1", help="address to listen on; default 127.0.0.1")
    parser.add_argument("--codec", choices=sorted(ENCODERS), default="h264", help="default h264")
    parser.add_argument("--size", type=parse_size, default=(640, 480), metavar="WxH", help="default 640x480")
    args = parser.parse_args()

    Gst.init(None)
    if Gst.ElementFactory.find("rfbsink") is None:
        sys.exit("numpy_stream: no rfbsink element: build it and set GST_PLUGIN_PATH (see README.md)")
    width, height = args.size
    return NumpyStream(width, height, args.codec, args.port, args.address).run()


if __name__ == "__main__":
    sys.exit(main())
