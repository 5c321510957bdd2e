#!/usr/bin/python3
"""Benchmark source: frames with the capture time drawn into their pixels, into rfbsink or webrtcbin.

    /usr/bin/python3 tests/bench/source.py --mode rfb --width 1280 --height 720 --fps 30 \
        --encoder "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60" --http-port 0

Every frame carries a barcode at its top: 64 bits (2 rows of 32 cells, each cell at least 16x16
pixels, aligned to 16) = the low 48 bits of CLOCK_REALTIME in microseconds taken right before the
frame is pushed, and a 16-bit check. tests/bench/barcode.mjs reads it back after the viewer
painted the frame. Below the strip a box moves across a gradient, so that the encoder has work.

Modes:
  rfb     appsrc ! <encoder> ! rfbsink port=0 stats-interval=1000: prints the rfbsink-listening and
          rfbsink-stats messages.
  webrtcsink  appsrc ! videoconvert ! whepserversink (gst-plugins-rs' webrtcsink with its own
          encoder and, where rtpgccbwe is installed, its Google Congestion Control): the reference
          on shaped links. POST /whep passes a WHEP offer to it (CORS open; it has none of its
          own); its encoder's bitrate, when it changes, is printed as {"event": "target"}.
  webrtc  appsrc ! <encoder> ! <payloader> ! webrtcbin, with a minimal signalling of its own:
          GET /offer answers the SDP offer once ICE gathering is complete (all candidates in it, no
          trickle); POST /answer takes the answer's SDP.
Both serve GET /clock (this process's CLOCK_REALTIME in microseconds) on --http-port (CORS open),
so the page can check its clock against the one the barcode uses.

Output: one JSON object per line on stdout ({"event": ...}). Stops by itself after --max-seconds,
when stdin closes, or on SIGINT/SIGTERM.
"""

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

MASK48 = (1 << 48) - 1
# webrtcsink mode: its ICE ports, the first and how many (a power of two, aligned: one tc match).
RTP_PORTS = (40000 - 40000 % 16, 16)


