"""Tiled inference (model_store/core/tiling.py, tile_merge.py) on real ONNX Runtime sessions: the tiles' geometry,
the typed errors of bad settings, the merge rules, one batch per image's tiles, and the memory an 8K frame takes."""

from __future__ import annotations

import json
import tracemalloc

import cv2
import numpy as np
import pytest

from ground.errors import ConfigError, ImageDecodeError, TilingConfigError
from model_store import ModelStore
from model_store.core.config import parse_config
from model_store.core.imaging import DEFAULT_MAX_PIXELS, decode_image
from model_store.core.tile_merge import merge_boxes
from model_store.core.tiling import TiledInput, TiledMeta, TilingConfig, resolve_tiling, tile_origins
from tests.fixtures.onnx_models import constant_model, fixture_config, yolov8_output
from tests.fixtures.parity import IMAGES, publish_reference


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    root = tmp_path_factory.mktemp("tiling")
    store = ModelStore(str(root / "store"), cache_dir=str(root / "cache"))
    publish_reference(store, "yolov8n_static")
    constant_model(yolov8_output(), root / "constant.onnx")
    store.publish(root / "constant.onnx", "constant", "1", fixture_config("yolov8"))
    return store


def test_tiles_follow_sahis_slices_shifted_back_inside_the_image():
    # 1920x1080 at 640 px, overlap 0.2: a step of 512; the last column and row end at the image's edge.
    tiles = tile_origins(1920, 1080, 640, 640, 0.2)
    assert tiles[:4] == [(0, 0, 640, 640), (512, 0, 1152, 640), (1024, 0, 1664, 640), (1280, 0, 1920, 640)]
    assert tiles[4:] == [(0, 440, 640, 1080), (512, 440, 1152, 1080), (1024, 440, 1664, 1080), (1280, 440, 1920, 1080)]
    assert tile_origins(97, 61, 640, 640, 0.2) == [(0, 0, 97, 61)]  # smaller than a tile: one, the image
    assert len(tile_origins(7680, 4320, 640, 640, 0.2)) == 15 * 9


@pytest.mark.parametrize(("override", "words"), [
    ({"overlap": 1.0}, "overlap"),
    ({"overlap": -0.1}, "overlap"),
    ({"tile_size": 1280}, "larger than the model's input 640x640"),
    ({"tile_size": 8}, "tile_size"),
    ({"merge": "wbf"}, "merge"),
    ({"match_threshold": 0}, "match_threshold"),
    ({"tile": 512}, "tile"),  # a typo is an error, not a silent default
    ("sometimes", "tiling must be"),
])
def test_a_bad_setting_is_a_typed_422_naming_it(override, words):
    with pytest.raises(TilingConfigError) as caught:
        resolve_tiling(None, override, (640, 640))
    assert words in str(caught.value) and caught.value.status == 422


def test_a_call_overrides_fields_of_the_models_tiling_and_can_turn_it_off():
    base = TilingConfig(overlap=0.3, merge="nms")
    assert resolve_tiling(base, {"whole_image": False}, (640, 640)) == TilingConfig(overlap=0.3, merge="nms",
                                                                                     whole_image=False)
    assert resolve_tiling(base, None, (640, 640)) is base
    assert resolve_tiling(base, "off", (640, 640)) is None and resolve_tiling(None, False, (640, 640)) is None
    assert resolve_tiling(None, True, (640, 640)) == TilingConfig()
    with pytest.raises(TilingConfigError, match="box models"):
        resolve_tiling(None, True, (640, 640), task="segment")


def test_a_config_json_with_a_bad_tiling_is_refused_naming_the_field():
    cfg = {**fixture_config("yolov8"), "weights": {"file": "model.onnx", "sha256": "0" * 64}}
    assert parse_config({**cfg, "tiling": {"tile_size": 256}}).tiling == TilingConfig(tile_size=(256, 256))
    with pytest.raises(ConfigError, match="tiling.overlap"):
        parse_config({**cfg, "tiling": {"overlap": 1.5}})
    with pytest.raises(ConfigError, match="larger than the model's input"):
        parse_config({**cfg, "tiling": {"tile_size": 512}})


