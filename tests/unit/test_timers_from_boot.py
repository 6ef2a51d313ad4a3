"""Every job the product runs "at most every N seconds" runs at its first chance on a machine booted seconds ago
(issue 81): `time.monotonic()` counts from boot, so a timer whose "last run" starts at 0.0 skips its job for the
machine's first N seconds — a fresh VM, pod or container host, where services start. Each periodic job runs here with
the monotonic clock reading a just-booted 5 s (and moving on from there), and must run at once.

Also a check of the class: no module of the product measures an interval from a number it starts at (`x = 0.0`, then
`time.monotonic() - x`); they all go through `ground.every.Every`, where "never ran" is None.
"""

from __future__ import annotations

import ast
import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from batch.health import judge
from batch.health_options import HealthThresholds
from ground.every import Every
from model_store.tables import journal
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.season import Season
from serve.antenna.worker import Worker
from serve.antenna_config import AntennaWorkOptions
from serve.config import RecordConfig
from serve.people import LAST_USED_DIR, LAST_USED_EVERY_S, PeopleRegistry, PeopleView, digest
from serve.placement import PLACEMENT_POLL_S, PlacementWatch
from serve.recording.recorder import Recorder, Upload
from tests.fixtures.pictures import API, app_for, build_site, site_config
from tests.unit.test_recording import day, make_recorder, record
from tests.unit.test_recording import store as store  # noqa: F401 - the fixture, used by name
from trapline.cli import main

REPO = Path(__file__).resolve().parents[2]
BOOTED_S = 5.0  # the monotonic clock of a machine up five seconds


@pytest.fixture
def booted(monkeypatch):
    """`time.monotonic()` reads BOOTED_S now and moves on at the real pace (deadlines still pass)."""
    real, start = time.monotonic, time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: BOOTED_S + (real() - start))
    assert time.monotonic() < 6.0


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    return build_site(tmp_path_factory.mktemp("boot"))


def _fresh_tables(site, tmp_path) -> Path:
    """A copy of the site's tables at a path no Season has seen (the service keeps one Season per path)."""
    out = tmp_path / "tables"
    shutil.copytree(site["tables"], out)
    return out


def test_every_is_due_at_once_then_waits_its_interval(booted, monkeypatch):
    every = Every(600)
    assert every.due() and every.take() and not every.take() and not every.due()
    every.reset()
    assert every.take()  # reset: due at the next chance, however recent the last run
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 599.0)
    assert not every.due()
    monkeypatch.setattr(time, "monotonic", lambda: now + 600.0)
    assert every.take()


def test_the_clock_checks_run_at_the_first_refresh(booted, site, tmp_path, capsys):
    """The issue's case: a camera whose clock jumps is reported by the first refresh, by `trapline health` and by
    the service's /metrics and /v1/season/health, with the machine up 5 s (the checks run at most every 600 s)."""
    tables = _fresh_tables(site, tmp_path)
    season = Season(str(tables))
    assert season.clock_every_s > BOOTED_S
    assert season.refresh().clock_problems == {"jump": 1}  # the fixture archive's cam02 has a clock that jumps
    strict = HealthThresholds(silent_days=100_000, max_failed_share=1.0, max_clock_problems=0)
    assert {c.name: c.status for c in judge(season.signals(), strict).checks}["clock checks"] == "failed"

    config = tmp_path / "health.yaml"
    config.write_text("silent_days: 100000\nmax_failed_share: 1.0\nmax_clock_problems: 0\n")
    assert main(["health", "--tables", str(tables), "--config", str(config), "--json"]) == 1
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)["checks"]}
    assert checks["clock checks"]["status"] == "failed" and checks["clock checks"]["value"] == "1"

    # the service's season gauges and health route, from a Season made now (a path it has not seen)
    from fastapi.testclient import TestClient  # late: starlette's TestClient warns about httpx on import

    served = _fresh_tables(site, tmp_path / "served")
    auth = {"Authorization": f"Bearer {API}"}
    with TestClient(app_for(site_config(site["store"].root, [str(site["dir"]), str(tmp_path)],
                                        [("site-b", served, site["archive"])]))) as client:
        jump = 'trapline_season_clock_problems{source="site-b",kind="jump"} 1.0'
        deadline = time.monotonic() + 30  # the figures come first, the clock checks just after them
        while jump not in (metrics := client.get("/metrics", headers=auth)).text and time.monotonic() < deadline:
            assert metrics.status_code == 200
            time.sleep(0.1)
        assert jump in metrics.text
        health = client.get("/v1/season/health", headers=auth,
                            params={"tables": str(served), "silent_days": 100000, "max_failed_share": 1.0,
                                    "max_clock_problems": 0})
        assert health.status_code == 200
        assert {c["name"]: c["status"] for c in health.json()["checks"]}["clock checks"] == "failed"


def test_the_people_registry_writes_last_used_at_its_first_chance_and_at_close(booted, tmp_path):
    registry = PeopleRegistry(str(tmp_path))
    token = registry.add("ana", "operator")
    view = PeopleView(str(tmp_path), refresh_s=3600)  # its thread never wakes here: the test calls each step
    try:
        person = view.person(digest(token))
        assert person is not None and person.name == "ana"  # read at start
        view.touch(person)
        view._write_used()  # the thread's first pass, 5 s after boot
        written = list((tmp_path / LAST_USED_DIR).glob("*.json"))
        assert len(written) == 1 and "ana" in json.loads(written[0].read_text())
        assert set(registry.last_used()) == {"ana"}

        bob = registry.add("bob", "reader")  # a person added later is seen at the next refresh
        view.refresh()
        view.touch(view.person(digest(bob)))
        view._write_used()  # within LAST_USED_EVERY_S of the last write: not yet
        assert "bob" not in json.loads(written[0].read_text()) and LAST_USED_EVERY_S > 1
    finally:
        view.close()  # closing writes what is left, however recent the last write
    assert set(json.loads(written[0].read_text())) == {"ana", "bob"}


