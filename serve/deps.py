"""What every HTTP route needs, defined once: the ingress core from the app's state, the token checks, and a thread
for the blocking calls (the store, the tables, Ray's job client).

Every feature's router (serve/routes.py: detect, models, admin; serve/recording/routes.py; batch/jobs/, batch/views/)
takes its service with `service_of(request)` and its auth with the dependency of the least role it needs
(serve/roles.py: `reader_auth`, `reviewer_auth`, `operator_auth`, `admin_auth`; `api_auth` and `read_auth` are the
reader's by their older names). Each returns the Person the token names (and leaves it on `request.state.person`
for the audit log).
Auth runs as a dependency, i.e. before the query parameters are validated: a caller without the token learns nothing
about a route's parameters. The check itself is the service's (`authorize`: serve/auth.py).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from ground.errors import ForbiddenError, NotTheSignerError
from model_store.core.clips import ClipDetections
from serve.answers import ClipAsk, DetectAnswer, DetectAsk
from serve.config import ServeConfig
from serve.protocol import AliasMoveResponse, ModelsResponse, ReloadResponse
from serve.roles import Person, Role

# Shown in /docs as the "Authorize" button; the check itself is the service's check_*_token.
bearer = HTTPBearer(auto_error=False, description="a personal token (`trapline people add`), or the service's admin "
                                                   "or API token")


class Service(Protocol):
    """What the routes need from the service on `app.state` (serve/ingress.py `IngressCore` is the one; tests give
    their own). Known here by this protocol, so no router imports the ingress that attaches it."""

    config: ServeConfig
    people_location: str  # where the people registry and the audit log are (serve/people.py)
    audit: Any  # serve/audit.py `AuditLog`
    recorder: Any  # serve/recording/recorder.py `Recorder`, or None when the service records nothing

    def authorize(self, authorization: str | None, role: Role) -> Person: ...
    def link_key(self) -> bytes: ...
    def refuse_early(self, model: str | None) -> None: ...
    async def detect(self, ask: DetectAsk, data: bytes) -> DetectAnswer: ...
    async def detect_clip(self, ask: ClipAsk, data: bytes) -> ClipDetections: ...
    async def readiness(self) -> tuple[bool, dict[str, Any]]: ...
    async def models(self) -> ModelsResponse: ...
    async def promote(self, model: str, version: str, alias: str) -> AliasMoveResponse: ...
    async def rollback(self, model: str, alias: str) -> AliasMoveResponse: ...
    async def reload(self, model: str) -> ReloadResponse: ...


def service_of(request: Request) -> Service:
    """The ingress core answering this app's routes (set by `serve.routes.create_api`)."""
    return request.app.state.service


def _needs(role: Role):
    async def auth(request: Request, _: Any = Depends(bearer)) -> Person:
        request.state.needed = role
        try:
            person = service_of(request).authorize(request.headers.get("authorization"), role)
        except ForbiddenError as exc:  # a known person below the role: the audit log names them
            request.state.refused = exc.extra.get("person")
            raise
        request.state.person = person
        return person

    auth.role = role  # type: ignore[attr-defined]  # what serve/roles.py `route_roles` reads
    auth.__name__ = auth.__qualname__ = f"{role.name}_auth"
    auth.__doc__ = f"The token of {role.a} or above (serve/roles.py)."
    return auth


reader_auth = _needs(Role.reader)  # detect, models, reads, recording uploads
reviewer_auth = _needs(Role.reviewer)  # people's decisions
operator_auth = _needs(Role.operator)  # jobs
admin_auth = _needs(Role.admin)  # promote, rollback, reload, people
api_auth = read_auth = reader_auth  # their names before roles


def signed(request: Request, who: str | None) -> str:
    """Who a decision is recorded as: the person whose token sent it. A `who` naming someone else is refused
    (NotTheSignerError), except from an admin, who is then recorded beside them ("ana (entered by bo)"). The service's
    own admin token names nobody in particular: with it `who` is taken as sent (default "admin"), as before people."""
    person: Person | None = getattr(request.state, "person", None)
    if person is None or not person.personal:
        return who or "admin"
    if who is None or who == person.name:
        return person.name
    if person.role >= Role.admin:
        return f"{who} (entered by {person.name})"
    raise NotTheSignerError(f"{person.name}'s token cannot sign a decision as {who!r}: leave `who` out, or send "
                            "your own name", who=who, person=person.name)


async def in_thread(fn, *args, **kwargs):
    """A blocking call (store, tables, Ray's job client) off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)