def _sahi_case():
    # One deer cut by a tile edge into two boxes, seen whole by the whole-image pass, plus a fox on it.
    boxes = np.array([[100, 100, 200, 180], [190, 100, 260, 180], [100, 98, 262, 182], [110, 100, 200, 180],
                      [600, 600, 604, 640]], np.float32)
    scores = np.array([0.8, 0.6, 0.7, 0.5, 0.4], np.float32)
    classes = np.array([0, 0, 0, 1, 0])
    return boxes, scores, classes


def test_greedy_nmm_grows_the_best_box_by_the_boxes_inside_it_within_a_label():
    b, s, c = merge_boxes(*_sahi_case(), TilingConfig(merge="greedy_nmm", match_metric="ios", match_threshold=0.5))
    assert b.tolist()[0] == [100, 98, 262, 182] and s.tolist()[0] == pytest.approx(0.8) and c[0] == 0
    # The fox is its own label and the sliver stays; the right half matched only the whole box, which the left half
    # had claimed: SAHI's greedy rule matches against the keeper's own box, not the grown one, so it stays too.
    assert s.tolist() == pytest.approx([0.8, 0.6, 0.5, 0.4]) and c.tolist() == [0, 0, 1, 0]


def test_nms_keeps_the_best_box_and_class_agnostic_matching_takes_the_fox_too():
    b, s, c = merge_boxes(*_sahi_case(), TilingConfig(merge="nms", match_metric="ios", match_threshold=0.5,
                                                       class_agnostic=True))
    assert b.tolist()[0] == [100, 100, 200, 180] and s.tolist() == pytest.approx([0.8, 0.6, 0.4])  # fox suppressed
    b, s, c = merge_boxes(*_sahi_case(), TilingConfig(merge="nmm", match_metric="iou", match_threshold=0.5))
    assert len(s) == 4  # iou: the cut halves do not match the whole box


def test_a_small_image_tiled_is_the_plain_answer(store):
    det = store.load_detector("yolov8n_static:1")
    rgb = decode_image((IMAGES / "tiny_97x61.jpg").read_bytes())
    [plain], [tiled] = det.predict_batch([rgb]), det.predict_batch([rgb], tiling=True)
    assert tiled.tiling["tiles"] == 1 and not tiled.tiling["whole_image_run"]
    assert [d.box_px for d in tiled.detections] == [d.box_px for d in plain.detections]
    assert plain.tiling is None


def test_a_photos_tiles_run_as_one_batch_and_say_so_in_the_record(store):
    det = store.load_detector("yolov8n_static:1")
    passes = []
    run_tensor = det.run_tensor
    det.run_tensor = lambda tensor, interrupt=None: (passes.append(len(tensor)), run_tensor(tensor, interrupt))[1]
    rgb = decode_image((IMAGES / "wide_1920x1080.jpg").read_bytes())
    [record] = det.predict_batch([rgb], tiling={"min_box_px": 4})
    assert passes == [9]  # 8 tiles and the whole image: one forward pass
    assert record.tiling["tiles"] == 8 and record.tiling["tile_size"] == [640, 640]
    assert record.tiling["merge"] == "greedy_nmm" and record.detections
    assert all(d.box_px[2] - d.box_px[0] >= 4 and d.box_px[3] - d.box_px[1] >= 4 for d in record.detections)
    assert all(0 <= d.box_px[0] < d.box_px[2] <= 1920 and 0 <= d.box_px[1] < d.box_px[3] <= 1080
               for d in record.detections)
    json.dumps(record.model_dump(mode="json"))  # the record still serialises as the doors send it


