#!/usr/bin/env python3
"""A simulated microscope camera, live in the browser: 12-bit uint16 frames, an exposure slider.

What ImSwitch-like control software does, with the rfbsink Python package:

    camera thread: uint16 frame (12-bit detector) -> stream.push()   (lossless, 16-bit)
    page: <rfb-viewer> + an exposure slider -> app.detector {"kind": "set", "exposure_ms": 40}
    Python: on_message -> the camera's exposure -> {"kind": "state", ...} back to every page
    a click on the picture -> on_input -> {"kind": "pixel", "x", "y", "value"}: the raw count there

The page (detector.html) is served by this script on its own port and imports the viewer module
from the stream's server, which lets that one origin in (allowed_origins).

Run:   GST_PLUGIN_PATH=<checkout>/target/release python3 examples/python/detector.py
       (with the package installed: pip install ./python) and open the URL it prints.
"""

from __future__ import annotations

import argparse
import http.server
import json
import pathlib
import signal
import sys
import threading
import time
from urllib.parse import urlencode

import numpy as np

try:
    import rfbsink
except ImportError:  # run from a checkout without installing the package
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "python"))
    import rfbsink

CHANNEL = "app.detector"
FULL_SCALE = 4095  # a 12-bit detector


class Camera:
    """Fluorescent beads drifting on a dark background, with shot noise; exposure scales the signal."""

    def __init__(self, width: int, height: int, seed: int = 1):
        self.width, self.height = width, height
        self.exposure_ms = 20.0
        self.frame_count = 0
        rng = np.random.default_rng(seed)
        self.rng = rng
        n = 40
        self.beads = np.column_stack([rng.uniform(0, width, n), rng.uniform(0, height, n)])
        self.velocity = rng.normal(0, 0.6, (n, 2))
        self.brightness = rng.uniform(40, 120, n)  # photons per ms at the centre
        self.ys, self.xs = np.mgrid[0:height, 0:width].astype(np.float32)
        self.lock = threading.Lock()

    def set_exposure(self, ms: float) -> None:
        if not (isinstance(ms, (int, float)) and not isinstance(ms, bool) and 0.1 <= ms <= 1000):
            raise ValueError(f"exposure_ms must be a number 0.1..1000, got {ms!r}")
        with self.lock:
            self.exposure_ms = float(ms)

    def snap(self) -> np.ndarray:
        """One frame: (height, width) uint16, 0..4095."""
        with self.lock:
            exposure = self.exposure_ms
        self.beads = (self.beads + self.velocity) % (self.width, self.height)
        signal_ = np.full((self.height, self.width), 2.0 * exposure, np.float32)  # background
        sigma2 = 2 * 3.0**2
        for (bx, by), b in zip(self.beads, self.brightness):
            x0, x1 = int(max(bx - 12, 0)), int(min(bx + 13, self.width))
            y0, y1 = int(max(by - 12, 0)), int(min(by + 13, self.height))
            patch = (self.xs[y0:y1, x0:x1] - bx) ** 2 + (self.ys[y0:y1, x0:x1] - by) ** 2
            signal_[y0:y1, x0:x1] += b * exposure * np.exp(-patch / sigma2)
        counts = self.rng.poisson(signal_) + 100  # shot noise, a dark offset
        self.frame_count += 1
        return np.minimum(counts, FULL_SCALE).astype(np.uint16)


def serve_page(address: str, port: int) -> http.server.ThreadingHTTPServer:
    """Serves detector.html (no secret in it: the stream's link comes in the page's URL)."""
    page = (pathlib.Path(__file__).parent / "detector.html").read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if self.path.split("?")[0] not in ("/", "/detector.html"):
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer((address, port), Handler)
    threading.Thread(target=server.serve_forever, name="detector-page", daemon=True).start()
    return server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="512x512", help="WIDTHxHEIGHT; default 512x512")
    parser.add_argument("--fps", type=float, default=20.0, help="frames per second; default 20")
    parser.add_argument("--port", type=int, default=8080, help="the stream's port (0: any free one)")
    parser.add_argument("--page-port", type=int, default=8081, help="the control page's port (0: any)")
    parser.add_argument("--address", default="127.0.0.1", help="where both listen; default 127.0.0.1")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    page_server = serve_page(args.address, args.page_port)
    page_origin = f"http://{args.address}:{page_server.server_address[1]}"
    camera = Camera(width, height)
    stream = rfbsink.Stream(
        width, height, fps=args.fps, dtype=np.uint16, port=args.port, address=args.address,
        allowed_origins=(page_origin,),
    )

    def state() -> dict:
        return {"kind": "state", "exposure_ms": camera.exposure_ms, "frames": camera.frame_count, "full_scale": FULL_SCALE}

    last = {"frame": None}

    @stream.on_message
    def on_message(channel: str, message: dict, client_id: int) -> None:
        if channel != CHANNEL:
            return
        if message.get("kind") == "set":
            try:
                camera.set_exposure(message.get("exposure_ms"))
            except ValueError as e:
                stream.send(CHANNEL, {"kind": "error", "message": str(e)}, client_id)
                return
            stream.send(CHANNEL, state())  # every page sees the new setting
        elif message.get("kind") == "get":
            stream.send(CHANNEL, state(), client_id)

    @stream.on_input
    def on_input(event: rfbsink.InputEvent) -> None:
        frame = last["frame"]
        if event.kind == "pointer-down" and frame is not None:
            x, y = int(event.x), int(event.y)
            if 0 <= x < frame.shape[1] and 0 <= y < frame.shape[0]:
                stream.send(CHANNEL, {"kind": "pixel", "x": x, "y": y, "value": int(frame[y, x])})

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())

    query = urlencode({"rfb_token": stream.token, "stream": f"{stream.url.split('?')[0]}"})
    print(f"detector: open {page_origin}/?{query}", flush=True)
    print(f"detector: (the plain viewer: {stream.url})", flush=True)
    period = 1.0 / args.fps
    next_at = time.monotonic()
    with stream:
        while not stop.is_set():
            frame = camera.snap()
            last["frame"] = frame
            stream.push(frame)
            next_at += period
            stop.wait(max(0.0, next_at - time.monotonic()))
    page_server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
