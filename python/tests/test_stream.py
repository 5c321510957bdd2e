"""rfbsink.Stream over real pipelines: what reaches the rfbsink element (caps, pixels, timestamps),
what a real WebSocket client gets and sends (config, input, app messages), and the errors.

Needs the rfbsink plugin (GST_PLUGIN_PATH=<checkout>/target/release) and, for the client tests,
the `websockets` package (pip install "./python[test]").
"""

import asyncio
import contextlib
import json
import os
import pathlib
import socket
import subprocess
import threading
import time
import urllib.request

import numpy as np
import pytest

import rfbsink
from rfbsink._stream import Gst

websockets = pytest.importorskip("websockets")


class Sniffer:
    """Records the caps and buffers arriving at the stream's rfbsink (a probe on its sink pad)."""

    def __init__(self, stream):
        self.buffers = []  # (caps string, pts, bytes)
        self.caps = None
        self.cond = threading.Condition()
        pad = stream._sink.get_static_pad("sink")
        pad.add_probe(Gst.PadProbeType.BUFFER | Gst.PadProbeType.EVENT_DOWNSTREAM, self._probe)

    def _probe(self, _pad, info):
        if info.type & Gst.PadProbeType.BUFFER:
            buf = info.get_buffer()
            ok, mapped = buf.map(Gst.MapFlags.READ)
            data = bytes(mapped.data) if ok else b""
            if ok:
                buf.unmap(mapped)
            with self.cond:
                self.buffers.append((self.caps, buf.pts, data))
                self.cond.notify_all()
        else:
            event = info.get_event()
            if event.type == Gst.EventType.CAPS:
                self.caps = event.parse_caps().to_string()
        return Gst.PadProbeReturn.OK

    def wait(self, n, timeout=10.0):
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.buffers) >= n, timeout), (
                f"{len(self.buffers)} of {n} buffers reached rfbsink in {timeout} s"
            )
            return list(self.buffers)


def unpad(data, width, height, bytes_per_pixel):
    """Rows of a GStreamer raw buffer without the 4-byte row padding."""
    row = width * bytes_per_pixel
    stride = (row + 3) & ~3
    return np.frombuffer(data, np.uint8).reshape(height, stride)[:, :row]


import rfbsink._stream as _stream_module

COPY_PATHS = [False] + ([True] if _stream_module._writable_maps() else [])


@pytest.fixture(params=COPY_PATHS, ids=lambda w: "into-mapped-buffer" if w else "through-bytes")
def lossless(request, monkeypatch):
    """A lossless stream, once per way push() copies: straight into a pool buffer's mapped memory
    (with gst-python's overrides) and through bytes (without)."""
    monkeypatch.setattr(_stream_module, "_WRITABLE_MAPS", request.param)
    with rfbsink.Stream(64, 48, codec="lossless") as stream:
        yield stream


def test_gst_python_overrides_present():
    # CI installs python3-gst-1.0 (scripts/install-deps.sh): the one-copy path is the one tested
    # beside the fallback, not silently skipped.
    assert COPY_PATHS == [False, True]


def test_url_token_and_page(lossless):
    import urllib.request

    assert lossless.url.startswith(f"http://127.0.0.1:{lossless.port}/?rfb_token=")
    assert len(lossless.token) >= 8
    with urllib.request.urlopen(lossless.url, timeout=5) as r:
        assert r.status == 200
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"http://127.0.0.1:{lossless.port}/rfb.json", timeout=5)
    assert e.value.code == 401


