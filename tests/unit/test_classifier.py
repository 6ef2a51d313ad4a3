"""The onnx-classifier backend in the store, the shared crop code and the library pipeline (real ONNX Runtime)."""

from __future__ import annotations

import numpy as np
import pytest

from model_store import ClassifierConfig, ConfigError, CropOptions, FilterSet, ModelStore, Pipeline
from model_store.core.classifier import crop_input
from model_store.core.crops import SnipSet, crop_box, crop_region, snip_jpeg, snip_path
from model_store.core.imaging import decode_image
from model_store.core.pipeline import ClassifierRoute, resolve_routes, result_hash
from tests.fixtures.classifiers import COLOUR_LABELS, colour_classifier, colour_config, painted

DEER_BIG = (220, 180, 420, 300)  # where the constant fixture detector puts its best deer in a 640x480 image
DEER_SMALL = (560, 80, 640, 160)


@pytest.fixture
def store(local_store: ModelStore, colour_onnx) -> ModelStore:
    local_store.publish(colour_onnx, "colour", "1", colour_config())
    local_store.promote("colour:1")
    return local_store


def test_classifier_lives_in_the_store_like_a_detector(store: ModelStore, colour_onnx, tmp_path) -> None:
    mv = store.get("colour@production")
    assert mv.is_classifier and isinstance(mv.config, ClassifierConfig)
    assert mv.config.graph is not None and mv.config.graph.outputs[0].shape[1] == 3
    assert store.verify("colour:1").version == "1"
    store.publish(colour_onnx, "colour", "2", colour_config(top_k=3))
    store.promote("colour:2")
    assert store.resolve("colour").version == "2"
    store.rollback("colour")
    assert store.resolve("colour").version == "1"
    # The kinds do not mix: a detector load of a classifier (and the reverse) is a clear error.
    with pytest.raises(ConfigError, match="colour:1 is a classifier"):
        store.load_detector("colour:1")
    with pytest.raises(ConfigError, match="fixture:1 is a detector"):
        store.load_classifier("fixture:1")


def test_publish_refuses_a_config_that_contradicts_the_graph(store: ModelStore, colour_onnx) -> None:
    with pytest.raises(ConfigError, match=r"4 labels mean an output of \[N, 4\].*logits \[batch\?, 3\]"):
        store.publish(colour_onnx, "colour", "9", colour_config(labels=["a", "b", "c", "d"], taxonomy={}))
    with pytest.raises(ConfigError, match="taxonomy names labels the classifier does not have"):
        store.publish(colour_onnx, "colour", "9", colour_config(taxonomy={"purple": ["x"]}))
    assert "9" not in store.list_versions("colour")


def test_checksum_is_verified_before_a_classifier_loads(store: ModelStore) -> None:
    from pathlib import Path

    from model_store import ChecksumError

    weights = Path(store.storage.local_path("colour", "1", "model.onnx"))
    weights.write_bytes(weights.read_bytes() + b"x")
    with pytest.raises(ChecksumError):
        store.load_classifier("colour:1")


