"""People and roles over real HTTP (uvicorn, the real ingress app with every feature, no Ray): every route walked
against every role, two replicas sharing one registry (a revoked token refused by both within the bound), decisions
signed by the token, a token in a query string refused, and the audit log saying who did what."""

from __future__ import annotations

import re
import time
from contextlib import ExitStack

import httpx
import pytest

from model_store import ModelStore
from serve.audit import AuditLog
from serve.ingress import IngressCore, token_digest
from serve.people import PeopleRegistry
from serve.roles import OWN_CHECKS, ROLE_NAMES, Role, route_roles, with_roles_table
from tests.conftest import REPO
from tests.fixtures.pictures import serve_asgi
from trapline.service import service_features

ADMIN, API = "people-admin-token", "people-api-token"
REFRESH_S = 0.3


def core(root, refresh_s: float = REFRESH_S) -> IngressCore:
    config = {"models": [{"name": "det"}], "store": str(root / "store"),
              "jobs": {"roots": [str(root)], "working_dir_allowed": False},
              "people": {"location": str(root / "people"), "refresh_s": refresh_s}}
    return IngressCore(config, {}, token_digest(ADMIN), token_digest(API), features=service_features())


@pytest.fixture
def site(tmp_path):
    ModelStore(str(tmp_path / "store")).publish(None, "coats", "1", {"backend": "keypoints", "applies_to": ["x"]})
    registry = PeopleRegistry(str(tmp_path / "people"))
    tokens = {role: registry.add(f"{role}-person", role) for role in ROLE_NAMES}
    cores = [core(tmp_path), core(tmp_path)]  # two replicas of one service: one registry
    with ExitStack() as stack:
        urls = [stack.enter_context(serve_asgi(c.__serve_build_asgi_app__())) for c in cores]
        yield {"root": tmp_path, "registry": registry, "tokens": tokens, "urls": urls, "cores": cores}
    for c in cores:
        c.tokens.people.close()


# one pool: the walk makes some 400 requests. 90 s each: a route answering an empty request can still do work (a
# listing, a store read) and under a full suite on 2 cores one went past 30 s.
CLIENT = httpx.Client(timeout=90, trust_env=False)


def call(url: str, method: str, path: str, token: str | None, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return CLIENT.request(method, url + path, headers=headers, **kw)


def test_every_route_against_every_role(site):
    """Each route: a person below its role gets 403, no token 401, and everyone at or above it gets past the check
    (whatever the route then answers to an empty request: never 401 or 403)."""
    url, tokens = site["urls"][0], site["tokens"]
    routes = route_roles(site["cores"][0].__serve_build_asgi_app__())
    assert {r for _, _, r in routes} >= set(ROLE_NAMES)
    walked = 0
    for method, path, needed in routes:
        if needed not in ROLE_NAMES:
            assert path in OWN_CHECKS or needed == "public", (method, path, needed)
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        body = {"json": {}} if method in ("POST", "PUT") else {}
        for role, token in tokens.items():
            status = call(url, method, concrete, token, **body).status_code
            if Role[role] < Role[needed]:
                assert status == 403, (role, method, path, status)
            else:
                assert status not in (401, 403), (role, method, path, status)
        assert call(url, method, concrete, None, **body).status_code == 401, (method, path)
        assert call(url, method, concrete, "not-a-token", **body).status_code == 401, (method, path)
        walked += 1
    assert walked >= 50


def test_the_two_tokens_keep_working_and_a_token_in_a_query_string_does_not(site):
    url, tokens = site["urls"][0], site["tokens"]
    assert call(url, "GET", "/v1/whoami", ADMIN).json() == {"name": "admin", "role": "admin", "via": "admin token"}
    assert call(url, "GET", "/v1/whoami", API).json() == {"name": "api", "role": "reader", "via": "API token"}
    assert call(url, "GET", "/v1/whoami", tokens["reviewer"]).json()["name"] == "reviewer-person"
    assert call(url, "POST", "/v1/admin/models/det/promote", API, json={}).status_code == 403
    for key in ("token", "access_token", "authorization"):
        assert call(url, "GET", f"/v1/whoami?{key}={tokens['admin']}", None).status_code == 401


def test_a_reviewer_promoting_is_refused_and_the_audit_log_says_so(site):
    url, tokens = site["urls"][0], site["tokens"]
    refused = call(url, "POST", "/v1/admin/models/det/promote", tokens["reviewer"], json={"version": "1"})
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "forbidden"
    added = call(url, "POST", "/v1/admin/people", tokens["admin"], json={"name": "eve", "role": "reader"}).json()
    assert added["token"].startswith("tlp_")
    entries = AuditLog(str(site["root"] / "people")).read()
    by_action = {(e["who"], e["action"]): e for e in entries}
    assert by_action[("reviewer-person", "POST /v1/admin/models/det/promote")]["outcome"] == "refused"
    made = by_action[("admin-person", "POST /v1/admin/people")]
    assert made["outcome"] == "done" and made["answer"]["token"] == "(shown once, not kept)"
    assert not any(added["token"] in f.read_text() for f in (site["root"] / "people" / "audit").rglob("*.json"))
    assert call(url, "POST", "/v1/admin/models/det/reload", "nobody's token").status_code == 401
    assert all(e["who"] for e in AuditLog(str(site["root"] / "people")).read())  # a nameless 401 is not kept
    assert len(AuditLog(str(site["root"] / "people")).read()) == len(entries)
    listed = call(url, "GET", "/v1/admin/audit", tokens["admin"], params={"who": "reviewer-person"}).json()
    assert [e["action"] for e in listed["entries"]] == ["POST /v1/admin/models/det/promote"]


def test_a_revoked_token_is_refused_by_every_replica_within_the_bound(site):
    token = site["tokens"]["reviewer"]
    for url in site["urls"]:
        assert call(url, "GET", "/v1/whoami", token).status_code == 200
    from serve.people import PeopleView, digest

    idle = PeopleView(str(site["root"] / "people"), refresh_s=3600)  # a replica's view whose thread never wakes here
    assert idle.person(digest(token)) is not None
    t0 = time.monotonic()
    site["registry"].revoke("reviewer-person")
    # the bound, "refresh_s plus one read", as a count: one read after the revoke refuses the token
    idle.refresh()
    assert idle.person(digest(token)) is None
    idle.close()
    # and every replica's own thread reads within its refresh_s: a timeout here, not a measure of the machine
    pending = set(site["urls"])
    while pending and time.monotonic() - t0 < 60:
        pending = {u for u in pending if call(u, "GET", "/v1/whoami", token).status_code != 401}
    assert not pending, "a replica still accepts a revoked token"
    listed = {p["name"]: p for p in site["registry"].listed(include_revoked=True)}
    assert listed["reviewer-person"]["revoked"] and not listed["reader-person"]["revoked"]


def test_a_rotated_token_replaces_the_old_one(site):
    old = site["tokens"]["operator"]
    new = site["registry"].rotate("operator-person")
    url = site["urls"][1]
    deadline = time.monotonic() + 5
    while call(url, "GET", "/v1/whoami", new).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert call(url, "GET", "/v1/whoami", new).json()["role"] == "operator"
    assert call(url, "GET", "/v1/whoami", old).status_code == 401


def test_security_md_carries_the_roles_table_of_the_code():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "SECURITY.md").read_text()
    assert with_roles_table(text) == text, "SECURITY.md's role table is stale: run `python -m serve.roles`"


