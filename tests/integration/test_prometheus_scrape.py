"""A real Prometheus (Debian's `prometheus`) scrapes a running trapline and evaluates deploy/prometheus/rules.yml: an
alert fires when its condition is made true (a weekly job fails, the tables go away, the failed-image rate jumps,
cameras stop) and resolves when it is cleared. The rules are the shipped ones with their waits (`for`) dropped and
the failed-image window shortened to 10 s (ten 1 s scrapes: a few missed under load still show the jump), so that a
scenario takes seconds, not hours; promtool's unit tests (tests/unit/test_prometheus_rules.py) cover them as written.
No Ray: the service's app on uvicorn."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
import yaml

from batch.views import season as season_view
from batch.views.season_metrics import Watch
from model_store.tables.commit import write_results
from model_store.tables.locations import open_location
from model_store.tables.manifest import RunManifest, write_manifest
from model_store.tables.reader import Tables
from model_store.tables.schema import RESULT_SCHEMA
from serve.local import free_port
from serve.polling import wait_until
from tests.fixtures.pictures import API, build_site, served, site_config

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed (make promtool: Debian's "
                                                           "`prometheus` package)")


def _fast_rules(path: Path) -> None:
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
            rule["expr"] = rule["expr"].replace("[6h]", "[10s]")
    path.write_text(yaml.safe_dump(rules))


@pytest.fixture
def prometheus(tmp_path, monkeypatch):
    """trapline serving the fixture site's tables, scraped every second by a Prometheus; yields (tables, alerts)."""
    monkeypatch.setattr(season_view, "WATCH", Watch(refresh_s=0.5))  # the watcher refreshes in half a second
    (tmp_path / "site").mkdir()
    site = build_site(tmp_path / "site")
    config = site_config(site["store"].root, [str(tmp_path)], [("site", site["tables"], site["archive"])])
    with served(config) as url:
        (tmp_path / "token").write_text(API)
        _fast_rules(tmp_path / "rules.yml")
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "rule_files": ["rules.yml"],
            "scrape_configs": [{"job_name": "trapline", "metrics_path": "/metrics",
                                "authorization": {"type": "Bearer", "credentials_file": str(tmp_path / "token")},
                                "static_configs": [{"targets": [url.split("://", 1)[1]]}]}]}))
        port = free_port()
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _get(base, "/-/ready") is not None, 60, "Prometheus to be ready", 0.2)

            def alerts() -> set[tuple[str, str]]:
                found = json.loads(_get(base, "/api/v1/alerts") or "{}").get("data", {}).get("alerts", [])
                return {(a["labels"]["alertname"], a["labels"].get("camera", a["labels"].get("source", "")))
                        for a in found if a["state"] == "firing"}

            yield site, alerts
        finally:
            proc.terminate()
            proc.wait(30)


def _get(base: str, path: str) -> str | None:
    try:
        r = httpx.get(base + path, timeout=5)
    except httpx.HTTPError:
        return None
    return r.text if r.status_code == 200 else None


def _commit(tables: Path, camera: str, n: int, failed: bool, when: dt.datetime, run_id: str) -> None:
    """`n` image rows of `camera` captured at `when`, failed or not, committed as a run's part would be."""
    cols = {"uri": pa.array([f"/archive/{camera}/{run_id}-{i}.jpg" for i in range(n)]),
            "rel_path": pa.array([f"{camera}/{run_id}-{i}.jpg" for i in range(n)]),
            "content_id": pa.array([f"size=1;mtime_us={i}" for i in range(n)]), "camera_id": pa.array([camera] * n),
            "capture_time": pa.array([when] * n, pa.timestamp("us")),
            "status": pa.array(["failed" if failed else "empty"] * n), "kind": pa.array(["image"] * n),
            "error_reason": pa.array(["decode_error" if failed else None] * n, pa.string()),
            "detections": pa.array([[]] * n, RESULT_SCHEMA.field("detections").type)}
    write_results(pa.table({f.name: cols.get(f.name, pa.nulls(n, f.type)) for f in RESULT_SCHEMA},
                           schema=RESULT_SCHEMA), out_url=str(tables), model_name="trapcam", model_version="1",
                  model_sha256="0" * 64, filters_hash="f" * 16, run_id=run_id, metadata={})


def test_alerts_fire_when_their_condition_is_made_true_and_resolve_when_it_is_cleared(prometheus):
    site, alerts = prometheus
    tables = site["tables"]
    storage = Tables(open_location(str(tables))).storage

    # the fixture's pictures were taken in 2024: every camera is silent; one that sends again resolves
    wait_until(lambda: {("TraplineCameraSilent", c) for c in ("cam01", "cam02", "cam03")} <= alerts(), 60,
               "the silent cameras' alerts")
    _commit(tables, "cam01", 1, False, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), "back")
    wait_until(lambda: ("TraplineCameraSilent", "cam01") not in alerts(), 60, "cam01's alert to resolve")
    assert ("TraplineCameraSilent", "cam02") in alerts()

    # the weekly job fails: the newest archive job is a failure; the next one succeeds
    failed = RunManifest.start("20260105T000000Z-weekly", "reprocess")
    failed.finish("failed", "the store was unreachable")
    write_manifest(storage, failed)
    wait_until(lambda: ("TraplineArchiveJobFailed", "site") in alerts(), 60, "the failed job's alert")
    again = RunManifest.start("20260106T000000Z-rerun", "reprocess")
    again.finish("succeeded")
    again.ended_at = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5)).isoformat(timespec="seconds")
    write_manifest(storage, again)
    wait_until(lambda: ("TraplineArchiveJobFailed", "site") not in alerts(), 60, "the failed job's alert to resolve")

    # the failed-image rate jumps (30 failed of 30 committed), then nothing more fails for the window
    _commit(tables, "cam02", 30, True, dt.datetime(2024, 5, 11), "broken")
    wait_until(lambda: ("TraplineFailedImagesJumped", "site") in alerts(), 60, "the failed-image alert")
    wait_until(lambda: ("TraplineFailedImagesJumped", "site") not in alerts(), 90, "the failed-image alert to resolve")

    # the tables go away (an unmounted disk), then come back
    moved = tables.with_name("unmounted")
    tables.rename(moved)
    try:
        wait_until(lambda: ("TraplineTablesUnreadable", "site") in alerts(), 60, "the unreadable tables' alert")
    finally:
        moved.rename(tables)
    wait_until(lambda: ("TraplineTablesUnreadable", "site") not in alerts(), 60, "the tables' alert to resolve")
