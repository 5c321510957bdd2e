#!/usr/bin/env python3
"""The Python benchmark's producer: numpy frames with their push time drawn in, into rfbsink.Stream
(the Python package) or into aiortc (a VideoStreamTrack, the usual hand-written approach).

    target/pyenv/bin/python tests/bench/pyproducer.py --mode rfb --size 2048 --dtype uint16 \
        --fps 30 --allowed-origin http://127.0.0.1:PORT

Each frame carries the barcode of tests/bench/barcode.mjs at its top: the low 48 bits of
CLOCK_REALTIME in microseconds taken right before push() (rfb) or when aiortc's encoder asked for
the frame (aiortc), so that the page reads push -> painted latency back from its pixels.
- uint8: (N, N, 3) RGB; barcode cells 235 / 16.
- uint16: (N, N) 12-bit counts (0..4095) with barcode cells 0 / 4095 (the viewer's automatic
  window then maps them to black and white). aiortc cannot carry 16 bits: the frame is scaled to
  8 bits and made RGB first, as one would.

Modes:
  rfb     rfbsink.Stream(N, N, fps, dtype): frames pushed at --fps from a thread; prints
          {"event":"listening","url","port","token"}.
  aiortc  an RTCPeerConnection offering one video track (aiortc's own encoder, VP8 or H.264 as the
          page answers); GET /offer, POST /answer, GET /clock on --http-port, like source.py.
Prints {"event":"done","pushed":..,"push_ms":{"p50":..,"p99":..}} when stdin closes or on
SIGTERM/SIGINT.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

MASK48 = (1 << 48) - 1


def emit(**event):
    print(json.dumps(event), flush=True)


def cell_size(width):
    """The same formula as barcode.mjs's cellSize()."""
    return max(16, (width // 34 // 16) * 16) if width >= 34 * 16 else width // 34


def check16(t48):
    return ((t48 & 0xFFFF) ^ ((t48 >> 16) & 0xFFFF) ^ ((t48 >> 32) & 0xFFFF) ^ 0xA5A5) & 0xFFFF


class Frames:
    """Two base pictures (so that consecutive frames differ) and the barcode drawn into them."""

    def __init__(self, size, dtype):
        self.size, self.dtype = size, dtype
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
        bases = []
        for phase in (0.0, 0.5):
            v = 0.5 + 0.4 * np.sin(2 * np.pi * (xs * 3 + ys * 2 + phase))
            if dtype == "uint16":
                bases.append((v * 4000).astype(np.uint16))
            else:
                rgb = np.stack([v, np.roll(v, size // 3, axis=1), 1 - v], axis=-1)
                bases.append((rgb * 200 + 20).astype(np.uint8))
        self.bases = bases
        self.n = 0
        self.cell = cell_size(size)
        self.on, self.off = (4095, 0) if dtype == "uint16" else (235, 16)

    def next(self):
        """The next frame (a base picture with the barcode of now) and its t48."""
        frame = self.bases[self.n % 2]
        self.n += 1
        t48 = (time.time_ns() // 1000) & MASK48
        words = ((t48 >> 16) & 0xFFFFFFFF, ((t48 & 0xFFFF) << 16) | check16(t48))
        c = self.cell
        for row, word in enumerate(words):
            for i in range(32):
                bit = (word >> (31 - i)) & 1
                frame[row * c:(row + 1) * c, c * (1 + i):c * (2 + i)] = self.on if bit else self.off
        return frame, t48


def quantiles(xs):
    if not xs:
        return {"p50": None, "p99": None}
    s = sorted(xs)
    return {"p50": s[len(s) // 2], "p99": s[min(len(s) - 1, int(len(s) * 0.99))]}


def run_rfb(args, stop):
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
    import rfbsink

    frames = Frames(args.size, args.dtype)
    stream = rfbsink.Stream(
        args.size, args.size, fps=args.fps, dtype=np.dtype(args.dtype),
        allowed_origins=(args.allowed_origin,) if args.allowed_origin else (),
        max_latency_ms=args.max_latency,
    )
    emit(event="listening", url=stream.url, port=stream.port, token=stream.token, codec=stream.codec)
    push_ms = []
    # 0.3 % fast, as source.py: the pushes' phase against the browser's 60 Hz frame clock sweeps a
    # whole cycle every few seconds instead of sitting at one lucky or unlucky phase.
    period = 1.0 / (args.fps * 1.003)
    next_at = time.monotonic()
    with stream:
        while not stop.is_set():
            frame, _ = frames.next()
            t0 = time.perf_counter()
            stream.push(frame)
            push_ms.append((time.perf_counter() - t0) * 1000)
            next_at += period
            delay = next_at - time.monotonic()
            if delay < 0:
                next_at = time.monotonic()  # behind: do not burst to catch up
            stop.wait(max(0.0, delay))
        stats = stream.stats
    emit(event="done", pushed=len(push_ms), push_ms=quantiles(push_ms), frames_rendered=stats.get("frames-rendered"))


def run_aiortc(args, stop):
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)  # aiortc's errors, on stderr
    from aiortc import RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
    from av import VideoFrame

    frames = Frames(args.size, args.dtype)
    made_ms = []

    class Track(VideoStreamTrack):
        """The usual approach: recv() makes the frame when the encoder asks, paced by aiortc."""

        async def recv(self):
            pts, time_base = await self.next_timestamp()
            t0 = time.perf_counter()
            frame, _ = frames.next()
            if frame.dtype == np.uint16:
                gray = (frame >> 4).astype(np.uint8)  # 12 -> 8 bits
                frame = np.repeat(gray[:, :, None], 3, axis=2)
            video = VideoFrame.from_ndarray(frame, format="rgb24")
            made_ms.append((time.perf_counter() - t0) * 1000)
            video.pts, video.time_base = pts, time_base
            return video

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    answered = threading.Event()

    async def setup():
        # aiortc's objects belong to the loop they are made on.
        pc = RTCPeerConnection()
        pc.addTrack(Track())
        return pc

    pc = asyncio.run_coroutine_threadsafe(setup(), loop).result(10)

    async def offer():
        await pc.setLocalDescription(await pc.createOffer())  # gathers all candidates
        return {"type": "offer", "sdp": pc.localDescription.sdp}

    async def answer(sdp):
        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    class Handler(BaseHTTPRequestHandler):
        def reply(self, obj, status=200):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802
            if self.path.startswith("/clock"):
                self.reply({"us": time.time_ns() // 1000})
            elif self.path.startswith("/offer"):
                self.reply(asyncio.run_coroutine_threadsafe(offer(), loop).result(30))
            else:
                self.reply({"error": "not found"}, 404)

        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            asyncio.run_coroutine_threadsafe(answer(body["sdp"]), loop).result(30)
            answered.set()
            self.reply({"ok": True})

        def do_OPTIONS(self):  # noqa: N802
            self.send_response(204)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Headers", "*")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = ThreadingHTTPServer((args.address, args.http_port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    emit(event="http", url=f"http://{args.address}:{server.server_address[1]}/")
    stop.wait()
    asyncio.run_coroutine_threadsafe(pc.close(), loop).result(10)
    emit(event="done", pushed=len(made_ms), push_ms=quantiles(made_ms))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=["rfb", "aiortc"], required=True)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--dtype", choices=["uint8", "uint16"], default="uint8")
    p.add_argument("--fps", type=float, default=30)
    p.add_argument("--allowed-origin", default="")
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--max-latency", type=int, default=None, help="rfb: Stream(max_latency_ms=)")
    p.add_argument("--http-port", type=int, default=0)
    args = p.parse_args()

    stop = threading.Event()
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.set())
    # Also stop when the harness goes (its end of stdin closes).
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    (run_rfb if args.mode == "rfb" else run_aiortc)(args, stop)


if __name__ == "__main__":
    main()
