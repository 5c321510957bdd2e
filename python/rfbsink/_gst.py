"""GStreamer's Python bindings, or an ImportError that says what is missing and how to get it.

PyGObject (the ``gi`` module) and GStreamer's introspection data come from the system, not from
PyPI: a Python that is not the system's (pyenv, conda, a python.org build) or a virtual
environment made without ``--system-site-packages`` does not see them, and a bare
``ModuleNotFoundError: No module named 'gi'`` tells a scientist nothing.
"""

from __future__ import annotations

import os
import sys

_SYSTEM_PYTHON = "/usr/bin/python3"

_DEBIAN_PACKAGES = (
    "python3-gi python3-gst-1.0 gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0"
)


def explain(cause: BaseException) -> str:
    """Why GStreamer's bindings could not be imported by this Python, and the ways out."""
    here = f"{sys.executable} (Python {sys.version.split()[0]})"
    if isinstance(cause, ImportError) and getattr(cause, "name", None) == "gi":
        what = f"PyGObject (the 'gi' module) is not visible to {here}."
    else:
        what = f"GStreamer's introspection data is missing for {here}: {cause}."
    system = os.path.realpath(_SYSTEM_PYTHON)
    in_venv = sys.prefix != sys.base_prefix
    if os.path.realpath(sys.executable) == system or (
        in_venv and os.path.realpath(os.path.join(sys.base_prefix, "bin", "python3")) == system
    ):
        which = (
            "This is the system's Python: install the bindings, and make a virtual environment "
            "with --system-site-packages so that it sees them."
        )
    else:
        which = (
            f"This Python is not the system's ({_SYSTEM_PYTHON}): pyenv, conda or a python.org "
            "build do not see the system's PyGObject, whichever venv flags are used."
        )
    return (
        f"rfbsink needs GStreamer's Python bindings (PyGObject and GStreamer's GObject "
        f"introspection data), which come from the system, not from PyPI. {what}\n"
        f"{which}\n"
        "Fix (one of):\n"
        f"  1. The system's Python (Debian/Ubuntu):\n"
        f"       sudo apt install {_DEBIAN_PACKAGES}\n"
        f"       {_SYSTEM_PYTHON} -m venv --system-site-packages env && env/bin/pip install <rfbsink>/python\n"
        "  2. This Python, with PyGObject built from PyPI against the system's GStreamer:\n"
        "       sudo apt install libgirepository1.0-dev libcairo2-dev pkg-config python3-dev "
        "gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0\n"
        "       pip install 'PyGObject<3.51'   # 3.51 and later need GLib 2.80 (Debian 13)\n"
        "  3. conda: conda install -c conda-forge pygobject gstreamer gst-plugins-base "
        "gst-plugins-good\n"
        "(pushing pictures is fastest with the system's python3-gst-1.0 overrides, option 1; "
        "the others work through one more copy)."
    )


try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstVideo", "1.0")
    from gi.repository import GLib, Gst, GstVideo
except (ImportError, ValueError) as e:
    raise ImportError(explain(e), name=getattr(e, "name", None)) from e

__all__ = ["GLib", "Gst", "GstVideo"]
