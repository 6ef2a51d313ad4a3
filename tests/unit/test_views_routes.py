"""batch/views/: every module with a `router` is a view and is attached (nothing to list), no two routes of the
whole service answer the same method and path, and the views go only where the jobs (their path policy) are."""

from __future__ import annotations

import pkgutil
from pathlib import Path

from fastapi.routing import APIRoute

import batch.views
from batch.views.routes import view_routers
from serve.ingress import IngressCore
from trapline.service import service_features


def test_every_module_with_a_router_is_a_view_and_nothing_else_is():
    found = view_routers()
    assert list(found) == sorted(found)  # attached in name order, whatever the file system lists
    assert found  # which modules they are is read from the files (test_named_once.py), not listed here
    modules = {m.name for m in pkgutil.iter_modules([str(Path(batch.views.__file__).parent)])}
    assert {m for m in modules if m.endswith("_protocol")}.isdisjoint(found)  # bodies, not routes
    assert all(r.routes for r in found.values())


def _app(tmp_path, **jobs):
    cfg = {"store": str(tmp_path), "models": [{"name": "fixture"}], "jobs": jobs}
    return IngressCore(cfg, {}, features=service_features()).__serve_build_asgi_app__()


def _api_routes(routes: list) -> list[APIRoute]:
    """The app's routes, through the included routers (FastAPI >= 0.16x wraps each in an `_IncludedRouter`; no route
    here has a prefix)."""
    out = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append(route)
        elif (inner := getattr(route, "original_router", None)) is not None:
            out += _api_routes(inner.routes)
    return out


def test_the_whole_service_has_every_view_once_and_no_two_routes_answer_the_same_request(tmp_path):
    app = _app(tmp_path)
    seen: dict[tuple[str, str], str] = {}
    clashes = []
    for route in _api_routes(app.routes):
        for method in route.methods:
            key = (method, route.path)
            if key in seen:
                clashes.append((key, seen[key], route.endpoint.__module__))
            seen[key] = route.endpoint.__module__
    assert not clashes, clashes
    modules = set(seen.values())
    assert {f"batch.views.{name}" for name in view_routers()} <= modules
    assert {"batch.jobs.routes", "batch.jobs.launch"} <= modules
    assert seen[("GET", "/console")] == "batch.views.pages"


def test_without_the_jobs_there_are_no_views(tmp_path):
    """The views confine `tables` to the jobs' roots: with the jobs off, no view is served (nor the console)."""
    paths = {r.path for r in _api_routes(_app(tmp_path, enabled=False).routes)}
    assert "/v1/detect" in paths
    assert not {"/console", "/v1/jobs", "/v1/occurrences", "/v1/deployments"} & paths
