"""rfbsink.Stream: numpy arrays in, a live, interactive viewer in the browser out."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import threading
import warnings
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from ._frames import FrameError, Pixels, Window, to_pixels
from ._gst import GLib, Gst, GstVideo

CODECS = ("auto", "h264", "jpeg", "lossless")

# How many input events and messages may wait for the callbacks; beyond, the oldest are dropped
# (counted in stats["python"]["events-dropped"]) so that a slow callback cannot hold memory.
MAX_PENDING_EVENTS = 1024

# tune=zerolatency: no lookahead, no B-frames, every frame leaves the encoder at once (a sparse
# stream has no next frame to wait for); pass=qual: constant quality whatever the frame rate
# (x264's CRF), its bitrate the most it makes (the VBV's rate), which rate control lowers for a
# slow link and gives back when the link frees.
_X264 = (
    "x264enc name=enc tune=zerolatency speed-preset=ultrafast pass=qual quantizer={q} bitrate={kbps}"
    " key-int-max=120"
)
_OPENH264 = "openh264enc name=enc complexity=low rate-control=quality"
# A rendition of the ladder: a bitrate, not a quality (it is there to fit a slower link).
_X264_RUNG = "x264enc name=enc{n} tune=zerolatency speed-preset=ultrafast bitrate={kbps} key-int-max=120"
# openh264enc under rate control runs at a bitrate rfbsink sets (between its min-bitrate and
# this), not at a quality.
_OPENH264_RATE = "openh264enc name=enc complexity=low rate-control=bitrate bitrate={bps}"
RATE_CONTROLS = ("auto", "off", "slowest", "control")
_OPENH264_RUNG = "openh264enc name=enc{n} complexity=low rate-control=bitrate bitrate={bps}"
# rfbsink's rendition pads: rendition_1 to rendition_8.
MAX_RUNGS = 8


class RfbsinkError(RuntimeError):
    """rfbsink cannot do what was asked: no element, the port is taken, the pipeline failed."""


@dataclass(frozen=True)
class InputEvent:
    """One input event from a viewer, in array coordinates (column x, row y; may be fractional).

    kind: "pointer-move", "pointer-down", "pointer-up", "wheel", "key-down", "key-up",
    "touch-down", "touch-move", "touch-up" or "resize" (the viewer's size in device pixels, in
    `width` and `height`).
    """

    kind: str
    x: float = 0.0
    y: float = 0.0
    button: int = 0  # 1 left, 2 middle, 3 right
    dx: float = 0.0  # wheel
    dy: float = 0.0
    key: str = ""  # GStreamer's key name ("a", "Return", "Left")
    width: int = 0  # resize
    height: int = 0
    client_id: int = 0  # resize only: which viewer (navigation events do not say)


@dataclass
class _Counters:
    pushed: int = 0
    unchanged: int = 0
    repeated_for_keyframe: int = 0
    events_dropped: int = 0
    audio_pushed: int = 0
    callback_errors: int = 0
    last_error: Optional[str] = None


def _writable_maps() -> bool:
    """Whether a mapped buffer is a writable memoryview (gst-python's overrides, Debian's
    python3-gst-1.0): then a picture is copied once, straight into GStreamer's memory."""
    if not Gst.is_initialized():
        Gst.init(None)
    buffer = Gst.Buffer.new_allocate(None, 4, None)
    ok, info = buffer.map(Gst.MapFlags.WRITE)
    if not ok:
        return False
    try:
        return isinstance(info.data, memoryview) and not info.data.readonly
    finally:
        buffer.unmap(info)


_WRITABLE_MAPS = _writable_maps()


def _find(*names: str) -> Optional[str]:
    return next((n for n in names if Gst.ElementFactory.find(n) is not None), None)


def _init_gstreamer() -> None:
    if not Gst.is_initialized():
        Gst.init(None)
    if Gst.ElementFactory.find("rfbsink") is None:
        # A plugin built in a checkout: RFBSINK_PLUGIN_PATH or GST_PLUGIN_PATH points at it.
        path = os.environ.get("RFBSINK_PLUGIN_PATH")
        if path:
            Gst.Registry.get().scan_path(path)
    if Gst.ElementFactory.find("rfbsink") is None:
        raise RfbsinkError(
            "GStreamer has no rfbsink element: build it (make build) and set "
            "GST_PLUGIN_PATH=<checkout>/target/release, or install it with meson"
        )


def _value(v: Any) -> Any:
    """A GValue's content as plain Python (structures as dicts, arrays as lists)."""
    if isinstance(v, Gst.Structure):
        return _structure(v)
    if hasattr(v, "n_values") and hasattr(v, "get_nth"):  # GValueArray (GstValueArray)
        return [_value(v.get_nth(i)) for i in range(v.n_values)]
    if isinstance(getattr(v, "array", None), list):  # Gst.ValueArray/ValueList (gst-python)
        return [_value(x) for x in v.array]
    if isinstance(v, (list, tuple)):
        return [_value(x) for x in v]
    return v


