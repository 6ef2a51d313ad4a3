"""The console's pictures routes without Ray: the real ingress app (IngressCore's FastAPI app, jobs attached) over
tables written by the reprocess stages in this process, driven with FastAPI's TestClient.

Checked here: cameras with their newest capture and boxes, captures filtered (camera, label, score, date, state) and
paged, one capture in full, the locations a job form picks from, and what is served: tokens or a grant, thumbnails
made once, and nothing outside the configured archive and tables (.., symlinks, absolute paths, other tables).
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from model_store import decode_image
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from tests.fixtures.pictures import ADMIN, API, app_for, build_site

with warnings.catch_warnings():  # starlette's TestClient warns about httpx; it is still what FastAPI ships
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

AUTH = {"Authorization": f"Bearer {API}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    site = build_site(tmp_path_factory.mktemp("pictures"))
    d, archive = site["dir"], site["archive"]
    other = d / "other-tables"  # tables the service is not configured with
    (other / "crops").mkdir(parents=True)
    (other / "crops" / "x.jpg").write_bytes((archive / "cam01/2024-05-02/IMG_20240502_120000.png").read_bytes())
    (archive / "cam01" / "escape.jpg").symlink_to(other / "crops" / "x.jpg")
    return site


@pytest.fixture(scope="module")
def client(site):
    with TestClient(app_for(site["config"])) as c:
        yield c


def test_cameras_show_each_newest_capture_with_its_kept_boxes(client, site):
    assert client.get("/v1/pictures/cameras").status_code == 401
    r = client.get("/v1/pictures/cameras?limit=2", headers=AUTH)
    assert r.status_code == 200, r.text
    page = r.json()
    assert os.path.realpath(page["tables"]) == os.path.realpath(site["tables"]) and page["served"]
    assert page["total"] == 3 and [c["camera"] for c in page["cameras"]] == ["cam01", "cam02"]
    latest = site["spec"].latest_per_camera()
    tables = Tables(open_location(str(site["tables"])))
    for cam in page["cameras"]:
        tile = cam["latest"]
        assert tile["image"]["uri"] == str(site["archive"] / latest[cam["camera"]])
        kept = tables.read(DETECTIONS, "trapcam", "1").to_pandas()
        kept = kept[(kept["uri"] == tile["image"]["uri"]) & kept["kept"]]
        assert len(tile["detections"]) == len(kept) > 0
        assert {d["label"] for d in tile["detections"]} == set(kept["label"])
        assert tile["image"]["thumb_url"].startswith("/v1/pictures/file?")
    r = client.get("/v1/pictures/cameras?offset=2", headers=AUTH).json()
    assert [c["camera"] for c in r["cameras"]] == ["cam03"]


def test_the_pictures_take_their_tables_as_every_view_does(client, site):
    """`?tables=` as on every view: the source's tables by path (the same page as the default), tables outside the jobs'
    roots refused naming `tables`; the old `?source=` a 422 naming the new parameter, on every pictures route."""
    default = client.get("/v1/pictures/cameras", headers=AUTH).json()
    picked = client.get("/v1/pictures/cameras", params={"tables": str(site["tables"])}, headers=AUTH).json()
    assert picked == default
    r = client.get("/v1/pictures/captures", params={"tables": "/etc"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["field"] == "tables", r.text
    for path in ("cameras", "captures", "facets"):
        r = client.get(f"/v1/pictures/{path}", params={"source": "site-a"}, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"]["field"] == "source", (path, r.text)
        assert "tables=PATH" in r.json()["error"]["message"]


def test_captures_filters_change_what_is_listed(client, site):
    spec = site["spec"]

    def listed(**q) -> dict:
        r = client.get("/v1/pictures/captures", params=q, headers=AUTH)
        assert r.status_code == 200, r.text
        return r.json()

    every = listed(limit=200)
    assert every["total"] == len(spec.images) and every["model"] == {"name": "trapcam", "version": "1"}
    times = [c["capture_time"] for c in every["captures"] if c["capture_time"]]
    assert times == sorted(times, reverse=True)  # newest first
    cam02 = listed(camera="cam02", limit=200)
    assert cam02["total"] == len(spec.cameras["cam02"]) and {c["camera"] for c in cam02["captures"]} == {"cam02"}
    assert listed(state="failed")["total"] == len(spec.failed)
    assert listed(state="empty")["total"] == len(spec.blank)
    nonempty = listed(state="nonempty", limit=200)
    assert nonempty["total"] == len(spec.good) - len(spec.blank)
    assert all(c["detections"] for c in nonempty["captures"])
    labels = {d["label"] for c in nonempty["captures"] for d in c["detections"]}
    one = sorted(labels)[0]
    with_label = listed(label=one, limit=200)
    assert 0 < with_label["total"] <= nonempty["total"]
    assert all(any(d["label"] == one for d in c["detections"]) for c in with_label["captures"])
    top = max(d["score"] for c in nonempty["captures"] for d in c["detections"])
    assert listed(min_score=min(1.0, top + 1e-6))["total"] == 0
    assert listed(min_score=top - 1e-6)["total"] >= 1
    day = listed(since="2024-05-01T00:00:00", until="2024-05-02T00:00:00", limit=200)
    on_the_day = [r for r, t in spec.times.items() if dt.datetime(2024, 5, 1) <= t < dt.datetime(2024, 5, 2)]
    assert day["total"] == len(on_the_day) > 1
    assert all(c["capture_time"].startswith("2024-05-01") for c in day["captures"])
    page = listed(limit=5, offset=5)
    assert len(page["captures"]) == 5 and page["captures"][0]["uri"] == every["captures"][5]["uri"]
    r = client.get("/v1/pictures/captures?limit=201", headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_parameter"
    r = client.get("/v1/pictures/captures?state=blank", headers=AUTH)
    assert r.status_code == 422
    facets = client.get("/v1/pictures/facets", headers=AUTH).json()
    assert facets["cameras"] == ["cam01", "cam02", "cam03"] and set(labels) <= set(facets["labels"])


def test_one_capture_has_every_box_its_model_and_filter_set(client, site):
    uri = str(site["archive"] / site["spec"].latest_per_camera()["cam02"])
    r = client.get("/v1/pictures/capture", params={"uri": uri}, headers=AUTH)
    assert r.status_code == 200, r.text
    c = r.json()
    raw = Tables(open_location(str(site["tables"]))).read(DETECTIONS, "trapcam", "1").to_pandas()
    assert len(c["detections"]) == int((raw["uri"] == uri).sum())  # kept and dropped
    assert c["model"]["name"] == "trapcam" and c["model"]["version"] == "1" and c["model"]["sha256"]
    rows = Tables(open_location(str(site["tables"]))).read(IMAGES, "trapcam", "1")
    assert c["filter_set"]["hash"] == rows["filters_hash"][0].as_py()
    r = client.get("/v1/pictures/capture", params={"uri": "/nowhere.jpg"}, headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["kind"] == "capture_not_found"


def test_pictures_are_served_with_a_token_or_a_grant_and_thumbnails_are_made_once(client, site):
    cam = client.get("/v1/pictures/cameras", headers=AUTH).json()["cameras"][1]["latest"]
    full = client.get(cam["image"]["image_url"])  # the grant in the URL, no header: as an <img> asks
    assert full.status_code == 200 and full.headers["content-type"] == "image/jpeg"
    assert full.content == open(cam["image"]["uri"], "rb").read()
    thumb = client.get(cam["image"]["thumb_url"])
    assert thumb.status_code == 200
    small = decode_image(thumb.content)
    assert max(small.shape[:2]) <= 360 and small.dtype == np.uint8
    made = list((site["tables"] / "_thumbs").rglob("*.jpg"))
    assert len(made) == 1
    mtime = made[0].stat().st_mtime_ns
    assert client.get(cam["image"]["thumb_url"]).content == thumb.content
    assert made[0].stat().st_mtime_ns == mtime  # served from the cache, not made again
    q = parse_qs(urlsplit(cam["image"]["image_url"]).query)
    other = str(site["archive"] / site["spec"].latest_per_camera()["cam03"])
    forged = {**{k: v[0] for k, v in q.items()}, "uri": other}  # a grant for one file does not open another
    assert client.get("/v1/pictures/file", params=forged).status_code == 401
    assert client.get("/v1/pictures/file", params=forged, headers=AUTH).status_code == 200  # the token does
    expired = {**{k: v[0] for k, v in q.items()}, "expires": str(int(dt.datetime(2020, 1, 1).timestamp()))}
    assert client.get("/v1/pictures/file", params=expired).status_code == 401


def test_nothing_outside_the_archive_and_the_tables_crops_is_served(client, site):
    d, archive, tables = site["dir"], site["archive"], site["tables"]
    good = str(archive / site["spec"].latest_per_camera()["cam01"])
    refused = [
        str(archive / "cam01" / ".." / ".." / "b.onnx"),  # .. out of the archive
        str(archive / "cam01" / "escape.jpg"),  # a symlink inside the archive to a file outside it
        "/etc/passwd",  # an absolute path elsewhere
        str(d / "other-tables" / "crops" / "x.jpg"),  # another tables' snip
        next(str(p) for p in (tables / "images").rglob("*.parquet")),  # the tables themselves
        str(archive / "notes" / "readme.txt"),  # in the archive, not a picture
        "cam01/2024-05-01/IMG_20240501_080000.jpg",  # relative
        "file://" + good,
    ]
    for uri in refused:
        r = client.get("/v1/pictures/file", params={"tables": str(tables), "uri": uri}, headers=AUTH)
        assert r.status_code == 404 and r.json()["error"]["kind"] == "picture_not_found", (uri, r.text)
        assert "passwd" not in r.text and str(d) not in r.json()["error"]["message"]
    assert client.get("/v1/pictures/file", params={"tables": str(tables), "uri": good}, headers=AUTH).status_code == 200
    snip = tables / "crops" / "trapcam" / "1" / "x_000.jpg"  # this source's snips are served
    snip.parent.mkdir(parents=True, exist_ok=True)
    snip.write_bytes(open(good, "rb").read())
    r = client.get("/v1/pictures/file", params={"tables": str(tables), "uri": str(snip)}, headers=AUTH)
    assert r.status_code == 200 and r.content == snip.read_bytes()
    assert client.get("/v1/pictures/file", params={"tables": str(tables), "uri": good}).status_code == 401
    # other tables under the roots, which record no archive: none of this archive's pictures through them
    other = {"tables": str(d / "other-tables"), "uri": good}
    assert client.get("/v1/pictures/file", params=other, headers=AUTH).status_code == 404


def test_locations_list_the_archives_and_tables_under_the_roots(client, site):
    r = client.get("/v1/locations", headers=AUTH)
    assert r.status_code == 200, r.text
    found = {loc["path"]: loc for loc in r.json()["locations"]}
    assert found[os.path.realpath(site["archive"])]["kind"] == "archive"
    tables = found[os.path.realpath(site["tables"])]
    assert tables["kind"] == "tables" and tables["models"] == ["trapcam:1"]  # the table sets a form picks from
    sources = client.get("/v1/pictures/sources", headers=AUTH).json()["sources"]
    assert [s["name"] for s in sources] == ["site-a"] and sources[0]["served"]


def test_job_kinds_give_the_forms_their_options(client):
    r = client.get("/v1/job-kinds", headers=AUTH)
    assert r.status_code == 200, r.text
    kinds = {k["name"]: k for k in r.json()["kinds"]}
    reprocess = kinds["reprocess"]
    assert reprocess["paths"] == ["archive", "out"] and reprocess["preview"]
    assert {"archive", "out", "model"} <= set(reprocess["required"])
    props = reprocess["options_schema"]["properties"]
    assert "batch_size" in props and not {"address", "store", "json_output"} & set(props)
    # a run's place for the species ensemble, from the options models (reprocess and postprocess alike)
    assert {"country", "admin1"} <= set(props) & set(kinds["postprocess"]["options_schema"]["properties"])
    assert kinds["report"]["paths"] == ["tables", "out", "archive"] and not kinds["report"]["preview"]
    assert client.get("/v1/job-kinds").status_code == 401

    # export: every format's options once in the schema, and per format the ones it takes (the form shows those)
    export = kinds["export"]
    assert export["variants"]["key"] == "format" and reprocess["variants"] is None
    assert export["options_schema"]["properties"]["format"]["enum"] == list(export["variants"]["options"])
    assert "timezone" in export["variants"]["options"]["camtrap-dp"]
    assert "timezone" not in export["variants"]["options"]["coco"] and "out" in export["variants"]["options"]["coco"]
    assert {"tables", "format", "out"} <= set(export["required"])
    assert "store" not in export["options_schema"]["properties"]


def test_an_export_job_with_another_formats_option_is_refused_naming_both(client):
    r = client.post("/v1/jobs", headers={"Authorization": f"Bearer {ADMIN}"}, json={
        "kind": "export", "options": {"tables": "t", "format": "megadetector", "out": "o.json", "timezone": "+02:00"}})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"]["fields"] == ["timezone"], body
    assert "timezone: format megadetector has no such option" in body["error"]["message"], body


def test_tables_under_the_roots_show_their_pictures_unconfigured(site, tmp_path):
    """After `trapline reprocess` and `trapline serve` in one folder: no `jobs.pictures` block, and the Cameras page
    still shows the tables' pictures, their archive taken from the reprocess run's own manifest."""
    from batch.views import found_tables
    from ground.storage import Storage
    from model_store.tables.manifest import RunManifest, new_run_id, write_manifest
    from tests.fixtures.pictures import site_config

    d = site["dir"]
    unconfigured = site_config(site["store"].root, [str(d)], [])
    with TestClient(app_for(unconfigured)) as c:
        found_tables._cache.clear()
        assert c.get("/v1/pictures/cameras", headers=AUTH).json()["error"]["kind"] == "no_sources"
        write_manifest(Storage(str(site["tables"])), RunManifest.start(new_run_id(), "reprocess",
                                                                       source=str(site["archive"]),
                                                                       out=str(site["tables"])))
        found_tables._cache.clear()
        listed = c.get("/v1/pictures/sources", headers=AUTH).json()
        assert [(s["name"], s["kind"]) for s in listed["sources"]] == [("tables", "found")], listed
        page = c.get("/v1/pictures/cameras", headers=AUTH).json()
        assert page["tables"] == os.path.realpath(site["tables"]) and page["total"] == 3
        assert c.get("/v1/pictures/cameras", params={"tables": str(site["tables"])}, headers=AUTH).json() == page
        shown = page["cameras"][0]["latest"]["image"]
        assert c.get(shown["image_url"], headers=AUTH).status_code == 200  # the picture, from its archive


@pytest.mark.parametrize("where", ["local tables", "tables in the bucket"])
def test_an_archive_in_a_bucket_is_served_through_the_service_and_confined_to_it(s3_bucket, tmp_path, where):
    """An archive in a bucket (its tables local, or beside it in the bucket): the captures' pictures and thumbnails
    are read through the service (thumbnails cached under local tables, made on the fly for tables in a bucket); a
    key outside the archive, with a `..` or an empty segment, not a picture, or gone is the same 404."""
    from model_store import ModelStore
    from tests.fixtures.archive import (
        PATH_PATTERN,
        brightness_config,
        brightness_model,
        build_archive,
        process_without_ray,
        write_s3,
    )
    from tests.fixtures.pictures import site_config

    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "b.onnx"), "trapcam", "1", brightness_config())
    store.promote("trapcam:1")
    spec = build_archive()
    archive = write_s3(spec, f"{s3_bucket}/archive", os.environ["TRAPLINE_S3_ENDPOINT_URL"])
    tables = str(tmp_path / "tables") if where == "local tables" else f"{s3_bucket}/tables"
    process_without_ray(archive, tables, store.root, "trapcam@production", path_pattern=PATH_PATTERN)
    with TestClient(app_for(site_config(store.root, [str(tmp_path)], [("bucket", tables, archive)]))) as c:
        page = c.get("/v1/pictures/captures", params={"limit": 50}, headers=AUTH).json()
        assert page["served"] and page["captures"], page
        shown = next(x for x in page["captures"] if x["detections"])
        rel = shown["uri"].removeprefix(archive + "/")
        full = c.get(shown["image_url"])  # the grant alone, as an <img> asks
        assert full.status_code == 200 and full.content == spec.files[rel], full.text
        assert full.headers["content-type"] == files_media(rel)
        thumb = c.get(shown["thumb_url"])
        assert thumb.status_code == 200 and max(decode_image(thumb.content).shape[:2]) <= 360
        cached = list((tmp_path / "tables" / "_thumbs").rglob("*.jpg"))
        assert len(cached) == (1 if where == "local tables" else 0)
        assert c.get(shown["thumb_url"]).content == thumb.content
        refused = [f"{archive}/cam01/../../tables/_runs/x.jpg", f"{archive}/cam01//{rel.split('/')[-1]}",
                   f"{s3_bucket}/elsewhere/{rel}", f"{archive}/notes/readme.txt", f"{archive}/cam01/gone.jpg",
                   f"{archive}x/{rel}", "memory://" + shown["uri"].split("://", 1)[1]]
        for uri in refused:
            for size in ("full", "thumb"):
                r = c.get("/v1/pictures/file", params={"tables": tables, "uri": uri, "size": size}, headers=AUTH)
                assert r.status_code == 404 and r.json()["error"]["kind"] == "picture_not_found", (uri, size, r.text)
        # a clip in the bucket: its frames streamed from it and decoded on request, as a reprocess reads it
        import boto3

        from tests.fixtures.clips import day_night_clip

        clip = day_night_clip(tmp_path / "clip.mp4", "DN")
        bucket, _, prefix = archive.removeprefix("s3://").partition("/")
        boto3.client("s3", endpoint_url=os.environ["TRAPLINE_S3_ENDPOINT_URL"]).put_object(
            Bucket=bucket, Key=f"{prefix}/cam01/clip.mp4", Body=clip.read_bytes())
        frames = {size: c.get("/v1/pictures/file", headers=AUTH, params={
            "tables": tables, "uri": f"{archive}/cam01/clip.mp4", "size": size}) for size in ("frame-0", "frame-15")}
        assert all(r.status_code == 200 and r.headers["content-type"] == "image/jpeg" for r in frames.values())
        day, night = (decode_image(r.content).mean() for r in frames.values())
        assert day > night + 50  # the bright stretch, then the dark one: the frames asked for
        r = c.get("/v1/pictures/file", params={"tables": tables, "uri": f"{archive}/cam01/clip.mp4", "size": "full"},
                  headers=AUTH)
        assert r.status_code == 404 and "size=frame-N" in r.json()["error"]["message"]


def files_media(rel: str) -> str:
    from batch.views.picture_files import MEDIA

    return MEDIA[os.path.splitext(rel)[1].lower()]


def test_a_crops_symlink_or_a_malformed_url_serves_nothing(tmp_path):
    """A `crops` folder that is a symlink out of the tables does not take the confinement with it; a recorded URL
    that is no URL (a bad port, an IDNA label) is the typed 404 of a picture that cannot be fetched, not a 500."""
    from batch.views.picture_files import Source, confine, web_file
    from ground.errors import NotFoundError

    tables, archive, elsewhere = (tmp_path / n for n in ("tables", "archive", "elsewhere"))
    for d in (tables, archive, elsewhere):
        d.mkdir()
    (elsewhere / "x.jpg").write_bytes(b"\xff\xd8 not ours")
    (tables / "crops").symlink_to(elsewhere)
    with pytest.raises(NotFoundError) as refused:
        confine(Source("s", "configured", str(tables), str(archive)), str(tables / "crops" / "x.jpg"))
    assert refused.value.extra["kind"] == "picture_not_found"
    for uri in ("http://[::1/x.jpg", "http://xn--/x.jpg"):
        with pytest.raises(NotFoundError) as unreadable:
            web_file(uri)
        assert unreadable.value.extra["kind"] == "picture_unreadable", uri


def test_only_trapline_tables_are_tables_not_any_folder_with_images(site, tmp_path):
    """A checkout holds `site/assets/images` (the docs site) and `bench-results/images` (plots): folders with an
    `images/` that trapline did not write are not offered as tables "(no model yet)"; tables a run has started (its
    manifest, no rows yet) are."""
    import shutil

    from batch.jobs.locations import locations
    from ground.storage import Storage
    from model_store.tables.manifest import RunManifest, new_run_id, write_manifest

    checkout = tmp_path / "checkout"
    for web in ("site/assets/images", "bench-results/images"):
        (checkout / web).mkdir(parents=True)
        (checkout / web / "favicon.png").write_bytes(b"png")
    shutil.copytree(site["tables"], checkout / "out" / "detections")
    started = checkout / "out" / "started"
    (started / "images").mkdir(parents=True)
    write_manifest(Storage(str(started)), RunManifest.start(new_run_id(), "reprocess", out=str(started)))
    found = {loc["path"]: (loc["kind"], loc["models"]) for loc in locations([str(checkout)])["locations"]}
    tables = {path: models for path, (kind, models) in found.items() if kind == "tables"}
    assert tables == {str(checkout / "out" / "detections"): ["trapcam:1"], str(started): []}, found


def test_tables_beside_pictures_are_found_below_a_folder_that_holds_pictures(site, tmp_path):
    """A project folder (the checkout the README is followed in) holds photos of its own one level down (./samples,
    docs/) beside its tables (./out/detections): the walk used to call the folder an archive and stop there."""
    import shutil

    from batch.jobs.locations import locations
    from batch.views import found_tables

    project = tmp_path / "project"
    shutil.copytree(site["archive"], project / "samples")
    shutil.copytree(site["tables"], project / "out" / "detections")
    (project / "docs").mkdir()
    shutil.copy(next(site["archive"].rglob("*.jpg")), project / "docs" / "screenshot.jpg")
    found = {loc["path"]: loc["kind"] for loc in locations([str(project)])["locations"]}
    assert found[str(project)] == "archive" and found[str(project / "samples")] == "archive"  # pictures in docs/
    assert found[str(project / "out" / "detections")] == "tables", found
    from ground.storage import Storage
    from model_store.tables.manifest import RunManifest, new_run_id, write_manifest

    write_manifest(Storage(str(project / "out" / "detections")), RunManifest.start(
        new_run_id(), "reprocess", source=str(project / "samples"), out=str(project / "out" / "detections")))
    found_tables._cache.clear()
    shown = found_tables.found_sources([str(project)])  # with the archive their reprocess's manifest names
    assert [s.tables for s in shown.values()] == [str(project / "out" / "detections")], shown


def test_no_console_file_writes_a_control_character_into_the_page():
    """The tables picker's "another…" once had the value NUL (`\\u0000other`): invalid in HTML, and tools then read the
    page as binary. No console file holds one, written or escaped (the browser test checks the drawn options)."""
    import re

    from batch.views.pages import CONSOLE

    written = {p.name for p in CONSOLE.iterdir() if p.is_file() and re.search(
        r"[\x00-\x08\x0b\x0c\x0e-\x1f]|\\u00[01][0-9a-fA-F]|\\x[01][0-9a-fA-F]|\\0(?![0-9])", p.read_text())}
    assert written == set()
