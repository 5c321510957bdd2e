"""numpy arrays to the raw video GStreamer carries: which format, and the bytes with its row strides.

One copy per push: the bytes handed to GStreamer are a snapshot, so the caller may reuse or change
its array as soon as push() returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

Window = Tuple[float, float]


class FrameError(ValueError):
    """An array that cannot be a picture (wrong shape, dtype, size)."""


@dataclass(frozen=True)
class Frame:
    """One picture, ready for appsrc: the GStreamer format name, size and packed bytes."""

    format: str  # GStreamer video format: GRAY8, GRAY16_LE, RGB, RGBA
    width: int
    height: int
    data: bytes  # rows padded to GStreamer's default stride (4-byte aligned)


MAX_SIDE = 16384  # rfbsink's caps


def _stride(row_bytes: int) -> int:
    # GStreamer's default strides for RGB, GRAY8 and GRAY16 round each row up to 4 bytes.
    return (row_bytes + 3) & ~3


def _pack(pixels: np.ndarray, fmt: str) -> Frame:
    """`pixels`: (h, w) or (h, w, c) of uint8, or (h, w) of little-endian uint16."""
    height, width = pixels.shape[:2]
    raw = np.ascontiguousarray(pixels)
    row_bytes = raw.strides[0]
    stride = _stride(row_bytes)
    if stride == row_bytes:
        return Frame(fmt, width, height, raw.tobytes())
    padded = np.zeros((height, stride), dtype=np.uint8)
    padded[:, :row_bytes] = raw.view(np.uint8).reshape(height, row_bytes)
    return Frame(fmt, width, height, padded.tobytes())


def _range(values: np.ndarray, window: Optional[Window]) -> Window:
    if window is not None:
        return window
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return (0.0, 1.0)
    return (float(finite.min()), float(finite.max()))


def _scale(values: np.ndarray, window: Window, top: int, dtype) -> np.ndarray:
    """Maps `window` linearly onto 0..top (clipped; NaN is 0)."""
    low, high = window
    span = high - low
    if not span > 0:
        # A flat picture (or an empty window): all mid-gray rather than a division by zero.
        return np.full(values.shape, top // 2, dtype=dtype)
    scaled = (values.astype(np.float64) - low) * (top / span)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=top, neginf=0.0)
    return np.clip(np.rint(scaled), 0, top).astype(dtype)


def to_frame(array, *, deep: bool, window: Optional[Window] = None) -> Frame:
    """The picture in `array`.

    - `deep`: the stream carries 16-bit gray losslessly (codec "lossless"); otherwise every
      picture becomes 8-bit.
    - uint8 (h, w), (h, w, 1), (h, w, 3), (h, w, 4): GRAY8, RGB, RGBA as they are.
    - uint16 gray: GRAY16_LE as it is when `deep`, else the window (default: the picture's
      range) mapped onto 0..255.
    - int8/int16 gray: shifted to unsigned (lossless); other integer and float gray: the window
      (default: the picture's range) mapped onto 0..65535 (`deep`) or 0..255.
    - bool: 0 and 255.
    - float RGB/RGBA: 0..1 as 0..255 (clipped), like matplotlib's imshow; other integer colour:
      the window mapped onto 0..255.
    """
    if not isinstance(array, np.ndarray):
        try:
            array = np.asarray(array)
        except Exception as e:  # noqa: BLE001 - anything numpy cannot read is the caller's error
            raise FrameError(f"expected a numpy array, got {type(array).__name__}: {e}") from None
    if array.dtype.kind not in "biuf":
        raise FrameError(f"unsupported dtype {array.dtype}: use uint8, uint16, int, float or bool")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise FrameError(
            f"unsupported shape {array.shape}: expected (height, width) gray, "
            "(height, width, 3) RGB or (height, width, 4) RGBA"
        )
    height, width = array.shape[:2]
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise FrameError(f"a {width}x{height} picture: each side must be 1..{MAX_SIDE} pixels")
    kind, size = array.dtype.kind, array.dtype.itemsize

    if array.ndim == 3:
        fmt = "RGB" if array.shape[2] == 3 else "RGBA"
        if kind == "u" and size == 1:
            return _pack(array, fmt)
        if kind == "b":
            return _pack(array.astype(np.uint8) * 255, fmt)
        if kind == "f":
            return _pack(_scale(array, window or (0.0, 1.0), 255, np.uint8), fmt)
        return _pack(_scale(array, _range(array, window), 255, np.uint8), fmt)

    if kind == "b":
        return _pack(array.astype(np.uint8) * 255, "GRAY8")
    if kind == "u" and size == 1 and window is None:
        return _pack(array, "GRAY8")
    if not deep:
        return _pack(_scale(array, _range(array, window), 255, np.uint8), "GRAY8")
    if window is None and kind == "u" and size == 2:
        return _pack(array.astype("<u2", copy=False), "GRAY16_LE")
    if window is None and kind == "i" and size <= 2:
        shifted = array.astype(np.int32) + (1 << (8 * size - 1))
        if size == 1:
            return _pack(shifted.astype(np.uint8), "GRAY8")
        return _pack(shifted.astype("<u2"), "GRAY16_LE")
    return _pack(_scale(array, _range(array, window), 65535, "<u2"), "GRAY16_LE")
