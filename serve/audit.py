"""The audit log: every operator and admin action (promote, rollback, reload, job submit and stop — the jobs that
retire and purge result sets among them — people changes) appended with who, when, what and the outcome.

Where: `audit/YYYY-MM-DD/HHMMSSffffff-<id>.json` under the people location (serve/people.py), one small object per
action, created and never rewritten (a directory or S3 alike: appending needs no lock and no read-modify-write).
`trapline audit` and `GET /v1/admin/audit` read it, newest first.

Who writes: the service, through `AuditMiddleware`, for every request to a route that needs an operator or above
(serve/deps.py leaves the route's role and the person on the request's state), a known person's refused attempts
included (not a request whose token names nobody: anyone could fill the log with those, and they are 401s); the
`trapline people` commands for the changes they make on the registry directly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import uuid
from typing import Any

from model_store.tables.locations import open_location
from serve.roles import Role

logger = logging.getLogger("ray.serve.trapline")

AUDIT_DIR = "audit"
ANSWER_BYTES = 4096  # an action's answer kept in its entry up to this size (a job's id, a promotion's versions)
SECRET_KEYS = frozenset({"token"})  # never written: a person's new token is shown once, to whoever asked


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("(shown once, not kept)" if k in SECRET_KEYS else _redacted(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


class AuditLog:
    """Lifecycle: one per ingress replica or command; every `append` is one new object."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.storage = open_location(location)

    def append(self, who: str, action: str, outcome: str, **detail: Any) -> dict[str, Any]:
        now = dt.datetime.now(dt.timezone.utc)
        entry = {"when": now.isoformat(timespec="milliseconds"), "who": who, "action": action, "outcome": outcome,
                 **_redacted(detail)}
        day = now.strftime("%Y-%m-%d")
        self.storage.makedirs(AUDIT_DIR, day)
        self.storage.create_exclusive(json.dumps(entry, sort_keys=True, default=str).encode(), AUDIT_DIR, day,
                                      f"{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.json")
        return entry

    def read(self, limit: int = 100, since: str | None = None, who: str | None = None) -> list[dict[str, Any]]:
        """The newest `limit` entries (on or after the day `since`, YYYY-MM-DD; of `who` when given)."""
        out: list[dict[str, Any]] = []
        for day in sorted(self.storage.listdir(AUDIT_DIR), reverse=True):
            if since and day < since[:10]:
                break
            for name in sorted(self.storage.listdir(AUDIT_DIR, day), reverse=True):
                try:
                    entry = json.loads(self.storage.read_bytes(AUDIT_DIR, day, name))
                except (OSError, ValueError):
                    continue
                if who is None or entry.get("who") == who:
                    out.append(entry)
                if len(out) >= limit:
                    return out
        return out


class AuditMiddleware:
    """Pure ASGI (the answer is streamed through untouched): after a request to an operator's or admin's route, one
    audit entry with the person, the method and path, the HTTP status and the start of the answer."""

    def __init__(self, app: Any, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        seen: dict[str, Any] = {"status": 500, "body": b"", "recorded": False}

        async def record() -> None:
            state = scope.get("state") or {}
            needed = state.get("needed")
            # a request whose token names nobody is not recorded: anyone could fill the log with those
            known = state.get("person") is not None or state.get("refused") is not None
            if not seen["recorded"] and known and needed is not None and needed >= Role.operator:
                seen["recorded"] = True
                await self._record(scope, state, needed, seen)

        async def watch(message: dict) -> None:
            if message["type"] == "http.response.start":
                seen["status"] = message["status"]
            elif message["type"] == "http.response.body":
                if len(seen["body"]) < ANSWER_BYTES:
                    seen["body"] += message.get("body", b"")[:ANSWER_BYTES]
                if not message.get("more_body", False):  # recorded before the caller has the whole answer
                    await record()
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            await record()  # an answer that never finished (an error) is recorded all the same

    async def _record(self, scope: dict, state: dict, needed: Role, seen: dict[str, Any]) -> None:
        person = state.get("person")
        status = int(seen["status"])
        try:
            answer = json.loads(seen["body"]) if seen["body"] else None
        except ValueError:
            answer = None
        outcome = "done" if status < 400 else "refused" if status in (401, 403) else "failed"
        action = f"{scope['method']} {scope['path']}"
        try:
            who = person.name if person else state["refused"]
            await asyncio.to_thread(self.audit.append, who, action,
                                    outcome, status=status, role_needed=needed.name,
                                    via=person.via if person else None,
                                    answer=answer if isinstance(answer, dict) else None)
        except Exception as exc:  # noqa: BLE001 - the action is done; the log's failure is said, loudly
            logger.error("audit log %s: %s by %s not recorded: %s", self.audit.location, action,
                         person.name if person else "?", exc)
