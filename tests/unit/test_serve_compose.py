"""The online door's record path without Ray: the detector's typed record, its crops and snips, the classifier
answers attached in place, and the HTTP body built once from it (serve/compose.py, serve/protocol.py)."""

from __future__ import annotations

import asyncio

import numpy as np

from model_store import Classification, CropOptions, ModelInfo
from model_store.core.pipeline import ClassifierRoute
from serve.answers import CropGeometry, DetectAnswer
from serve.compose import Composer, cut_crops
from serve.protocol import detect_response
from tests.fixtures.images import gradient


class StubClassifier:
    """A classifier deployment's handle: answers each crop with its size, and records what it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, CropGeometry, list]] = []
        self.geometry = self
        self.classify = self

    async def _geometry(self) -> CropGeometry:
        return CropGeometry(version="1", padding=0.0, square=False)

    async def _classify(self, crops, geometry, specs, boxes=None) -> list[Classification]:
        self.sent.append((len(crops), geometry, specs))
        self.boxes = boxes
        return [Classification(model=ModelInfo(name="stub", version="1", sha256="s"),
                                label=f"{c.shape[1]}x{c.shape[0]}", score=0.5, scores=[0.5, 0.5]) for c in crops]

    def remote(self, *args, **kwargs):
        return self._classify(*args, **kwargs) if args else self._geometry()


async def _call(awaitable):
    return await awaitable


def test_classifications_and_snips_land_on_their_detections_of_the_same_record(local_store):
    detector = local_store.load_detector("fixture:1")
    rgb = gradient(640, 480)
    # deer kept, foxes dropped: the second kept deer (score 0.3) ranks after both foxes, detection_index 3
    [record] = detector.predict_batch([rgb], filters={"class_mask": {"allowed_labels": ["deer"]}})
    assert [d.score for d in record.detections] == [0.9, 0.3] and record.kept_indices() == [0, 3]
    stub = StubClassifier()
    composer = Composer({"fixture": [ClassifierRoute(model="colour", labels=["deer"])]}, {"colour": stub}, _call)

    async def run() -> DetectAnswer:
        request = await composer.crop_request("fixture", True, CropOptions(), max_snips=3)
        answer = DetectAnswer(record)
        cut_crops(rgb, answer, request)
        return await composer.finish("fixture", answer, request)

    answer = asyncio.run(run())
    assert answer.record is record and answer.classified and answer.jobs == []  # the crops are not kept
    assert [(n, g.padding, g.square) for n, g, _ in stub.sent] == [(2, 0.0, False)]
    assert [label for label, _ in stub.boxes] == ["deer", "deer"]  # each crop's box, for the species ensemble
    assert [[c.label for c in d.classifications] for d in record.detections] == [["200x120"], ["80x80"]]
    assert sorted(answer.snips) == [0, 3] and answer.snips_truncated is False
    assert (answer.snips[3].width, answer.snips[3].height) == (80, 80)

    body = detect_response(answer, {"total": 1.0}).model_dump(mode="json", exclude_none=True)
    assert [d["crop"]["width"] for d in body["detections"]] == [200, 80]
    assert [d["classifications"][0]["label"] for d in body["detections"]] == ["200x120", "80x80"]
    assert "scores" not in body["detections"][0]["classifications"][0] and body["crops_truncated"] is False
    verbose = detect_response(answer, {}, verbose=True).model_dump(mode="json", exclude_none=True)
    assert verbose["detections"][0]["classifications"][0]["scores"] == [0.5, 0.5]
    assert [d["label"] for d in verbose["dropped"]] == ["fox", "fox"] and "crop" not in verbose["dropped"][0]


def test_no_classifier_routes_means_no_classifications_key_and_snips_are_capped(local_store):
    detector = local_store.load_detector("fixture:1")
    rgb = np.zeros((480, 640, 3), np.uint8)
    [record] = detector.predict_batch([rgb])
    composer = Composer({}, {}, _call)

    async def run() -> DetectAnswer:
        request = await composer.crop_request("fixture", True, CropOptions(), max_snips=1)
        answer = DetectAnswer(record)
        cut_crops(rgb, answer, request)
        return await composer.finish("fixture", answer, request)

    answer = asyncio.run(run())
    assert not answer.classified and list(answer.snips) == [0] and answer.snips_truncated is True
    body = detect_response(answer, {}).model_dump(mode="json", exclude_none=True)
    assert all("classifications" not in d for d in body["detections"])
    assert "crop" in body["detections"][0] and "crop" not in body["detections"][1]
