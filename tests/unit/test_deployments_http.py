"""The deployment routes on the real app (no Ray: they read and append beside the tables), over a tracked set with
known animals (tests/fixtures/occurrences.py): deployments recorded over HTTP place every picture, a clock
correction moves the occurrences it covers, effort and the detection history answer from the corrected times."""

from __future__ import annotations

import warnings

import pytest

from serve.ingress import IngressCore, token_digest
from tests.fixtures.occurrences import write_sheet_tables
from tests.fixtures.postprocess import postprocess
from trapline.service import service_features

with warnings.catch_warnings():  # starlette's TestClient warns about httpx; it is still what FastAPI ships
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ADMIN, READ = "dep-admin", "dep-read"
ROWS = [{"deploymentID": "sheet-a", "cameraID": "sheet", "latitude": 52.0, "longitude": 5.0,
         "deploymentStart": "2026-06-01T20:00:00", "deploymentEnd": "2026-06-02T08:00:00", "locationName": "lamp"},
        {"deploymentID": "burst-a", "cameraID": "burst", "latitude": 52.1, "longitude": 5.1,
         "deploymentStart": "2026-06-01T21:59:00", "deploymentEnd": "2026-06-03T21:59:00", "featureType": "trailGame"}]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    root = tmp_path_factory.mktemp("dep-http")
    tables = write_sheet_tables(root / "sheet")
    postprocess(str(tables), "track", {})
    core = IngressCore({"models": [{"name": "sheetcam"}], "store": str(root / "store"),
                        "jobs": {"roots": [str(root)], "working_dir_allowed": False}},
                       {}, token_digest(ADMIN), token_digest(READ), features=service_features())
    with TestClient(core.__serve_build_asgi_app__()) as client:
        yield client, str(tables)


def call(client, method, path, token=ADMIN, **kwargs):
    return client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def test_deployments_over_http_place_pictures_and_clock_decisions_move_occurrences(app):
    client, tables = app
    assert call(client, "POST", "/v1/deployments", READ, json={"tables": tables, "deployments": ROWS}).status_code \
        in (401, 403)
    bad = call(client, "POST", "/v1/deployments", json={"tables": tables, "deployments": ROWS, "timezone": "Mars/X"})
    assert bad.status_code == 422 and "unknown time zone 'Mars/X'" in bad.text
    made = call(client, "POST", "/v1/deployments", json={"tables": tables, "deployments": ROWS, "who": "ana",
                                                         "timezone": "Europe/Amsterdam"})
    assert made.status_code == 201 and made.json()["deployments"] == ["sheet-a", "burst-a"]
    listed = call(client, "GET", "/v1/deployments", READ, params={"tables": tables}).json()
    pictures = {d["deploymentID"]: d["pictures"] for d in listed["deployments"]}
    assert pictures == {"burst-a": 5, "sheet-a": 15} and listed["pictures_without_deployment"] == 0

    def burst_first():
        occ = call(client, "GET", "/v1/occurrences", READ, params={"tables": tables, "camera": "burst"}).json()
        return occ["occurrences"][0]["first_time"]

    assert burst_first().startswith("2026-06-01T20:00:00")  # 22:00 summer time in Amsterdam, as UTC
    fix = call(client, "POST", "/v1/deployments/clock", json={
        "tables": tables, "camera_id": "burst", "recorded_from": "2026-06-01T00:00:00",
        "recorded_until": "2026-06-02T00:00:00", "offset_s": 3600, "who": "ana", "comment": "an hour fast"})
    assert fix.status_code == 201 and fix.json()["action"] == "correct_clock"
    assert burst_first().startswith("2026-06-01T19:00:00")  # the occurrence moved with its frames
    problems = call(client, "GET", "/v1/deployments/clock-problems", READ, params={"tables": tables}).json()
    assert problems["clean"] is False and {p["camera_id"] for p in problems["problems"]} == {"burst"}
    assert problems["problems"][0]["kind"] == "outside"  # 21:00 local is before burst-a's start now
    undo = call(client, "POST", f"/v1/deployments/decisions/{fix.json()['decision_id']}/revoke",
                json={"tables": tables, "who": "ana"})
    assert undo.status_code == 201 and burst_first().startswith("2026-06-01T20:00:00")
    assert call(client, "GET", "/v1/deployments/clock-problems", READ, params={"tables": tables}).json()["clean"]
    bad = call(client, "POST", "/v1/deployments/clock", json={"tables": tables, "camera_id": "burst",
                                                              "recorded_from": "2026-06-01T00:00:00",
                                                              "recorded_until": "2026-06-02T00:00:00"})
    assert bad.status_code == 422 and "needs an offset" in bad.text
    marked = call(client, "POST", "/v1/deployments/nowhere/timestamp-issues", json={"tables": tables})
    assert marked.status_code == 422 and "no deployment 'nowhere'" in marked.text


