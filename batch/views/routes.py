"""Every view onto the ingress's app in one call (`attach_views`), each found by its module's `router`.

A module of this package that defines a module-level `router` (a FastAPI `APIRouter`) is a view and is attached;
its bodies live in its `NAME_protocol.py` beside it, which has no router. So a new view is its module (and its
protocol): no list to extend here, and nothing to forget. Modules are attached in name order; their paths do not
overlap (tests/unit/test_views_routes.py checks that no two routes answer the same method and path).
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from fastapi import APIRouter, FastAPI

from batch.views.promote_gate import promote_gate
from serve.deps import Service


def view_routers() -> dict[str, APIRouter]:
    """module name -> its router, for every module of this package that has one, in name order."""
    here = Path(__file__).parent
    out = {}
    for info in sorted(pkgutil.iter_modules([str(here)]), key=lambda i: i.name):
        if info.ispkg or info.name == "routes":
            continue
        router = getattr(importlib.import_module(f"{__package__}.{info.name}"), "router", None)
        if isinstance(router, APIRouter):
            out[info.name] = router
    return out


def attach_views(api: FastAPI, service: Service) -> None:
    """Add every view's routes and the console's files to the ingress's app. The views read tables under the jobs'
    allowed roots (batch/jobs/paths.py, on the control plane that `attach_jobs` put on the app), so they are
    attached only where the jobs are."""
    if not service.config.jobs.enabled:
        return
    for router in view_routers().values():
        api.include_router(router)
    api.state.trapline_promote_gate = promote_gate  # the gate before promote (serve/routes.py)
