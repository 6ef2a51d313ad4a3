"""A clip in the console, in headless Chromium over the real app (no Ray: the reprocess stages run in this process on
a real clip written with PyAV, tests/fixtures/clips.py): its capture card shows its poster frame, decoded on request;
its capture page the strip of its sampled frames with a detection, each with its own boxes. A frame the clip cannot
give is a 404. The HTML report draws the same: the poster frame and the strip, decoded from the clip."""

from __future__ import annotations

import datetime as dt
import warnings

import pytest

from batch.review.browser import find_chromium
from model_store import ModelStore
from tests.fixtures.archive import brightness_config, brightness_model, process_without_ray
from tests.fixtures.clips import day_night_clip
from tests.fixtures.pictures import API, app_for, serve_asgi, set_token_script, site_config

with warnings.catch_warnings():  # starlette's TestClient warns about httpx; it is still what FastAPI ships
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("clip-console")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    store.publish(brightness_model(d / "b.onnx"), "trapcam", "1", brightness_config())
    store.promote("trapcam:1")
    (d / "archive" / "cam01").mkdir(parents=True)
    day_night_clip(d / "archive" / "cam01" / "visit.mp4", "NDDN", fps=10, created=dt.datetime(2024, 6, 1, 21, 30))
    process_without_ray(str(d / "archive"), str(d / "tables"), store.root, "trapcam@production")
    config = site_config(store.root, [str(d)], [("site-a", d / "tables", d / "archive")])
    with serve_asgi(app_for(config)) as url:
        yield url, config


def test_a_clip_shows_as_its_poster_and_a_strip_of_its_frames_with_boxes(site):
    from tests.fixtures.browser import Browser

    if find_chromium() is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    url, config = site
    with TestClient(app_for(config)) as client:
        auth = {"Authorization": f"Bearer {API}"}
        listed = client.get("/v1/pictures/captures", headers=auth).json()
        c = listed["captures"][0]
        assert c["kind"] == "video" and [f["frame_number"] for f in c["frames"]] == [10, 20]  # the two bright seconds
        assert all(d["frame_number"] in (10, 20) for d in c["detections"])
        poster = client.get(c["thumb_url"])  # the grant in the URL, no token
        assert poster.status_code == 200 and poster.headers["content-type"] == "image/jpeg"
        assert poster.content[:2] == b"\xff\xd8"
        query = {"tables": listed["tables"], "uri": c["uri"]}
        assert client.get("/v1/pictures/file", params={**query, "size": "frame-99999"}, headers=auth).status_code == 404
        assert client.get("/v1/pictures/file", params={**query, "size": "full"}, headers=auth).status_code == 404
        assert client.get("/v1/pictures/file", params={**query, "size": "frame-x"}, headers=auth).status_code == 422

    with Browser(1280, 900) as b:
        b.before_load(set_token_script())
        b.navigate(f"{url}/console#/captures")
        b.wait("[...document.querySelectorAll('#captures .capture img')].some(i => i.complete && i.naturalWidth > 0)",
               what="the clip's poster frame")
        assert "clip · 2 frame(s) with a box" in b.eval("document.querySelector('#captures .capture').textContent")
        b.eval("document.querySelector('#captures .capture').click()")
        b.wait("document.querySelectorAll('#clip-strip .clip-frame img').length === 2 && [...document.querySelectorAll("
               "'#clip-strip .clip-frame img')].every(i => i.complete && i.naturalWidth > 0)", what="the strip")
        boxes = b.eval("[...document.querySelectorAll('#clip-strip .clip-frame')].map(f => f.querySelectorAll('.box')"
                       ".length)")
        per_frame = {n: sum(d["frame_number"] == n and d["kept"] for d in c["detections"]) for n in (10, 20)}
        assert boxes == [per_frame[10], per_frame[20]] and all(boxes)
        assert b.eval("document.querySelectorAll('#capture-boxes thead th')[1].textContent") == "frame"
        assert b.errors() == []


def test_the_report_shows_a_clip_as_its_poster_and_a_strip_of_its_frames(site, tmp_path):
    from batch.review import build_report
    from batch.review.build import ReportOptions

    _, config = site
    tables = config["jobs"]["pictures"][0]["tables"]
    result = build_report(ReportOptions(tables, str(tmp_path / "report"), per_band=1))
    html = open(result.index).read()
    assert '<div class="clip-strip">' in html and "<b>clip</b>" in html
    assert 'title="frame 10"' in html and 'title="frame 20"' in html
    assert result.unreadable == 0 and result.images == 1  # every frame decoded from the clip, none a placeholder