def _structure(s: Gst.Structure) -> Dict[str, Any]:
    with warnings.catch_warnings():
        # PyGObject reads a GstValueArray as the deprecated GValueArray (without gst-python).
        warnings.simplefilter("ignore", DeprecationWarning)
        out = {}
        for i in range(s.n_fields()):
            name = s.nth_field_name(i)
            try:
                out[name] = _value(s.get_value(name))
            except TypeError:  # a GstValueArray or GstValueList, which get_value cannot read
                ok, array = s.get_array(name)
                if not ok:
                    ok, array = s.get_list(name)
                out[name] = _value(array) if ok else None
        return out


def _shutdown(pipeline: Gst.Pipeline, events: "queue.Queue[Any]") -> None:
    # Also runs at exit for a Stream that was never closed (weakref.finalize).
    pipeline.set_state(Gst.State.NULL)
    events.put(None)


class Stream:
    """A live picture that browsers can watch and interact with.

    >>> with rfbsink.Stream(512, 512) as stream:
    ...     print(stream.url)            # open it in a browser
    ...     stream.push(array)           # whenever the picture changes

    `push()` copies the array once (the caller may reuse it at once), never blocks on a viewer,
    and sends nothing when the picture did not change. Each frame carries the real time it was
    pushed.

    codec:
      - "auto": "lossless" for 16-bit and float pictures, else "h264" (x264enc or openh264enc),
        else "jpeg". Decided by `dtype` when given, else by the first push.
      - "lossless": the raw path: every pixel exact (8-bit gray/RGB/RGBA, 16-bit gray with a
        window the viewer can change).
      - "h264", "jpeg": encoded 8-bit pictures (16-bit and float are mapped through `window`).

    Callbacks (on_input, on_message) run on one thread of the Stream's, one at a time; an
    exception in one is counted in `stats` and does not stop the stream.
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: Optional[float] = None,
        codec: str = "auto",
        *,
        dtype: Union[None, str, type, np.dtype] = None,
        port: int = 0,
        address: str = "127.0.0.1",
        token: Optional[str] = None,
        view_only: bool = False,
        webtransport: bool = True,
        quality: int = 85,
        window: Optional[Window] = None,
        allowed_origins: Optional[Tuple[str, ...]] = None,
        max_clients: int = 0,
        max_latency_ms: Optional[int] = None,
        ladder: Tuple[Tuple[int, int, int], ...] = (),
        rate_control: str = "auto",
        bitrate: int = 4000,
        relay: Optional[Tuple[str, str]] = None,
        relay_token: Optional[str] = None,
    ) -> None:
        """Builds the pipeline and starts serving at once (see `url`).

        - width, height: the picture's size in pixels (a push of another size changes it).
        - fps: the rate you expect to push at, for the encoder's rate control (default 30);
          frames still go exactly when pushed.
        - codec: "auto", "h264", "jpeg" or "lossless" (see the class).
        - dtype: with codec "auto", the arrays' dtype, so that the right pipeline starts before
          the first push (else it may be rebuilt, on the same port and token, at the first push).
        - port: 0 picks a free one; address: where to listen (loopback by default).
        - token: the viewer link's secret (default: a new random one).
        - quality: 1..100 for h264/jpeg (higher: better, bigger).
        - window: (low, high): the values shown black and white for 16-bit and float gray;
          default: each picture's own range (on the lossless path the viewer applies it, and
          each viewer may change its own).
        - max_latency_ms: a viewer further behind than this (push to painted, as rfbsink
          measures it) skips ahead to the newest picture instead of queueing; default rfbsink's
          (400 ms).
        - rate_control: who the encoder's rate follows, for viewers behind slow links and SSH
          tunnels. "auto" (the default): the viewers on the control link (the stream's `url`);
          h264 keeps `quality` up to `bitrate` on a link that carries it and is held under a
          slower one; jpeg's quality is lowered for one; lossless is left as it is. "control":
          the same, h264 only; "slowest": every viewer counts, h264 only; "off": the encoder
          keeps `quality` (up to `bitrate` for h264) and a slow viewer skips frames instead.
        - bitrate: kbit/s, the most the h264 encoder makes (default 4000; openh264enc, used
          when x264enc is missing, honours it under rate control only).
        - ladder: extra renditions for viewers on slower links, ((width, height, kbit/s), ...),
          e.g. ((640, 360, 600),): the picture is also encoded at that size and bitrate, and
          each viewer gets the best one its link carries (codec "h264" only).
        - relay: (url, broadcast): also publish the stream once to a Media over QUIC relay
          (moq-relay; "http://host:4443/anon" for one with a generated certificate, https:// for
          a real one), for audiences past one machine: relay viewers watch broadcast `broadcast`
          there (the viewer with ?relay=1, or moq's players); codec "h264" only.
          relay_token: the relay's JWT for publishing, if it wants one.
        - allowed_origins: other origins whose pages may show the viewer, and whose host names
          the stream answers to: a Jupyter reached by a name rather than localhost
          ("https://hub.example.org", also through its proxy), or a Jupyter page on another port
          reaching the stream directly ("http://127.0.0.1:8888"). Default: the comma-separated
          RFBSINK_ALLOWED_ORIGINS environment variable, else none.
        """
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= 16384:
                raise ValueError(f"{name} must be an integer 1..16384, got {value!r}")
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
        if fps is not None and not (isinstance(fps, (int, float)) and 0 < fps <= 1000):
            raise ValueError(f"fps must be a number in (0, 1000], got {fps!r}")
        if max_latency_ms is not None and not (isinstance(max_latency_ms, int) and 0 <= max_latency_ms <= 60000):
            raise ValueError(f"max_latency_ms must be an integer 0..60000, got {max_latency_ms!r}")
        if not (isinstance(quality, int) and 1 <= quality <= 100):
            raise ValueError(f"quality must be an integer 1..100, got {quality!r}")
        ladder = tuple(tuple(r) for r in ladder)
        if len(ladder) > MAX_RUNGS:
            raise ValueError(f"ladder has {len(ladder)} renditions: at most {MAX_RUNGS}")
        for rung in ladder:
            ok = len(rung) == 3 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in rung)
            if not ok or not (2 <= rung[0] <= 16384 and 2 <= rung[1] <= 16384 and 1 <= rung[2] <= 1_000_000):
                raise ValueError(f"ladder rendition must be (width, height, kbit/s), got {rung!r}")
            if rung[0] % 2 or rung[1] % 2:
                raise ValueError(f"ladder rendition {rung!r}: width and height must be even (4:2:0 video)")
        if rate_control not in RATE_CONTROLS:
            raise ValueError(f"rate_control must be one of {', '.join(RATE_CONTROLS)}, got {rate_control!r}")
        if not (isinstance(bitrate, int) and not isinstance(bitrate, bool) and 1 <= bitrate <= 1_000_000):
            raise ValueError(f"bitrate must be kbit/s, an integer 1..1000000, got {bitrate!r}")
        if rate_control in ("slowest", "control") and codec not in ("h264", "auto"):
            raise ValueError(f"rate_control {rate_control!r} needs codec 'h264' (it drives a bitrate), got {codec!r}")
        if relay is not None:
            ok = (
                isinstance(relay, (tuple, list))
                and len(relay) == 2
                and all(isinstance(v, str) and v for v in relay)
                and re.match(r"https?://[^/\s]+", relay[0])
            )
            if not ok:
                raise ValueError(f"relay must be (url, broadcast), url http:// or https://, got {relay!r}")
            relay = (relay[0], relay[1])
            if codec not in ("h264", "auto"):
                raise ValueError(f"relay needs codec 'h264' (a relay's media format carries video codecs), got {codec!r}")
        if ladder and codec not in ("h264", "auto"):
            raise ValueError(f"ladder needs codec 'h264' (renditions are encoded at a bitrate), got {codec!r}")
        if window is not None:
            window = (float(window[0]), float(window[1]))
            if not window[1] > window[0]:
                raise ValueError(f"window must be (low, high) with high > low, got {window!r}")
        if allowed_origins is None:
            env = os.environ.get("RFBSINK_ALLOWED_ORIGINS", "")
            allowed_origins = tuple(o.strip() for o in env.split(",") if o.strip())
        elif isinstance(allowed_origins, str):
            allowed_origins = (allowed_origins,)
        if token is not None and not (isinstance(token, str) and re.fullmatch(r"[A-Za-z0-9._~-]{8,256}", token)):
            raise ValueError("token must be 8-256 of A-Z a-z 0-9 - . _ ~")
        for origin in allowed_origins:
            if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s,]+", origin):
                raise ValueError(f"allowed origin {origin!r} is not scheme://host[:port]")
        _init_gstreamer()

        self._width, self._height = int(width), int(height)
        self._fps = fps
        self._quality = quality
        self._window = window
        self._ladder = ladder
        self._rate_control = rate_control
        self._bitrate = bitrate
        self._settings = dict(
            port=port,
            address=address,
            token=token,
            view_only=view_only,
            webtransport=webtransport,
            allowed_origins=",".join(allowed_origins),
            max_clients=max_clients,
            max_latency_ms=max_latency_ms,
            relay=relay,
            relay_token=relay_token,
        )
        self._lock = threading.RLock()
        # The sound's branch once push_audio() made it: ((format, rate, channels), appsrc).
        self._audio: Optional[Tuple[Tuple[str, int, int], Gst.Element]] = None
        self._audio_next: Optional[int] = None
        self._input_callbacks: List[Callable[[InputEvent], Any]] = []
        self._message_callbacks: List[Callable[[str, Any, int], Any]] = []
        self._counters = _Counters()
        # The last picture sent: its shape and its buffer (or, without writable maps, its bytes).
        self._last: Optional[Tuple[Tuple[str, int, int], Gst.Buffer, Optional[bytes]]] = None
        self._pool: Optional[Tuple[Tuple[str, int, int], Gst.BufferPool]] = None
        self._closed = False
        self._error: Optional[str] = None
        self._codec_fixed = codec != "auto" or dtype is not None
        needs_h264 = bool(ladder) or rate_control in ("slowest", "control") or relay is not None
        self._codec = self._resolve("h264" if needs_h264 else codec, None if dtype is None else np.dtype(dtype))
        self._codec_fixed = self._codec_fixed or needs_h264
        self._events: "queue.Queue[Any]" = queue.Queue()
        self._dispatcher = threading.Thread(target=self._dispatch, name="rfbsink-callbacks", daemon=True)
        self._dispatcher.start()
        try:
            self._start()
        except BaseException:
            self._events.put(None)  # the callback thread ends with the failed stream
            raise

    # --- The pipeline ----------------------------------------------------------------------

    @staticmethod
    def _resolve(codec: str, dtype: Optional[np.dtype]) -> str:
        if codec != "auto":
            if codec == "h264" and _find("x264enc", "openh264enc") is None:
                raise RfbsinkError("codec 'h264' needs x264enc (gstreamer1.0-plugins-ugly) or openh264enc")
            if codec == "jpeg" and _find("jpegenc") is None:
                raise RfbsinkError("codec 'jpeg' needs jpegenc (gstreamer1.0-plugins-good)")
            return codec
        if dtype is not None and (dtype.kind == "f" or (dtype.kind in "iu" and dtype.itemsize >= 2)):
            return "lossless"
        if _find("x264enc", "openh264enc"):
            return "h264"
        return "jpeg" if _find("jpegenc") else "lossless"

    def _encoder(self) -> str:
        if self._codec == "lossless":
            return ""
        if self._codec == "jpeg":
            return f"videoconvert ! video/x-raw,format=I420 ! jpegenc name=enc quality={self._quality} ! "
        if _find("x264enc"):
            # quantizer 51 (worst) .. 0 (lossless); quality 85 -> 20, x264's usual good value.
            q = round(51 - self._quality * 31 / 100)
            enc = _X264.format(q=max(0, min(51, q)), kbps=self._bitrate)
        elif self._rate_control != "off":
            enc = _OPENH264_RATE.format(bps=self._bitrate * 1000)
        else:
            enc = _OPENH264
        return f"videoconvert ! video/x-raw,format=I420 ! {enc} ! "

    def _rungs(self) -> str:
        """The ladder's branches, each from the tee `t` to its rendition pad."""
        out = ""
        for n, (width, height, kbps) in enumerate(self._ladder, 1):
            if _find("x264enc"):
                enc = _X264_RUNG.format(n=n, kbps=kbps)
            else:
                enc = _OPENH264_RUNG.format(n=n, bps=kbps * 1000)
            out += (
                f" t. ! queue max-size-buffers=1 max-size-bytes=0 max-size-time=0 leaky=downstream"
                f" ! videoscale ! video/x-raw,width={width},height={height},pixel-aspect-ratio=1/1"
                f" ! {enc} ! sink.rendition_{n}"
            )
        return out

    def _caps(self, frame_format: str, width: int, height: int) -> Gst.Caps:
        rate = max(1, int(round(self._fps or 30)))
        return Gst.Caps.from_string(
            f"video/x-raw,format={frame_format},width={width},height={height},framerate={rate}/1"
        )

    def _start(self) -> None:
        s = self._settings
        first_format = "GRAY16_LE" if self._codec == "lossless" else "RGB"
        caps = self._caps(first_format, self._width, self._height).to_string()
        line = (
            # leaky-type=downstream, max-buffers=2: push() never blocks; when the encoder is
            # behind, the oldest waiting picture goes (latest wins).
            f"appsrc name=src is-live=true format=time do-timestamp=false block=false "
            f"leaky-type=downstream max-buffers=2 max-bytes=0 max-time=0 caps=\"{caps}\" ! "
            f"{self._encoder()}"
            # sync=false: a frame goes out the moment it is encoded; its timestamp stays the
            # real time it was pushed.
            f"rfbsink name=sink sync=false port={int(s['port'])} stats-interval=0"
        )
        if self._ladder:
            # The converted picture goes to every encoder: the full one, and each rendition's.
            head, main_enc = line.split("videoconvert ! video/x-raw,format=I420 ! ", 1)
            line = (
                f"{head}videoconvert ! video/x-raw,format=I420 ! tee name=t"
                f" t. ! queue max-size-buffers=1 max-size-bytes=0 max-size-time=0 leaky=downstream ! {main_enc}"
                f"{self._rungs()}"
            )
        try:
            pipeline = Gst.parse_launch(line)
        except GLib.Error as e:
            raise RfbsinkError(f"cannot build the pipeline ({line}): {e.message}") from None
        sink = pipeline.get_by_name("sink")
        sink.set_property("address", s["address"])
        if s["token"] is not None:
            sink.set_property("token", s["token"])
        if s.get("view_token") is not None:
            sink.set_property("view-token", s["view_token"])
        sink.set_property("view-only", s["view_only"])
        sink.set_property("webtransport", s["webtransport"])
        # Always set: rfbsink's own default (auto) would drive the encoder that "off" leaves
        # as it is.
        Gst.util_set_object_arg(sink, "rate-control", self._rate_control)
        sink.set_property("max-clients", s["max_clients"])
        if s["max_latency_ms"] is not None:
            sink.set_property("max-latency", s["max_latency_ms"])
        if s["allowed_origins"]:
            sink.set_property("allowed-origins", s["allowed_origins"])
        if s.get("relay") is not None:
            sink.set_property("relay-url", s["relay"][0])
            sink.set_property("relay-broadcast", s["relay"][1])
            if s.get("relay_token"):
                sink.set_property("relay-token", s["relay_token"])
        appsrc = pipeline.get_by_name("src")

        # Browser input arrives upstream as navigation events; they end at appsrc.
        appsrc.get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_UPSTREAM, self._on_upstream_event)
        for name in ["enc"] + [f"enc{n}" for n in range(1, len(self._ladder) + 1)]:
            encoder = pipeline.get_by_name(name)
            if encoder is not None:
                # A viewer that lost its decoder state (or moves to this rendition) gets a
                # keyframe: the encoder makes the NEXT frame one, and a sparse stream may have no
                # next frame for a long time.
                encoder.get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_UPSTREAM, self._on_encoder_event)
        sink.connect("client-message", self._on_client_message)
        bus = pipeline.get_bus()
        bus.set_sync_handler(self._on_bus_message)

        self._pipeline, self._appsrc, self._sink = pipeline, appsrc, sink
        self._caps_now: Optional[Tuple[str, int, int]] = None
        self._gray_window = "auto"
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            reason = self._error or "see GST_DEBUG=3"
            pipeline.set_state(Gst.State.NULL)
            raise RfbsinkError(f"cannot start rfbsink on {s['address']}:{s['port']}: {reason}")
        self._finalizer = weakref.finalize(self, _shutdown, pipeline, self._events)
        # The next start (a rebuild) keeps this port and these links: open viewers reconnect.
        s["port"] = sink.get_property("bound-port")
        s["token"] = self._token_of(sink.get_property("url"))
        s["view_token"] = self._token_of(sink.get_property("view-url"))

    @staticmethod
    def _token_of(url: str) -> Optional[str]:
        from urllib.parse import parse_qs, urlparse

        return parse_qs(urlparse(url).query).get("rfb_token", [None])[0]

    def _rebuild(self, codec: str) -> None:
        """A new pipeline with `codec`, on the same port and token (nothing was shown yet)."""
        self._finalizer.detach()
        self._pipeline.set_state(Gst.State.NULL)
        self._codec = codec
        self._audio = None
        self._start()

    # --- Sound -----------------------------------------------------------------------------

    def push_audio(self, samples: Any, rate: int) -> None:
        """Sends sound: `samples` is a numpy array of shape (n,) (mono) or (n, channels) (1 or 2
        channels), float in -1..1 or int16, at `rate` samples a second (8000 to 192000).

        The viewers hear it in sync with the pictures (both carry the real time they were
        pushed; the viewer holds each picture until its sound is heard). Push in about real
        time, in chunks of 10 to 100 ms: chunks that follow on are played back to back, a chunk
        after a pause starts a new run at the time it is pushed, and sound pushed far ahead of
        real time is cut by the viewer's jitter buffer. Never blocks on a viewer. Browsers play
        sound after a click on the page: the viewer says so.
        """
        arr = samples if isinstance(samples, np.ndarray) else np.asarray(samples)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] not in (1, 2):
            raise ValueError(f"audio samples must have shape (n,) or (n, 1 or 2), got {samples.shape if hasattr(samples, 'shape') else arr.shape}")
        if not isinstance(rate, (int, np.integer)) or not 8000 <= rate <= 192000:
            raise ValueError(f"rate must be an integer from 8000 to 192000 samples a second, got {rate!r}")
        if arr.dtype == np.int16:
            data = np.ascontiguousarray(arr).astype("<i2", copy=False)
            fmt = "S16LE"
        elif np.issubdtype(arr.dtype, np.floating):
            data = np.ascontiguousarray(np.clip(arr, -1.0, 1.0), dtype="<f4")
            fmt = "F32LE"
        else:
            raise ValueError(f"audio samples must be float (-1..1) or int16, got {arr.dtype}")
        if len(data) == 0:
            return
        with self._lock:
            self._check_open()
            key = (fmt, int(rate), data.shape[1])
            if self._audio is None or self._audio[0] != key:
                self._audio_branch(key)
            appsrc = self._audio[1]
            now = self._running_time()
            duration = len(data) * Gst.SECOND // int(rate)
            # Back to back with the last chunk, unless that one ended well before now (a pause).
            pts = self._audio_next if self._audio_next is not None and self._audio_next >= now - 50 * Gst.MSECOND else now
            buf = Gst.Buffer.new_wrapped(data.tobytes())
            buf.pts = pts
            buf.duration = duration
            self._audio_next = pts + duration
            if appsrc.emit("push-buffer", buf) != Gst.FlowReturn.OK:
                self._check_open()
            self._counters.audio_pushed += 1

    def _audio_branch(self, key: Tuple[str, int, int]) -> None:
        """appsrc -> Opus -> rfbsink's audio pad, added to the running pipeline (or its caps
        changed when it exists)."""
        fmt, rate, channels = key
        caps = Gst.Caps.from_string(f"audio/x-raw,format={fmt},layout=interleaved,rate={rate},channels={channels}")
        if self._audio is not None:
            self._audio[1].set_property("caps", caps)
            self._audio = (key, self._audio[1])
            return
        try:
            branch = Gst.parse_bin_from_description(
                # leaky: push_audio() never blocks; the oldest waiting chunk goes first.
                "appsrc name=asrc is-live=true format=time do-timestamp=false block=false "
                "leaky-type=downstream max-buffers=16 max-bytes=0 max-time=0 "
                "! audioconvert ! audioresample ! opusenc frame-size=10 name=aenc",
                True,
            )
        except GLib.Error as e:
            raise RfbsinkError(f"cannot make the sound's pipeline (opusenc: gstreamer1.0-plugins-base): {e.message}") from None
        appsrc = branch.get_by_name("asrc")
        appsrc.set_property("caps", caps)
        self._pipeline.add(branch)
        pad = self._sink.request_pad_simple("audio")
        if pad is None or branch.get_static_pad("src").link(pad) != Gst.PadLinkReturn.OK:
            self._pipeline.remove(branch)
            raise RfbsinkError("cannot link the sound to rfbsink's audio pad")
        branch.sync_state_with_parent()
        self._audio = (key, appsrc)
        self._audio_next = None

    # --- Pushing ---------------------------------------------------------------------------

    def push(self, array: Any, *, force: bool = False) -> bool:
        """Sends `array` as the new picture; returns whether a frame went out.

        Thread-safe; never blocks on a viewer (only on copying the array). Nothing is sent when
        the picture equals the last one, unless `force`. A picture of another size than the
        last changes the stream's size. Raises ValueError for an array that cannot be a
        picture, RfbsinkError when the stream failed or is closed.
        """
        with self._lock:
            self._check_open()
            arr = array if isinstance(array, np.ndarray) else np.asarray(array)
            if not self._codec_fixed:
                self._codec_fixed = True
                codec = self._resolve("auto", arr.dtype)
                if codec != self._codec:
                    self._rebuild(codec)
            deep = self._codec == "lossless"
            if not deep and arr.ndim >= 2 and (arr.shape[0] % 2 or arr.shape[1] % 2):
                # 4:2:0 video needs even sides: repeat the last row/column (coordinates stay).
                pad = [(0, arr.shape[0] % 2), (0, arr.shape[1] % 2)] + [(0, 0)] * (arr.ndim - 2)
                arr = np.pad(arr, pad, mode="edge")
            try:
                pixels = to_pixels(arr, deep=deep, window=self._window)
            except FrameError as e:
                raise ValueError(str(e)) from None
            buffer, data = self._fill(pixels)
            if not force and buffer is None:
                self._counters.unchanged += 1
                return False
            if buffer is None:  # forced, unchanged: the last picture again
                buffer, data = self._last[1].copy(), self._last[2]
            self._set_gray_window(pixels)
            self._send((pixels.format, pixels.width, pixels.height), buffer, data)
            self._counters.pushed += 1
            return True

    async def apush(self, array: Any, *, force: bool = False) -> bool:
        """push() for asyncio: the copy (and any conversion) runs in a worker thread."""
        return await asyncio.get_running_loop().run_in_executor(None, lambda: self.push(array, force=force))

    def _fill(self, pixels: Pixels) -> Tuple[Optional[Gst.Buffer], Optional[bytes]]:
        """The picture in a new GStreamer buffer, copied once; (None, None) when it equals the
        last one sent."""
        shape = (pixels.format, pixels.width, pixels.height)
        last = self._last if self._last is not None and self._last[0] == shape else None
        if not _WRITABLE_MAPS:
            # Without gst-python's overrides a mapped buffer is a read-only copy: go through bytes.
            data = pixels.to_bytes()
            if last is not None and last[2] == data:
                return None, None
            return Gst.Buffer.new_wrapped(data), data
        if last is not None:
            ok, info = last[1].map(Gst.MapFlags.READ)
            if ok:
                try:
                    if np.array_equal(pixels.rows_of(info.data), pixels.array):
                        return None, None
                finally:
                    last[1].unmap(info)
        buffer = self._acquire(shape, pixels.size)
        ok, info = buffer.map(Gst.MapFlags.WRITE)
        if not ok:
            raise RfbsinkError("cannot map a GStreamer buffer for writing")
        try:
            np.copyto(pixels.rows_of(info.data), pixels.array, casting="no")
        finally:
            buffer.unmap(info)
        return buffer, None

    def _acquire(self, shape: Tuple[str, int, int], size: int) -> Gst.Buffer:
        """A buffer of `size` bytes from a pool (memory reused: no page faults per frame)."""
        if self._pool is None or self._pool[0] != shape:
            if self._pool is not None:
                self._pool[1].set_active(False)
            pool = Gst.BufferPool()
            config = pool.get_config()
            Gst.BufferPool.config_set_params(config, self._caps(*shape), size, 2, 0)
            if not (pool.set_config(config) and pool.set_active(True)):
                raise RfbsinkError(f"cannot set up a buffer pool for {shape}")
            self._pool = (shape, pool)
        ret, buffer = self._pool[1].acquire_buffer(None)
        if ret != Gst.FlowReturn.OK or buffer is None:
            raise RfbsinkError(f"no buffer from the pool: {ret}")
        return buffer

    def _set_gray_window(self, pixels: Pixels) -> None:
        """The window the viewer applies to 16-bit pictures: in the values sent (set before the
        picture, when it changes)."""
        if pixels.format != "GRAY16_LE":
            return
        want = "auto" if pixels.window is None else f"{pixels.window[0]},{pixels.window[1]}"
        if want != self._gray_window:
            self._sink.set_property("gray-window", want)
            self._gray_window = want

    def _send(self, shape: Tuple[str, int, int], buffer: Gst.Buffer, data: Optional[bytes]) -> None:
        if shape != self._caps_now:
            # A new size or format: appsrc sends the new caps in order, before this buffer.
            self._appsrc.set_property("caps", self._caps(*shape))
            self._caps_now = shape
            self._width, self._height = shape[1], shape[2]
        buffer.pts = self._running_time()
        self._last = (shape, buffer, data)
        if self._appsrc.emit("push-buffer", buffer) != Gst.FlowReturn.OK:
            self._check_open()

    def _running_time(self) -> int:
        clock = self._pipeline.get_clock()
        if clock is None:
            return 0
        return max(0, clock.get_time() - self._pipeline.get_base_time())

    def _check_open(self) -> None:
        if self._closed:
            raise RfbsinkError("the stream is closed")
        if self._error is not None:
            raise RfbsinkError(f"the stream failed: {self._error}")

    # --- From the viewers ------------------------------------------------------------------

    def on_input(self, callback: Callable[[InputEvent], Any]) -> Callable[[InputEvent], Any]:
        """Calls `callback(event)` for each pointer, wheel, key and resize event (an InputEvent,
        in array coordinates). Usable as a decorator; returns `callback`."""
        self._input_callbacks.append(callback)
        return callback

    def on_message(self, callback: Callable[[str, Any, int], Any]) -> Callable[[str, Any, int], Any]:
        """Calls `callback(channel, message, client_id)` for each application message a page
        sends (`rfbViewer.sendMessage('app.x', {...})`): message is the decoded JSON object.
        Usable as a decorator; returns `callback`."""
        self._message_callbacks.append(callback)
        return callback

    def send(self, channel: str, message: Any, client_id: int = 0) -> bool:
        """Sends `message` (a JSON-serialisable dict) on `channel` ("app." + a name) to one viewer,
        or to all with client_id 0. Returns whether a viewer was there to get it."""
        if not isinstance(channel, str) or not channel.startswith("app.") or len(channel) <= 4:
            raise ValueError(f"channel must be 'app.<name>', got {channel!r}")
        if not isinstance(message, dict):
            raise ValueError(f"message must be a dict (a JSON object), got {type(message).__name__}")
        text = json.dumps(message)
        with self._lock:
            self._check_open()
            return bool(self._sink.emit("send-message", channel, text, int(client_id)))

    def _queue(self, item: Any) -> None:
        if self._events.qsize() >= MAX_PENDING_EVENTS:
            try:
                self._events.get_nowait()
                self._counters.events_dropped += 1
            except queue.Empty:
                pass
        self._events.put(item)

    def _on_upstream_event(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        event = info.get_event()
        if event.type == Gst.EventType.NAVIGATION and self._input_callbacks:
            parsed = _navigation(event)
            if parsed is not None:
                self._queue(parsed)
        return Gst.PadProbeReturn.OK

    def _on_encoder_event(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        if GstVideo.video_event_is_force_key_unit(info.get_event()):
            self._queue("keyframe")
        return Gst.PadProbeReturn.OK

    def _on_client_message(self, _sink: Gst.Element, client_id: int, channel: str, text: str) -> None:
        if self._message_callbacks:
            self._queue(("message", channel, text, client_id))

    def _on_bus_message(self, _bus: Gst.Bus, message: Gst.Message) -> Gst.BusSyncReply:
        t = message.type
        if t == Gst.MessageType.ERROR:
            err, debug = message.parse_error()
            self._error = err.message
        elif t == Gst.MessageType.ELEMENT:
            s = message.get_structure()
            if s is not None and s.get_name() == "rfbsink-resize" and self._input_callbacks:
                self._queue(
                    InputEvent(
                        "resize",
                        width=s.get_value("width"),
                        height=s.get_value("height"),
                        client_id=s.get_value("client-id"),
                    )
                )
        return Gst.BusSyncReply.DROP

    def _dispatch(self) -> None:
        while True:
            item = self._events.get()
            if item is None:
                return
            try:
                if item == "keyframe":
                    self._repeat_last()
                elif isinstance(item, InputEvent):
                    for cb in list(self._input_callbacks):
                        cb(item)
                else:
                    _, channel, text, client_id = item
                    message = json.loads(text)
                    for cb in list(self._message_callbacks):
                        cb(channel, message, client_id)
            except Exception as e:  # noqa: BLE001 - a user callback's bug must not stop the stream
                self._counters.callback_errors += 1
                self._counters.last_error = f"{type(e).__name__}: {e}"
                warnings.warn(f"rfbsink: a callback raised {self._counters.last_error}", RuntimeWarning)

    def _repeat_last(self) -> None:
        with self._lock:
            if self._closed or self._last is None or self._error is not None:
                return
            shape, buffer, data = self._last
            # A new buffer (its own timestamp) sharing the last one's memory.
            self._send(shape, buffer.copy(), data)
            self._counters.repeated_for_keyframe += 1

    # --- State -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The viewer's URL with its token (input allowed): open it in a browser."""
        return self._sink.get_property("url")

    @property
    def view_url(self) -> str:
        """The view-only link: its token shows the stream; its input is ignored."""
        return self._sink.get_property("view-url")

    @property
    def port(self) -> int:
        return self._sink.get_property("bound-port")

    @property
    def token(self) -> str:
        return self._token_of(self.url) or ""

    @property
    def codec(self) -> str:
        """The codec in use ("h264", "jpeg" or "lossless")."""
        return self._codec

    @property
    def size(self) -> Tuple[int, int]:
        """(width, height) of the current picture."""
        return (self._width, self._height)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> Dict[str, Any]:
        """rfbsink's figures (frames, bytes, each viewer's latency, drops) and the Stream's own
        under "python": frames pushed, pushes skipped as unchanged, events dropped."""
        s = self._sink.get_property("stats")
        out = _structure(s) if s is not None else {}
        c = self._counters
        out["python"] = {
            "codec": self._codec,
            "pushed": c.pushed,
            "unchanged": c.unchanged,
            "repeated-for-keyframe": c.repeated_for_keyframe,
            "events-dropped": c.events_dropped,
            "audio-pushed": c.audio_pushed,
            "callback-errors": c.callback_errors,
            "last-callback-error": c.last_error,
        }
        return out

    def close(self) -> None:
        """Stops serving and frees the port. Safe to call twice; push() afterwards raises."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._finalizer()
            if self._pool is not None:
                self._pool[1].set_active(False)
                self._pool = None
        if threading.current_thread() is not self._dispatcher:
            self._dispatcher.join(timeout=5)

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else self.url
        return f"<rfbsink.Stream {self._width}x{self._height} {self._codec} {state}>"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """In Jupyter, a Stream shows as its live viewer (rfbsink.widget)."""
        try:
            from .widget import StreamWidget
        except ImportError:
            return {"text/plain": repr(self), "text/html": f'<a href="{self.url}" target="_blank">{self.url}</a>'}
        return StreamWidget(self)._repr_mimebundle_(**kwargs)


_BUTTONS = {
    GstVideo.NavigationEventType.MOUSE_BUTTON_PRESS: "pointer-down",
    GstVideo.NavigationEventType.MOUSE_BUTTON_RELEASE: "pointer-up",
}
_KEYS = {
    GstVideo.NavigationEventType.KEY_PRESS: "key-down",
    GstVideo.NavigationEventType.KEY_RELEASE: "key-up",
}


def _navigation(event: Gst.Event) -> Optional[InputEvent]:
    """A navigation event as an InputEvent (None for kinds it does not carry)."""
    N = GstVideo.Navigation
    kind = N.event_get_type(event)
    if kind == GstVideo.NavigationEventType.MOUSE_MOVE:
        _, x, y = N.event_parse_mouse_move_event(event)
        return InputEvent("pointer-move", x, y)
    if kind in _BUTTONS:
        _, button, x, y = N.event_parse_mouse_button_event(event)
        return InputEvent(_BUTTONS[kind], x, y, button=button)
    if kind == GstVideo.NavigationEventType.MOUSE_SCROLL:
        _, x, y, dx, dy = N.event_parse_mouse_scroll_event(event)
        return InputEvent("wheel", x, y, dx=dx, dy=dy)
    if kind in _KEYS:
        _, key = N.event_parse_key_event(event)
        return InputEvent(_KEYS[kind], key=key)
    touch = {
        GstVideo.NavigationEventType.TOUCH_DOWN: "touch-down",
        GstVideo.NavigationEventType.TOUCH_MOTION: "touch-move",
        GstVideo.NavigationEventType.TOUCH_UP: "touch-up",
    }
    if kind in touch:
        if kind == GstVideo.NavigationEventType.TOUCH_UP:
            _, _ident, x, y = N.event_parse_touch_up_event(event)
        else:
            _, _ident, x, y, _pressure = N.event_parse_touch_event(event)
        return InputEvent(touch[kind], x, y)
    return None
