"""The people's routes: who am I (any reader), and the admin's `/v1/admin/people` (add, list, rotate, revoke) and
`/v1/admin/audit`, over the same registry and log as `trapline people` and `trapline audit` (serve/people.py,
serve/audit.py). A new token is in the answer of the request that made it and nowhere else (not in the audit log)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from serve.deps import admin_auth, in_thread, reader_auth, service_of
from serve.people import PeopleRegistry
from serve.roles import ROLE_NAMES, Person

router = APIRouter(tags=["people"])


class NewPerson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=64)
    role: str = Field(..., description=f"one of {', '.join(ROLE_NAMES)}")


def _registry(request: Request) -> PeopleRegistry:
    return PeopleRegistry(service_of(request).people_location)


@router.get("/v1/whoami", summary="Who the request's token names, and their role")
async def whoami(person: Person = Depends(reader_auth)) -> dict[str, Any]:
    return person.view()


@router.get("/v1/admin/people", summary="Everyone registered: name, role, created, last used (no token, no digest)")
async def list_people(request: Request, revoked: bool = Query(False, description="also those revoked"),
                      _: Person = Depends(admin_auth)) -> dict[str, Any]:
    return {"people": await in_thread(_registry(request).listed, revoked)}


@router.post("/v1/admin/people", summary="Register a person: their token, shown in this answer only")
async def add_person(request: Request, body: NewPerson, _: Person = Depends(admin_auth)) -> dict[str, Any]:
    token = await in_thread(_registry(request).add, body.name, body.role)
    return {"name": body.name, "role": body.role, "token": token}


@router.post("/v1/admin/people/{name}/rotate", summary="A new token for a person; the old one stops working")
async def rotate_person(request: Request, name: str, _: Person = Depends(admin_auth)) -> dict[str, Any]:
    return {"name": name, "token": await in_thread(_registry(request).rotate, name)}


@router.post("/v1/admin/people/{name}/revoke", summary="Take a person's access away (every replica within the bound)")
async def revoke_person(request: Request, name: str, _: Person = Depends(admin_auth)) -> dict[str, Any]:
    await in_thread(_registry(request).revoke, name)
    return {"name": name, "revoked": True, "within_s": service_of(request).config.people.refresh_s}


@router.get("/v1/admin/audit", summary="The audit log, newest first")
async def read_audit(request: Request, limit: int = Query(100, ge=1, le=10_000),
                     since: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}"),
                     who: str | None = Query(None, max_length=64), _: Person = Depends(admin_auth)) -> dict[str, Any]:
    return {"entries": await in_thread(service_of(request).audit.read, limit, since, who)}


def attach_people(api: FastAPI) -> None:
    api.include_router(router)
