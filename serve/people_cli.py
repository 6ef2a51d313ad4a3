"""The runners of `trapline people ...` and `trapline audit` (their registry entries: batch/people_commands.py): the
registry and the audit log, as the admin routes change and read them, each change appended to the log. Also
`trapline models rollback` as an audited action (and `audited`, which `trapline models promote` goes through after
its gate, batch/promote_gate_cli.py): the store's own runners (model_store/store/cli.py), each outcome appended to the
log beside the store (`_people` under it), as the service's admin routes are."""

from __future__ import annotations

import getpass
import os
from types import SimpleNamespace
from typing import Any

from ground import env
from ground.errors import InvalidRefError
from ground.printed import Printed
from serve.audit import AuditLog
from serve.people import PeopleRegistry, people_location


def location(o: Any) -> str:
    store = o.store or env.MODEL_STORE.get() or "./models"
    return people_location(o.people, store if "://" in store else os.path.abspath(os.path.expanduser(store)))


def _by_hand(o: Any, action: str, outcome: str = "done", **detail: Any) -> None:
    AuditLog(location(o)).append(f"{getpass.getuser()} (command line)", action, outcome, **detail)


def audited(o: Any, action: str, work: Any) -> Printed:
    """`work(o)` (a store command), its outcome appended to the audit log beside the store."""
    where = SimpleNamespace(store=o.store, people=None)
    try:
        out = work(o)
    except InvalidRefError:
        raise  # a name that is not a safe path segment: nothing was tried, and nothing is written beside the store
    except Exception as exc:
        _by_hand(where, action, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    _by_hand(where, action, answer=out.data)
    return out


def rollback(o: Any, progress: Any = None) -> Printed:
    # late: the registry names this runner without importing it (promote's, with its gate: batch/promote_gate_cli.py)
    from model_store.store import cli as store_cli

    return audited(o, f"models rollback {o.name} @{o.alias}", store_cli.rollback)


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
