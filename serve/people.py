"""The people registry: a personal token per person, kept only as its digest, with a role and times.

Where: one JSON document, `people.json`, under the service's people location (the serve config's `people.location`,
default `<store>/_people`: a directory or s3://, the place every replica already reads, surviving restarts). Writers
(`trapline people ...`, the admin routes) read it, change one entry and replace it whole (local: temp file + rename
under a lock file; S3: one PUT, so readers see the old or the new document; two admins changing it in the same
instant on S3 is last-writer-wins). Revoked entries stay, marked, so the list says who had access and until when.

Readers: each ingress replica holds a `PeopleView` whose thread re-reads the document every `refresh_s` when it
changed (a stat, or an S3 HEAD for the ETag): a revoked token is refused by every replica within `refresh_s` plus
one read. A request's token is checked by one sha256 and one dict lookup of the digest (tokens are 256 random bits,
so an unsalted digest is safe to keep and a lookup by it leaks nothing that could be turned into a token).

Last used: each replica remembers when each person's token was last accepted and writes it, at most every
`LAST_USED_EVERY_S`, to `last_used/<replica>.json` beside the registry; `list` shows the latest of them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from ground.errors import InvalidParameterError, NotFoundError
from ground.every import Every
from model_store.tables.locations import open_location
from serve.roles import ROLE_NAMES, Person, Role

logger = logging.getLogger("ray.serve.trapline")

PEOPLE_FILE = "people.json"
LAST_USED_DIR = "last_used"
LINK_SECRET_FILE = "link.key"
PEOPLE_DIR = "_people"  # under the model store: no model can be named so (names start with a letter or digit)
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN_PREFIX = "tlp_"  # recognisable in a leaked log or a secret scanner
LAST_USED_EVERY_S = 30.0


def people_location(location: str | None, store_root: str) -> str:
    """Where the registry is: the configured location, else `_people` under the model store."""
    if location:
        return location
    return f"{store_root.rstrip('/')}/{PEOPLE_DIR}" if "://" in store_root else os.path.join(store_root, PEOPLE_DIR)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise InvalidParameterError(f"a person's name is 1-64 letters, digits, `_.@-`, starting with a letter or "
                                    f"digit: {name!r}")
    return name


def check_role(role: str) -> Role:
    if role not in ROLE_NAMES:
        raise InvalidParameterError(f"role must be one of {', '.join(ROLE_NAMES)}, not {role!r}")
    return Role[role]


class PeopleRegistry:
    """The registry's writers and its listing. Lifecycle: one per command or admin request; nothing is cached."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.storage = open_location(location)

    def entries(self) -> dict[str, dict[str, Any]]:
        try:
            data = self.storage.read_bytes(PEOPLE_FILE)
        except FileNotFoundError:
            return {}
        return dict(json.loads(data).get("people", {}))

    @contextlib.contextmanager
    def _changing(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The entries to change, written back whole when the block ends without an error."""
        self.storage.makedirs()
        lock = None
        if self.storage.is_local:  # one writer at a time on this file system
            import fcntl

            lock = open(self.storage.path(".lock"), "a")  # noqa: SIM115 - held for the block
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            people = self.entries()
            yield people
            body = json.dumps({"version": 1, "people": people}, indent=1, sort_keys=True).encode()
            self.storage.write_atomic(body, PEOPLE_FILE)
        finally:
            if lock is not None:
                lock.close()

    def add(self, name: str, role: str) -> str:
        """A new person (or one revoked before, again): their token, to be shown once."""
        check_name(name)
        check_role(role)
        token = new_token()
        with self._changing() as people:
            if name in people and not people[name].get("revoked"):
                raise InvalidParameterError(f"{name} is already registered (rotate their token, or revoke them "
                                            "first)")
            people[name] = {"role": role, "digest": digest(token), "created": _now(), "revoked": None}
        return token

    def rotate(self, name: str) -> str:
        """A new token for an active person; the old one stops working (within the replicas' refresh)."""
        token = new_token()
        with self._changing() as people:
            self._active(people, name).update(digest=digest(token), rotated=_now())
        return token

    def revoke(self, name: str) -> None:
        with self._changing() as people:
            self._active(people, name).update(revoked=_now(), digest=None)

    def set_role(self, name: str, role: str) -> None:
        check_role(role)
        with self._changing() as people:
            self._active(people, name)["role"] = role

    @staticmethod
    def _active(people: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
        entry = people.get(name)
        if entry is None or entry.get("revoked"):
            raise NotFoundError(f"no active person named {name!r}", kind="person_not_found")
        return entry

    def last_used(self) -> dict[str, str]:
        latest: dict[str, str] = {}
        for file in self.storage.listdir(LAST_USED_DIR):
            try:
                seen = json.loads(self.storage.read_bytes(LAST_USED_DIR, file))
            except (OSError, ValueError):
                continue
            for name, when in seen.items():
                latest[name] = max(latest.get(name, ""), str(when))
        return latest

    def listed(self, include_revoked: bool = False) -> list[dict[str, Any]]:
        """Everyone (no digest): name, role, created, rotated, last used, revoked."""
        used = self.last_used()
        return [{"name": name, "role": e["role"], "created": e.get("created"), "rotated": e.get("rotated"),
                 "last_used": used.get(name), "revoked": e.get("revoked")}
                for name, e in sorted(self.entries().items()) if include_revoked or not e.get("revoked")]


class PeopleView:
    """A replica's read side: digest -> Person, refreshed by a daemon thread every `refresh_s` when the document
    changed. Lifecycle: built by the ingress at start (the first read done there), `close()` at shutdown."""

    def __init__(self, location: str, refresh_s: float = 2.0) -> None:
        self.registry = PeopleRegistry(location)
        self.refresh_s = refresh_s
        self._by_digest: dict[str, Person] = {}
        self._version: Any = None
        self._used: dict[str, str] = {}
        self._used_dirty = False
        self._used_every = Every(LAST_USED_EVERY_S)
        self._replica = uuid.uuid4().hex[:12]
        self._stop = threading.Event()
        self.refreshed: float | None = None  # monotonic time of the last successful look
        self._secret: bytes | None = None
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="trapline-people", daemon=True)
        self._thread.start()

    @property
    def anyone(self) -> bool:
        return bool(self._by_digest)

    def person(self, token_digest: str) -> Person | None:
        return self._by_digest.get(token_digest)

    def touch(self, person: Person) -> None:
        self._used[person.name] = _now()
        self._used_dirty = True

    def link_secret(self) -> bytes:
        """32 random bytes made once beside the registry (on first need), the same for every replica: they key
        report and picture links where the service has no token of its own to derive a key from. b"" when they can
        be neither read nor made (a read-only location), asked again next time."""
        if self._secret:
            return self._secret
        storage = self.registry.storage
        try:
            storage.makedirs()
            storage.create_exclusive(secrets.token_bytes(32), LINK_SECRET_FILE)
            self._secret = storage.read_bytes(LINK_SECRET_FILE)
        except Exception as exc:  # noqa: BLE001 - a read-only location is a supported setup
            logger.warning("people registry %s: no link secret (%s)", self.registry.location, exc)
            return b""
        return self._secret

    def _stamp(self) -> Any:
        storage = self.registry.storage
        try:
            info = storage.fs.info(storage.path(PEOPLE_FILE))
        except FileNotFoundError:
            return None
        return info.get("ETag") or (info.get("mtime"), info.get("size"), info.get("ino"))

    def refresh(self) -> None:
        """Re-read the registry if it changed; a failed read keeps the last one (and says so)."""
        try:
            stamp = self._stamp()
            if stamp != self._version or stamp is None:
                entries = self.registry.entries() if stamp is not None else {}
                self._by_digest = {e["digest"]: Person(name, Role[e["role"]])
                                   for name, e in entries.items() if e.get("digest") and not e.get("revoked")}
                self._version = stamp
            self.refreshed = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - the thread must live on; the last registry read stays in force
            logger.warning("people registry %s could not be read: %s", self.registry.location, exc)

    def _write_used(self) -> None:
        if not self._used_dirty or not self._used_every.take():
            return
        self._used_dirty = False
        try:
            self.registry.storage.makedirs(LAST_USED_DIR)
            self.registry.storage.write_atomic(json.dumps(self._used).encode(), LAST_USED_DIR,
                                               f"{self._replica}.json")
        except Exception as exc:  # noqa: BLE001 - last-used is a convenience, never a reason to fail
            logger.warning("people registry: last-used times not written: %s", exc)

    def _loop(self) -> None:
        while not self._stop.wait(self.refresh_s):
            self.refresh()
            self._write_used()

    def close(self) -> None:
        self._stop.set()
        self._used_every.reset()  # what was used since the last write is written now, however recent that was
        self._write_used()