def layout(width):
    """Cell size and where the 2x32 cells lie (the same formula as barcode.mjs)."""
    cell = max(16, (width // 34 // 16) * 16) if width >= 34 * 16 else width // 34
    return cell


def check16(t48):
    return ((t48 & 0xFFFF) ^ ((t48 >> 16) & 0xFFFF) ^ ((t48 >> 32) & 0xFFFF) ^ 0xA5A5) & 0xFFFF


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Frames:
    """An I420 picture preallocated once; per frame only the strip and the moving box change."""

    BLACK, WHITE = 16, 235

    def __init__(self, width, height, fps):
        self.w, self.h, self.fps = width, height, fps
        self.cell = layout(width)
        if 34 * self.cell > width or 2 * self.cell + 16 > height:
            raise SystemExit(f"{width}x{height} is too small for the barcode (needs >= 544x48)")
        self.ysize = width * height
        self.csize = (width // 2) * (height // 2)
        self.buf = np.empty(self.ysize + 2 * self.csize, dtype=np.uint8)
        self.y = self.buf[: self.ysize].reshape(height, width)
        self.u = self.buf[self.ysize : self.ysize + self.csize].reshape(height // 2, width // 2)
        self.v = self.buf[self.ysize + self.csize :].reshape(height // 2, width // 2)
        # Background: a gradient (static, cheap to encode after the first keyframe).
        gx = np.linspace(40, 200, width, dtype=np.float32)
        gy = np.linspace(0, 40, height, dtype=np.float32)[:, None]
        self.bg = (gx[None, :] + gy).astype(np.uint8)
        self.y[:] = self.bg
        self.u[:] = 128
        self.v[:] = 128
        self.strip_h = 2 * self.cell
        self.y[: self.strip_h, :] = 128
        self.box = max(32, (height // 8) // 2 * 2)
        self.box_prev = None
        self.n = 0

    def draw(self, t_us):
        t48 = t_us & MASK48
        word = (t48 << 16) | check16(t48)
        bits = np.array([(word >> (63 - i)) & 1 for i in range(64)], dtype=np.uint8)
        vals = np.where(bits == 1, self.WHITE, self.BLACK).astype(np.uint8)
        c = self.cell
        for r in range(2):
            row = np.repeat(vals[32 * r : 32 * (r + 1)], c)
            self.y[r * c : (r + 1) * c, c : c + 32 * c] = row[None, :]
        # The moving box: erase the previous one, draw the next (with some texture and colour).
        b = self.box
        if self.box_prev is not None:
            px, py = self.box_prev
            self.y[py : py + b, px : px + b] = self.bg[py : py + b, px : px + b]
            self.u[py // 2 : (py + b) // 2, px // 2 : (px + b) // 2] = 128
            self.v[py // 2 : (py + b) // 2, px // 2 : (px + b) // 2] = 128
        span_x = self.w - b
        span_y = self.h - self.strip_h - 8 - b
        period = 2.0 * self.fps
        ph = (self.n % period) / period
        x = int(span_x * (ph * 2 if ph < 0.5 else 2 - ph * 2)) // 2 * 2
        y = self.strip_h + 8 + int(span_y * (0.5 + 0.45 * np.sin(self.n / self.fps * 2.1))) // 2 * 2
        yy = np.arange(b, dtype=np.uint16)
        self.y[y : y + b, x : x + b] = ((yy[:, None] * 7 + yy[None, :] * 3 + self.n * 5) % 200 + 30).astype(np.uint8)
        self.u[y // 2 : (y + b) // 2, x // 2 : (x + b) // 2] = 90
        self.v[y // 2 : (y + b) // 2, x // 2 : (x + b) // 2] = 200
        self.box_prev = (x, y)
        self.n += 1
        return self.buf


class Signalling:
    """Offer/answer for webrtcbin over plain HTTP; all in one process, no trickle ICE."""

    def __init__(self):
        self.offer = None
        self.offer_ready = threading.Event()
        self.answer_cb = None
        # webrtcsink mode: whepserversink's endpoint, which POST /whep passes offers to.
        self.whep = None


def make_handler(sig):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code, body, ctype="application/json"):
            data = body.encode() if isinstance(body, str) else body
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Headers", "*")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_OPTIONS(self):
            self._send(204, b"")

        def do_GET(self):
            if self.path.startswith("/clock"):
                self._send(200, json.dumps({"us": time.time_ns() // 1000}))
            elif self.path.startswith("/offer"):
                if not sig.offer_ready.wait(20):
                    self._send(503, json.dumps({"error": "no offer (ICE gathering not complete)"}))
                else:
                    self._send(200, json.dumps({"type": "offer", "sdp": sig.offer}))
            else:
                self._send(404, json.dumps({"error": "not found"}))

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            if self.path.startswith("/whep") and sig.whep:
                req = urllib.request.Request(sig.whep, data=body, method="POST",
                                             headers={"Content-Type": "application/sdp"})
                try:
                    with urllib.request.urlopen(req, timeout=20) as res:
                        self._send(res.status, res.read(), "application/sdp")
                except urllib.error.HTTPError as e:
                    self._send(e.code, e.read(), "text/plain")
            elif self.path.startswith("/answer") and sig.answer_cb:
                sdp = json.loads(body)["sdp"]
                GLib.idle_add(sig.answer_cb, sdp)
                self._send(200, json.dumps({"ok": True}))
            else:
                self._send(404, json.dumps({"error": "not found"}))

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["rfb", "webrtc", "webrtcsink"], default="rfb")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--encoder", default="x264enc tune=zerolatency speed-preset=ultrafast key-int-max=60")
    ap.add_argument("--payloader", default="rtph264pay config-interval=-1 aggregate-mode=zero-latency")
    ap.add_argument("--rtp-caps", default="application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000")
    ap.add_argument("--sink", default="rfbsink port=0 address=127.0.0.1 stats-interval=1000")
    ap.add_argument("--bitrate", type=int, default=2048, help="webrtcsink: its start and max bitrate, kbit/s")
    ap.add_argument("--http-host", default="127.0.0.1")
    ap.add_argument("--http-port", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=120)
    ap.add_argument("--skew", type=float, default=1.0,
                    help="push at fps*skew (e.g. 1.003: the frames' phase against the browser's 60 Hz "
                         "frame clock then sweeps through a whole cycle every few seconds)")
    args = ap.parse_args()

    Gst.init(None)
    frames = Frames(args.width, args.height, args.fps)
    src = (
        "appsrc name=src is-live=true format=time do-timestamp=true max-buffers=2 leaky-type=downstream "
        f"caps=video/x-raw,format=I420,width={args.width},height={args.height},framerate={args.fps}/1"
    )
    if args.mode == "rfb":
        line = f"{src} ! {args.encoder} ! {args.sink}"
    elif args.mode == "webrtcsink":
        # Its own encoder from the start at the bitrate the other modes' x264enc runs at (2048
        # kbit/s), never above it: the same stream until the link says otherwise. FEC off: with
        # its default RED/ULPFEC on GStreamer 1.22, Chromium sent no transport-wide feedback, so
        # rtpgccbwe never moved (measured: it read no feedback in 12 s and showed 0 frames at
        # 700 kbit/s; with do-fec=false it read ~470 packet groups in the same 17 s run).
        line = (
            f"{src} ! videoconvert ! whepserversink name=ws video-caps=video/x-h264 "
            f"start-bitrate={args.bitrate * 1000} max-bitrate={args.bitrate * 1000} do-fec=false"
        )
    else:
        line = (
            f"{src} ! {args.encoder} ! {args.payloader} ! {args.rtp_caps} ! "
            "webrtcbin name=webrtc bundle-policy=max-bundle"
        )
    pipeline = Gst.parse_launch(line)
    appsrc = pipeline.get_by_name("src")
    loop = GLib.MainLoop()
    state = {"rc": 0, "stopping": False}

    sig = Signalling()
    httpd = ThreadingHTTPServer((args.http_host, args.http_port), make_handler(sig))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    out({"event": "http", "url": f"http://{args.http_host}:{httpd.server_address[1]}/"})

    if args.mode == "webrtc":
        gi.require_version("GstWebRTC", "1.0")
        gi.require_version("GstSdp", "1.0")
        from gi.repository import GstSdp, GstWebRTC  # noqa: F401 - makes the boxed types usable

        webrtc = pipeline.get_by_name("webrtc")
        candidates = []

        def on_candidate(_el, mline, cand):
            candidates.append((mline, cand))

        def finish_offer():
            offer = webrtc.get_property("local-description")
            sdp = offer.sdp.as_text()
            if "a=candidate" not in sdp:
                # Put the gathered candidates into their media sections ourselves.
                lines = sdp.replace("\r\n", "\n").rstrip("\n").split("\n")
                outl, m = [], -1
                for ln in lines:
                    if ln.startswith("m="):
                        if m >= 0:
                            outl += [f"a={c}" for (i, c) in candidates if i == m] + ["a=end-of-candidates"]
                        m += 1
                    outl.append(ln)
                outl += [f"a={c}" for (i, c) in candidates if i == m] + ["a=end-of-candidates"]
                sdp = "\r\n".join(outl) + "\r\n"
            sig.offer = sdp
            sig.offer_ready.set()
            out({"event": "offer", "candidates": [c for (_, c) in candidates]})

        def on_gathering(el, _pspec):
            if el.get_property("ice-gathering-state") == 2 and not sig.offer_ready.is_set():  # complete
                GLib.idle_add(finish_offer)

        def on_offer_created(promise, _el, _data):
            promise.wait()
            reply = promise.get_reply()
            offer = reply.get_value("offer")
            webrtc.emit("set-local-description", offer, Gst.Promise.new())

        def on_negotiation_needed(el):
            promise = Gst.Promise.new_with_change_func(on_offer_created, el, None)
            el.emit("create-offer", None, promise)

        def set_answer(sdp_text):
            _res, sdpmsg = GstSdp.SDPMessage.new_from_text(sdp_text)
            answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdpmsg)
            webrtc.emit("set-remote-description", answer, Gst.Promise.new())
            out({"event": "answer"})
            return False

        sig.answer_cb = set_answer
        webrtc.connect("on-negotiation-needed", on_negotiation_needed)
        webrtc.connect("on-ice-candidate", on_candidate)
        webrtc.connect("notify::ice-gathering-state", on_gathering)
        webrtc.connect(
            "notify::ice-connection-state",
            lambda el, _p: out({"event": "ice", "state": int(el.get_property("ice-connection-state"))}),
        )

    if args.mode == "webrtcsink":
        ws = pipeline.get_by_name("ws")
        ws.set_property("stun-server", None)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            whep_port = probe.getsockname()[1]
        ws.get_property("signaller").set_property("host-addr", f"http://127.0.0.1:{whep_port}")
        sig.whep = f"http://127.0.0.1:{whep_port}/whep/endpoint"
        encoders = []

        def on_encoder_setup(_ws, peer, _stream, encoder):
            if peer != "discovery":
                encoders.append(encoder)
            return False  # webrtcsink's own settings

        ws.connect("encoder-setup", on_encoder_setup)

        # Its ICE ports in a known range (the bench shapes what it sends from them). The agents are
        # kept: webrtcbin 1.22 holds its agent by a floating reference that PyGObject's wrapper
        # takes over, and dropping the wrapper would free the agent under webrtcbin.
        agents = []

        def on_consumer_added(_ws, _peer, webrtcbin):
            agent = webrtcbin.get_property("ice-agent")
            agents.append(agent)
            agent.set_property("min-rtp-port", RTP_PORTS[0])
            agent.set_property("max-rtp-port", RTP_PORTS[0] + RTP_PORTS[1] - 1)

        ws.connect("consumer-added", on_consumer_added)
        out({"event": "rtp-ports", "range": [RTP_PORTS[0], 0x10000 - RTP_PORTS[1]]})
        last = {"bitrate": None}

        def report_bitrate():
            # The (last) consumer's encoder.
            if encoders and encoders[-1].find_property("bitrate"):
                kbps = encoders[-1].get_property("bitrate")
                if kbps != last["bitrate"]:
                    last["bitrate"] = kbps
                    out({"event": "target", "at": time.time(), "bitrate": kbps * 1000})
            return not state["stopping"]

        GLib.timeout_add(100, report_bitrate)

    def stop(*_a):
        if not state["stopping"]:
            state["stopping"] = True
            loop.quit()
        return False

    def on_message(_bus, msg):
        t = msg.type
        if t == Gst.MessageType.ELEMENT:
            s = msg.get_structure()
            name = s.get_name() if s else ""
            if name == "rfbsink-listening":
                out({"event": "listening", "url": s.get_value("url"), "port": s.get_value("port"),
                     "webtransport_port": s.get_value("webtransport-port")})
            elif name == "rfbsink-stats":
                out({"event": "stats", "at": time.time(), "text": s.to_string()})
            elif name == "rfbsink-target-bitrate":
                out({"event": "target", "at": time.time(), "bitrate": s.get_value("bitrate")})
        elif t == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            out({"event": "error", "message": f"{err.message} ({dbg})"})
            state["rc"] = 1
            stop()
        elif t == Gst.MessageType.EOS:
            stop()
        return True

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)

    pushed = {"n": 0, "late": 0}

    def pusher():
        period = 1.0 / (args.fps * args.skew)
        nxt = time.monotonic()
        while not state["stopping"]:
            t_us = time.time_ns() // 1000
            data = frames.draw(t_us)
            buf = Gst.Buffer.new_wrapped(data.tobytes())
            if appsrc.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                break
            pushed["n"] += 1
            nxt += period
            delay = nxt - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                pushed["late"] += 1
                if delay < -0.5:  # far behind: start over rather than burst
                    nxt = time.monotonic()

    def report_source():
        out({"event": "source", "pushed": pushed["n"], "late": pushed["late"], "at": time.time()})
        return not state["stopping"]

    for s in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, s, stop)
    GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_HUP | GLib.IO_ERR, lambda *_a: stop())
    GLib.timeout_add(int(args.max_seconds * 1000), stop)
    GLib.timeout_add(1000, report_source)

    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        out({"event": "error", "message": "cannot start the pipeline"})
        return 1
    threading.Thread(target=pusher, daemon=True).start()

    def report_latency():
        q = Gst.Query.new_latency()
        if pipeline.query(q):
            live, lo, hi = q.parse_latency()
            out({"event": "latency", "live": live, "min_ms": lo / 1e6})
        return False

    GLib.timeout_add(2000, report_latency)
    out({"event": "started", "pid": os.getpid()})
    loop.run()
    state["stopping"] = True
    report_source()
    pipeline.set_state(Gst.State.NULL)
    httpd.shutdown()
    out({"event": "stopped", "rc": state["rc"]})
    return state["rc"]


if __name__ == "__main__":
    sys.exit(main())
