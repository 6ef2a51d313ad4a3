"""Safe image decoding: bytes -> RGB uint8 array, EXIF orientation applied, size capped."""

from __future__ import annotations

import functools
import io
import re
import warnings
from collections.abc import Callable
from typing import Literal

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ground.errors import ImageDecodeError

DEFAULT_MAX_PIXELS = 50_000_000  # ~ a 8660x5773 photo: above every camera trap, below a bomb

DecodeReason = Literal["empty", "not_image", "truncated", "corrupt", "too_large", "unsupported"]

# EXIF orientation -> operations that bring the stored pixels upright (see the EXIF 2.32 spec).
_ORIENT_OPS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1, :],
    5: lambda a: np.transpose(a, (1, 0, 2)),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: np.transpose(a, (1, 0, 2))[::-1, ::-1],
    8: lambda a: np.rot90(a, k=1),
}


def _looks_truncated(fmt: str | None, data: bytes) -> bool:
    # libjpeg and libpng "recover" from a cut-off stream by filling grey, which would silently
    # score a half image, so check the end-of-stream markers ourselves.
    tail = data.rstrip(b"\x00")
    if fmt == "JPEG":
        return not tail.endswith(b"\xff\xd9")
    if fmt == "PNG":
        return b"IEND" not in tail[-12:]
    return False


# In a JPEG's compressed data a 0xFF byte is followed by 0x00 (a stuffed byte), a restart marker (D0-D7) or more fill;
# the first other marker ends the scan, and only these may come after one (EOI, tables, the next scan, comments).
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_AFTER_SCAN = {0xD9, 0xC4, 0xCC, 0xDA, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)}


def jpeg_corruption(data: bytes) -> str | None:
    """Where a JPEG's compressed data breaks the format (None when it does not): a body that is garbage after a valid
    header. libjpeg decodes such a stream anyway, with a "Corrupt JPEG data" warning on stderr and grey or smeared
    pixels past the damage, which would silently score as an empty image, so the structure is checked here (the
    marker walk, then a C-speed search through each scan: a few ms for a 5 MB photo)."""
    i, n = 2, len(data)  # after SOI
    while i + 4 <= n:
        if data[i] != 0xFF:
            return f"corrupt JPEG data: byte 0x{data[i]:02X} where a marker belongs, at byte {i} of {n}"
        marker = data[i + 1]
        if marker == 0xFF:  # fill before a marker
            i += 1
            continue
        if marker == 0xD9:
            return None
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")  # a segment: its length counts its own two bytes
        if marker != 0xDA:
            continue
        end = _SCAN_END.search(data, i)  # the scan's compressed data runs to the next marker
        if end is None:
            return None  # no end-of-image marker: _looks_truncated's case
        i = end.start()
        if data[i + 1] not in _AFTER_SCAN:
            return (f"corrupt JPEG data: marker 0xFF{data[i + 1]:02X} inside the compressed data at byte {i} of {n} "
                    "(libjpeg would fill the rest of the image with grey)")
    return None


def _orient(rgb: np.ndarray, orientation: int) -> np.ndarray:
    op = _ORIENT_OPS.get(orientation)
    return np.ascontiguousarray(op(rgb)) if op else rgb


def probe_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, int, int, int]:
    """Read only the header: (format, width, height, EXIF orientation); raise ImageDecodeError."""
    if not data:
        raise ImageDecodeError("empty", "empty body: expected image bytes (JPEG, PNG, TIFF, WebP, GIF, BMP)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            fmt = img.format
            try:
                orientation = int(img.getexif().get(0x0112, 1))
            except Exception:  # noqa: BLE001 - broken EXIF must not reject a good image
                orientation = 1
    except UnidentifiedImageError:
        raise ImageDecodeError("not_image", f"not a recognised image ({len(data)} bytes)") from None
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError("too_large", f"image is over the cap of {max_pixels} pixels ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError("truncated", f"corrupt or truncated image header: {exc}") from None
    if width <= 0 or height <= 0:
        raise ImageDecodeError("not_image", f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageDecodeError(
            "too_large", f"image is {width}x{height} = {width * height} pixels, over the cap of {max_pixels}"
        )
    return fmt or "unknown", width, height, orientation if 1 <= orientation <= 8 else 1


_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def jpeg_reduction(width: int, height: int, orientation: int, need: tuple[int, int]) -> int:
    """The largest JPEG DCT scale-down (1, 2, 4 or 8) that keeps the upright image at least `need` (width, height)."""
    need_w, need_h = need
    if orientation >= 5:  # stored rotated by 90 degrees: the stored width becomes the upright height
        need_w, need_h = need_h, need_w
    for factor in (8, 4, 2):
        if -(-width // factor) >= need_w and -(-height // factor) >= need_h:
            return factor
    return 1


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode image bytes to an upright RGB uint8 array (H, W, 3).

    The header is checked against `max_pixels` before any pixel is decoded, so a
    decompression bomb costs a header read, not gigabytes.
    """
    return decode_image_at_least(data, max_pixels, None)[0]


def decode_image_at_least(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
    at_least: Callable[[int, int], tuple[int, int]] | None = None,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Like `decode_image`, but a JPEG may be decoded scaled down while it stays at least `at_least(w, h)`.

    `at_least` maps the upright full size (width, height) to the smallest acceptable decoded size.

    libjpeg decodes at 1/2, 1/4 or 1/8 scale for a fraction of the cost (it skips most of the
    inverse DCT), which is the dominant cost of a 1080p frame headed for a 640 px model.
    Returns the RGB array and the upright size (width, height) of the full-resolution image.
    """
    _quiet_opencv()
    fmt, width, height, orientation = probe_image(data, max_pixels)
    if _looks_truncated(fmt, data):
        raise ImageDecodeError("truncated", f"truncated {fmt} stream: the end-of-image marker is missing")
    if fmt == "JPEG" and (corruption := jpeg_corruption(data)):
        raise ImageDecodeError("corrupt", corruption)
    upright = (height, width) if orientation >= 5 else (width, height)
    factor = jpeg_reduction(width, height, orientation, at_least(*upright)) if (at_least and fmt == "JPEG") else 1
    flag = _REDUCED_FLAGS[factor] if factor > 1 else cv2.IMREAD_COLOR
    buf = np.frombuffer(data, dtype=np.uint8)
    bgr = cv2.imdecode(buf, flag | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is not None:
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    else:
        rgb = _decode_with_pillow(data, fmt)  # formats OpenCV lacks (GIF) or rejects
    if rgb.shape[0] * rgb.shape[1] > max_pixels:
        raise ImageDecodeError("too_large", f"decoded image exceeds the cap of {max_pixels} pixels")
    if factor == 1:  # the header may lie (e.g. a GIF's logical screen); trust the pixels
        upright = (rgb.shape[0], rgb.shape[1]) if orientation >= 5 else (rgb.shape[1], rgb.shape[0])
    return _orient(rgb, orientation), upright


@functools.cache
def _quiet_opencv() -> None:
    # OpenCV logs every rejected stream at ERROR level on stderr; we raise a typed error instead,
    # so the log line is noise (one per bad upload). Done on first use, not at import.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def _decode_with_pillow(data: bytes, fmt: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
            img.load()
            return np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError("truncated", f"corrupt or truncated {fmt} image: {exc}") from None


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """Encode an RGB array as JPEG bytes."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
