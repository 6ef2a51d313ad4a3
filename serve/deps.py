"""What every HTTP route needs, defined once: the ingress core from the app's state, the token checks, and a thread
for the blocking calls (the store, the tables, Ray's job client).

Every feature's router (serve/routes.py: detect, models, admin; serve/recording/routes.py; batch/jobs/, batch/views/)
takes its service with `service_of(request)` and its auth with one of the three dependencies below. Auth runs as a
dependency, i.e. before the query parameters are validated: a caller without the token learns nothing about a route's
parameters. The checks themselves are the service's (`check_api_token`, `check_admin_token`: constant-time
comparisons of token digests, serve/auth.py).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from model_store import CropOptions
from model_store.core.clips import ClipDetections
from serve.answers import DetectAnswer
from serve.config import ServeConfig
from serve.protocol import AliasMoveResponse, ModelsResponse, ReloadResponse
from trapline.base.errors import ForbiddenError, UnauthorizedError

# Shown in /docs as the "Authorize" button; the check itself is the service's check_*_token.
bearer = HTTPBearer(auto_error=False, description="admin token (admin routes) or API token (when configured)")


class Service(Protocol):
    """What the routes need from the service on `app.state` (serve/ingress.py `IngressCore` is the one; tests give
    their own). Known here by this protocol, so no router imports the ingress that attaches it."""

    config: ServeConfig
    recorder: Any  # serve/recording/recorder.py `Recorder`, or None when the service records nothing

    def check_api_token(self, authorization: str | None) -> None: ...
    def check_admin_token(self, authorization: str | None) -> None: ...
    def link_key(self) -> bytes: ...
    def refuse_early(self, model: str | None) -> None: ...
    async def detect(self, model: str | None, version: str | None, alias: str | None, data: bytes,
                     filters: dict[str, Any] | None, render: bool, classify: bool = True,
                     crops: CropOptions | None = None, tiling: Any = None) -> DetectAnswer: ...
    async def detect_clip(self, model: str | None, version: str | None, alias: str | None, data: bytes,
                          filters: dict[str, Any] | None, sampling: dict[str, Any],
                          tiling: Any = None) -> ClipDetections: ...
    async def readiness(self) -> tuple[bool, dict[str, Any]]: ...
    async def models(self) -> ModelsResponse: ...
    async def promote(self, model: str, version: str, alias: str) -> AliasMoveResponse: ...
    async def rollback(self, model: str, alias: str) -> AliasMoveResponse: ...
    async def reload(self, model: str) -> ReloadResponse: ...


def service_of(request: Request) -> Service:
    """The ingress core answering this app's routes (set by `serve.routes.create_api`)."""
    return request.app.state.service


async def api_auth(request: Request, _: Any = Depends(bearer)) -> None:
    """The API token, when the service has one (the admin token passes too): detect, models, recording."""
    service_of(request).check_api_token(request.headers.get("authorization"))


async def read_auth(request: Request, _: Any = Depends(bearer)) -> None:
    """The operations door's reads (jobs, filters, the models catalogue): as `api_auth`, with a message that says
    either token will do."""
    service, auth = service_of(request), request.headers.get("authorization")
    try:
        service.check_api_token(auth)
    except UnauthorizedError:
        try:
            service.check_admin_token(auth)
        except (UnauthorizedError, ForbiddenError):
            raise UnauthorizedError("this route needs `Authorization: Bearer <API or admin token>`",
                                    headers={"WWW-Authenticate": "Bearer"}) from None


async def admin_auth(request: Request, _: Any = Depends(bearer)) -> None:
    """The admin token: promote, rollback, reload, job submission and stop, people's decisions."""
    service_of(request).check_admin_token(request.headers.get("authorization"))


async def in_thread(fn, *args, **kwargs):
    """A blocking call (store, tables, Ray's job client) off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)