@pytest.mark.parametrize(
    "array,fmt,expect",
    [
        (np.arange(48 * 63, dtype=np.uint8).reshape(48, 63), "GRAY8", None),
        (np.random.default_rng(1).integers(0, 256, (48, 63, 3), dtype=np.uint8), "RGB", None),
        (np.random.default_rng(2).integers(0, 256, (48, 63, 4), dtype=np.uint8), "RGBA", None),
        (np.random.default_rng(3).integers(0, 4096, (48, 63), dtype=np.uint16), "GRAY16_LE", None),
        (np.random.default_rng(3).integers(0, 4096, (48, 63), dtype=np.uint16).astype(">u2"), "GRAY16_LE", None),
        (np.array([[-32768, 0, 32767, 5]] * 3, dtype=np.int16), "GRAY16_LE", np.array([[0, 32768, 65535, 32773]] * 3)),
        (np.array([[0.0, 0.5, 1.0, np.nan]] * 3), "GRAY16_LE", np.array([[0, 32768, 65535, 0]] * 3)),
        (np.array([[True, False]] * 2), "GRAY8", np.array([[255, 0]] * 2)),
        (np.ones((4, 5, 1), np.uint8) * 7, "GRAY8", np.ones((4, 5)) * 7),
    ],
    ids=["gray8-odd-width", "rgb", "rgba", "uint16-12bit", "uint16-big-endian", "int16", "float", "bool", "hw1"],
)
def test_lossless_pixels_exact(lossless, array, fmt, expect):
    sniff = Sniffer(lossless)
    assert lossless.push(array)
    caps, _pts, data = sniff.wait(1)[-1]
    height, width = array.shape[:2]
    assert f"format=(string){fmt}" in caps and f"width=(int){width}" in caps and f"height=(int){height}" in caps
    bpp = {"GRAY8": 1, "GRAY16_LE": 2, "RGB": 3, "RGBA": 4}[fmt]
    got = unpad(data, width, height, bpp)
    if fmt == "GRAY16_LE":
        got = got.copy().view("<u2").reshape(height, width)
    want = array.astype(np.int64) if expect is None else expect
    np.testing.assert_array_equal(got.reshape(want.shape).astype(np.int64), want.astype(np.int64))


def test_non_contiguous_views(lossless):
    sniff = Sniffer(lossless)
    base = np.random.default_rng(4).integers(0, 256, (100, 130, 3), dtype=np.uint8)
    view = base[::2, 10:74][:, :, ::-1]  # strided rows, a column slice, BGR -> RGB reversed
    assert lossless.push(view)
    _, _, data = sniff.wait(1)[-1]
    np.testing.assert_array_equal(unpad(data, 64, 50, 3).reshape(50, 64, 3), view)
    # Fortran order and a transposed view.
    gray = np.asfortranarray(np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 3)
    assert lossless.push(gray[:, :48])
    _, _, data = sniff.wait(2)[-1]
    np.testing.assert_array_equal(unpad(data, 48, 48, 2).copy().view("<u2").reshape(48, 48), gray[:, :48])


def test_sparse_pushes_and_real_timestamps(lossless):
    sniff = Sniffer(lossless)
    a = np.zeros((48, 64), np.uint16)
    assert lossless.push(a) is True
    assert lossless.push(a.copy()) is False, "the same picture again is not sent"
    time.sleep(0.3)
    b = a.copy()
    b[10, 10] = 1
    assert lossless.push(b) is True
    assert lossless.push(b, force=True) is True
    bufs = sniff.wait(3)
    time.sleep(0.3)
    assert len(sniff.buffers) == 3
    gap_ms = (bufs[1][1] - bufs[0][1]) / 1e6
    assert 250 <= gap_ms <= 2000, f"the second frame's timestamp is {gap_ms:.0f} ms after the first, pushed 300 ms later"
    stats = lossless.stats
    assert stats["python"]["pushed"] == 3 and stats["python"]["unchanged"] == 1
    assert stats["frames-rendered"] == 3


def test_size_and_format_change(lossless):
    sniff = Sniffer(lossless)
    # One at a time: pushed faster than they flow, older pictures would be dropped (latest wins).
    lossless.push(np.zeros((48, 64), np.uint16))
    sniff.wait(1)
    lossless.push(np.full((30, 20, 3), 9, np.uint8))
    sniff.wait(2)
    lossless.push(np.full((17, 33), 500, np.uint16))
    bufs = sniff.wait(3)
    assert "width=(int)20" in bufs[1][0] and "RGB" in bufs[1][0]
    assert "width=(int)33" in bufs[2][0] and "height=(int)17" in bufs[2][0]
    assert lossless.size == (33, 17)
    time.sleep(0.3)
    stats = lossless.stats
    assert (stats["width"], stats["height"]) == (33, 17), stats


