"""rfbsink for Python: numpy pictures, live in a browser or a Jupyter cell, with input back.

    import numpy as np, rfbsink

    stream = rfbsink.Stream(512, 512)
    print(stream.url)                       # open it in a browser
    stream.push(np.zeros((512, 512), np.uint16))

    @stream.on_input
    def clicked(event):                     # pointer, wheel, keys, resize; array coordinates
        print(event.kind, event.x, event.y)

In Jupyter, a Stream shows as its live viewer (rfbsink.widget.StreamWidget), through Jupyter's
own server when jupyter-server-proxy is installed (pip install "rfbsink[jupyter]").

GStreamer and PyGObject come from the system (Debian: python3-gi, gir1.2-gstreamer-1.0); the
rfbsink element from this repository (GST_PLUGIN_PATH=<checkout>/target/release, or meson).
"""

# First: without GStreamer's bindings nothing else works, and the error says how to get them.
from . import _gst  # noqa: F401, I001
from ._frames import FrameError
from ._stream import CODECS, InputEvent, RfbsinkError, Stream

__all__ = ["CODECS", "FrameError", "InputEvent", "RfbsinkError", "Stream"]
__version__ = "0.1.0"
