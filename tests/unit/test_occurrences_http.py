"""The occurrence routes on the real app (the ingress's own FastAPI app, built as a replica builds it; no Ray is
started: these routes read the tables and the decisions log only), with httpx through FastAPI's TestClient."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import pytest

from benchmarks.tables_opened import counting
from model_store.tables.decisions import DecisionsLog, IdentifyOccurrence
from model_store.tables.locations import open_location
from serve.ingress import IngressCore, token_digest
from tests.fixtures.occurrences import FILTERS, write_sheet_tables
from tests.fixtures.postprocess import postprocess
from trapline.service import service_features

with warnings.catch_warnings():  # starlette's TestClient warns about httpx; it is still what FastAPI ships
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ADMIN, READ = "occ-admin", "occ-read"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("occ-http")
    tables = write_sheet_tables(root / "sheet")
    postprocess(str(tables), "track", {})
    core = IngressCore({"models": [{"name": "sheetcam"}], "store": str(root / "store"),
                        "jobs": {"roots": [str(root)], "working_dir_allowed": False}},
                       {}, token_digest(ADMIN), token_digest(READ), features=service_features())
    with TestClient(core.__serve_build_asgi_app__()) as client:
        yield client, str(tables)


def get(client, path, token=READ, **params):
    return client.get(path, params=params, headers={"Authorization": f"Bearer {token}"} if token else {})


def post(client, path, body, token=ADMIN):
    return client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})


def test_list_pages_and_filters_occurrences(app):
    client, tables = app
    page = get(client, "/v1/occurrences", tables=tables).json()
    assert page["model"] == "sheetcam:1" and page["total"] == 5 and len(page["occurrences"]) == 5
    assert [o["first_time"] for o in page["occurrences"]] == sorted((o["first_time"] for o in page["occurrences"]),
                                                                   reverse=True)
    two = get(client, "/v1/occurrences", tables=tables, limit=2, offset=4).json()
    assert two["total"] == 5 and [o["occurrence_id"] for o in two["occurrences"]] == \
        [page["occurrences"][4]["occurrence_id"]]
    burst = get(client, "/v1/occurrences", tables=tables, camera="burst").json()["occurrences"]
    assert len(burst) == 1 and burst[0]["frames"] == 5 and burst[0]["determination"]["how"] == "model"
    late = get(client, "/v1/occurrences", tables=tables, since="2026-06-01T22:30:00").json()
    assert late["total"] == 1 and late["occurrences"][0]["camera_id"] == "sheet"
    assert get(client, "/v1/occurrences", tables=tables, label="deer").json()["total"] == 1
    # bad input: a typed error naming the field, never a crash
    assert get(client, "/v1/occurrences", tables=tables, determined_by="robot").status_code == 422
    bad = get(client, "/v1/occurrences", tables=tables, since="yesterday")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "since"
    assert get(client, "/v1/occurrences", tables="/etc").json()["error"]["type"] == "path_not_allowed"
    assert get(client, "/v1/occurrences").json()["error"]["field"] == "tables"  # no recorder: name them
    assert get(client, "/v1/occurrences", token=None, tables=tables).status_code == 401
    assert get(client, "/v1/occurrences/occ-nope", tables=tables).status_code == 404


def test_show_identify_and_classify(app):
    client, tables = app
    [deer] = get(client, "/v1/occurrences", tables=tables, camera="burst").json()["occurrences"]
    oid = deer["occurrence_id"]
    shown = get(client, f"/v1/occurrences/{oid}", tables=tables).json()
    frames = shown["frames_shown"]
    assert len(frames) == 5 and [f["capture_time"] for f in frames] == sorted(f["capture_time"] for f in frames)
    assert frames[0]["vote"]["label"] == "deer" and shown["history"] == []
    snip = client.get(frames[2]["snip"], headers={"Authorization": f"Bearer {READ}"})
    assert snip.status_code == 200 and snip.headers["content-type"] == "image/jpeg" and snip.content[:2] == b"\xff\xd8"
    assert client.get(frames[2]["snip"]).status_code == 401
    # a read token cannot decide; the admin token can, and the answer is the occurrence as determined now
    assert post(client, f"/v1/occurrences/{oid}/identify", {"tables": tables, "label": "elk"}, READ).status_code \
        in (401, 403)
    said = post(client, f"/v1/occurrences/{oid}/identify", {"tables": tables, "label": "roe deer", "who": "ann",
                                                             "comment": "white rump"})
    assert said.status_code == 200, said.text
    assert said.json()["determination"] == {**said.json()["determination"], "label": "roe deer", "how": "human",
                                            "model_label": "deer", "identified_by": "ann", "comment": "white rump"}
    [logged] = DecisionsLog(open_location(tables)).read()
    assert isinstance(logged, IdentifyOccurrence) and len(logged.detections) == 5
    humans = get(client, "/v1/occurrences", tables=tables, determined_by="human").json()["occurrences"]
    assert [o["occurrence_id"] for o in humans] == [oid]
    assert post(client, f"/v1/occurrences/{oid}/identify", {"tables": tables, "label": ""}).status_code == 422
    assert post(client, "/v1/occurrences/occ-nope/identify", {"tables": tables, "label": "x"}).status_code == 404
    # an edited classification: the vote is taken again at once (the identification still decides)
    key = {k: frames[0][k] for k in ("uri", "content_id", "detection_index")}
    edited = post(client, f"/v1/occurrences/{oid}/classify", {"tables": tables, "label": "elk", **key}).json()
    assert edited["determination"]["label"] == "roe deer" and edited["determination"]["model_label"] == "deer"
    [moth] = get(client, "/v1/occurrences", tables=tables, camera="sheet", since="2026-06-01T22:30").json()[
        "occurrences"]
    other = post(client, f"/v1/occurrences/{moth['occurrence_id']}/classify", {"tables": tables, "label": "x", **key})
    assert other.status_code == 404  # that detection is not one of this occurrence
    history = get(client, f"/v1/occurrences/{oid}", tables=tables).json()["history"]
    assert [h["action"] for h in history] == ["identify", "classify"]


def test_the_preview_shows_each_detections_occurrence(app):
    client, tables = app
    image = str(Path(tables).parent / "archive" / "burst" / "2.jpg")
    r = client.post("/v1/postprocess/preview", json={"tables": tables, "image": image, "filter": "track",
                                                     "config": {}, "filters_hash": "0000000000000000"},
                    headers={"Authorization": f"Bearer {READ}"})
    assert r.status_code == 200, r.text
    body = r.json()
    # one image: its camera is linked (the burst: one deer in 5 frames)
    assert body["summary"]["occurrences"] == 1 and body["summary"]["detections_linked"] == 5
    [change] = body["changes"]
    assert change["change"] == "kept" and change["occurrence_id"].startswith("occ-")


def test_the_review_queue_lists_the_least_certain_links_first(app):
    client, tables = app
    every = get(client, "/v1/occurrences", tables=tables).json()["occurrences"]
    assert all(0.0 <= o["link_confidence"] <= 1.0 for o in every)
    assert all(isinstance(o["stitches"], list) for o in every)  # a stitch's evidence (issue 58); none here
    single = [o for o in every if o["detections"] == 1]
    assert all(o["link_confidence"] == 1.0 and o["weakest_link"] is None for o in single)
    queue = get(client, "/v1/occurrences/review", tables=tables).json()
    sure = [o["link_confidence"] for o in queue["occurrences"]]
    assert queue["total"] == len(sure) >= 1 and sure == sorted(sure) and all(s < 1.0 for s in sure)
    assert all(o["detections"] > 1 and o["weakest_link"]["uri"] for o in queue["occurrences"])
    below = get(client, "/v1/occurrences/review", tables=tables, below=sure[0]).json()
    assert below["total"] == 0  # strictly under the threshold
    assert get(client, "/v1/occurrences/review", tables=tables, below=2).status_code == 422


def test_people_cut_join_and_move_tracks_and_every_later_run_honours_it(app):
    # runs last: it reruns the track filter over the module's tables
    client, tables = app
    sheet = {o["frames"]: o for o in get(client, "/v1/occurrences", tables=tables, camera="sheet").json()[
        "occurrences"]}
    a, b, late = sheet[12], sheet[8], sheet[3]  # moth A (frames 0-11), moth B (4-11), moth C an hour later
    frames_a = get(client, f"/v1/occurrences/{a['occurrence_id']}", tables=tables).json()["frames_shown"]
    cut = {k: frames_a[6][k] for k in ("uri", "content_id", "detection_index")}
    said = post(client, f"/v1/occurrences/{a['occurrence_id']}/split", {"tables": tables, "at": cut, "who": "ann"})
    assert said.status_code == 200, said.text
    assert said.json()["decision"]["action"] == "split_occurrence" and "next" in said.json()["applies"]
    first = {k: frames_a[0][k] for k in ("uri", "content_id", "detection_index")}
    refused = post(client, f"/v1/occurrences/{a['occurrence_id']}/split", {"tables": tables, "at": first})
    assert refused.status_code == 422 and refused.json()["error"]["type"] == "bad_decision"
    assert post(client, f"/v1/occurrences/{b['occurrence_id']}/split", {"tables": tables, "at": cut}).status_code \
        == 404  # not one of B's detections
    assert post(client, f"/v1/occurrences/{a['occurrence_id']}/split", {"tables": tables, "at": cut},
                READ).status_code in (401, 403)
    joined = post(client, f"/v1/occurrences/{b['occurrence_id']}/merge",
                  {"tables": tables, "other_id": late["occurrence_id"]})
    assert joined.status_code == 200 and joined.json()["decision"]["action"] == "merge_occurrences"
    last_b = get(client, f"/v1/occurrences/{b['occurrence_id']}", tables=tables).json()["frames_shown"][-1]
    moved = post(client, f"/v1/occurrences/{b['occurrence_id']}/move",
                 {"tables": tables, "detection": {k: last_b[k] for k in ("uri", "content_id", "detection_index")},
                  "to": a["occurrence_id"]})
    assert moved.status_code == 200, moved.text
    assert post(client, f"/v1/occurrences/{b['occurrence_id']}/merge",
                {"tables": tables, "other_id": b["occurrence_id"]}).status_code == 422
    # the next runs link as the tracker says, then apply the people's edits in order: another tracker config
    # over the source set, then a score filter on top of that (the speck goes)
    runs = [postprocess(tables, "track", {"min_frames": 2}, filters_hash=FILTERS)]
    runs.append(postprocess(tables, "score", {"min_score": 0.2}, filters_hash=runs[0].filters_hash))
    for report, speck in zip(runs, ([1], []), strict=True):
        assert report.occurrences == 4 + len(speck)  # A cut in two (+1), B joined with C (-1), the deer
        rows = get(client, "/v1/occurrences", tables=tables, camera="sheet", filters_hash=report.filters_hash,
                   limit=500).json()["occurrences"]
        # A cut at frame 6: 6-11 (6 frames); 0-5 + B's last, moved to A (7); B's 4-10 joined with C's 3 (10)
        assert sorted(o["frames"] for o in rows) == [*speck, 6, 7, 10]
        assert all(0.0 <= o["link_confidence"] <= 1.0 for o in rows)


def test_review_verbs_and_the_versions_accuracy_over_http(app):
    """The review verbs on the same app (fresh tables beside the fixture's, so the occurrences above keep theirs):
    signed by the token's person, refused to a reader, checked against the set, honoured by the listing and counted
    by the version's accuracy (the figures' own test: tests/unit/test_accuracy.py)."""
    client, sheet = app
    tables = str(write_sheet_tables(Path(sheet).parents[1] / "review-sheet"))
    page = get(client, "/v1/review/images", tables=tables, camera="burst").json()
    assert page["model"] == "sheetcam:1" and page["total"] == 5
    assert page["images"][0]["picture"] is None  # written without a reprocess: no archive recorded, none served
    first, second = page["images"][0], page["images"][1]
    box = {k: first["boxes"][0][k] for k in ("uri", "content_id", "detection_index")}
    assert first["boxes"][0]["label"] == "deer" and first["boxes"][0]["verdict"] is None
    assert post(client, "/v1/review/confirm", {"tables": tables, **box}, READ).status_code in (401, 403)
    said = post(client, "/v1/review/confirm", {"tables": tables, "who": "ann", **box})
    assert said.status_code == 201, said.text
    assert said.json()["decision"] == {**said.json()["decision"], "action": "confirm_detection", "who": "ann",
                                       "label": "deer", "model": "sheetcam:1"}
    other = {k: second["boxes"][0][k] for k in ("uri", "content_id", "detection_index")}
    assert post(client, "/v1/review/relabel", {"tables": tables, "label": "roe deer", **other}).status_code == 201
    image = {"uri": page["images"][2]["uri"], "content_id": page["images"][2]["content_id"]}
    assert post(client, "/v1/review/empty", {"tables": tables, **image}).status_code == 201
    assert post(client, "/v1/review/add", {"tables": tables, "bbox": [0.7, 0.1, 0.2, 0.2], "label": "deer",
                                           **image}).status_code == 201
    # bad input: typed errors, nothing written
    assert post(client, "/v1/review/reject", {"tables": tables, **box, "detection_index": 7}).status_code == 404
    assert post(client, "/v1/review/reject", {"tables": tables, **box, "reason": "ugly"}).status_code == 422
    bad = post(client, "/v1/review/add", {"tables": tables, "bbox": [0.9, 0.1, 0.2, 0.2], "label": "deer", **image})
    assert bad.status_code == 422 and "bbox" in bad.text
    assert post(client, "/v1/review/empty", {"tables": "/etc", **image}).status_code in (403, 422)
    assert len(DecisionsLog(open_location(tables)).read()) == 4
    # honoured by the next read: those three images are reviewed, two remain; their verdicts are shown
    assert get(client, "/v1/review/images", tables=tables, camera="burst").json()["total"] == 2
    shown = get(client, "/v1/review/images", tables=tables, camera="burst", todo="false").json()["images"]
    assert [i["boxes"][0]["verdict"] for i in shown[:3]] == ["deer", "roe deer", "(none)"]
    assert shown[2]["added"][0]["label"] == "deer" and not shown[2]["empty"]  # a box added after the mark
    acc = get(client, "/v1/models/sheetcam/1/accuracy", tables=tables)
    assert acc.status_code == 200, acc.text
    d = acc.json()["detection"]
    assert (d["tp"], d["fp"], d["fn"]) == (2, 1, 1) and d["label_agreement"]["k"] == 1
    assert acc.json()["coverage"]["reviewed_images"]["k"] == 3 and acc.json()["coverage"]["images"] == 20
    # a later run of another version beside it: the page opens on the newest written (as the console shows it after
    # the README's reprocess), names it, and still lists the first when asked; the decisions above stay the first's
    write_sheet_tables(Path(tables).parent, "2", written=dt.datetime(2026, 7, 1, tzinfo=dt.timezone.utc))
    newest = get(client, "/v1/review/images", tables=tables, camera="burst").json()
    assert newest["model"] == "sheetcam:2" and newest["total"] == 5
    assert get(client, "/v1/review/images", tables=tables, camera="burst", model="sheetcam:1").json()["total"] == 2
    assert get(client, "/v1/models/sheetcam/9/accuracy", tables=tables).status_code == 422  # no such version there
    assert get(client, "/v1/models/sheetcam/1/accuracy", token=None, tables=tables).status_code == 401


def test_a_decision_over_http_opens_its_tables_once(app):
    """Issue 83: the route opens the tables at its door and hands them down: the check, the decision written and the
    occurrence answered all read through that one opened location (benchmarks/tables_opened.py counts every
    Storage built)."""
    client, tables = app
    oid = get(client, "/v1/occurrences", tables=tables, camera="burst").json()["occurrences"][0]["occurrence_id"]
    with counting({"tables": str(Path(tables).resolve())}) as opened:
        said = post(client, f"/v1/occurrences/{oid}/identify", {"tables": tables, "label": "fox", "who": "bo"})
    assert said.status_code == 200, said.text
    assert said.json()["determination"]["label"] == "fox"
    assert opened["tables"] == 1