def test_an_8k_frame_tiles_within_its_stated_memory(store):
    """510 tiles of 320 px (the constant fixture's input): views of the decoded frame, at most `batch_tiles` of them
    as tensors at once."""
    det = store.load_detector("constant:1")
    rgb = np.full((4320, 7680, 3), 90, np.uint8)
    tiling = det.tiling({"tile_size": 320, "batch_tiles": 16})
    tracemalloc.start()
    prepared, meta = det.prepare(rgb, tiling)
    [record] = det.run_prepared([prepared], [meta])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(prepared, TiledInput) and isinstance(meta, TiledMeta) and meta.tiles == 30 * 17
    per_tile = 320 * 320 * 3 * (1 + 4)  # uint8 planes and the float32 tensor
    assert peak < 16 * per_tile * 2 + 16 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    assert record.tiling["tiles"] == 510 and record.detections


def test_too_many_tiles_is_a_typed_failure_of_that_image(store):
    det = store.load_detector("constant:1")
    data = cv2.imencode(".png", np.zeros((2000, 2000, 3), np.uint8))[1].tobytes()
    det.config = det.config.model_copy(update={"tiling": TilingConfig(max_tiles=4)})
    det.preprocessor.config = det.config
    with pytest.raises(ImageDecodeError) as caught:
        det.prepare_bytes(data, DEFAULT_MAX_PIXELS)
    assert caught.value.reason == "too_many_tiles" and "max_tiles 4" in str(caught.value)


def test_a_runs_tiling_option_is_checked_field_by_field_at_the_door():
    from batch.reprocess.options import ReprocessOptions

    base = {"archive": "/tmp/a", "model": "m:1", "store": "/tmp/s", "out": "/tmp/o"}
    assert ReprocessOptions(**base, tiling="on").tiling == "on"
    assert ReprocessOptions(**base, tiling='{"overlap": 0.3}').tiling == {"overlap": 0.3}
    for bad, words in (('{"overlap": 1}', "tiling.overlap"), ("sideways", "tiling must be"), ('[1]', "tiling must be")):
        with pytest.raises(Exception, match=words):
            ReprocessOptions(**base, tiling=bad)


def test_a_models_own_tiling_runs_by_default_and_is_listed_where_it_is_served(store, tmp_path):
    from serve.versions import LoadedVersion

    constant_model(yolov8_output(), tmp_path / "tiled.onnx")
    store.publish(tmp_path / "tiled.onnx", "tiled", "1", fixture_config("yolov8", tiling={"tile_size": 160,
                                                                                          "overlap": 0.3}))
    det = store.load_detector("tiled:1")
    [record] = det.predict_batch([np.zeros((480, 640, 3), np.uint8)])
    assert record.tiling["overlap"] == 0.3 and record.tiling["tiles"] == 6 * 4  # a step of 112 px
    [plain] = det.predict_batch([np.zeros((480, 640, 3), np.uint8)], tiling="off")
    assert plain.tiling is None
    info = LoadedVersion("1", det, 0.0, 0.0).info()
    assert info["tiling"]["tile_size"] == [160, 160] and info["tiling"]["merge"] == "greedy_nmm"


def test_a_tiled_result_set_is_its_own_and_a_record_says_which():
    from model_store import FilterSet
    from model_store.core.pipeline import result_hash
    from model_store.core.tiling import tiling_settings

    fs = FilterSet.from_specs([])
    tiling = TilingConfig(overlap=0.3)
    settings = tiling.describe((640, 640))
    assert result_hash(fs, []) == result_hash(fs, [], None) == fs.hash  # plain sets keep their keys
    assert result_hash(fs, [], settings) != fs.hash
    assert result_hash(fs, [], settings) == result_hash(fs, [], tiling.describe((640, 640)))
    assert result_hash(fs, [], settings) != result_hash(fs, [], TilingConfig(overlap=0.2).describe((640, 640)))
    meta = TiledMeta(100, 100, (), (), tiling, (640, 640))
    assert tiling_settings(meta.provenance()) == settings  # what the recorder hashes is what a run hashes
    # sets tiled before `geometry` existed (SAHI's, the only one then) keep their keys; MegaDetector's is another set
    before = {k: v for k, v in settings.items() if k != "geometry"}
    assert result_hash(fs, [], before) == result_hash(fs, [], settings)
    assert result_hash(fs, [], {**settings, "geometry": "megadetector"}) != result_hash(fs, [], settings)
