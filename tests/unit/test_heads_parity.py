"""The output heads agree with their own libraries on those libraries' exports (no Ray).

YOLO26's end-to-end head (Ultralytics `end2end=True`) and YOLOX (the YOLOX package, top-left padding, raw
0-255, with its own preproc and with zamba's PIL-bicubic black padding) are committed small and run here
through trapline's publish -> bytes -> record path; the other families' expected predictions are committed
and checked by `benchmarks/heads_parity.py`, which rebuilds their exports (see tests/fixtures/heads_parity.py).
"""

from __future__ import annotations

import pytest

from model_store import ModelStore
from tests.fixtures.heads_parity import HEADS, MAX_DSCORE, MIN_MATCHED, agreement, expected, publish

COMMITTED = sorted(n for n, m in expected()["models"].items() if m["committed"] or (HEADS / m["file"]).exists())


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    root = tmp_path_factory.mktemp("heads-parity")
    return ModelStore(str(root / "store"), cache_dir=str(root / "cache"))


def test_expected_predictions_cover_every_family_and_are_not_vacuous():
    models = expected()["models"]
    assert {"yolo26n_default", "yolo26n_end2end", "yolov10n_end2end", "yolov8n_nms", "rtdetr_l", "yolox_nano",
            "yolox_nano_zamba"} <= set(models)
    for name, spec in models.items():
        assert len(spec["images"]) == 7, name  # the four reference images + portrait, greyscale, odd-sized
        assert sum(len(b) for b in spec["images"].values()) >= 20, name


@pytest.mark.parametrize("name", COMMITTED)
def test_committed_exports_match_their_library(store, name):
    det = store.load_detector(publish(store, name))
    total = agreement(det, name)
    print(f"{name}: {total.summary()}, max |dscore| {max(total.dscores, default=0):.4f}")
    assert total.reference >= 20
    assert total.match_rate >= MIN_MATCHED, total.misses
    assert max(total.dscores, default=0.0) <= MAX_DSCORE and not total.extras, total.extras
