"""Safe decoding: formats, EXIF orientation, and a typed error for every bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from model_store.core.imaging import ImageDecodeError, decode_image, probe_image
from tests.fixtures.images import encode, garbage_after_header, gradient, png_with_declared_size


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP", "BMP", "GIF"])
def test_formats_decode_to_rgb(fmt):
    rgb = gradient()
    out = decode_image(encode(rgb, fmt))
    assert out.shape == (48, 64, 3) and out.dtype == np.uint8
    if fmt in ("PNG", "TIFF", "BMP"):
        assert np.array_equal(out, rgb)  # lossless formats round-trip exactly, in RGB order
    elif fmt != "GIF":
        assert np.abs(out.astype(int) - rgb).mean() < 6


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(orientation):
    data = encode(gradient(), "JPEG", orientation=orientation)
    import io

    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    out = decode_image(data)
    assert out.shape == expected.shape
    assert np.abs(out.astype(int) - expected).mean() < 3


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"hello, this is not an image at all", "not_image"),
    (b"%PDF-1.4 fake", "not_image"),
])
def test_bad_bytes(data, reason):
    with pytest.raises(ImageDecodeError) as err:
        decode_image(data)
    assert err.value.reason == reason and str(err.value)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(fmt):
    data = encode(gradient(256, 256), fmt)
    with pytest.raises(ImageDecodeError) as err:
        decode_image(data[: len(data) // 2])
    assert err.value.reason == "truncated"


def test_pixel_cap_checked_from_header_before_decoding():
    bomb = png_with_declared_size(60_000, 60_000)  # 3.6 Gpx declared, a few bytes on disk
    with pytest.raises(ImageDecodeError) as err:
        decode_image(bomb, max_pixels=50_000_000)
    assert err.value.reason == "too_large" and "3600000000 pixels" in str(err.value)
    with pytest.raises(ImageDecodeError, match="64x48 = 3072 pixels, over the cap of 100"):
        decode_image(encode(gradient(), "PNG"), max_pixels=100)
    with pytest.raises(ImageDecodeError, match="over the cap"):
        decode_image(png_with_declared_size(20_000, 20_000), max_pixels=50_000_000)


def test_probe_reads_header_only():
    fmt, w, h, orient = probe_image(encode(gradient(), "JPEG", orientation=6))
    assert (fmt, w, h, orient) == ("JPEG", 64, 48, 6)


def test_jpeg_reduction_factor():
    from model_store.core.imaging import jpeg_reduction

    assert jpeg_reduction(1920, 1080, 1, (640, 360)) == 2
    assert jpeg_reduction(1920, 1080, 1, (320, 180)) == 4
    assert jpeg_reduction(1920, 1080, 1, (1920, 1080)) == 1
    assert jpeg_reduction(4000, 3000, 1, (320, 240)) == 8
    assert jpeg_reduction(1920, 1080, 6, (360, 640)) == 2  # stored landscape, upright portrait


@pytest.mark.parametrize("orientation", [1, 6])
def test_reduced_decode_keeps_original_size(orientation):
    from model_store.core.imaging import decode_image_at_least

    data = encode(gradient(1920, 1080), "JPEG", orientation=orientation)
    upright = (1080, 1920) if orientation == 6 else (1920, 1080)
    rgb, size = decode_image_at_least(data, at_least=lambda w, h: (w // 3 + 1, h // 3 + 1))
    assert size == upright
    assert (rgb.shape[1], rgb.shape[0]) == (upright[0] // 2, upright[1] // 2)
    full, full_size = decode_image_at_least(data)
    assert full_size == upright and (full.shape[1], full.shape[0]) == upright


def test_a_jpeg_whose_data_is_garbage_after_its_header_is_corrupt_not_an_empty_image():
    with pytest.raises(ImageDecodeError) as err:
        decode_image(garbage_after_header())
    assert err.value.reason == "corrupt" and err.value.status == 422
    assert "corrupt JPEG data: marker 0xFF" in err.value.message and "inside the compressed data" in err.value.message


@pytest.mark.parametrize("options", [{"progressive": True}, {"progressive": True, "optimize": True},
                                     {"restart_marker_blocks": 4}, {"quality": 95, "subsampling": 0}])
def test_sound_jpeg_layouts_are_not_taken_for_corrupt(options):
    """Progressive scans (tables between scans), restart markers and stuffed bytes are the format's own."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(
        buf, "JPEG", **options)
    assert decode_image(buf.getvalue()).shape == (240, 320, 3)
