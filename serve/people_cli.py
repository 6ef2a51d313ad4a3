"""The runners of `trapline people ...` and `trapline audit` (their registry entries: batch/people_commands.py): the
registry and the audit log, as the admin routes change and read them, each change appended to the log."""

from __future__ import annotations

import getpass
import os
from typing import Any

from serve.audit import AuditLog
from serve.people import PeopleRegistry, people_location
from trapline.base import env
from trapline.base.printed import Printed


def location(o: Any) -> str:
    store = o.store or env.MODEL_STORE.get() or "./models"
    return people_location(o.people, store if "://" in store else os.path.abspath(os.path.expanduser(store)))


def _by_hand(o: Any, action: str, **detail: Any) -> None:
    AuditLog(location(o)).append(f"{getpass.getuser()} (command line)", action, "done", **detail)


def add(o: Any, progress: Any = None) -> Printed:
    token = PeopleRegistry(location(o)).add(o.name, o.role)
    _by_hand(o, f"people add {o.name}", role=o.role)
    return Printed({"name": o.name, "role": o.role, "token": token},
                   f"{o.name} ({o.role}): token, shown this once — hand it over now, it is kept only as a digest:\n"
                   f"{token}")


def rotate(o: Any, progress: Any = None) -> Printed:
    token = PeopleRegistry(location(o)).rotate(o.name)
    _by_hand(o, f"people rotate {o.name}")
    return Printed({"name": o.name, "token": token}, f"{o.name}: new token, shown this once (the old one stops "
                                                     f"working within the service's people.refresh_s):\n{token}")


def revoke(o: Any, progress: Any = None) -> Printed:
    PeopleRegistry(location(o)).revoke(o.name)
    _by_hand(o, f"people revoke {o.name}")
    return Printed({"name": o.name, "revoked": True},
                   f"{o.name}: revoked (refused by every replica within the service's people.refresh_s)")


def listed(o: Any, progress: Any = None) -> Printed:
    rows = PeopleRegistry(location(o)).listed(o.revoked)
    lines = [f"{r['name']:<24} {r['role']:<9} created {r['created']}  last used {r['last_used'] or 'never'}"
             + (f"  REVOKED {r['revoked']}" if r["revoked"] else "") for r in rows]
    return Printed(rows, "\n".join(lines) or f"nobody registered in {location(o)}")


def audit(o: Any, progress: Any = None) -> Printed:
    entries = AuditLog(location(o)).read(o.limit, o.since, o.who)
    lines = [f"{e['when']}  {e['who']:<24} {e['action']}  {e['outcome']}" + (f" ({e['status']})" if 'status' in e
                                                                              else "") for e in entries]
    return Printed(entries, "\n".join(lines) or "the audit log is empty")
