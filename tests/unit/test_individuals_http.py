"""The individual routes on the real app (the ingress's own FastAPI app; no Ray: these routes read the identify
tables and the decisions log only), with httpx through FastAPI's TestClient, over a real `trapline identify` run."""

from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from batch.identify.options import IdentifyOptions
from batch.identify.run import run_identify
from model_store.store.store import ModelStore
from model_store.tables.decisions import DecisionsLog
from model_store.tables.locations import open_location
from serve.ingress import IngressCore, token_digest
from tests.fixtures.reid_tables import write_identity_tables
from trapline.service import service_features

with warnings.catch_warnings():  # starlette's TestClient warns about httpx; it is still what FastAPI ships
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ADMIN, READ = "ind-admin", "ind-read"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("ind-http")
    tables, truth = write_identity_tables(root, individuals=4, views=3)
    store = str(root / "models")
    ModelStore(store).publish(None, "coats", "1", {"backend": "keypoints", "applies_to": ["zebra"]})
    core = IngressCore({"models": [{"name": "det"}], "store": store,
                        "jobs": {"roots": [str(root)], "working_dir_allowed": False}},
                       {}, token_digest(ADMIN), token_digest(READ), features=service_features())
    with TestClient(core.__serve_build_asgi_app__()) as client:
        yield client, tables, store, {t["uri"]: t["individual"] for t in truth}


def get(client, path, token=READ, **params):
    return client.get(path, params=params, headers={"Authorization": f"Bearer {token}"} if token else {})


def post(client, body, token=ADMIN):
    return client.post("/v1/individuals/decisions", json=body,
                       headers={"Authorization": f"Bearer {token}"} if token else {})


