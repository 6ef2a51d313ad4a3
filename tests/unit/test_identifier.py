"""Identifier models: publishing both backends in the store, describing snips, matching, calibration."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ground.errors import ConfigError, LabelNotCoveredError
from model_store.core.config import Calibration, parse_any_config
from model_store.core.identify.calibration import fit_calibration, p_same
from model_store.core.identify.gallery import Gallery
from model_store.store.store import ModelStore
from tests.fixtures.identifiers import grid_embedding
from tests.fixtures.reid_scenes import coat, sightings, view

KEYPOINTS = {"backend": "keypoints", "applies_to": ["zebra"], "description": "coat keypoints"}


@pytest.fixture()
def store(tmp_path) -> ModelStore:
    return ModelStore(str(tmp_path / "models"), cache_dir=str(tmp_path / "cache"))


def test_keypoints_identifier_is_published_as_its_config_alone(store, tmp_path):
    mv = store.publish(None, "coats", "1", KEYPOINTS)
    assert sorted(os.listdir(tmp_path / "models" / "coats" / "1")) == ["README.md", "config.json"]
    assert mv.kind == "identifier" and len(mv.sha256) == 64
    store.publish(None, "coats", "2", {**KEYPOINTS, "keypoints": {"ratio": 0.75}})
    assert store.get("coats:2").sha256 != mv.sha256  # another parameter set is another model
    store.promote("coats:1")
    store.promote("coats:2")
    assert store.rollback("coats").version == "1"
    ident = store.load_identifier("coats")
    assert ident.info.version == "1" and ident.config.keypoints.ratio == 0.8


def test_identifier_kinds_are_not_interchangeable(store, tmp_path):
    store.publish(None, "coats", "1", KEYPOINTS)
    with pytest.raises(ConfigError, match="coats:1 is a identifier .*not a detector"):
        store.load_detector("coats:1")
    with pytest.raises(ConfigError, match="keypoints has no weights"):
        store.publish(grid_embedding(tmp_path / "g.onnx"), "coats", "2", KEYPOINTS)
    with pytest.raises(ConfigError, match="applies_to"):
        store.publish(None, "coats", "3", {**KEYPOINTS, "applies_to": []})
    with pytest.raises(ConfigError, match="only a keypoints identifier is published without weights"):
        store.publish(None, "coats", "4", {"backend": "onnx-embedding", "applies_to": ["zebra"]})


def test_onnx_embedding_reads_its_input_size_from_the_graph_and_matches_by_cosine(store, tmp_path):
    onnx = grid_embedding(tmp_path / "grid.onnx", input_size=64)
    mv = store.publish(onnx, "grid", "1", {"backend": "onnx-embedding", "applies_to": ["zebra"]})
    assert mv.config.input_size == (64, 64) and mv.config.graph is not None
    with pytest.raises(ConfigError, match="fixed at 64x64"):
        store.publish(onnx, "grid", "2", {"backend": "onnx-embedding", "applies_to": ["zebra"], "input_size": 96})
    ident = store.load_identifier("grid:1")
    a, b = (coat(i)[0] for i in (0, 1))
    noisy = np.clip(a.astype(np.int16) + np.random.default_rng(0).integers(-6, 7, a.shape), 0, 255).astype(np.uint8)
    da, db, dn = ident.describe([a, b, noisy])
    assert abs(float(np.linalg.norm(da.vector)) - 1) < 1e-5
    assert ident.score(da, dn) > 0.99 > ident.score(da, db)
    gallery = Gallery(ident)
    gallery.add([da, db])
    best = gallery.query(dn)[0]
    assert best.index == 0 and best.p_same > 0.9


def test_keypoints_find_the_same_coat_under_another_pose_and_not_another_coat():
    cfg = parse_any_config(KEYPOINTS)
    from model_store.core.identify.identifier import Identifier
    from model_store.core.records import ModelInfo

    ident = Identifier(ModelInfo(name="k", version="1", sha256=cfg.sha256), cfg)
    flank, mask = coat(4)  # spots
    other, other_mask = coat(7)  # spots too: the same species, another individual
    rng = np.random.default_rng(3)
    d1, d2, d3 = ident.describe([view(flank, mask, rng, 0.6), view(flank, mask, rng, 0.6),
                                 view(other, other_mask, rng, 0.6)])
    same, different = ident.score(d1, d2), ident.score(d1, d3)
    assert same >= 15 > different
    p = ident.p_same([same, different])
    assert p[0] > 0.9 and p[1] < 0.5


def test_unidentifiable_snips_say_why_and_labels_outside_applies_to_are_refused():
    from model_store.core.identify.identifier import Identifier
    from model_store.core.records import ModelInfo

    cfg = parse_any_config(KEYPOINTS)
    ident = Identifier(ModelInfo(name="k", version="1", sha256=cfg.sha256), cfg)
    tiny, blank = np.zeros((10, 40, 3), np.uint8), np.full((120, 160, 3), 128, np.uint8)
    out = ident.describe([tiny, blank, None])
    assert out[0] == "snip 40x10 px is smaller than 24 px on its shorter side"
    assert out[1].startswith("snip is blank")
    assert out[2] == "no snip"
    with pytest.raises(LabelNotCoveredError, match="identifies zebra, not 'deer'") as err:
        ident.check_covers(["zebra", "deer"])
    assert err.value.status == 422 and err.value.code == "label_not_covered"


def test_calibration_default_then_fitted_from_confirmed_pairs():
    default = Calibration()
    assert p_same([10.0], default, "keypoints")[0] == pytest.approx(0.5)
    assert p_same([0.6], default, "onnx-embedding")[0] == pytest.approx(0.5)
    assert fit_calibration([1.0, 30.0], [False, True]) == default  # two pairs: too few to fit
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.uniform(0, 8, 40), rng.uniform(5, 40, 40)])
    same = [False] * 40 + [True] * 40
    fitted = fit_calibration(list(scores), same)
    assert fitted.kind == "isotonic" and fitted.fitted_pairs == 80
    p = p_same([0.0, 7.5, 30.0], fitted, "keypoints")  # 5..8: both kinds seen
    assert p[0] == 0.0 and p[2] == 1.0 and 0 < p[1] < 1
    cfg = parse_any_config({**KEYPOINTS, "calibration": fitted.model_dump(mode="json")})
    assert cfg.calibration == fitted
    with pytest.raises(ConfigError, match="isotonic calibration needs"):
        parse_any_config({**KEYPOINTS, "calibration": {"kind": "isotonic", "points": [[3, 0.2], [1, 0.9]]}})


def test_synthetic_sightings_are_deterministic():
    a, b = sightings(range(2), 2, seed=5), sightings(range(2), 2, seed=5)
    assert all(np.array_equal(x.snip, y.snip) for x, y in zip(a, b, strict=True))
    assert [s.individual for s in a] == [0, 0, 1, 1]