def test_effort_and_detection_history_over_http(app):
    client, tables = app
    call(client, "POST", "/v1/deployments", json={"tables": tables, "deployments": ROWS,
                                                  "timezone": "Europe/Amsterdam"})
    effort = call(client, "GET", "/v1/deployments/effort", READ, params={"tables": tables, "gap_days": 5}).json()
    assert effort["camera_days"] == {"burst-a": 2.0, "sheet-a": 0.5}
    rates = {(r["deploymentID"], r["species"]): r for r in effort["trap_rates"]}
    assert rates[("burst-a", "deer")]["detections"] == 1 and rates[("burst-a", "deer")]["trap_rate"] == 50.0
    assert rates[("sheet-a", "moth")]["detections"] == 2  # moths A and B together, C an hour later: 30 min apart
    assert effort["activity"]["deer"]["22"] == 1
    csv = call(client, "GET", "/v1/deployments/history.csv", READ,
               params={"tables": tables, "species": "deer", "occasion_days": 1, "gap_days": 5})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines() == ["deploymentID,o1,o2,o3", "burst-a,1,0,0", "sheet-a,0,0,NA"]
    assert call(client, "GET", "/v1/deployments/history.csv", READ, params={"tables": tables}).status_code == 422


def test_individuals_weekly_answers_before_any_identify_run(app):
    client, tables = app
    out = call(client, "GET", "/v1/individuals/weekly", READ, params={"tables": tables})
    assert out.status_code == 200 and out.json() == {
        "weeks": [], "readiness": {"ready": False, "reasons": ["no sightings with a capture time yet"]}}
    assert call(client, "GET", "/v1/individuals/weekly", READ,
                params={"tables": tables, "max_new_share": 2}).status_code == 422


def test_the_report_shows_effort_trap_rates_and_activity(app, tmp_path):
    from batch.review import build_report
    from batch.review.build import ReportOptions

    client, tables = app
    call(client, "POST", "/v1/deployments", json={"tables": tables, "deployments": ROWS,
                                                  "timezone": "Europe/Amsterdam"})
    result = build_report(ReportOptions(tables, str(tmp_path / "report"), per_band=1))
    html = open(result.index).read()
    assert '<table id="effort">' in html and "<td>burst-a</td><td>deer</td>" in html
    assert '<table id="activity">' in html


def test_a_deployments_file_sent_as_text_is_parsed_by_the_service(app):
    client, tables = app
    csv = ("deploymentID,cameraID,latitude,longitude,deploymentStart,deploymentEnd\n"
           "sheet-b,spare,52,5,2026-06-01T20:00:00,2026-06-02T08:00:00\n")
    made = call(client, "POST", "/v1/deployments", json={"tables": tables, "timezone": "UTC",
                                                         "file": {"name": "deps.CSV", "text": csv}})
    assert made.status_code == 201 and made.json()["deployments"] == ["sheet-b"]
    bad = call(client, "POST", "/v1/deployments", json={"tables": tables, "file": {"name": "deps.csv",
                                                                                  "text": "deploymentID\nx\n"}})
    assert bad.status_code == 422 and "deployments file deps.csv, row 1" in bad.text and '"file"' in bad.text
    assert call(client, "POST", "/v1/deployments", json={"tables": tables, "file": {"name": "deps.xlsx", "text": ""}}
                ).status_code == 422
    both = call(client, "POST", "/v1/deployments", json={"tables": tables, "deployments": ROWS,
                                                         "file": {"name": "deps.csv", "text": csv}})
    assert both.status_code == 422 and "not both" in both.text
    call(client, "POST", "/v1/deployments", json={"tables": tables, "removed": ["sheet-b"]})
