"""numpy arrays to the raw video GStreamer carries: which format, and the pixels in it.

to_pixels() decides the format and converts only what must be (a dtype, a scale); an array that
already is what GStreamer carries comes back as it is, a view. The Stream then copies it once into
GStreamer's memory (row strides included), so the caller may reuse or change its array as soon as
push() returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

Window = Tuple[float, float]


class FrameError(ValueError):
    """An array that cannot be a picture (wrong shape, dtype, size)."""


@dataclass(frozen=True)
class Pixels:
    """One picture in a GStreamer format: GRAY8, RGB, RGBA ((h, w[, c]) uint8) or GRAY16_LE
    ((h, w) little-endian uint16). `array` may be a view of the caller's array."""

    format: str
    array: np.ndarray
    # GRAY16_LE: the values the viewer should show black and white, in the values sent (None:
    # follow each picture's range).
    window: Optional[Tuple[int, int]] = None

    @property
    def width(self) -> int:
        return self.array.shape[1]

    @property
    def height(self) -> int:
        return self.array.shape[0]

    @property
    def row_bytes(self) -> int:
        return self.width * self.array.dtype.itemsize * (self.array.shape[2] if self.array.ndim == 3 else 1)

    @property
    def stride(self) -> int:
        # GStreamer's default strides for RGB, GRAY8 and GRAY16 round each row up to 4 bytes.
        return (self.row_bytes + 3) & ~3

    @property
    def size(self) -> int:
        return self.stride * self.height

    def rows_of(self, memory) -> np.ndarray:
        """`memory` (a buffer of `size` bytes laid out as GStreamer does) as an array shaped like
        `array`: write into it, or compare with it."""
        rows = np.frombuffer(memory, np.uint8, count=self.size).reshape(self.height, self.stride)
        rows = rows[:, : self.row_bytes].view(self.array.dtype)
        return rows.reshape(self.array.shape)

    def to_bytes(self) -> bytes:
        """The picture laid out as GStreamer does (one copy)."""
        out = bytearray(self.size)
        np.copyto(self.rows_of(out), self.array)
        return bytes(out)


MAX_SIDE = 16384  # rfbsink's caps


def _pack(pixels: np.ndarray, fmt: str, window: Optional[Tuple[int, int]] = None) -> Pixels:
    return Pixels(fmt, pixels, window)


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


def to_pixels(array, *, deep: bool, window: Optional[Window] = None) -> Pixels:
    """The picture in `array`.

    - `deep`: the stream carries 16-bit gray losslessly (codec "lossless"); otherwise every
      picture becomes 8-bit.
    - uint8 (h, w), (h, w, 1), (h, w, 3), (h, w, 4): GRAY8, RGB, RGBA as they are.
    - uint16 gray: GRAY16_LE as it is when `deep` (the viewer applies the window), else the
      window (default: the picture's range) mapped onto 0..255.
    - int8/int16 gray: shifted to unsigned (lossless; the window shifted with it); other integer
      and float gray: the window (default: the picture's range) mapped onto 0..65535 (`deep`)
      or 0..255.
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
    if kind == "u" and size == 2:
        return _pack(array.astype("<u2", copy=False), "GRAY16_LE", _window16(window, 0))
    if kind == "i" and size == 2:
        shifted = (array.astype(np.int32) + 32768).astype("<u2")
        return _pack(shifted, "GRAY16_LE", _window16(window, 32768))
    if window is None and kind == "i" and size == 1:
        return _pack((array.astype(np.int16) + 128).astype(np.uint8), "GRAY8")
    # Scaled: the window (or the picture's range) fills 0..65535, so the viewer shows all of it.
    return _pack(_scale(array, _range(array, window), 65535, "<u2"), "GRAY16_LE", None if window is None else (0, 65535))


def _window16(window: Optional[Window], offset: int) -> Optional[Tuple[int, int]]:
    """A window in the data's values as one in the 16-bit values sent (clamped, low < high)."""
    if window is None:
        return None
    low = int(np.clip(round(window[0]) + offset, 0, 65534))
    high = int(np.clip(round(window[1]) + offset, low + 1, 65535))
    return (low, high)