@pytest.mark.parametrize("codec", ["h264", "jpeg"])
def test_encoded_codecs_any_dtype(codec):
    with rfbsink.Stream(64, 48, codec=codec) as stream:
        sniff = Sniffer(stream)
        stream.push(np.zeros((48, 64, 3), np.uint8))
        sniff.wait(1, timeout=20)
        stream.push(np.arange(48 * 64, dtype=np.uint16).reshape(48, 64))  # normalised to 8-bit
        sniff.wait(2, timeout=20)
        stream.push(np.random.default_rng(0).random((31, 45)))  # odd sides: padded to even
        bufs = sniff.wait(3, timeout=20)
        assert ("video/x-h264" if codec == "h264" else "image/jpeg") in bufs[-1][0]
        assert "width=(int)46" in bufs[-1][0] and "height=(int)32" in bufs[-1][0]
        assert stream.codec == codec


def test_auto_codec_follows_the_data():
    with rfbsink.Stream(64, 48) as stream:
        port, token, view_url = stream.port, stream.token, stream.view_url
        assert stream.codec == "h264"
        stream.push(np.zeros((48, 64), np.uint16))
        assert stream.codec == "lossless", "16-bit data goes the lossless way"
        assert (stream.port, stream.token, stream.view_url) == (port, token, view_url), "rebuilt on the same port and links"
        stream.push(np.zeros((48, 64), np.uint8))
        assert stream.codec == "lossless", "decided once"
    with rfbsink.Stream(64, 48, dtype=np.float32) as stream:
        assert stream.codec == "lossless"
    with rfbsink.Stream(64, 48) as stream:
        stream.push(np.zeros((48, 64, 3), np.uint8))
        assert stream.codec == "h264"


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((4, 4, 2), np.uint8), "unsupported shape"),
        (np.zeros((4,), np.uint8), "unsupported shape"),
        (np.zeros((2, 3, 4, 5), np.uint8), "unsupported shape"),
        (np.zeros((4, 4), np.complex64), "unsupported dtype"),
        (np.array([["a", "b"]]), "unsupported dtype"),
        (np.zeros((0, 4), np.uint8), "each side must be"),
        (np.zeros((1, 20000), np.uint8), "each side must be"),
        ("not an array", "unsupported"),
    ],
)
def test_bad_arrays_raise_clear_errors(lossless, bad, match):
    with pytest.raises(ValueError, match=match):
        lossless.push(bad)
    assert lossless.push(np.zeros((48, 64), np.uint8)), "the stream still works"


def test_bad_arguments():
    for kwargs, match in [
        (dict(width=0, height=10), "width"),
        (dict(width=10, height=10.5), "height"),
        (dict(width=10, height=10, codec="mpeg2"), "codec"),
        (dict(width=10, height=10, fps=-1), "fps"),
        (dict(width=10, height=10, quality=0), "quality"),
        (dict(width=10, height=10, window=(5, 5)), "window"),
        (dict(width=10, height=10, max_latency_ms=-1), "max_latency_ms"),
        (dict(width=10, height=10, token="bad token!"), "token"),
        (dict(width=10, height=10, token="short"), "token"),
    ]:
        with pytest.raises(ValueError, match=match):
            rfbsink.Stream(**kwargs)


def test_element_settings_applied():
    with rfbsink.Stream(16, 16, max_latency_ms=150, view_only=True, max_clients=3, token="tok-12345") as stream:
        sink = stream._sink
        assert (sink.get_property("max-latency"), sink.get_property("view-only"), sink.get_property("max-clients")) == (150, True, 3)
        assert stream.token == "tok-12345" and stream.url.endswith("rfb_token=tok-12345")


def test_port_taken_is_an_error_not_a_hang():
    with rfbsink.Stream(16, 16) as first:
        t0 = time.monotonic()
        with pytest.raises(rfbsink.RfbsinkError, match=str(first.port)):
            rfbsink.Stream(16, 16, port=first.port)
        assert time.monotonic() - t0 < 10


def test_close_and_reopen():
    stream = rfbsink.Stream(32, 32, codec="lossless")
    port = stream.port
    stream.push(np.zeros((32, 32), np.uint8))
    stream.close()
    stream.close()
    assert stream.closed
    with pytest.raises(rfbsink.RfbsinkError, match="closed"):
        stream.push(np.zeros((32, 32), np.uint8))
    with pytest.raises(rfbsink.RfbsinkError, match="closed"):
        stream.send("app.x", {})
    # The port is free again: a new stream can take it.
    with rfbsink.Stream(32, 32, codec="lossless", port=port) as again:
        assert again.port == port
        assert again.push(np.zeros((32, 32), np.uint8))


