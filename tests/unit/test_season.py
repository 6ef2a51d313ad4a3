"""The season's signals (model_store/tables/season.py) kept up to date by what each commit adds, judged by `trapline
health`, and served as Prometheus metrics at GET /metrics: per camera, the runs, and a tables directory that goes
away (the gauges say so, the scrape still answers). No Ray: the reprocess stages run in this process."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
import warnings

import pytest
from prometheus_client.parser import text_string_to_metric_families

from batch.health import judge, run_health
from batch.health_options import HealthOptions, HealthThresholds
from batch.views.season_metrics import render
from model_store.tables.locations import open_location
from model_store.tables.manifest import RunManifest, write_manifest
from model_store.tables.reader import Tables
from model_store.tables.schema import IMAGES
from model_store.tables.season import Season
from tests.fixtures.archive import PATH_PATTERN, encode, picture, process_without_ray
from tests.fixtures.pictures import API, app_for, build_site, site_config
from trapline.cli import main

with warnings.catch_warnings():  # starlette's TestClient warns about httpx; it is still what FastAPI ships
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    return build_site(tmp_path_factory.mktemp("season"))


def _tables(site, tmp_path):
    out = tmp_path / "tables"
    shutil.copytree(site["tables"], out)
    return out


def _metrics(text: bytes) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text.decode()) for s in fam.samples}


def test_per_camera_figures_and_a_commit_adds_only_what_it_brought(site, tmp_path):
    tables = _tables(site, tmp_path)
    season = Season(str(tables), clock_every_s=0)
    s = season.refresh()
    spec = site["spec"]
    assert s.up and set(s.cameras) == {"cam01", "cam02", "cam03"}
    assert sum(c.images for c in s.cameras.values()) == len(spec.images)
    failed = {cam: sum(1 for rel in spec.failed if rel.startswith(cam)) for cam in s.cameras}
    assert {cam: c.failed for cam, c in s.cameras.items()} == failed
    assert s.cameras["cam01"].last_capture_s == (dt.datetime(2024, 5, 2, 12) - dt.datetime(1970, 1, 1)).total_seconds()
    result_set = Tables(open_location(str(tables))).read(IMAGES, columns=["filters_hash"])["filters_hash"][0].as_py()
    assert s.table_bytes[("images", "trapcam", "1", result_set)] > 0
    assert s.table_bytes[("detections", "trapcam", "1", result_set)] > 0
    read = dict(season._parts)

    # one new picture: the refresh reads its part only, and the figures grow by it
    new = site["archive"] / "cam01" / "IMG_20240601_120000.jpg"
    new.write_bytes(encode(picture(64, 48, night=False, seed=7)))
    try:
        process_without_ray(str(site["archive"]), str(tables), site["store"].root, "trapcam:1",
                            path_pattern=PATH_PATTERN)
    finally:
        new.unlink()
    after = season.refresh()
    assert len(season._parts) == len(read) + 1 and all(p in season._parts for p in read)
    assert after.cameras["cam01"].images == s.cameras["cam01"].images + 1
    assert after.cameras["cam01"].last_capture_s == (dt.datetime(2024, 6, 1, 12) - dt.datetime(1970, 1, 1)
                                                     ).total_seconds()

    # a compaction replaces the parts: the figures are read again, and are the same rows
    assert main(["tables", "compact", "--tables", str(tables)]) == 0
    compacted = season.refresh()
    assert {k: (c.images, c.failed) for k, c in compacted.cameras.items()} == \
        {k: (c.images, c.failed) for k, c in after.cameras.items()}

    # the tables go away: the scrape still answers, with up 0 and the last figures
    shutil.rmtree(tables)
    gone = season.refresh()
    assert not gone.up and "no tables" in gone.error
    text = _metrics(render({"site": gone}))
    assert text[("trapline_season_up", (("source", "site"),))] == 0.0
    assert text[("trapline_season_camera_images", (("camera", "cam01"), ("source", "site")))] == \
        after.cameras["cam01"].images


def test_runs_from_the_manifests_and_health_fails_on_a_failed_job_and_a_silent_camera(site, tmp_path):
    tables = _tables(site, tmp_path)
    storage = Tables(open_location(str(tables))).storage
    ok = RunManifest.start("20260101T000000Z-ok", "reprocess")
    ok.finish("succeeded")
    ok.ended_at = "2026-01-01T01:00:00+00:00"  # last week's run
    write_manifest(storage, ok)
    running = RunManifest.start("20260102T000000Z-go", "reprocess", counts={"processed": 40, "failed": 2,
                                                                              "to_process": 100})
    write_manifest(storage, running)
    season = Season(str(tables))
    s = season.refresh()
    assert s.runs[("reprocess", "succeeded")] == 1 and s.runs[("reprocess", "running")] == 1
    assert [(r["run_id"], r["processed"], r["failed"]) for r in s.running] == [("20260102T000000Z-go", 40, 2)]
    now = s.last_run_s[("reprocess", "succeeded")] + 3600
    captures = max(c.last_capture_s for c in s.cameras.values())
    assert s.clock_problems == {"jump": 1}  # the fixture archive's cam02 has a clock that jumps
    lenient = HealthThresholds(silent_days=(now - captures) / 86400 + 400, max_failed_share=0.5,
                               max_clock_problems=1, max_days_since_job=100_000)
    report = judge(s, lenient, now_s=now)
    assert report.ok, [c for c in report.checks if c.status == "failed"]
    assert {c.name: c.status for c in report.checks}["assignment rate"] == "skipped"  # no sightings yet

    running.finish("failed", "boom")  # the weekly job failed: the newest archive job is a failure
    write_manifest(storage, running)
    s = season.refresh()
    assert s.runs[("reprocess", "failed")] == 1 and not s.running
    checks = {c.name: c for c in judge(s, lenient, now_s=time.time()).checks}
    assert checks["archive jobs"].status == "failed" and "failed" in checks["archive jobs"].detail
    silent = {c.name: c for c in judge(s, HealthThresholds(silent_days=1), now_s=now).checks}["cameras silent"]
    assert silent.status == "failed" and silent.value == "3 of 3"


def test_trapline_health_prints_a_table_and_json_and_exits_1_when_a_check_fails(site, tmp_path, capsys):
    tables = _tables(site, tmp_path)
    config = tmp_path / "health.yaml"
    config.write_text("silent_days: 100000\nmax_failed_share: 0.5\nmax_clock_problems: 1\n")
    assert main(["health", "--tables", str(tables), "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "cameras silent" in out and "healthy" in out
    assert main(["health", "--tables", str(tables), "--config", str(config), "--max-failed-share", "0.01",
                 "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and {c["name"]: c["status"] for c in report["checks"]}["failed images"] == "failed"
    assert not run_health(HealthOptions(tables=str(tmp_path / "nowhere"))).ok  # unreadable tables fail the check


def test_the_service_answers_metrics_and_the_health_checks(site):
    config = site_config(site["store"].root, [str(site["dir"])], [("site-a", site["tables"], site["archive"])])
    auth = {"Authorization": f"Bearer {API}"}
    with TestClient(app_for(config)) as client:
        assert client.get("/metrics").status_code == 401
        answer = client.get("/metrics", headers=auth)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        found = _metrics(answer.content)
        assert found[("trapline_season_up", (("source", "site-a"),))] == 1.0
        assert found[("trapline_season_camera_images", (("camera", "cam02"), ("source", "site-a")))] > 0
        health = client.get("/v1/season/health", headers=auth,
                            params={"tables": str(site["tables"]), "silent_days": 100000, "max_failed_share": 0.5,
                                    "max_clock_problems": 1})
        assert health.status_code == 200 and health.json()["ok"], health.json()
        bad = client.get("/v1/season/health", headers=auth, params={"tables": str(site["tables"]),
                                                                   "max_failed_share": 7})
        assert bad.status_code == 422 and "threshold" in bad.text
        figures = client.get("/v1/season", headers=auth, params={"tables": str(site["tables"])}).json()
        assert figures["up"] and set(figures["cameras"]) == {"cam01", "cam02", "cam03"}


def test_a_scrape_during_a_rebuild_sees_the_figures_before_it_whole(site, tmp_path, monkeypatch):
    tables = _tables(site, tmp_path)
    season = Season(str(tables))
    before = season.refresh()
    for part in (tables / "images").rglob("*.parquet"):  # a purge took the parts away and a new one is coming
        new = part.with_name("part-rebuilt.parquet")
        part.rename(new)
        break
    seen = []
    real = Season._read_part

    def slow(self, storage, path, state):  # every part read during the rebuild: what would a scrape see now?
        seen.append(self.signals())
        return real(self, storage, path, state)

    monkeypatch.setattr(Season, "_read_part", slow)
    after = season.refresh()
    assert len(seen) > 1 and all({k: c.images for k, c in s.cameras.items()} ==
                                 {k: c.images for k, c in before.cameras.items()} for s in seen)
    assert {k: c.images for k, c in after.cameras.items()} == {k: c.images for k, c in before.cameras.items()}


def test_the_exposition_parses_back_whatever_a_camera_is_called():
    from model_store.tables.season import Camera, Signals

    odd = 'cam "7"\\north\nside'
    s = Signals("t", up=True, refreshed_at_s=10.0, cameras={odd: Camera(1.5, 2.0, 3, 1)})
    found = _metrics(render({"site \"a\"": s}, now_s=12.0))
    assert found[("trapline_season_camera_images", (("camera", odd), ("source", 'site "a"')))] == 3
    assert found[("trapline_season_camera_last_capture_timestamp_seconds",
                  (("camera", odd), ("source", 'site "a"')))] == 1.5
    assert found[("trapline_season_refresh_age_seconds", (("source", 'site "a"'),))] == 2.0
