"""A pipeline of the Antenna door that tiles (`antenna.pipelines[].tiling`), without Ray or Antenna: a real store with
the demo detector (320 px input), real ONNX inference in process as the replica runs it, photos over real HTTP. The
pipeline's setting reaches the detector as a /v1/detect request's `tiling` does (serve/antenna/door.py passes it to
the ingress); a setting that cannot be is refused when the config is read, and one that does not fit the detector is
each image's typed error, never a crash."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from ground.errors import ImagesFailedError, ServeConfigError
from model_store import ImageDetections, ModelStore, decode_image
from model_store.demo.photos import PHOTOS
from model_store.demo.publish import DEMO_NAME, publish_demo
from serve.antenna.catalog import Catalog
from serve.antenna.fetch import ImageFetcher
from serve.antenna.process import Processor
from serve.antenna.protocol import PipelineRequest
from serve.config import parse_serve_config
from tests.fixtures.files_server import serving_directory

PIPELINES = [{"slug": "plain", "detector": DEMO_NAME},
             {"slug": "tiled", "detector": DEMO_NAME, "tiling": {"tile_size": 256, "overlap": 0.25, "merge": "nms"}},
             {"slug": "md", "detector": DEMO_NAME, "tiling": "megadetector"},
             {"slug": "too-big", "detector": DEMO_NAME, "tiling": {"tile_size": 640}}]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    store = ModelStore(str(tmp_path_factory.mktemp("antenna-tiling-store")))
    publish_demo(store, with_torch=False)
    return store


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serving_directory(PHOTOS) as url:
        yield url


def config(store: ModelStore, pipelines: list[dict]):
    return parse_serve_config({"store": store.root, "models": [{"name": DEMO_NAME}],
                               "antenna": {"pipelines": pipelines, "fetch": {"private_hosts": ["127.0.0.1"]}}})


def run(store: ModelStore, site: str, slug: str, each: bool = False):
    """`slug`'s answer to two photos, and the records its detector made (what the replica would return)."""
    records: list[ImageDetections] = []
    detectors = {}

    async def detect(model: str, version: str, data: bytes, tiling=None) -> ImageDetections:
        key = f"{model}:{version}"
        det = detectors.setdefault(key, store.load_detector(key))
        [record] = det.predict_batch([decode_image(data)], tiling=tiling)
        if isinstance(record, Exception):
            raise record
        records.append(record)
        return record

    async def go():
        cfg = config(store, PIPELINES)
        fetcher = ImageFetcher(cfg.antenna.fetch, cfg.antenna.fetch_guard())
        processor = Processor(Catalog(cfg, store), detect, fetcher)
        request = PipelineRequest.model_validate({"pipeline": f"{slug}-v1", "source_images": [
            {"id": "1", "url": f"{site}/orinoquia_cat.jpg"}, {"id": "2", "url": f"{site}/idaho_mountain_lion.jpg"}]})
        try:
            return await (processor.process_each(request) if each else processor.process(request))
        finally:
            await fetcher.aclose()

    return asyncio.run(go()), records


def test_a_pipeline_tiles_its_images_as_its_config_says(store, site):
    _, plain = run(store, site, "plain")
    answer, tiled = run(store, site, "tiled")
    _, md = run(store, site, "md")
    assert [r.tiling for r in plain] == [None, None]  # the demo detector does not tile by itself
    assert [r.tiling["tile_size"] for r in tiled] == [[256, 256]] * 2
    assert [r.tiling["tiles"] for r in tiled] == [12, 12]  # 800x600, 800x450: 4 columns x 3 rows of 256, step 192
    assert all(r.tiling["merge"] == "nms" and r.tiling["whole_image_run"] for r in tiled)
    assert {s.id for s in answer.source_images} == {"1", "2"}
    assert len(answer.detections) == sum(len(r.detections) for r in tiled)  # every tiled box reaches Antenna
    assert all(r.tiling["merge"] == "megadetector" and not r.tiling["whole_image_run"] for r in md)
    assert [r.tiling["tile_size"] for r in md] == [[320, 320]] * 2  # MegaDetector tiles at the detector's input


def test_a_tile_larger_than_the_detectors_input_is_each_images_typed_error(store, site):
    with pytest.raises(ImagesFailedError) as failed:  # push: no image answered, so the request fails, naming each
        run(store, site, "too-big")
    assert {i["type"] for i in failed.value.extra["images"]} == {"invalid_tiling"}
    assert "larger than the model's input 320x320" in failed.value.message
    each, _ = run(store, site, "too-big", each=True)  # pull: each task answered with its error
    assert [(i.id, i.error.type) for i in each.images] == [("1", "invalid_tiling"), ("2", "invalid_tiling")]


def test_info_says_each_pipelines_tiling_as_a_stage(store):
    """/info has one place for what a pipeline runs beyond its algorithms, Antenna's `stages` (mainly for display):
    a tiling pipeline lists its settings there, as its records say them; a plain one lists none."""
    info = Catalog(config(store, PIPELINES), store).info().model_dump(mode="json")
    stages = {p["slug"]: p["stages"] for p in info["pipelines"]}
    assert stages["plain-v1"] == []
    [tiled] = stages["tiled-v1"]
    assert (tiled["key"], tiled["params"]) == ("tiling", []) and '"tile_size": [256, 256]' in tiled["description"]
    assert '"merge": "megadetector"' in stages["md-v1"][0]["description"]
    assert "each image refused" in stages["too-big-v1"][0]["description"]  # as /process answers each image


@pytest.mark.parametrize(("tiling", "said"), [
    ({"overlap": 1.0}, "tiling.overlap"),
    ({"tile": 256}, "tiling.tile"),
    ({"preset": "sahi"}, 'tiling.preset must be "megadetector"'),
    ({"merge": "average"}, "tiling.merge"),
    ("sometimes", "tiling"),
])
def test_a_bad_tiling_setting_is_refused_when_the_config_is_read(store, tiling, said):
    with pytest.raises(ServeConfigError, match="pipelines") as refused:
        config(store, [{"slug": "x", "detector": DEMO_NAME, "tiling": tiling}])
    assert said in refused.value.message
