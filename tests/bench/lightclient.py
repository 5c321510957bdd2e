#!/usr/bin/python3
"""N lightweight rfbsink viewers in one process: WebSocket (RFC 6455, stdlib only), binary
envelope, every frame read and acknowledged on rfb.stats, nothing decoded.

    /usr/bin/python3 tests/bench/lightclient.py ws://127.0.0.1:PORT/ws 31

Prints {"event":"connected","clients":N} once all are in, then on SIGTERM/SIGINT/stdin close (or
after --max-seconds) one JSON line: {"event":"done","clients":[{"frames":..,"bytes":..,"gaps":..,
"first_frame_id":..,"last_frame_id":..}, ...]}. {"event":"mark"} lines come on stdin "mark\n":
they snapshot the counters (so that the harness can take deltas over its window).
"""

import argparse
import asyncio
import base64
import json
import os
import signal
import struct
import sys
from urllib.parse import urlparse


class Client:
    def __init__(self):
        self.frames = 0
        self.bytes = 0
        self.gaps = 0
        self.first = None
        self.last = None
        self.closed = None

    def snap(self):
        return {"frames": self.frames, "bytes": self.bytes, "gaps": self.gaps,
                "first_frame_id": self.first, "last_frame_id": self.last, "closed": self.closed}


def frame(opcode, payload):
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ mask[i & 3] for i, b in enumerate(payload))
    return head + mask + masked


async def run_client(url, c, ready):
    u = urlparse(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    key = base64.b64encode(os.urandom(16)).decode()
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    writer.write((f"GET {path} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if b" 101 " not in head.split(b"\r\n")[0]:
        raise RuntimeError(f"upgrade refused: {head[:200]!r}")
    ready()
    msg = bytearray()
    msg_op = None
    while True:
        b0, b1 = await reader.readexactly(2)
        op = b0 & 0x0F
        n = b1 & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await reader.readexactly(8))
        if b1 & 0x80:
            await reader.readexactly(4)  # servers do not mask; tolerate it anyway (unmasked below)
        payload = await reader.readexactly(n)
        if op == 0x8:
            c.closed = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            return
        if op == 0x9:
            writer.write(frame(0xA, payload))
            continue
        if op == 0xA:
            continue
        if op != 0:
            msg_op = op
            msg = bytearray(payload)
        else:
            msg += payload
        if not b0 & 0x80:
            continue
        if msg_op == 0x2 and len(msg) >= 24 and msg[0:2] == b"RF":
            (fid,) = struct.unpack_from("<Q", msg, 8)
            c.frames += 1
            c.bytes += len(msg)
            if c.last is not None and fid != c.last + 1:
                c.gaps += 1
            if c.first is None:
                c.first = fid
            c.last = fid
            ack = json.dumps({"channel": "rfb.stats", "kind": "ack", "frame_id": fid, "decode_queue_size": 0})
            writer.write(frame(0x1, ack.encode()))
        msg = bytearray()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("n", type=int)
    ap.add_argument("--max-seconds", type=float, default=120)
    args = ap.parse_args()
    url = args.url + ("&" if "?" in args.url else "?") + "envelope=binary"
    clients = [Client() for _ in range(args.n)]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)
    connected = [0]

    def ready():
        connected[0] += 1
        if connected[0] == args.n:
            print(json.dumps({"event": "connected", "clients": args.n}), flush=True)

    async def guarded(c):
        try:
            await run_client(url, c, ready)
        except Exception as e:  # noqa: BLE001 - reported, the others go on
            c.closed = f"error: {e}"

    tasks = [asyncio.create_task(guarded(c)) for c in clients]

    async def stdin_lines():
        r = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(r), sys.stdin)
        while True:
            line = await r.readline()
            if not line:
                stop.set()
                return
            if line.strip() == b"mark":
                print(json.dumps({"event": "mark", "clients": [c.snap() for c in clients]}), flush=True)

    asyncio.create_task(stdin_lines())
    try:
        await asyncio.wait_for(stop.wait(), args.max_seconds)
    except asyncio.TimeoutError:
        pass
    print(json.dumps({"event": "done", "clients": [c.snap() for c in clients]}), flush=True)
    for t in tasks:
        t.cancel()


if __name__ == "__main__":
    asyncio.run(main())