def test_push_from_threads(lossless):
    sniff = Sniffer(lossless)
    errors = []

    def worker(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(50):
                lossless.push(rng.integers(0, 65535, (48, 64), dtype=np.uint16))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and not any(t.is_alive() for t in threads)
    assert lossless.stats["python"]["pushed"] == 200
    time.sleep(0.5)
    # Each buffer is one whole picture (never two threads' bytes mixed): its size is exact.
    assert all(len(b[2]) == 48 * 64 * 2 for b in sniff.buffers)
    assert len(sniff.buffers) >= 2, "latest wins: some may be dropped, not all"
    assert time.monotonic() - t0 < 60


def test_apush():
    async def main():
        with rfbsink.Stream(64, 48, codec="lossless") as stream:
            sniff = Sniffer(stream)
            results = await asyncio.gather(*(stream.apush(np.full((48, 64), i, np.uint8)) for i in range(5)))
            assert all(results)
            sniff.wait(1)
            return stream.stats["python"]["pushed"]

    assert asyncio.run(main()) == 5


def test_push_never_blocks_on_a_slow_encoder():
    # 2048x2048 RGB into x264 on a small machine: the encoder is far slower than 100 pushes;
    # push() returns regardless (old pictures are dropped, latest wins).
    with rfbsink.Stream(2048, 2048, codec="h264") as stream:
        frames = [np.full((2048, 2048, 3), i, np.uint8) for i in range(4)]
        t0 = time.monotonic()
        for i in range(40):
            stream.push(frames[i % 4])
        per_push_ms = (time.monotonic() - t0) / 40 * 1000
        # Generous: a copy of 12 MB; what matters is no waiting for 40 encodes (seconds).
        assert per_push_ms < 500, per_push_ms


# --- A real client: what a browser's viewer gets and sends -----------------------------------


@contextlib.contextmanager
def pushing(stream, frame_of, fps=30):
    """Pushes frame_of(n) to `stream` at `fps` on a thread of its own while the block runs."""
    stop = threading.Event()

    def run():
        n = 0
        while not stop.is_set():
            stream.push(frame_of(n))
            n += 1
            time.sleep(1 / fps)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


async def _client(stream, envelope="json"):
    ws = await websockets.connect(f"ws://127.0.0.1:{stream.port}/ws?envelope={envelope}&rfb_token={stream.token}")
    return ws


async def _next_json(ws, kind, timeout=10):
    """The next text message whose kind is `kind` (or, a callable, for which it is true)."""
    want = kind if callable(kind) else (lambda obj: obj.get("kind") == kind)

    async def loop():
        while True:
            msg = await ws.recv()
            if isinstance(msg, str):
                obj = json.loads(msg)
                if want(obj):
                    return obj

    return await asyncio.wait_for(loop(), timeout)


def test_client_gets_config_input_and_messages():
    async def main():
        with rfbsink.Stream(64, 48, codec="lossless") as stream:
            events, messages = [], []
            got = threading.Event()
            stream.on_input(lambda e: (events.append(e), got.set()))

            @stream.on_message
            def echo(channel, message, client_id):
                messages.append((channel, message))
                stream.send("app.test", {"kind": "echo", "got": message}, client_id)

            stream.push(np.full((48, 64), 1234, np.uint16))
            ws = await _client(stream)
            hello = await _next_json(ws, "hello")
            config = await _next_json(ws, "config")
            assert (config["codec"], config["codec_string"], config["width"], config["height"]) == ("raw", "gray16le", 64, 48)
            await ws.send(json.dumps({"channel": "rfb.events", "kind": "pointer-down", "x": 12.5, "y": 40, "button": 0}))
            await ws.send(json.dumps({"channel": "rfb.events", "kind": "key-down", "key": "a", "code": "KeyA"}))
            await ws.send(json.dumps({"channel": "rfb.events", "kind": "resize", "width": 800, "height": 600}))
            await ws.send(json.dumps({"channel": "app.test", "kind": "ping", "n": 7}))
            echo_msg = await _next_json(ws, "echo")
            assert echo_msg["got"] == {"kind": "ping", "n": 7}
            # Python -> every page.
            assert stream.send("app.test", {"kind": "note", "text": "hi"})
            assert (await _next_json(ws, "note"))["text"] == "hi"
            deadline = time.monotonic() + 10
            while len(events) < 3 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await ws.close()
            kinds = {e.kind: e for e in events}
            assert kinds["pointer-down"].x == 12.5 and kinds["pointer-down"].y == 40 and kinds["pointer-down"].button == 1
            assert kinds["key-down"].key == "a"
            assert (kinds["resize"].width, kinds["resize"].height, kinds["resize"].client_id) == (800, 600, hello["client_id"])
            assert messages == [("app.test", {"kind": "ping", "n": 7})]

    asyncio.run(main())


def test_a_failing_callback_is_counted_not_fatal():
    async def main():
        with rfbsink.Stream(32, 32, codec="lossless") as stream:
            stream.on_message(lambda *a: 1 / 0)
            stream.push(np.zeros((32, 32), np.uint8))
            ws = await _client(stream)
            await _next_json(ws, "config")
            with pytest.warns(RuntimeWarning, match="ZeroDivisionError"):
                await ws.send(json.dumps({"channel": "app.x", "kind": "boom"}))
                deadline = time.monotonic() + 10
                while stream.stats["python"]["callback-errors"] == 0 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
            assert stream.stats["python"]["callback-errors"] == 1
            assert stream.push(np.ones((32, 32), np.uint8)), "still streaming"
            await ws.close()

    asyncio.run(main())


def test_send_rejects_bad_channels_and_messages(lossless):
    with pytest.raises(ValueError, match="app."):
        lossless.send("rfb.control", {"kind": "x"})
    with pytest.raises(ValueError, match="dict"):
        lossless.send("app.x", [1, 2])
    with pytest.raises(TypeError):
        lossless.send("app.x", {"f": object()})
    assert lossless.send("app.x", {"kind": "nobody"}) is False


def test_keyframe_for_a_late_viewer_of_a_sparse_stream():
    # One picture, then nothing: a viewer that asks for a keyframe still gets a picture (the
    # last one is pushed again, as the encoder only makes the NEXT frame a keyframe).
    async def main():
        with rfbsink.Stream(64, 48, codec="h264") as stream:
            stream.push(np.full((48, 64, 3), 100, np.uint8))
            ws = await _client(stream)
            await _next_json(ws, "config")
            first = await _next_json(ws, lambda m: m.get("channel") == "rfb.main")
            await ws.send(json.dumps({"channel": "rfb.control", "kind": "keyframe-request", "reason": "decoder-error"}))
            deadline = time.monotonic() + 10
            while stream.stats["python"]["repeated-for-keyframe"] == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert stream.stats["python"]["repeated-for-keyframe"] >= 1
            frame = await _next_json(ws, lambda m: m.get("channel") == "rfb.main" and m["frame_id"] > first["frame_id"])
            assert frame["chunk_type"] == "key", frame
            await ws.close()

    asyncio.run(main())


def test_allowed_origins_for_a_jupyter_reached_by_name(monkeypatch):
    # jupyter-server-proxy forwards the browser's Host and Origin: a Jupyter reached as
    # hub.example.org needs that origin allowed (argument or RFBSINK_ALLOWED_ORIGINS).
    import urllib.request

    def status(stream):
        req = urllib.request.Request(
            f"http://127.0.0.1:{stream.port}/rfb.json?rfb_token={stream.token}",
            headers={"Host": "hub.example.org", "Origin": "https://hub.example.org"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    monkeypatch.delenv("RFBSINK_ALLOWED_ORIGINS", raising=False)
    with rfbsink.Stream(16, 16) as stream:
        assert status(stream) == 403
    with rfbsink.Stream(16, 16, allowed_origins=("https://hub.example.org",)) as stream:
        assert status(stream) == 200
    monkeypatch.setenv("RFBSINK_ALLOWED_ORIGINS", "https://hub.example.org, http://other:1")
    with rfbsink.Stream(16, 16) as stream:
        assert status(stream) == 200
    with pytest.raises(ValueError, match="scheme://host"):
        rfbsink.Stream(16, 16, allowed_origins=("not an origin",))


def test_window_is_applied_by_the_viewer_and_data_stays_exact():
    # A fixed window on the lossless path: uint16 goes unchanged and the viewer is told the
    # window (rfbsink's gray-window); scaled kinds fill 0..65535 and the window follows.
    with rfbsink.Stream(8, 4, codec="lossless", window=(100, 4000)) as stream:
        sniff = Sniffer(stream)
        data = np.arange(32, dtype=np.uint16).reshape(4, 8) * 100
        stream.push(data)
        _, _, raw = sniff.wait(1)[-1]
        np.testing.assert_array_equal(unpad(raw, 8, 4, 2).copy().view("<u2").reshape(4, 8), data)
        assert stream._sink.get_property("gray-window") == "100,4000"
        stream.push(np.linspace(0, 5000, 32).reshape(4, 8))
        _, _, raw = sniff.wait(2)[-1]
        got = unpad(raw, 8, 4, 2).copy().view("<u2").reshape(4, 8)
        assert got.min() == 0 and got.max() == 65535, "the window 100..4000 fills 0..65535"
        assert stream._sink.get_property("gray-window") == "0,65535"
    with rfbsink.Stream(8, 4, codec="lossless", window=(-100, 100)) as stream:
        stream.push(np.zeros((4, 8), np.int16))
        assert stream._sink.get_property("gray-window") == "32668,32868", "shifted with the data"
    with rfbsink.Stream(8, 4, codec="lossless") as stream:
        stream.push(np.zeros((4, 8), np.uint16))
        assert stream._sink.get_property("gray-window") == "auto"


def test_ladder_serves_a_smaller_rendition_a_viewer_can_choose():
    async def main():
        with rfbsink.Stream(64, 48, codec="h264", ladder=((32, 24, 100),)) as stream, pushing(
            stream, lambda n: np.full((48, 64, 3), n % 250, np.uint8)
        ):
            ws = await _client(stream)
            announced = await _next_json(ws, "renditions")
            assert announced["current"] == 0
            assert [r["id"] for r in announced["renditions"]] == [0, 1]
            assert (await _next_json(ws, "config"))["width"] == 64
            # This viewer chooses the small one: it comes at its next keyframe.
            await ws.send(json.dumps({"channel": "rfb.control", "kind": "rendition", "id": 1}))
            switched = await _next_json(ws, "renditions")
            assert switched["current"] == 1
            small = await _next_json(ws, "config")
            assert (small["width"], small["height"]) == (32, 24)
            header = await _next_json(ws, lambda m: m.get("channel") == "rfb.main")
            assert header["chunk_type"] == "key" and header["config_id"] == small["config_id"]
            await ws.close()
            renditions = stream.stats["renditions"]
            assert [(r["id"], r["width"]) for r in renditions] == [(0, 64), (1, 32)]

    asyncio.run(main())


def test_bad_ladders_are_refused():
    for ladder, match in [
        (((641, 360, 600),), "even"),
        (((640, 360),), "width, height, kbit/s"),
        (((640, 360, 0),), "width, height, kbit/s"),
        (((64, 36, 100),) * 9, "at most 8"),
    ]:
        with pytest.raises(ValueError, match=match):
            rfbsink.Stream(64, 48, codec="h264", ladder=ladder)
    with pytest.raises(ValueError, match="codec 'h264'"):
        rfbsink.Stream(64, 48, codec="jpeg", ladder=((32, 24, 100),))


@pytest.mark.parametrize("rate_control", ["auto", "slowest"])
def test_rate_control_follows_a_viewer_on_a_slow_link(rate_control):
    async def main():
        rng = np.random.default_rng(1)
        # Noise: the encoder spends all of its 1500 kbit/s (at the default quality, too).
        with rfbsink.Stream(320, 240, rate_control=rate_control, bitrate=1500) as stream, pushing(
            stream, lambda _: rng.integers(0, 255, (240, 320), dtype=np.uint8)
        ):
            assert stream.stats["target-bitrate"] == 1_500_000
            ws = await _client(stream)
            frame_id = None
            target = None
            deadline = time.monotonic() + 20
            # A 320 kbit/s link: read no faster, acknowledge each frame as the viewer does.
            while time.monotonic() < deadline:
                msg = await asyncio.wait_for(ws.recv(), 5)
                if isinstance(msg, str):
                    header = json.loads(msg)
                    if header.get("channel") == "rfb.main":
                        frame_id = header["frame_id"]
                    continue
                await ws.send(json.dumps({"channel": "rfb.stats", "kind": "ack", "frame_id": frame_id}))
                await asyncio.sleep(len(msg) / 40_000)
                target = stream.stats["target-bitrate"]
                if target < 1_000_000:
                    break
            await ws.close()
            assert target is not None and target < 1_000_000, f"the target stayed at {target}"

    asyncio.run(main())


def test_rate_control_arguments():
    for kwargs, match in [
        (dict(rate_control="fastest"), "rate_control"),
        (dict(rate_control="slowest", codec="jpeg"), "codec 'h264'"),
        (dict(bitrate=0), "bitrate"),
    ]:
        with pytest.raises(ValueError, match=match):
            rfbsink.Stream(64, 48, **kwargs)
    with rfbsink.Stream(64, 48, rate_control="control", bitrate=800) as stream:
        assert stream._sink.get_property("target-bitrate") == 800
        assert stream.stats["python"]["codec"] == "h264"
    # "auto" (the default): h264 at its quality, its bitrate the cap rate control drives; jpeg's
    # quality driven; the lossless path left as it is (and not forced to h264).
    with rfbsink.Stream(64, 48, codec="h264", bitrate=900) as stream:
        enc = stream._pipeline.get_by_name("enc")
        if enc.get_factory().get_name() == "x264enc":
            assert enc.get_property("pass").value_nick == "qual"
            assert enc.get_property("bitrate") == 900
        assert stream._sink.get_property("target-bitrate") == 900
    with rfbsink.Stream(64, 48, codec="jpeg") as stream:
        assert stream._sink.get_property("target-bitrate") > 0
    with rfbsink.Stream(64, 48, dtype=np.uint16) as stream:
        assert stream.stats["python"]["codec"] == "lossless"
        assert stream._sink.get_property("target-bitrate") == 0
    # "off" is off in rfbsink too, whose own default (auto) would drive the encoder that "off"
    # leaves at its quality (jpegenc's, here).
    for codec in ("h264", "jpeg"):
        with rfbsink.Stream(64, 48, codec=codec, rate_control="off") as stream:
            assert stream._sink.get_property("target-bitrate") == 0, codec


def _moq_relay_binary():
    """moq-relay, built once per version by scripts/moq-relay.sh (install-deps runs it)."""
    if os.environ.get("RFB_MOQ_RELAY"):
        return os.environ["RFB_MOQ_RELAY"]
    repo = pathlib.Path(__file__).resolve().parents[2]
    out = subprocess.run(
        ["bash", str(repo / "scripts" / "moq-relay.sh")], check=True, capture_output=True, text=True, timeout=3600
    )
    return out.stdout.strip()


@contextlib.contextmanager
def moq_relay():
    """A moq-relay on loopback with a generated certificate, anonymous under anon/: its HTTP base."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [_moq_relay_binary(), "--listen", addr, "--listen-tls-generate", "localhost", "--web-http-listen", addr,
         "--auth-public", "anon/**"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://{addr}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{base}/certificate.sha256", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moq-relay did not start")
                time.sleep(0.1)
        yield base
    finally:
        proc.kill()
        proc.wait()


def test_relay_publishes_the_pushed_pictures_to_moq_relay():
    with moq_relay() as base, rfbsink.Stream(64, 48, relay=(f"{base}/anon", "notebook")) as stream, pushing(
        stream, lambda n: np.full((48, 64, 3), n % 250, np.uint8)
    ):
        deadline = time.monotonic() + 15
        while True:
            announced = urllib.request.urlopen(f"{base}/announced/anon", timeout=2).read().decode().split()
            frames = stream.stats.get("relay-frames", 0)
            if "notebook" in announced and frames >= 30 and stream.stats["relay-connected"]:
                break
            assert time.monotonic() < deadline, (announced, stream.stats)
            time.sleep(0.2)
        assert stream.stats["python"]["codec"] == "h264"


def test_bad_relays_are_refused():
    for relay, codec, match in [
        (("127.0.0.1:4443/anon", "cam"), "auto", "url http"),
        (("http://127.0.0.1:4443/anon",), "auto", "url, broadcast"),
        (("http://127.0.0.1:4443/anon", ""), "auto", "url, broadcast"),
        (("http://127.0.0.1:4443/anon", "cam"), "jpeg", "needs codec 'h264'"),
    ]:
        with pytest.raises(ValueError, match=match):
            rfbsink.Stream(64, 48, codec=codec, relay=relay)


def test_push_audio_reaches_viewers_as_opus_with_the_pictures_clock():
    """push_audio(): a viewer that asks for sound (audio=1) gets an audio-config and Opus packets
    whose timestamps follow on and sit on the pictures' clock; one that does not gets none."""

    async def main():
        with rfbsink.Stream(64, 48, codec="lossless") as stream:
            stream.push(np.zeros((48, 64), np.uint8))
            # max_queue=None: the packets this test leaves unread must not hold up its close.
            listener = await websockets.connect(
                f"ws://127.0.0.1:{stream.port}/ws?envelope=binary&audio=1&rfb_token={stream.token}", max_queue=None)
            deaf = await _client(stream, envelope="binary")
            await _next_json(listener, "hello")
            rate, chunk = 48000, 960  # 20 ms
            t = np.arange(chunk) / rate
            start = time.monotonic()
            packets, config = [], None
            for i in range(40):
                tone = 0.4 * np.sin(2 * np.pi * 440 * (t + i * chunk / rate))
                stream.push_audio(np.stack([tone, tone], axis=1).astype(np.float32), rate)
                await asyncio.sleep(max(0.0, start + (i + 1) * chunk / rate - time.monotonic()))
            deadline = time.monotonic() + 5
            while len(packets) < 60 and time.monotonic() < deadline:
                try:
                    msg = await asyncio.wait_for(listener.recv(), 1)
                except asyncio.TimeoutError:
                    break
                if isinstance(msg, str):
                    obj = json.loads(msg)
                    if obj.get("kind") == "audio-config":
                        config = obj
                elif msg[:2] == b"RA":
                    packets.append((int.from_bytes(msg[8:16], "little"), int.from_bytes(msg[16:24], "little", signed=True), len(msg) - 24))
            assert config == {"channel": "rfb.control", "kind": "audio-config", "config_id": 1, "codec": "opus",
                              "sample_rate": 48000, "channels": 2}
            assert len(packets) >= 60, packets  # 10 ms packets of 800 ms of sound
            seqs = [p[0] for p in packets]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            # Back to back, 10 ms apart (opusenc's first packet is shorter: its look-ahead).
            gaps = {packets[i + 1][1] - packets[i][1] for i in range(1, len(packets) - 1)}
            assert gaps == {10_000}, gaps
            # On the pictures' clock: running time, within the time the pushes took.
            assert 0 <= packets[0][1] < 60_000_000
            # The viewer that did not ask got pictures only.
            got = []
            until = time.monotonic() + 0.5
            with contextlib.suppress(asyncio.TimeoutError):
                while time.monotonic() < until:
                    got.append(await asyncio.wait_for(deaf.recv(), 0.3))
            assert not any(isinstance(m, bytes) and m[:2] == b"RA" for m in got)
            stats = stream.stats
            assert stats["audio-packets"] >= 80 and stats["python"]["audio-pushed"] == 40
            await listener.close()
            await deaf.close()

    asyncio.run(main())


def test_push_audio_refuses_what_is_not_sound():
    with rfbsink.Stream(64, 48, codec="lossless") as stream:
        with pytest.raises(ValueError, match="shape"):
            stream.push_audio(np.zeros((10, 6), np.float32), 48000)
        with pytest.raises(ValueError, match="rate"):
            stream.push_audio(np.zeros(10, np.float32), 1000)
        with pytest.raises(ValueError, match="float"):
            stream.push_audio(np.zeros(10, np.uint8), 48000)
        stream.close()
        with pytest.raises(rfbsink.RfbsinkError, match="closed"):
            stream.push_audio(np.zeros(480, np.float32), 48000)
