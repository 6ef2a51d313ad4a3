"""A run lease per output table and model version: two reprocess runs never process the same images.

The lease is one small JSON object at `<out>/_leases/<model>@<version>.json`, created exclusively
(locally written whole and hard-linked into place, which fails if the file exists; on S3 a
conditional PUT with `If-None-Match: *`, which S3 and
S3-compatible servers refuse with 412 when the object exists). The holder refreshes a heartbeat
in it while it runs and deletes it at the end. A lease whose heartbeat is older than `ttl_s`, or
whose holder process is gone (same host), is stale: the next run takes it over, so a run killed
with SIGKILL blocks its successors for at most `ttl_s`.

Every change after the create is conditional on the lease still being the one last seen: on S3 a
PUT with `If-Match` on that ETag; locally the read-check-write runs under an `flock` on a sidecar
file (a rename cannot tell a stale file from the live one that just replaced it). So two runs
taking over at once cannot both win, and a holder that stalled past `ttl_s` and was taken over
finds out at its next heartbeat instead of overwriting the new holder: it is then `lost`, and
`check()` raises LeaseLostError so the run stops before it writes another part.

Lifecycle: `RunLease.acquire(...)` (waits up to `wait_s`, else raises LeaseHeldError naming the
holder), then `start_heartbeat()`, `check()` between units of work, then `release()` in a `finally`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass

from ground.errors import LeaseHeldError, LeaseLostError
from ground.storage import Storage, conditional_conflict, precondition_failed

LEASES_DIR = "_leases"
CONFLICT_RETRIES = 5


def lease_parts(model_name: str, model_version: str) -> tuple[str, str]:
    """Where the lease of one model version lives, relative to the output table's root."""
    return LEASES_DIR, f"{model_name}@{model_version}.json"


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
        self.parts = lease_parts(model_name, model_version)
        self.what = f"{storage.url()} for {model_name}:{model_version}"
        self.ttl_s, self.heartbeat_s = ttl_s, heartbeat_s
        now = time.time()
        self.holder = Holder(run_id, socket.gethostname(), os.getpid(), now, now)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._etag: str | None = None  # S3: the ETag of our last write, the condition of the next one
        self.lost: Holder | None = None  # who took the lease from us, once someone has

    # -- acquire ---------------------------------------------------------------------------------
    def acquire(self, wait_s: float = 0.0, poll_s: float = 1.0) -> RunLease:
        """Take the lease, waiting up to `wait_s` for a live holder to finish; LeaseHeldError after that."""
        deadline = time.monotonic() + wait_s
        while True:
            # The times written are those of this attempt: a lease taken after a long wait must not
            # look stale (and be taken over) the moment it is written.
            self.holder.started_at = self.holder.heartbeat_at = time.time()
            if self._create():
                return self
            current, tag = self._read()
            if current is None:
                continue  # released between our create and read: try again at once
            if self._is_stale(current) and self._replace_if(current, tag):
                return self
            if time.monotonic() >= deadline:
                hint = "wait for it (--wait SECONDS)" if wait_s == 0 else f"it is still running after {wait_s:g} s"
                raise LeaseHeldError(f"another run holds {self.what}: {current.describe(time.time())}; {hint}, "
                                     f"or remove {self.storage.url(*self.parts)} if that run is gone")
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))

    def _body(self) -> bytes:
        return json.dumps(asdict(self.holder)).encode()

    def _create(self) -> bool:
        if self.storage.is_local:
            return self.storage.create_exclusive(self._body(), *self.parts)
        try:
            self._etag = _etag(self._put(self._body(), mode="create"))
        except (FileExistsError, OSError) as exc:
            if precondition_failed(exc):
                return False
            raise
        return True

    def _put(self, body: bytes, **condition: str) -> object:
        """One conditional PUT of the lease on S3. A 409 ConditionalRequestConflict (another conditional
        write to the same key in flight) is not an answer to the condition: it is retried."""
        path = self.storage.path(*self.parts)
        for attempt in range(CONFLICT_RETRIES):
            try:
                return self.storage.fs.pipe_file(path, body, **condition)
            except OSError as exc:
                if not conditional_conflict(exc) or attempt == CONFLICT_RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Locally: hold an exclusive flock on `<lease>.lock` (on S3 the conditional PUTs do this job)."""
        if not self.storage.is_local:
            yield
            return
        path = self.storage.path(*self.parts) + ".lock"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _read(self) -> tuple[Holder | None, str | None]:
        path = self.storage.path(*self.parts)
        try:
            # The ETag first: if the object changes between the two calls, the tag is the older one and
            # a PUT conditional on it fails, instead of a stale body passing with a fresh tag.
            tag = None if self.storage.is_local else self.storage.fs.info(path, refresh=True).get("ETag")
            data = self.storage.fs.cat_file(path)
        except FileNotFoundError:
            return None, None
        try:
            return Holder(**json.loads(data)), tag
        except (ValueError, TypeError):  # a half-written or foreign file: treat as stale
            return Holder("unknown", "unknown", -1, 0.0, 0.0), tag

    def holder_alive(self) -> bool:
        """Whether someone holds this lease and is not stale (reads only)."""
        current, _ = self._read()
        return current is not None and not self._is_stale(current)

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

    def _replace_if(self, seen: Holder, tag: str | None) -> bool:
        """Write our body over the lease only if it is still `seen` (ETag `tag` on S3)."""
        if self.storage.is_local:
            with self._locked():
                current, _ = self._read()
                if current != seen:
                    return False  # released, taken over or refreshed since we looked
                self.storage.write_atomic(self._body(), *self.parts)
                return True
        try:
            self._etag = _etag(self._put(self._body(), IfMatch=tag))
        except (FileExistsError, OSError) as exc:
            if precondition_failed(exc):
                return False
            raise
        return True

    # -- hold and release ------------------------------------------------------------------------
    def start_heartbeat(self) -> None:
        """Refresh the heartbeat every `heartbeat_s` from a daemon thread until `release` or until the lease is lost."""
        def beat() -> None:
            while not self._stop.wait(self.heartbeat_s):
                try:
                    if not self.refresh():
                        return
                except Exception:  # noqa: BLE001 - a missed beat only shortens the grace period
                    pass

        self._thread = threading.Thread(target=beat, name="trapline-lease", daemon=True)
        self._thread.start()

    def refresh(self) -> bool:
        """Write a new heartbeat if the lease is still ours; False (and `lost` set) if another run has it."""
        beat = Holder(**{**asdict(self.holder), "heartbeat_at": time.time()})
        body = json.dumps(asdict(beat)).encode()
        if self.storage.is_local:
            with self._locked():
                current, _ = self._read()
                if self._is_mine(current):
                    self.storage.write_atomic(body, *self.parts)
                    self.holder = beat
                    return True
        else:
            current = None
            if self._etag is None:  # a server that did not say: condition on what is there now, if ours
                current, self._etag = self._read()
            if self._etag is not None and (current is None or self._is_mine(current)):
                try:
                    self._etag = _etag(self._put(body, IfMatch=self._etag))
                    self.holder = beat
                    return True
                except (FileExistsError, OSError) as exc:
                    if not precondition_failed(exc):
                        raise
                current, tag = self._read()
                if self._is_mine(current):  # our own earlier write landed (its answer was lost): carry on
                    self._etag = tag
                    return True
        self.lost = current or Holder("none", "unknown", -1, 0.0, 0.0)
        return False

    def _is_mine(self, current: Holder | None) -> bool:
        """Whether the lease read is this run's (whatever heartbeat it last managed to write)."""
        return current is not None and (current.run_id, current.host, current.pid, current.started_at) == (
            self.holder.run_id, self.holder.host, self.holder.pid, self.holder.started_at)

    def check(self) -> None:
        """Raise LeaseLostError if another run has taken the lease from this one."""
        if self.lost is not None:
            raise LeaseLostError(
                f"this run lost {self.what} to {self.lost.describe(time.time())} after not refreshing it for "
                f"over {self.ttl_s:g} s; it stops here (what it wrote is kept; a rerun finishes the rest)")

    def release(self) -> None:
        """Stop the heartbeat and delete the lease if it is still ours (on S3: a DELETE with `If-Match` on the
        ETag just read, so a lease taken over between the read and the delete is not removed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._locked():
            current, tag = self._read()
            if current is None or current.run_id != self.holder.run_id:
                return
            if self.storage.is_local:
                self.storage.delete(*self.parts)
                return
            try:
                _delete_if_match(self.storage, self.parts, tag)
            except (FileExistsError, OSError) as exc:
                if not precondition_failed(exc):
                    raise  # a refused condition: someone else holds it now, and it stays


def check_held(storage: Storage, model_name: str, model_version: str, run_id: str) -> None:
    """The write fence: raise LeaseLostError unless `run_id` holds the lease on this table and version.

    A part is committed only by a run that still holds its lease, so a write task that outlives its
    run (cancelled but not yet stopped when the run failed, or of a run that stalled and was taken
    over) does not add a second copy of images that the next run is processing. It is a check before
    the write, so an upload already under way when the lease changes hands can still land; readers
    keep the newest row per image, so such a copy costs work, not correctness.
    """
    try:
        data = storage.fs.cat_file(storage.path(*lease_parts(model_name, model_version)))
        holder = json.loads(data).get("run_id")
    except FileNotFoundError:
        holder = None
    except ValueError:
        holder = "unknown"
    if holder != run_id:
        raise LeaseLostError(f"run {run_id} no longer holds the lease on {storage.url()} for "
                             f"{model_name}:{model_version} ({'nobody' if holder is None else 'run ' + holder} "
                             "does); its part was not written")


def _etag(response: object) -> str | None:
    """The ETag of s3fs's put_object answer (None where the filesystem returns nothing)."""
    return response.get("ETag") if isinstance(response, dict) else None


def _delete_if_match(storage: Storage, parts: tuple[str, ...], tag: str | None) -> None:
    """DELETE the object only if its ETag is still `tag` (S3 conditional delete; servers without it delete)."""
    bucket, _, key = storage.path(*parts).partition("/")
    kwargs = {"IfMatch": tag} if tag else {}
    try:
        storage.fs.call_s3("delete_object", Bucket=bucket, Key=key, **kwargs)
    except FileNotFoundError:
        pass
