"""People on a real two-replica service (Ray Serve, two ingress replicas behind its proxy, the whole service app):
three people make a round of review over HTTP; afterwards the decisions log says who decided what, the audit log who
changed what, and a revoked reviewer is refused by every replica within the registry's refresh bound."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from model_store import ModelStore
from model_store.tables.decisions import DecisionsLog
from model_store.tables.locations import open_location
from serve import APP_NAME
from serve.audit import AuditLog
from serve.cli import startup_lines
from serve.config import parse_serve_config
from serve.local import run_local
from serve.people import PeopleRegistry
from serve.polling import wait_until
from tests.fixtures.onnx_models import fixture_config
from trapline.service import build_service

ADMIN = "people-service-admin"
REFRESH_S = 1.0
CALLS = 12  # through Serve's proxy: enough to land on both ingress replicas many times


def service_config(store: str, people: Path) -> dict:
    """Two ingress replicas behind Serve's proxy, the people registry in `people`."""
    return {"store": store, "http": {"port": 0, "one_hop": False, "ingress_num_replicas": 2, "ingress_num_cpus": 0.1},
            "models": [{"name": "fixture", "num_cpus": 0.25}],
            "jobs": {"roots": [str(people.parent)], "working_dir_allowed": False},
            "people": {"location": str(people), "refresh_s": REFRESH_S}}