def test_individuals_are_listed_shown_and_decided_on_over_http(app):
    client, tables, store, truth = app
    empty = get(client, "/v1/individuals", tables=tables).json()
    assert empty == {"run_id": None, "total": 0, "limit": 50, "offset": 0, "individuals": []}
    assert get(client, "/v1/individuals/ind-nope", tables=tables).json()["error"]["type"] == "not_found"
    run_identify(IdentifyOptions(tables=str(tables), identifier="coats:1", store=str(store)))

    page = get(client, "/v1/individuals", tables=tables).json()
    assert page["run_id"] and page["total"] == 4 and all(i["sightings"] == 3 for i in page["individuals"])
    assert [i["last_seen"] for i in page["individuals"]] == sorted((i["last_seen"] for i in page["individuals"]),
                                                                   reverse=True)
    assert get(client, "/v1/individuals", tables=tables, limit=1, offset=3).json()["individuals"][0] == \
        page["individuals"][3]
    assert get(client, "/v1/individuals", tables=tables, camera="cam1").json()["total"] == 4
    assert get(client, "/v1/individuals", tables=tables, label="deer").json()["total"] == 0
    assert get(client, "/v1/individuals", tables=tables, confirmed=True).json()["total"] == 0

    # the review queue: undecided matches in the band, nearest its middle first, each with its snip
    queue = get(client, "/v1/individuals/review", tables=tables, low=0.0, high=1.0).json()
    assert queue["total"] == 12 and len(queue["sightings"]) == 12
    gaps = [abs(q["p_same"] - 0.5) for q in queue["sightings"]]
    assert gaps == sorted(gaps)
    assert get(client, queue["sightings"][0]["snip"].split("?")[0], tables=tables).status_code == 200
    narrow = get(client, "/v1/individuals/review", tables=tables, low=0.45, high=0.55).json()
    assert all(0.45 <= q["p_same"] <= 0.55 for q in narrow["sightings"]) and narrow["total"] <= 12
    bad = get(client, "/v1/individuals/review", tables=tables, low=0.8, high=0.2)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "low"

    a, b = page["individuals"][0]["individual_id"], page["individuals"][1]["individual_id"]
    shown = get(client, f"/v1/individuals/{a}", tables=tables).json()
    assert len(shown["sightings_shown"]) == 3 and shown["history"] == []
    assert len({truth[s["uri"]] for s in shown["sightings_shown"]}) == 1  # one true animal
    snip = get(client, shown["sightings_shown"][0]["snip"].split("?")[0], tables=tables)
    assert snip.status_code == 200 and snip.headers["content-type"] == "image/jpeg"
    img = cv2.imdecode(np.frombuffer(snip.content, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and min(img.shape[:2]) >= 24  # the coat's snip, not the whole frame
    assert img.shape[:2] != (360, 480)
    assert get(client, f"/v1/individuals/{a}/sightings/9/snip", tables=tables).status_code == 404

    # a name and a merge: shown at once, before any re-run; the merged id answers as the one it joined
    named = post(client, {"action": "name", "individual_id": a, "name": "Stripey", "who": "ana", "tables": tables})
    assert named.status_code == 201, named.text
    assert named.json()["individual"]["name"] == "Stripey"
    merged = post(client, {"action": "merge", "individual_id": a, "other_id": b, "who": "ana", "tables": tables})
    assert merged.status_code == 201 and merged.json()["individual"]["sightings"] == 6
    after = get(client, "/v1/individuals", tables=tables).json()
    assert after["total"] == 3
    joined = get(client, f"/v1/individuals/{b}", tables=tables).json()
    assert joined["individual_id"] == a and joined["name"] == "Stripey" and joined["confirmed"]
    assert [h["action"] for h in joined["history"]] == ["name", "merge"]
    assert get(client, "/v1/individuals", tables=tables, confirmed=True).json()["total"] == 1

    # a split: the sightings leave together as a new, confirmed individual
    s0 = joined["sightings_shown"][0]
    key = {k: s0[k] for k in ("uri", "content_id", "detection_index")}
    split = post(client, {"action": "split", "individual_id": a, "sightings": [key], "tables": tables})
    assert split.status_code == 201 and split.json()["individual"]["sightings"] == 5
    new_id = next(i["individual_id"] for i in get(client, "/v1/individuals", tables=tables).json()["individuals"]
                  if i["sightings"] == 1)
    assert new_id not in (a, b)

    # bad input: typed errors, nothing written
    before = len(DecisionsLog(open_location(tables)).read())
    cases = [
        ({"action": "merge", "individual_id": a, "other_id": a}, 422, "bad_decision", "into itself"),
        ({"action": "merge", "individual_id": a, "other_id": b}, 409, "decision_conflict", "one individual already"),
        ({"action": "name", "individual_id": "ind-nobody", "name": "X"}, 422, "bad_decision", "unknown individual"),
        ({"action": "name", "individual_id": a}, 422, "bad_decision", "name"),
        ({"action": "confirm_sighting", "individual_id": a, "sighting": {**key, "uri": "/nowhere.png"}}, 422,
         "bad_decision", "unknown sighting"),
        ({"action": "merge", "individual_id": a, "other_id": new_id}, 409, "decision_conflict",
         "said it is not"),  # the split sighting was rejected from a: a merge cannot put it back
        ({"action": "rename", "individual_id": a}, 422, "invalid_parameter", "body.action"),
    ]
    for body, status, kind, words in cases:
        r = post(client, {**body, "tables": tables})
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["type"] == kind and words in r.json()["error"]["message"], (body, r.text)
    assert post(client, {"action": "name", "individual_id": a, "name": "X", "tables": tables}, token=READ) \
        .status_code == 403  # the API token's person is a reader: known, and below a reviewer
    assert get(client, "/v1/individuals", token=None, tables=tables).status_code == 401
    assert get(client, "/v1/individuals", tables="/etc").json()["error"]["type"] == "path_not_allowed"
    assert get(client, "/v1/individuals", tables=tables, since="yesterday").json()["error"]["field"] == "since"
    assert len(DecisionsLog(open_location(tables)).read()) == before

    # the next run clusters with every decision: the name, the merge and the split are kept
    run_identify(IdentifyOptions(tables=str(tables), identifier="coats:1", store=str(store), threshold=0.6))
    final = {i["individual_id"]: i for i in get(client, "/v1/individuals", tables=tables).json()["individuals"]}
    assert final[a]["name"] == "Stripey" and final[a]["sightings"] == 5 and final[new_id]["sightings"] == 1
