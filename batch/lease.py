"""A run lease per output table and model version: two reprocess runs never process the same images.

The lease is one small JSON object at `<out>/_leases/<model>@<version>.json`, created exclusively
(locally `O_CREAT | O_EXCL`; on S3 a conditional PUT with `If-None-Match: *`, which S3 and
S3-compatible servers refuse with 412 when the object exists). The holder refreshes a heartbeat
in it while it runs and deletes it at the end. A lease whose heartbeat is older than `ttl_s`, or
whose holder process is gone (same host), is stale: the next run takes it over (locally by renaming
the stale file away first; on S3 by a PUT conditional on the stale object's ETag), so a run killed
with SIGKILL blocks its successors for at most `ttl_s`.

Lifecycle: `RunLease.acquire(...)` (waits up to `wait_s`, else raises LeaseHeldError naming the
holder), then `start_heartbeat()`, then `release()` in a `finally`.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass

from model_store.storage import Storage

from .errors import BatchError

LEASES_DIR = "_leases"


class LeaseHeldError(BatchError):
    """Another run holds the lease; the message names it and says what to do."""


@dataclass
class Holder:
    run_id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float

    def describe(self, now: float) -> str:
        return (f"run {self.run_id} (pid {self.pid} on {self.host}, started {now - self.started_at:.0f} s ago, "
                f"last heartbeat {now - self.heartbeat_at:.0f} s ago)")


class RunLease:
    """The lease of one run on one table + model version (see the module docstring)."""

    def __init__(self, storage: Storage, model_name: str, model_version: str, run_id: str,
                 ttl_s: float = 60.0, heartbeat_s: float = 10.0) -> None:
        self.storage = storage
        self.parts = (LEASES_DIR, f"{model_name}@{model_version}.json")
        self.what = f"{storage.url()} for {model_name}:{model_version}"
        self.ttl_s, self.heartbeat_s = ttl_s, heartbeat_s
        now = time.time()
        self.holder = Holder(run_id, socket.gethostname(), os.getpid(), now, now)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- acquire ---------------------------------------------------------------------------------
    def acquire(self, wait_s: float = 0.0, poll_s: float = 1.0) -> RunLease:
        """Take the lease, waiting up to `wait_s` for a live holder to finish; LeaseHeldError after that."""
        deadline = time.monotonic() + wait_s
        while True:
            if self._create():
                return self
            current, tag = self._read()
            if current is None:
                continue  # released between our create and read: try again at once
            if self._is_stale(current) and self._take_over(tag):
                return self
            if time.monotonic() >= deadline:
                hint = "wait for it (--wait SECONDS)" if wait_s == 0 else f"it is still running after {wait_s:g} s"
                raise LeaseHeldError(f"another run holds {self.what}: {current.describe(time.time())}; {hint}, "
                                     f"or remove {self.storage.url(*self.parts)} if that run is gone")
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))

    def _body(self) -> bytes:
        return json.dumps(asdict(self.holder)).encode()

    def _create(self) -> bool:
        path = self.storage.path(*self.parts)
        if self.storage.is_local:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(fd, "wb") as f:
                f.write(self._body())
            return True
        try:
            self.storage.fs.pipe_file(path, self._body(), mode="create")
        except (FileExistsError, OSError) as exc:
            if _precondition_failed(exc):
                return False
            raise
        return True

    def _read(self) -> tuple[Holder | None, str | None]:
        path = self.storage.path(*self.parts)
        try:
            data = self.storage.fs.cat_file(path)
            tag = None if self.storage.is_local else self.storage.fs.info(path).get("ETag")
        except FileNotFoundError:
            return None, None
        try:
            return Holder(**json.loads(data)), tag
        except (ValueError, TypeError):  # a half-written or foreign file: treat as stale
            return Holder("unknown", "unknown", -1, 0.0, 0.0), tag

    def _is_stale(self, holder: Holder) -> bool:
        if time.time() - holder.heartbeat_at > self.ttl_s:
            return True
        if holder.host == self.holder.host and holder.pid > 0:
            try:
                os.kill(holder.pid, 0)
            except ProcessLookupError:
                return True  # its process is gone (killed, crashed)
            except PermissionError:
                return False
        return False

    def _take_over(self, tag: str | None) -> bool:
        path = self.storage.path(*self.parts)
        if self.storage.is_local:
            # Renaming is atomic and only one contender can move the stale file away.
            try:
                os.rename(path, f"{path}.stale-{uuid.uuid4().hex[:8]}")
            except FileNotFoundError:
                return False
            for name in os.listdir(os.path.dirname(path)):
                if ".stale-" in name:
                    os.unlink(os.path.join(os.path.dirname(path), name))
            return self._create()
        try:
            self.storage.fs.pipe_file(path, self._body(), IfMatch=tag)  # only if still that stale object
        except (FileExistsError, OSError) as exc:
            if _precondition_failed(exc):
                return False
            raise
        return True

    # -- hold and release ------------------------------------------------------------------------
    def start_heartbeat(self) -> None:
        """Refresh the heartbeat every `heartbeat_s` from a daemon thread until `release`."""
        def beat() -> None:
            while not self._stop.wait(self.heartbeat_s):
                self.holder.heartbeat_at = time.time()
                try:
                    self.storage.write_atomic(self._body(), *self.parts)
                except Exception:  # noqa: BLE001 - a missed beat only shortens the grace period
                    pass

        self._thread = threading.Thread(target=beat, name="trapline-lease", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        current, _ = self._read()
        if current is not None and current.run_id == self.holder.run_id:
            try:
                self.storage.fs.rm_file(self.storage.path(*self.parts))
            except FileNotFoundError:
                pass


def _precondition_failed(exc: BaseException) -> bool:
    # s3fs turns a failed If-None-Match into FileExistsError and a failed If-Match into an
    # OSError(EINVAL) carrying S3's "pre-conditions ... did not hold" message.
    text = str(exc).lower()
    return isinstance(exc, FileExistsError) or (
        isinstance(exc, OSError) and (exc.errno == errno.EINVAL or "precondition" in text or "pre-condition" in text))
