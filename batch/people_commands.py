"""`trapline people add | list | revoke | rotate` and `trapline audit`: their entries of the command registry
(batch/commands.py lists them) and their options models. The work is the service's own registry and log
(serve/people.py, serve/audit.py, run by serve/people_cli.py): the same files the admin routes change, read by every
replica. Command-line only (no job kind): whoever runs them writes the registry's location directly."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from batch.command import Command, later, printed
from batch.flags import FlagStyle
from batch.options import CommandOptions, Location, StoreRoot

RoleName = Literal["reader", "reviewer", "operator", "admin"]


class PeopleOptions(CommandOptions):
    store: StoreRoot = None  # the one the service serves from: the registry is `_people` under it
    people: Location | None = Field(None, description="the registry's location when the serve config sets "
                                                      "`people.location` (a directory or s3://)")


class AddOptions(PeopleOptions):
    name: str = Field(..., description="the person's name, as decisions and the audit log will carry it")
    role: RoleName = Field(..., description="reader, reviewer, operator or admin (serve/roles.py)")


class NameOptions(PeopleOptions):
    name: str = Field(..., description="the person's name")


class ListOptions(PeopleOptions):
    revoked: bool = Field(False, description="also list those whose access was revoked")


class AuditOptions(PeopleOptions):
    limit: int = Field(50, ge=1, le=100_000, description="the newest this many entries")
    since: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="from this day on (YYYY-MM-DD, UTC)")
    who: str | None = Field(None, description="only this person's actions")


_STYLES = {"name": FlagStyle(positional=True, metavar="NAME")}


def _people(name: str, help: str, options: type[CommandOptions], runner: str, **kw) -> Command:
    kw.setdefault("styles", _STYLES)
    return Command(name, help, options, later("serve.people_cli:" + runner), printed, job=False,
                   to_json=lambda r: r.json(), **kw)


PEOPLE_COMMANDS = (
    _people("people add", "register a person with a role; prints their token once", AddOptions, "add",
            example="trapline people add ana --role reviewer --store s3://traps/models"),
    _people("people list", "everyone registered: role, created, last used (never a token)", ListOptions, "listed",
            example="trapline people list"),
    _people("people revoke", "take a person's access away (every replica within people.refresh_s)", NameOptions,
            "revoke", example="trapline people revoke ana"),
    _people("people rotate", "a new token for a person; prints it once, the old one stops working", NameOptions,
            "rotate", example="trapline people rotate ana"),
    _people("audit", "who promoted, rolled back, ran or stopped jobs, changed people: the audit log, newest first",
            AuditOptions, "audit", styles={}, example="trapline audit --since 2026-11-01 --who ana"),
)

PEOPLE_GROUP = ("personal tokens with roles for the service: add, list, revoke, rotate",
                "A token per person (shown once, kept as a digest), with a role: reader, reviewer, operator, admin "
                "(SECURITY.md). The registry is `_people` under the model store (--store), or the serve config's "
                "people.location (--people); every replica of the service reads it.")
