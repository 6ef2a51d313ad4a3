"""Running `trapline serve` services on this machine, so later commands find them without flags.

`trapline serve` records itself (`registered`) while it runs: its HTTP URL, its Serve app and the
address of the Ray cluster it deployed to, one small file per service under
`$TRAPLINE_STATE_DIR/services/` (default `~/.trapline/services/`; the directory 0700, each file 0600),
removed when it stops. `live()` returns only the records of services that are still there: a record
whose process is gone (a `kill -9`, a reboot) is deleted, never dialled, and one whose Ray no
longer answers is skipped; so a stale record can never make a command wait on a dead cluster.
What a service serves is then checked by the caller through the service itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from ground import env


@dataclass(frozen=True)
class ServiceRecord:
    pid: int
    url: str  # the HTTP base URL
    app_name: str  # the Serve application
    ray_address: str  # GCS address of the Ray cluster the app runs on
    started_at: float

    @property
    def path(self) -> Path:
        return services_dir() / f"{self.pid}.json"


def services_dir() -> Path:
    root = env.STATE_DIR.get() or str(Path.home() / ".trapline")
    return Path(root) / "services"


@contextlib.contextmanager
def registered(url: str, app_name: str, ray_address: str) -> Iterator[ServiceRecord]:
    """Record this process's service for as long as the block runs."""
    record = ServiceRecord(os.getpid(), url, app_name, ray_address, time.time())
    d = services_dir()
    d.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = d / f".{record.pid}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(asdict(record), f)
    os.replace(tmp, record.path)  # readers see the whole record or none
    try:
        yield record
    finally:
        with contextlib.suppress(FileNotFoundError):
            record.path.unlink()


def live(probe=None) -> list[ServiceRecord]:
    """Records of services whose process still runs (newest first); `probe(record) -> bool`, when given, must
    also pass (e.g. the Ray address answers). Records of dead processes are deleted."""
    out = []
    d = services_dir()
    for path in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            record = ServiceRecord(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue  # being written, or not ours
        if not _alive(record.pid):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        if probe is None or probe(record):
            out.append(record)
    return sorted(out, key=lambda r: -r.started_at)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive, but not a service this user can use
        return False
    return True