def test_a_decision_is_signed_by_the_token_that_sends_it(site):
    """A reviewer's clock correction is recorded as them; naming someone else is refused (nothing recorded); an admin
    entering one for someone is recorded as both; the service's own admin token takes `who` as sent, as before."""
    url, tokens = site["urls"][0], site["tokens"]
    tables = site["root"] / "tables"
    tables.mkdir()

    def correct(token: str, **who: str) -> httpx.Response:
        return call(url, "POST", "/v1/deployments/clock", token, json={
            "tables": str(tables), "camera_id": "cam1", "recorded_from": "2026-06-01T00:00:00",
            "recorded_until": "2026-06-02T00:00:00", "offset_s": 60, **who})

    forged = correct(tokens["reviewer"], who="ana")
    assert forged.status_code == 403 and forged.json()["error"]["type"] == "not_the_signer", forged.text
    assert correct(tokens["reader"]).status_code == 403  # a reader decides nothing
    signed = [correct(tokens["reviewer"]), correct(tokens["reviewer"], who="reviewer-person"),
              correct(tokens["admin"], who="ana"), correct(ADMIN, who="ana"), correct(ADMIN)]
    assert all(r.status_code == 201 for r in signed), [r.text for r in signed]
    assert [r.json()["who"] for r in signed] == ["reviewer-person", "reviewer-person",
                                                 "ana (entered by admin-person)", "ana", "admin"]


def test_the_consoles_nav_ranks_the_roles_as_the_role_table():
    """The console hides a nav link from a person below its role (batch/views/console/router.js): its ranks are the
    role table's, in its order, so a new role cannot show a page to someone it would only answer 403."""
    router = (REPO / "batch/views/console/router.js").read_text()
    ranks = re.search(r"const RANKS = \[([^\]]*)\]", router)
    assert ranks is not None and tuple(re.findall(r'"(\w+)"', ranks.group(1))) == ROLE_NAMES
    assert list(ROLE_NAMES) == [r.name for r in sorted(Role)]
    named = {m for f in (REPO / "batch/views/console").glob("*.js")
             for m in re.findall(r'\["#/[^"]*", "[^"]*", \d+, "([^"]*)"\]', f.read_text())}
    assert named and named <= set(ROLE_NAMES), named  # a misspelt role would hide its link from everyone
