"""What every route of the operations door needs: the service and the job control from the app, the token checks,
and a thread for the blocking calls (the store, the tables, Ray's job client)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from fastapi import Request

from serve.jobs.control import JobControl
from trapline.errors import ForbiddenError, UnauthorizedError

if TYPE_CHECKING:
    from serve.ingress import IngressCore


def service_of(request: Request) -> IngressCore:
    return request.app.state.trapline_service


def control_of(request: Request) -> JobControl:
    return request.app.state.trapline_jobs


async def read_auth(request: Request) -> None:
    """The API token when one is set; the admin token passes too."""
    service, auth = service_of(request), request.headers.get("authorization")
    try:
        service.check_api_token(auth)
    except UnauthorizedError:
        try:
            service.check_admin_token(auth)
        except (UnauthorizedError, ForbiddenError):
            raise UnauthorizedError("this route needs `Authorization: Bearer <API or admin token>`",
                                    headers={"WWW-Authenticate": "Bearer"}) from None


async def admin_auth(request: Request) -> None:
    service_of(request).check_admin_token(request.headers.get("authorization"))


async def in_thread(fn, *args, **kwargs):
    return await asyncio.to_thread(fn, *args, **kwargs)
