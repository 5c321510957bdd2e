"""The Jupyter widget: a Stream's live viewer in a notebook cell (anywidget, no build step).

Displaying a Stream shows one (Stream._repr_mimebundle_); `StreamWidget(stream)` makes one to
place in a layout. The widget mounts the viewer module the stream itself serves, reached through
Jupyter's server (jupyter-server-proxy, /proxy/<port>/) so that only Jupyter's port needs to be
reachable, or directly when the Jupyter page's origin is in the Stream's allowed_origins.
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import anywidget
import traitlets

if TYPE_CHECKING:
    from ._stream import Stream


class StreamWidget(anywidget.AnyWidget):
    """The live viewer of `stream` in a notebook cell.

    - mode: "auto" (through Jupyter's proxy when it answers, else directly), "proxy" or "direct".
    - view_only: the viewer's input is ignored (the stream's view link).
    - max_height: the cell's viewer is at most this many CSS pixels high.
    """

    _esm = pathlib.Path(__file__).parent / "static" / "widget.js"

    port = traitlets.Int().tag(sync=True)
    token = traitlets.Unicode().tag(sync=True)
    direct_root = traitlets.Unicode().tag(sync=True)
    mode = traitlets.Unicode("auto").tag(sync=True)
    width = traitlets.Int().tag(sync=True)
    height = traitlets.Int().tag(sync=True)
    max_height = traitlets.Int(600).tag(sync=True)

    def __init__(self, stream: "Stream", *, mode: str = "auto", view_only: bool = False, max_height: int = 600) -> None:
        if mode not in ("auto", "proxy", "direct"):
            raise ValueError(f"mode must be 'auto', 'proxy' or 'direct', got {mode!r}")
        url = stream.view_url if view_only else stream.url
        link = urlparse(url)
        token = stream._token_of(url) or ""
        width, height = stream.size
        super().__init__(
            port=stream.port,
            token=token,
            direct_root=f"{link.scheme}://{link.netloc}/",
            mode=mode,
            width=width,
            height=height,
            max_height=max_height,
        )