def test_the_antenna_worker_registers_at_its_first_poll(booted):
    calls: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/info"):
            return httpx.Response(200, json={"pipelines": [{"slug": "trapcam-1"}]})
        if request.url.path.endswith("/trapline/slugs"):
            return httpx.Response(200, json=["trapcam-1"])
        return httpx.Response(201, json={})

    worker = Worker(AntennaWorkOptions(api="http://antenna.test/api/v2", project=1, service="http://door.test",
                                       token="tok", batch_size=2, poll_interval_s=60))
    for end in (worker.antenna, worker.door):
        end.client = httpx.Client(base_url=end.client.base_url, transport=httpx.MockTransport(answer))
    worker.register()  # not forced: a stream's first poll
    assert "POST /api/v2/projects/1/pipelines/" in calls and worker.report.registrations == 1
    calls.clear()
    worker.register()  # within poll_interval_s: the door is not asked again
    assert calls == []
    worker.register(force=True)
    assert calls == ["GET /info"]  # asked; the same pipelines are not registered twice


def test_the_placement_watch_asks_ray_at_its_first_check(booted, monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr("serve.placement.pending_replicas", lambda app: asked.append(app) or {})
    watch = PlacementWatch("trapline")
    assert watch.check() == {} and asked == ["trapline"]
    assert watch.check() == {} and asked == ["trapline"]  # within PLACEMENT_POLL_S: the answer as it was
    assert PLACEMENT_POLL_S > 1


def test_the_recorder_recovers_a_dead_recorders_uploads_at_its_first_pass(booted, tmp_path, store):  # noqa: F811
    dead = make_recorder(tmp_path, store)
    docs = [record(dead, store, Upload("cam01", day(i)))[0] for i in range(2)]
    dead._stop.set()  # it dies: no flush, no release, heartbeat stopped
    dead._lease._stop.set()
    lease_file = tmp_path / "tables" / "_leases" / f"online@{dead.writer}.json"
    lease_file.write_text(json.dumps({**json.loads(lease_file.read_text()), "heartbeat_at": 0.0}))  # long stale
    live = Recorder(RecordConfig(archive=str(tmp_path / "archive"), tables=str(tmp_path / "tables"),
                                 flush_interval_s=0.05), store)
    try:
        record(live, store, Upload("cam02", day(9)))  # starts its thread; recovery is every 60 s at most
        deadline = time.monotonic() + 30
        while live.counts["recovered"] < len(docs) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert live.counts["recovered"] == len(docs)
    finally:
        live.close()
    assert journal.markers(Tables(open_location(str(tmp_path / "tables"))).storage, dead.writer) == {}


# -- the class: no interval measured from a number a timer starts at ------------------------------------------------
_CLOCKS = {"monotonic", "perf_counter"}


def _is_clock_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _CLOCKS
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "time")


def _name(node: ast.AST) -> str | None:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None


def _is_number(node: ast.AST) -> bool:
    """A literal number, its negation, `-NAME`, or `float("-inf")`: a start that is not a time the clock read."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
        if isinstance(node, ast.Name):
            return True
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "float":
        return True
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool)


def timers_from_zero(source: str) -> list[str]:
    """Names a module starts at a number and subtracts from a reading of the monotonic clock (directly, or through a
    name that holds one): intervals that are measured from boot."""
    nodes = list(ast.walk(ast.parse(source)))
    readings = {_name(t) for node in nodes if isinstance(node, ast.Assign) and _is_clock_call(node.value)
                for t in node.targets}
    started_at_number = {_name(t) for node in nodes for t, v in _assignments(node) if _is_number(v)}
    found = []
    for node in nodes:
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
            clock = _is_clock_call(node.left) or _name(node.left) in readings
            if clock and _name(node.right) in started_at_number - {None}:
                found.append(f"{_name(node.right)} (line {node.lineno})")
    return found


def _assignments(node: ast.AST) -> list[tuple[ast.AST, ast.AST]]:
    if isinstance(node, ast.Assign):
        pairs = []
        for target in node.targets:
            if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs += list(zip(target.elts, node.value.elts))
            else:
                pairs.append((target, node.value))
        return pairs
    if isinstance(node, ast.AnnAssign) and node.value is not None:
        return [(node.target, node.value)]
    return []


def test_the_check_finds_the_timers_issue_81_found():
    """The guard below can fail: the season's clock checks and the people registry's last-used file as they were."""
    season = ("class S:\n    def _reset(self):\n        self._clock_at = 0.0\n    def refresh(self):\n"
              "        if time.monotonic() - self._clock_at >= self.every:\n            pass\n")
    people = ("def close(self):\n    self._used_written = 0.0\n"
              "def write(self):\n    now = time.monotonic()\n    if now - self._used_written < 30: return\n")
    placement = "checked = -POLL_S\nnow = time.monotonic()\nif now - checked < POLL_S: pass\n"
    assert [timers_from_zero(s) for s in (season, people, placement)] == [
        ["_clock_at (line 5)"], ["_used_written (line 5)"], ["checked (line 3)"]]
    assert timers_from_zero("t0 = time.monotonic()\nseconds = time.monotonic() - t0\n") == []


def test_no_module_of_the_product_measures_an_interval_from_zero():
    found = {str(path.relative_to(REPO)): hits for package in ("trapline", "model_store", "serve", "batch", "ground")
             for path in sorted((REPO / package).rglob("*.py")) if (hits := timers_from_zero(path.read_text()))}
    assert found == {}, f"use ground.every.Every (None: never ran) for these timers: {found}"
