"""Antenna's processing-service protocol without Antenna: /info from the store, records as Antenna's detections,
per-image fetch errors, the config block's checks. (The real Antenna: tests/integration/test_antenna.py.)"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from ground.errors import ImageFetchError, InvalidParameterError, ServeConfigError
from model_store import ModelStore
from model_store.core.records import Classification, Detection, FiltersApplied, ImageDetections, LabelScore, ModelInfo
from model_store.demo.publish import DEMO_NAME, SPECIES_NAME, publish_demo
from model_store.demo.species import TAXONOMY
from serve.antenna.answers import image_detections
from serve.antenna.catalog import Algorithms, Catalog
from serve.antenna.fetch import ImageFetcher
from serve.antenna.process import Processor
from serve.antenna.protocol import PipelineRequest, PipelineResults, ServiceInfo
from serve.antenna_config import FetchConfig
from serve.config import ServeConfig, parse_serve_config

PIPELINE = {"slug": "demo", "name": "trapline demo", "detector": DEMO_NAME, "classifier": SPECIES_NAME}


def serve_config(store: ModelStore, **antenna) -> ServeConfig:
    return parse_serve_config({
        "store": store.root, "models": [{"name": DEMO_NAME, "classify": [{"model": SPECIES_NAME}]}],
        "classifiers": [{"name": SPECIES_NAME}], "antenna": {"pipelines": [PIPELINE], **antenna}})


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    store = ModelStore(str(tmp_path_factory.mktemp("antenna-store")))
    publish_demo(store)
    return store


def test_info_names_each_served_version_as_antenna_requires(store):
    info = ServiceInfo.model_validate(Catalog(serve_config(store), store).info().model_dump(mode="json"))
    [pipeline] = info.pipelines
    detector, classifier = pipeline.algorithms
    # one detector per pipeline, keyed with its version (Antenna keys a pipeline's algorithms by key alone)
    assert (pipeline.slug, pipeline.version) == ("demo-v1", 1)
    assert (detector.key, detector.version, detector.task_type) == (f"{DEMO_NAME}-1", 1, "detection")
    assert (classifier.key, classifier.task_type) == (f"{SPECIES_NAME}-1", "classification")
    # the category map: scientific names from the classifier's taxonomy, with the rank they end at
    cmap = classifier.category_map
    assert cmap.labels == [path[-1] for path in TAXONOMY.values()]
    assert [d["index"] for d in cmap.data] == list(range(len(TAXONOMY)))
    assert {d["taxon_rank"] for d in cmap.data} == {"SPECIES"}
    assert {d["trapline_label"] for d in cmap.data} == set(TAXONOMY)


def test_a_promoted_detector_is_a_new_pipeline_and_the_old_slug_keeps_its_version(tmp_path):
    store = ModelStore(str(tmp_path / "store"))
    publish_demo(store)
    catalog = Catalog(serve_config(store), store)
    assert [p.slug for p in catalog.pipelines()] == ["demo-v1"]
    store.promote(f"{DEMO_NAME}:2")
    catalog._cached = None  # as CATALOG_TTL_S passing
    [now] = catalog.pipelines()
    assert (now.slug, now.info.version, now.algorithm().key) == ("demo-v2", 2, f"{DEMO_NAME}-2")
    # a pull worker started now still polls the jobs Antenna runs on the earlier slug: the door answers them
    assert catalog.answerable() == ["demo-v1", "demo-v2"]
    earlier = catalog.resolve("demo-v1")  # a job Antenna started before the promotion
    assert (earlier.detector.version, earlier.algorithm().key) == ("1", f"{DEMO_NAME}-1")
    with pytest.raises(InvalidParameterError, match="demo-v9"):
        catalog.resolve("demo-v9")


def _record(store: ModelStore) -> ImageDetections:
    det = store.get(f"{DEMO_NAME}:1").info
    clf = store.get(f"{SPECIES_NAME}:1").info
    labels = list(store.get(f"{SPECIES_NAME}:1").config.labels)
    answer = Classification(model=clf, label=labels[2], score=0.7, scores=[0.1, 0.1, 0.7, 0.1],
                            top=[LabelScore(label=labels[2], score=0.7)])
    return ImageDetections(
        model=ModelInfo(**det.model_dump()), width=640, height=480, timing_ms={"infer": 12.5},
        filters=FiltersApplied(names=[], hash="h", configs=[]),
        detections=[Detection(label="animal", class_id=0, score=0.9, bbox=(0.1, 0.2, 0.3, 0.4),
                              box_px=(64.0, 96.0, 256.0, 288.0), classifications=[answer]),
                    Detection(label="person", class_id=1, score=0.6, bbox=(0.5, 0.5, 0.1, 0.1),
                              box_px=(320.0, 240.0, 384.0, 288.0))],
        dropped=[Detection(label="vehicle", class_id=2, score=0.05, bbox=(0, 0, 0.1, 0.1), box_px=(0, 0, 64, 48))])


def test_a_record_as_antenna_detections(store):
    animal, person = image_detections("17", _record(store), Algorithms(store).get)
    assert animal.source_image_id == "17" and animal.algorithm.key == f"{DEMO_NAME}-1"
    assert (animal.bbox.x1, animal.bbox.y1, animal.bbox.x2, animal.bbox.y2) == (64.0, 96.0, 256.0, 288.0)  # pixels
    assert animal.inference_time == 0.0125
    own, species = animal.classifications
    assert (own.classification, own.terminal) == ("animal", False)  # the classifier's answer is the terminal one
    assert species.terminal and species.algorithm.key == f"{SPECIES_NAME}-1"
    assert species.classification == list(TAXONOMY.values())[2][-1]  # the category map's label for it
    assert species.scores == [0.1, 0.1, 0.7, 0.1] and species.labels == [p[-1] for p in TAXONOMY.values()]
    # no classifier for people: the detector's label is the answer
    assert [(c.classification, c.terminal) for c in person.classifications] == [("person", True)]


def _fetcher(max_bytes: int = 10_000) -> ImageFetcher:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/missing.jpg":
            return httpx.Response(404, text="no")
        if request.url.path == "/huge.jpg":
            return httpx.Response(200, content=b"x" * (max_bytes + 1))
        if request.url.path == "/slow.jpg":
            raise httpx.ReadTimeout("slow", request=request)
        return httpx.Response(200, content=b"jpeg:" + request.url.path.encode())

    return ImageFetcher(FetchConfig(max_bytes=max_bytes), transport=httpx.MockTransport(answer))


def test_each_image_gets_its_own_typed_fetch_error():
    async def go():
        fetcher = _fetcher()
        try:
            return await fetcher.fetch_all(["http://a/ok.jpg", "http://a/missing.jpg", "http://a/huge.jpg",
                                            "http://a/slow.jpg", "ftp://a/x.jpg"])
        finally:
            await fetcher.aclose()

    ok, missing, huge, slow, scheme = asyncio.run(go())
    assert ok == b"jpeg:/ok.jpg"
    assert [e.reason for e in (missing, huge, slow, scheme)] == ["status", "too_large", "timeout", "refused"]
    assert all(isinstance(e, ImageFetchError) for e in (missing, huge, slow, scheme))
    assert missing.extra["http_status"] == 404 and "missing.jpg" in missing.message


def test_process_answers_what_it_could_and_names_what_it_could_not(store):
    record = _record(store)
    seen = []

    async def detect(model: str, version: str, data: bytes, tiling=None) -> ImageDetections:
        seen.append((model, version, data))
        return record

    async def go():
        processor = Processor(Catalog(serve_config(store), store), detect, _fetcher())
        request = PipelineRequest.model_validate({
            "pipeline": "demo-v1", "config": {"request_source_image_batch_size": 2, "unknown": True},
            "source_images": [{"id": "1", "url": "http://a/ok.jpg"}, {"id": "2", "url": "http://a/missing.jpg"}]})
        return await processor.process(request), await processor.process_each(request)

    push, pull = asyncio.run(go())
    assert seen[0] == (DEMO_NAME, "1", b"jpeg:/ok.jpg")  # the version the slug names, pinned
    push = PipelineResults.model_validate(push.model_dump(mode="json"))
    assert [i.id for i in push.source_images] == ["1"]  # not marked processed: Antenna may send it again
    assert len(push.detections) == 2 and push.errors == ["image 2: image_fetch_failed: GET http://a/missing.jpg "
                                                        "answered HTTP 404"]
    ok, failed = pull.images
    assert ok.result.source_images[0].id == "1" and ok.error is None
    assert failed.result is None and failed.error.type == "image_fetch_failed"


def test_the_config_block_names_served_models(store):
    with pytest.raises(ServeConfigError, match="detector 'nope' is not one of `models`"):
        parse_serve_config({"store": store.root, "models": [{"name": DEMO_NAME}],
                            "antenna": {"pipelines": [{"slug": "x", "detector": "nope"}]}})
    with pytest.raises(ServeConfigError, match="does not route to classifier"):
        parse_serve_config({"store": store.root, "models": [{"name": DEMO_NAME}],
                            "classifiers": [{"name": SPECIES_NAME}],
                            "antenna": {"pipelines": [{"slug": "x", "detector": DEMO_NAME,
                                                       "classifier": SPECIES_NAME}]}})
    with pytest.raises(ServeConfigError, match="slug"):
        serve_config(store, pipelines=[{**PIPELINE, "slug": "Not A Slug"}])
