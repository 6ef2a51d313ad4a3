"""Tiled inference against MegaDetector's own `run_tiled_inference`, box for box (issue 70).

tests/fixtures/reference/build_megadetector_tiled.py ran megadetector 10.0 in a peer virtualenv: its PTDetector on the
PyTorch checkpoint of mdv5_style_dynamic.onnx (the same weights, checked), its tile boundaries, its per-tile NMS and
its cross-tile de-duplication; megadetector_tiled_expected.json holds its boxes (score >= 0.29). trapline runs the ONNX
file, published with the megadetector-v5 preset, with `tiling: "megadetector"` (MegaDetector's settings and merge
rule, model_store/core/tile_merge.py) and the fixture's tile size and overlap.

The bar, the issue's: >= 99 % of the reference boxes (score >= 0.3) have a same-class box at IoU >= 0.9 (or every
corner within 0.5 px: MegaDetector writes boxes as 4-digit fractions of the image, and the random model gives some
boxes under a pixel high) within 0.01 of its score, and no extra box >= 0.3. One exception, counted and bounded: where
two boxes overlap above the NMS threshold with scores MegaDetector writes as equal (cut to 3 decimals; on up-scaled
tiles the random model scores many boxes exactly 1.0), which one survives is the order of equal scores in each
library's sort (torch's per-tile sort is not stable), not tiling: such a miss paired with such an extra of ours is
an equal-score pair, allowed up to 1 % of the reference boxes. On images where the random model saturates (reference
boxes at 1.000: the up-scaled tiles), a different choice among equal scores also changes what that box suppressed
and which 300 boxes a tile keeps, so there up to 1 % of extra boxes is allowed too (measured: BENCHMARKS.md); on
the others, no extra box and no unpaired miss. Boxes without area (MegaDetector keeps those a tile's edge clipped to
nothing, trapline drops them) are no animal and are left out on both sides. The 4000x3000 frame (24 tiles of 1280
px, ~18 s here) runs only with TRAPLINE_SLOW_PARITY=1 (it matched 176/176 on 2026-11-28). The fixture's tiles were
written losslessly; MegaDetector's own JPEG tiles (quality 95) change the random model's boxes wholesale
(BENCHMARKS.md). Saturated images are judged only on the CPU kernels the fixture was made with
(tests/fixtures/reference/machine.py); elsewhere they are skipped, saying so.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from ground.errors import TilingConfigError
from model_store import ModelStore
from model_store.core.agreement import Box
from model_store.core.tile_merge import merge_boxes
from model_store.core.tiling import MEGADETECTOR, TilingConfig, parse_tiling_option, resolve_tiling, tile_origins
from tests.fixtures.md_tiled import judge, reference
from tests.fixtures.parity import publish_reference, skip_saturated_on_other_kernels

MD_MERGE = TilingConfig(**MEGADETECTOR)  # its merge rule, IoU, 0.45, across labels

SLOW = set() if os.environ.get("TRAPLINE_SLOW_PARITY") else {"tests/fixtures/reference/images/photo_4000x3000.jpg"}


def cases() -> list[tuple[str, str]]:
    return [(setting, image) for setting, per_image in reference()["runs"]["lossless"].items()
            for image in per_image if image not in SLOW]


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    root = tmp_path_factory.mktemp("md-tiling-parity")
    store = ModelStore(str(root / "store"), cache_dir=str(root / "cache"))
    return store.load_detector(publish_reference(store, "mdv5_style_dynamic"))


@pytest.mark.parametrize(("setting", "image"), cases())
def test_tiled_boxes_equal_megadetectors_run_tiled_inference(detector, setting, image):
    skip_saturated_on_other_kernels(reference(), [Box(r[0], r[1], tuple(r[2:]))
                                                  for r in reference()["runs"]["lossless"][setting][image]])
    j = judge(detector, "lossless", setting, image)
    a = j.agreement
    assert j.tiling["merge"] == "megadetector" and not j.tiling["whole_image_run"]
    assert a.reference > 0 and a.matched >= 0.99 * a.reference, a.misses[:3]
    assert j.pairs <= 0.01 * a.reference, a.misses[:3]
    if j.saturated:  # an equal-score choice also changes what that box suppressed and which 300 boxes a tile keeps
        assert len(j.left_extra) <= 0.01 * a.reference, [str(b) for b in j.left_extra]
    else:
        assert not j.left_missed and not j.left_extra, [*a.misses[:3], *a.extras[:3]]


def test_the_megadetector_geometry_is_get_patch_boundaries():
    """333x250 tiles at 0.5 overlap on 1000x700: MegaDetector steps round(166.5) = 166 px (SAHI 333 - 166 = 167);
    its get_patch_boundaries((1000, 700), (333, 250), (166, 125)) printed these starts (megadetector 10.0.28)."""
    xs, ys = [0, 166, 332, 498, 664, 667], [0, 125, 250, 375, 450]
    md = tile_origins(1000, 700, 333, 250, 0.5, "megadetector")
    assert [(b[0], b[1]) for b in md] == [(x, y) for y in ys for x in xs]
    assert all((b[2] - b[0], b[3] - b[1]) == (333, 250) for b in md)
    assert [b[0] for b in tile_origins(1000, 700, 333, 250, 0.5)][:5] == [0, 167, 334, 501, 667]


def test_the_megadetector_preset_and_its_errors():
    md = resolve_tiling(None, "megadetector", (1280, 1280))
    assert md.describe((1280, 1280)) | {"batch_tiles": 0, "max_tiles": 0} == {
        "tile_size": [1280, 1280], "overlap": 0.5, "whole_image": False, "merge": "megadetector",
        "match_metric": "iou", "match_threshold": 0.45, "class_agnostic": True, "min_box_px": 0.0,
        "geometry": "megadetector", "batch_tiles": 0, "max_tiles": 0}
    assert resolve_tiling(None, {"preset": "megadetector", "overlap": 0.25}, (640, 640)).overlap == 0.25
    assert parse_tiling_option("megadetector") == "megadetector"
    with pytest.raises(TilingConfigError, match='tiling.preset must be "megadetector"'):
        resolve_tiling(None, {"preset": "md"}, (640, 640))
    with pytest.raises(TilingConfigError, match="tiling.overlap"):
        resolve_tiling(None, {"preset": "megadetector", "overlap": 1}, (640, 640))


def test_the_megadetector_rule_keeps_what_megadetectors_nms_keeps():
    """Scores cut to 3 decimals decide; equal ones keep the earlier tile's box, within a tile the lower score's (its
    detector lists a tile's boxes lowest first and torchvision's sort is stable); a box overlapping a kept one at
    exactly the threshold survives (torchvision drops only above it); boxes come out in whole pixels."""
    boxes = np.array([[0, 0, 100, 100], [10.4, 0, 110.4, 100], [200, 200, 300, 300], [200, 245, 300, 345]], float)
    scores = np.array([0.9999, 0.9991, 0.8, 0.7])

    def kept(tiles):
        b, s, _ = merge_boxes(boxes, scores, np.zeros(4, int), MD_MERGE, np.array(tiles))
        return sorted(zip(s.tolist(), b.tolist()))

    # box 3 overlaps box 2 by 55 / 145 = 0.379: kept either way; boxes 0 and 1 overlap by 0.81
    assert kept([1, 0, 0, 0]) == [(0.7, [200, 245, 300, 345]), (0.8, [200, 200, 300, 300]),
                                  (0.9991, [10, 0, 110, 100])]  # both cut to 0.999: tile 0's first
    assert kept([0, 0, 0, 0])[-1] == (0.9991, [10, 0, 110, 100])  # one tile: the lower score first
    assert kept([0, 1, 0, 0])[-1] == (0.9999, [0, 0, 100, 100])
    nms, _, _ = merge_boxes(boxes, scores, np.zeros(4, int), MD_MERGE.model_copy(update={"merge": "nms"}))
    assert nms[0].tolist() == [0, 0, 100, 100]  # plain NMS: the best score, whatever its tile
    touching = np.array([[0, 0, 100, 100], [0, 0, 100, 45]], float)  # IoU 0.45 exactly
    b, _, _ = merge_boxes(touching, np.array([0.9, 0.8]), np.zeros(2, int), MD_MERGE, np.zeros(2, int))
    assert len(b) == 2
