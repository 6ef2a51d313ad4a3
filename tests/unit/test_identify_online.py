"""Re-identification in /v1/detect: the real ingress core and app (no Ray), its detector replaced by a stand-in that
answers each test image with its known box (the detector is not under test), over the gallery of a real
`trapline identify` run; the identifier, the gallery, the calibration and the answer's shape are the real ones."""

from __future__ import annotations

import hashlib
import warnings

import cv2
import numpy as np
import pytest

from batch.identify.options import IdentifyOptions
from batch.identify.run import run_identify
from model_store.core.records import Detection, FiltersApplied, ImageDetections, ModelInfo
from model_store.store.store import ModelStore
from model_store.tables.identities import SIGHTINGS, read_result
from model_store.tables.locations import open_location
from serve.answers import DetectAnswer
from serve.ingress import IngressCore, token_digest
from tests.fixtures.reid_scenes import sightings
from tests.fixtures.reid_tables import write_identity_tables

with warnings.catch_warnings():  # starlette's TestClient warns about httpx; it is still what FastAPI ships
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

API = "online-api"
W, H = 480, 360
INFO = ModelInfo(name="det", version="1", sha256="0" * 64)


def scene(snip: np.ndarray, x0: int = 40, y0: int = 30) -> tuple[bytes, tuple[float, float, float, float]]:
    """A PNG of the snip on a plain field, and the snip's pixel box."""
    canvas = np.full((H, W, 3), (90, 110, 70), np.uint8)
    h, w = snip.shape[:2]
    canvas[y0:y0 + h, x0:x0 + w] = snip
    ok, png = cv2.imencode(".png", cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    assert ok
    return png.tobytes(), (x0, y0, x0 + w, y0 + h)


class BoxesIngress(IngressCore):
    """The ingress core with its detector call answered in process from `boxes` (image sha256 -> label, box)."""

    boxes: dict[str, list[tuple[str, tuple[float, float, float, float]]]] = {}

    def detect_on(self, name, handle, data, ref, ask, request):
        async def answer() -> DetectAnswer:
            dets = [Detection(label=label, class_id=0, score=0.9, box_px=box,
                              bbox=(box[0] / W, box[1] / H, (box[2] - box[0]) / W, (box[3] - box[1]) / H))
                    for label, box in self.boxes[hashlib.sha256(data).hexdigest()]]
            return DetectAnswer(ImageDetections(model=INFO, width=W, height=H, detections=dets,
                                                filters=FiltersApplied(names=[], hash="f0", configs=[])))
        return answer()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("online")
    tables, truth = write_identity_tables(root, individuals=4, views=3)
    store = str(root / "models")
    ModelStore(store).publish(None, "coats", "1", {"backend": "keypoints", "applies_to": ["zebra"]})
    run_identify(IdentifyOptions(tables=str(tables), identifier="coats:1", store=str(store)))
    core = BoxesIngress({"models": [{"name": "det", "identify": {"identifier": "coats:1", "tables": tables}}],
                         "store": store, "api_token_env": "X"}, {"det": None}, None, token_digest(API))
    with TestClient(core.__serve_build_asgi_app__()) as client:
        yield client, core, tables, {t["uri"]: t["individual"] for t in truth}


def detect(client, core, data, boxes):
    core.boxes[hashlib.sha256(data).hexdigest()] = boxes
    r = client.post("/v1/detect", content=data, headers={"Authorization": f"Bearer {API}",
                                                       "Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    return r.json()


def test_detect_answers_which_individual_each_covered_animal_is(served):
    client, core, tables, truth = served
    s = read_result(open_location(tables), SIGHTINGS)
    id_of_truth = {truth[r.uri]: r.individual_id for r in s.itertuples()}

    # a fourth view of each known individual, never in the gallery: matched to the right id
    for view in sightings(range(4), 1, seed=0, first_view=3, hard=0.6):
        data, box = scene(view.snip)
        body = detect(client, core, data, [("zebra", box)])
        ind = body["detections"][0]["individual"]
        assert ind["decision"] == "matched" and ind["id"] == id_of_truth[f"true{view.individual}"], ind
        assert ind["p_same"] >= 0.5 and ind["candidates"][0]["id"] == ind["id"]
        assert body["timing_ms"]["identify"] > 0

    # an individual the gallery has never seen: new, a provisional id, not forced onto the nearest
    [unseen, again] = sightings([9], 2, seed=0, hard=0.6)
    data, box = scene(unseen.snip)
    first = detect(client, core, data, [("zebra", box)])["detections"][0]["individual"]
    assert first["decision"] == "new" and first["id"].startswith("ind-new-")
    assert first["id"] == detect(client, core, data, [("zebra", box)])["detections"][0]["individual"]["id"]

    # a blank box is unidentifiable (with the reason); a label the identifier does not cover gets no field
    data, box = scene(np.full((60, 80, 3), 120, np.uint8))
    body = detect(client, core, data, [("zebra", box), ("deer", box)])
    blank, deer = body["detections"]
    assert blank["individual"]["decision"] == "unidentifiable" and blank["individual"]["reason"]
    assert "individual" not in deer or deer["individual"] is None


def test_a_joined_sighting_is_matched_by_the_next_one(served):
    client, core, tables, _ = served
    identifier = core.identifiers["det"]
    [one, two] = sightings([11], 2, seed=3, hard=0.6)
    rgb_data, box = scene(one.snip)
    core.boxes[hashlib.sha256(rgb_data).hexdigest()] = [("zebra", box)]
    from model_store.core.imaging import decode_image

    record = ImageDetections(model=INFO, width=W, height=H, filters=FiltersApplied(names=[], hash="f0", configs=[]),
                             detections=[Detection(label="zebra", class_id=0, score=0.9, box_px=box,
                                                   bbox=(0, 0, 0.1, 0.1))])
    found = identifier.identify(decode_image(rgb_data), record, "upload-1")
    assert found[0].answer["decision"] == "new"
    before = identifier.gallery_size  # after the identify: the gallery loads on the first one (this test may be it)
    identifier.join(found)  # what the ingress does once the recorder has journalled the upload
    assert identifier.gallery_size == before + 1
    data, box2 = scene(two.snip, 120, 80)
    ind = detect(client, core, data, [("zebra", box2)])["detections"][0]["individual"]
    assert ind["decision"] == "matched" and ind["id"] == found[0].answer["id"]

