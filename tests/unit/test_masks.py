"""Mask assembly (model_store/core/masks.py) against Ultralytics' own arithmetic, and the RLE round trip.

`_reference` is Ultralytics 8.4's default predict path written out in torch (`ops.process_mask(...,
upsample=True)` then `ops.scale_masks(...) > 0.5`, as its `Annotator.masks` brings masks to the picture):
the windowed OpenCV path must give the same pixels on random prototypes, for letterboxes of every shape.
"""

from __future__ import annotations

import numpy as np
import pytest

from model_store.core.masks import MaskWindow, assemble, from_rle, to_rle
from model_store.core.preprocess import LetterboxMeta

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _reference(protos, coeffs, boxes, input_hw, image_hw):
    """Ultralytics: process_mask(upsample=True) -> crop_mask -> scale_masks(image) > 0.5 (full images)."""
    p = torch.from_numpy(protos)
    c, mh, mw = p.shape
    masks = (torch.from_numpy(coeffs) @ p.view(c, -1)).view(-1, mh, mw)
    masks = F.interpolate(masks[None], input_hw, mode="bilinear")[0].gt_(0.0).byte()
    b = torch.from_numpy(boxes)
    x1, y1, x2, y2 = torch.chunk(b[:, :, None], 4, 1)
    r = torch.arange(input_hw[1], dtype=x1.dtype)[None, None, :]
    cc = torch.arange(input_hw[0], dtype=x1.dtype)[None, :, None]
    masks = masks * ((r >= x1) * (r < x2)) * ((cc >= y1) * (cc < y2))
    keep = masks.amax((-2, -1)) > 0
    h1, w1 = input_hw
    h0, w0 = image_hw
    gain = min(h1 / h0, w1 / w0)
    pad_w, pad_h = (w1 - max(round(w0 * gain), 1)) / 2, (h1 - max(round(h0 * gain), 1)) / 2
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    bottom, right = top + max(round(h0 * gain), 1), left + max(round(w0 * gain), 1)
    full = F.interpolate(masks[None, :, top:bottom, left:right].float(), image_hw, mode="bilinear")[0] > 0.5
    return keep.numpy(), full.numpy()


def _meta(input_hw, image_hw) -> LetterboxMeta:
    """The letterbox trapline's preprocess gives an image of image_hw in an input of input_hw."""
    (h1, w1), (h0, w0) = input_hw, image_hw
    s = min(h1 / h0, w1 / w0)
    nw, nh = max(1, round(w0 * s)), max(1, round(h0 * s))
    return LetterboxMeta(s, s, float(round((w1 - nw) / 2 - 0.1)), float(round((h1 - nh) / 2 - 0.1)), w0, h0)


@pytest.mark.parametrize(("input_hw", "image_hw"), [
    ((320, 320), (1080, 1920)),  # wide, padded top and bottom, upscaled
    ((320, 320), (997, 601)),    # portrait, odd
    ((320, 320), (61, 97)),      # tiny: the image is smaller than the input
    ((256, 320), (300, 400)),    # rect letterbox
    ((320, 320), (320, 320)),    # no letterbox at all
])
def test_windowed_masks_are_ultralytics_masks_pixel_for_pixel(input_hw, image_hw):
    rng = np.random.default_rng(sum(image_hw))
    mh, mw = input_hw[0] // 4, input_hw[1] // 4
    # smooth prototypes (as a trained model's are), so masks are blobs with long edges
    protos = np.stack([np.kron(rng.standard_normal((mh // 8 + 1, mw // 8 + 1)), np.ones((8, 8)))[:mh, :mw]
                       for _ in range(32)]).astype(np.float32)
    protos += 0.3 * rng.standard_normal(protos.shape).astype(np.float32)
    n = 12
    xy = rng.uniform(-10, [input_hw[1], input_hw[0]], (n, 2))
    wh = rng.uniform(2, 160, (n, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    coeffs = rng.standard_normal((n, 32)).astype(np.float32)
    keep, want = _reference(protos, coeffs, boxes, input_hw, image_hw)
    got = assemble(protos, coeffs, boxes, input_hw, _meta(input_hw, image_hw))
    assert [w is not None for w in got] == list(keep)
    for w, full in zip([w for w in got if w is not None], want[keep], strict=True):
        mine = w.full(*image_hw)
        # OpenCV's bilinear weights are in 1/32 steps: a pixel may flip where a value sits at the threshold
        assert (mine != full).sum() <= max(2, 0.002 * full.sum()), (mine != full).sum()


def test_rle_round_trips_and_is_pycocotools_own_encoding():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(1)
    pixels = rng.random((40, 30)) > 0.4
    for top, left in ((0, 0), (5, 7), (60, 70)):
        window = MaskWindow(top, left, pixels)
        full = window.full(100, 100)
        rle = to_rle(window, 100, 100)
        assert rle["size"] == [100, 100]
        assert rle["counts"] == mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))["counts"].decode()
        assert (from_rle(rle) == full).all()
    # a window whose first pixel is set starts with an empty background run
    edge = MaskWindow(0, 0, np.ones((3, 3), bool))
    assert (from_rle(to_rle(edge, 5, 5)) == edge.full(5, 5)).all()


def test_rle_of_windows_touching_every_edge_is_pycocotools_own():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(2)
    for top, left, h, w in ((0, 0, 30, 40), (0, 0, 30, 1), (10, 5, 20, 35), (0, 20, 30, 20), (29, 39, 1, 1)):
        pixels = rng.random((h, w)) > 0.5
        pixels[0, 0] = pixels[-1, -1] = True
        full = MaskWindow(top, left, pixels).full(30, 40)
        want = mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))["counts"].decode()
        assert to_rle(MaskWindow(top, left, pixels), 30, 40)["counts"] == want