@pytest.fixture(scope="module")
def service(ray_cluster, fixture_models, tmp_path_factory):
    root = tmp_path_factory.mktemp("people-service")
    store = ModelStore(str(root / "store"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.promote("fixture:1")
    people = root / "people"
    config = service_config(store.root, people)
    with run_local(config, environ={"TRAPLINE_ADMIN_TOKEN": ADMIN}, builder=build_service) as url:
        yield url, root, people


def call(url: str, method: str, path: str, token: str, **kw) -> httpx.Response:
    return httpx.request(method, url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60,
                         trust_env=False, **kw)


def test_the_start_up_lines_are_the_same_when_reads_need_a_personal_token(service):
    """`trapline serve`'s lines once up (serve/cli.py `startup_lines`) with reads open and with a person registered,
    when /v1/models without a token is refused: the same lines, each model with its aliases and the admin routes."""
    url, root, people = service
    cfg = parse_serve_config(service_config(str(root / "store"), people))
    open_lines = startup_lines(url, cfg, APP_NAME)
    assert open_lines[0] == "serving fixture: production -> 1" and "admin routes enabled" in open_lines[1], open_lines
    registry = PeopleRegistry(str(people))
    registry.add("eve", "reader")
    try:
        wait_until(lambda: httpx.get(f"{url}/v1/models", timeout=30, trust_env=False).status_code == 401,
                   5 * REFRESH_S + 10, "reads to need a token")
        assert startup_lines(url, cfg, APP_NAME) == open_lines
    finally:
        registry.revoke("eve")  # reads open again, as the next test begins
        wait_until(lambda: httpx.get(f"{url}/v1/models", timeout=30, trust_env=False).status_code == 200,
                   5 * REFRESH_S + 10, "reads to be open again")


def test_a_round_of_review_is_signed_and_audited_and_a_revoked_reviewer_is_out(service):
    url, root, people = service
    # the one-person install's admin token registers the team (audited as the person `admin`)
    made = {name: call(url, "POST", "/v1/admin/people", ADMIN, json={"name": name, "role": role}).json()["token"]
            for name, role in (("ana", "reviewer"), ("bo", "reviewer"), ("cy", "admin"))}
    tables = root / "tables"
    tables.mkdir()

    def until_everyone_knows(token: str) -> None:
        deadline = time.monotonic() + 5 * REFRESH_S + 10
        while sum(call(url, "GET", "/v1/whoami", token).status_code == 200 for _ in range(CALLS)) < CALLS:
            assert time.monotonic() < deadline, "a replica never saw the new person"

    for token in made.values():
        until_everyone_knows(token)

    def correct(token: str, camera: str, **body) -> httpx.Response:
        return call(url, "POST", "/v1/deployments/clock", token, json={
            "tables": str(tables), "camera_id": camera, "recorded_from": "2026-06-01T00:00:00",
            "recorded_until": "2026-06-02T00:00:00", "offset_s": 60, **body})

    assert correct(made["ana"], "cam1").status_code == 201
    assert correct(made["bo"], "cam2").status_code == 201
    forged = correct(made["bo"], "cam3", who="ana")
    assert forged.status_code == 403 and forged.json()["error"]["type"] == "not_the_signer"
    assert correct(made["cy"], "cam4", who="dee").status_code == 201  # an admin entering dee's note
    promote = call(url, "POST", "/v1/admin/models/fixture/promote", made["bo"], params={"version": "1"})
    assert promote.status_code == 403

    revoked = call(url, "POST", "/v1/admin/people/bo/revoke", made["cy"])
    assert revoked.status_code == 200
    # a timeout, not a measure of the machine: the bound itself ("refresh_s plus one read": one read after the revoke
    # refuses) is checked as a count in test_the_registry_and_the_audit_log_in_a_bucket
    t0 = time.monotonic()
    while any(call(url, "GET", "/v1/whoami", made["bo"]).status_code != 401 for _ in range(CALLS)):
        assert time.monotonic() - t0 < 60, "a replica still takes the revoked token"
    assert all(call(url, "GET", "/v1/whoami", made["bo"]).status_code == 401 for _ in range(CALLS))
    assert call(url, "GET", "/v1/whoami", made["ana"]).json()["name"] == "ana"

    # afterwards: the decisions log and the audit log say who did what
    who = [d.who for d in DecisionsLog(open_location(str(tables))).read()]
    assert who == ["ana", "bo", "dee (entered by cy)"]
    audit = [(e["who"], e["action"], e["outcome"]) for e in reversed(AuditLog(str(people)).read())]
    assert audit == [("admin", "POST /v1/admin/people", "done")] * 3 + [
        ("bo", "POST /v1/admin/models/fixture/promote", "refused"), ("cy", "POST /v1/admin/people/bo/revoke", "done")]
    listed = {p["name"]: p for p in PeopleRegistry(str(people)).listed(include_revoked=True)}
    assert listed["bo"]["revoked"] and not listed["ana"]["revoked"]


def test_the_registry_and_the_audit_log_in_a_bucket(s3_bucket):
    """On S3 (a real S3-compatible server): the registry is one object replaced whole, each replica's view notices a
    change by its ETag, a revoked token is refused within the bound, and the audit log is one object per action."""
    from serve.people import PeopleView, digest

    location = f"{s3_bucket}/people"
    registry = PeopleRegistry(location)
    token = registry.add("ana", "reviewer")
    views = [PeopleView(location, refresh_s=0.5) for _ in range(2)]
    idle = PeopleView(location, refresh_s=3600)  # its thread never wakes here: the test makes its one read
    try:
        assert all(v.person(digest(token)).name == "ana" for v in [*views, idle])
        registry.revoke("ana")
        # the bound is refresh_s plus one read: one read after the revoke refuses the token (not a time: a count)
        idle.refresh()
        assert idle.person(digest(token)) is None
        t0 = time.monotonic()  # and the views' own threads read again (a timeout, not a measure of the machine)
        while any(v.person(digest(token)) for v in views):
            assert time.monotonic() - t0 < 60, "a view still takes the revoked token"
            time.sleep(0.05)
    finally:
        for v in [*views, idle]:
            v.close()
    log = AuditLog(location)
    log.append("cy", "POST /v1/admin/people/ana/revoke", "done")
    log.append("cy", "POST /v1/admin/models/m/promote", "done", answer={"token": "x"})
    assert [e["action"] for e in log.read()] == ["POST /v1/admin/models/m/promote", "POST /v1/admin/people/ana/revoke"]
    assert log.read(who="bo") == [] and log.read()[0]["answer"] == {"token": "(shown once, not kept)"}
