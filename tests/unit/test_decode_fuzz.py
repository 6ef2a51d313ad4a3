"""Property test of the image decoder over hostile bytes: never a crash, always a typed error.

Seeds are valid JPEG / PNG / TIFF / GIF / WebP / BMP files; hypothesis truncates them, flips
and inserts bytes, patches header dimensions to huge values and glues formats together.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from model_store.core.imaging import ImageDecodeError, decode_image
from tests.fixtures.images import encode, gradient

FORMATS = ["JPEG", "PNG", "TIFF", "GIF", "WEBP", "BMP"]
SEEDS = {fmt: encode(gradient(40, 30), fmt) for fmt in FORMATS}
SEEDS["JPEG_EXIF"] = encode(gradient(40, 30), "JPEG", orientation=6)
MAX_PIXELS = 4_000_000


def _check(data: bytes) -> None:
    try:
        out = decode_image(data, max_pixels=MAX_PIXELS)
    except ImageDecodeError as exc:
        assert exc.reason in {"empty", "not_image", "truncated", "corrupt", "too_large", "unsupported"}
        assert str(exc)
        return
    assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.shape[0] * out.shape[1] <= MAX_PIXELS


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "dims", "glue"]))
        if op == "truncate" and len(data) > 1:
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif op == "flip" and data:
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        elif op == "insert":
            i = draw(st.integers(0, len(data)))
            data[i:i] = draw(st.binary(min_size=1, max_size=64))
        elif op == "dims" and len(data) > 24:
            # Overwrite a 4-byte or 2-byte field near the header with a huge value: declared
            # dimensions of bombs live there in every format we accept.
            i = draw(st.integers(0, min(len(data), 200) - 4))
            data[i:i + 4] = struct.pack(">I", draw(st.integers(30_000, 0xFFFFFFFF)))
        elif op == "glue":
            data += SEEDS[draw(st.sampled_from(FORMATS))]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_images_never_crash(data):
    _check(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash(data):
    _check(data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_prefix_of_a_small_file(fmt):
    data = SEEDS[fmt]
    for cut in range(0, len(data), max(1, len(data) // 60)):
        _check(data[:cut])


def test_each_way_of_being_bad_has_its_own_reason():
    """The fuzz tests above accept any of the typed reasons; here each reason is pinned to the input that earns it,
    so a decoder that called everything `not_image` (or decoded a bomb) would fail."""
    def reason(data: bytes) -> str:
        with pytest.raises(ImageDecodeError) as err:
            decode_image(data, max_pixels=MAX_PIXELS)
        return err.value.reason

    jpeg, png = SEEDS["JPEG"], SEEDS["PNG"]
    assert reason(b"") == "empty"
    assert reason(b"hello, this is not an image at all") == "not_image"
    assert reason(jpeg[: len(jpeg) // 2]) == "truncated"
    scan = jpeg.index(b"\xff\xda") + 20  # a marker libjpeg would hit in the compressed data, end marker kept
    assert reason(jpeg[:scan] + b"\xff\x18 garbage" + jpeg[scan + 10:]) == "corrupt"
    # a PNG whose IHDR declares 100,000 x 100,000 pixels: refused from the header, never decoded
    bomb = bytearray(png)
    bomb[16:24] = struct.pack(">II", 100_000, 100_000)
    bomb[29:33] = struct.pack(">I", zlib.crc32(bytes(bomb[12:29])))  # the chunk's CRC, so only the size is wrong
    assert reason(bytes(bomb)) == "too_large"
    # and the seeds themselves decode, at their size, EXIF orientation applied (40 x 30 turned to 30 x 40)
    assert decode_image(jpeg, max_pixels=MAX_PIXELS).shape == (30, 40, 3)
    assert decode_image(SEEDS["JPEG_EXIF"], max_pixels=MAX_PIXELS).shape == (40, 30, 3)