def test_classifier_answers_by_colour_with_real_onnx_runtime(store: ModelStore) -> None:
    clf = store.load_classifier("colour@production", threads=1)
    crops = [painted(40, 30, [(c, (0, 0, 40, 30))]) for c in COLOUR_LABELS]
    probs = clf.predict(crops)
    assert probs.shape == (3, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    answers = clf.classify(crops)
    assert [a.label for a in answers] == COLOUR_LABELS
    assert all(a.score > 0.9 and len(a.top) == 2 and a.model.version == "1" for a in answers)
    assert answers[0].taxon_path == ["colour", "warm", "red"]


def test_static_batch_classifier_runs_formed_batches_in_chunks(local_store: ModelStore, tmp_path) -> None:
    path = colour_classifier(tmp_path / "static.onnx", batch=1)
    local_store.publish(path, "colour-static", "1", colour_config())
    clf = local_store.load_classifier("colour-static:1")
    crops = [painted(20, 20, [(c, (0, 0, 20, 20))]) for c in ("blue", "red", "green")]
    assert [a.label for a in clf.classify(crops)] == ["blue", "red", "green"]


def test_crop_input_resizes_center_crops_and_normalises() -> None:
    cfg = ClassifierConfig.model_validate(colour_config(
        preprocess={"resize": "shorter_side", "crop_pct": 0.5, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        input_size=16, weights={"file": "model.onnx", "sha256": "0" * 64}))
    img = painted(64, 32, [("red", (16, 8, 48, 24))])  # the red square fills the central half
    x = crop_input(img, cfg)  # 16 px
    assert x.shape == (3, 16, 16) and x.dtype == np.float32
    assert np.allclose(x[0], (230 / 255 - 0.5) / 0.5, atol=0.02)  # all red: the center crop saw only it


def test_crop_region_pads_squares_and_stays_inside() -> None:
    assert crop_region((10, 10, 30, 20), 100, 100) == (10, 10, 30, 20)
    assert crop_region((10, 10, 30, 20), 100, 100, padding=0.5) == (0, 5, 40, 25)
    x0, y0, x1, y1 = crop_region((10, 40, 50, 60), 100, 100, square=True)
    assert (x1 - x0, y1 - y0) == (40, 40) and (x0, y0) == (10, 30)
    # At the edge a square crop is shifted back inside, not clipped to a rectangle.
    assert crop_region((90, 0, 100, 4), 100, 100, square=True) == (90, 0, 100, 10)
    # Bigger than the image: clipped, never empty.
    assert crop_region((0, 0, 100, 50), 100, 60, padding=1.0, square=True) == (0, 0, 100, 60)
    assert crop_box(np.zeros((5, 5, 3), np.uint8), (4.9, 4.9, 5, 5)).shape == (1, 1, 3)


def test_snips_have_deterministic_names_and_honour_min_side_px() -> None:
    opts = CropOptions(padding=0.1, square=True, min_side_px=16)
    snips = SnipSet("md", "5", "abc", opts)
    a = snip_path("cam1/2024/IMG 1.JPG", "/data/cam1/2024/IMG 1.JPG", "size=1;mtime_us=2", snips, 3)
    b = snip_path("cam1/2024/IMG 1.JPG", "/data/cam1/2024/IMG 1.JPG", "size=1;mtime_us=2", snips, 3)
    c = snip_path("cam1/2024/IMG 1.JPG", "/data/cam1/2024/IMG 1.JPG", "size=9;mtime_us=2", snips, 3)
    assert a == b and a != c
    assert a[:6] == ("crops", "md", "5", "abc", opts.hash, "cam1") and a[-1].startswith("IMG_1_")
    assert a[-1].endswith("_003.jpg")
    img = painted(100, 100, [("red", (10, 10, 40, 40))])
    assert snip_jpeg(img, (10, 10, 20, 40), opts) is None  # 10 px wide < 16
    jpeg = snip_jpeg(img, (10, 10, 40, 40), opts)
    assert decode_image(jpeg).shape == (36, 36, 3)


def test_pipeline_classifies_routed_kept_detections_only(store: ModelStore) -> None:
    det = store.load_detector("fixture:1")
    routes = resolve_routes(store, ["colour@production"], det.config.labels)  # applies_to: deer
    assert routes[0].labels == ("deer",) and routes[0].version == "1"
    pipe = Pipeline.load(store, routes)
    img = painted(640, 480, [("red", DEER_BIG), ("blue", DEER_SMALL)])
    [record] = det.predict_batch([img])
    pipe.classify([img], [record])
    by_label = {(d.label, d.box_px[0]): d for d in record.detections}
    assert by_label[("deer", 220.0)].classifications[0].label == "red"
    assert by_label[("deer", 560.0)].classifications[0].label == "blue"
    assert all(not d.classifications for d in record.detections if d.label == "fox")
    cls = by_label[("deer", 220.0)].classifications[0]
    assert cls.model.name == "colour" and len(cls.scores) == 3


def test_routes_are_checked(store: ModelStore) -> None:
    labels = ["deer", "fox"]
    with pytest.raises(ConfigError, match=r"routed detector labels \['cat'\]"):
        resolve_routes(store, ["colour=cat"], labels)
    with pytest.raises(ConfigError, match="fixture:1 is a detector"):
        resolve_routes(store, ["fixture:1"], labels)
    from model_store import FilterConfigError

    bad = FilterSet.from_specs([{"name": "classifier_mask", "config": {"allowed_labels": ["purple"]}}])
    with pytest.raises(FilterConfigError, match="unknown labels"):
        resolve_routes(store, ["colour"], labels, bad)
    assert ClassifierRoute.parse("colour@production=deer,fox").labels == ["deer", "fox"]
    fs = FilterSet()
    routes = resolve_routes(store, ["colour=fox"], labels)
    assert result_hash(fs, []) == fs.hash and result_hash(fs, routes) != fs.hash
    assert result_hash(fs, resolve_routes(store, ["colour=deer"], labels)) != result_hash(fs, routes)
