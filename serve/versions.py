"""Which versions of one model (detector or classifier) a replica holds, and which version each served alias points at.

Pure Python (no Ray), so the swap logic is unit-tested on a real store without a cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ground.errors import ModelUnavailableError, NotReadyError, VersionRefusedError
from model_store import Detector, ModelRef, ModelStore, NotFoundError
from model_store.store.store import LATEST
from serve.config import ModelRuntimeConfig
from serve.protocol import load_error_kind

# A child of "ray.serve": inside a replica, Serve's handlers add the replica and request id.
logger = logging.getLogger("ray.serve.trapline")

HISTORY_FALLBACK = 3  # how many earlier versions of an alias a fresh replica may fall back to
MAX_FAILURES_KEPT = 16


@dataclass
class LoadedVersion:
    """One loaded, verified and warmed model version (a `Detector`, or a `Classifier` in a classifier replica)."""

    version: str
    model: Any
    loaded_at: float
    load_s: float

    @property
    def detector(self) -> Detector:
        return self.model

    def info(self) -> dict[str, Any]:
        out = {"version": self.version, "sha256": self.model.info.sha256, "device": self.model.device,
               "loaded_at": round(self.loaded_at, 3), "load_s": round(self.load_s, 3)}
        config = self.model.config
        if getattr(config, "tiling", None) is not None:  # a detector tiling by default says how (a classifier: no)
            out["tiling"] = config.tiling.describe(config.input_size)
        return out


@dataclass(frozen=True)
class LoadFailure:
    """Why a version was refused; kept so it is reported (and not retried on every poll)."""

    version: str
    kind: str
    message: str
    at: float = field(default_factory=time.time)
    mono: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "type": self.kind, "message": self.message, "at": round(self.at, 3)}

    def error(self, model: str) -> VersionRefusedError:
        return VersionRefusedError(f"{model}:{self.version} was refused ({self.kind}): {self.message}",
                                   version=self.version, reason=self.kind)


def warm_and_check(detector: Any) -> None:
    """One forward pass of the full pipeline on a blank frame (`Detector.warmup`): it warms every batch size the
    batcher forms, and a version that loads but cannot run is refused here."""
    detector.warmup()


class VersionManager:
    """The versions one replica holds for one model.

    Lifecycle: built once per replica (no I/O); `configure` applies the runtime config,
    `refresh` (blocking, run in a thread) reads the aliases from the store and swaps an alias
    only after its new version is loaded, verified (sha256) and warmed, so the old version
    serves until then; a version that fails is recorded and the alias stays where it was.
    `lookup` is the hot path: a dict read under a lock, no I/O. `ensure` loads a pinned
    version on demand (deduplicated across concurrent callers). Versions that are neither
    served by an alias nor pinned live in a bounded LRU (`max_cached_versions`); in-flight
    requests hold their own reference, so eviction never breaks a request.
    """

    def __init__(self, store: ModelStore, model_name: str, loader: Callable[[str], Any],
                 warm: Callable[[Any], None] = warm_and_check) -> None:
        self.store = store
        self.model = model_name
        self._loader = loader
        self._warm = warm
        self._lock = threading.RLock()
        self._loaded: OrderedDict[str, LoadedVersion] = OrderedDict()
        self._serving: dict[str, str] = {}
        self._store_targets: dict[str, str | None] = {}
        self._failures: dict[str, LoadFailure] = {}
        self._loading: dict[str, Future] = {}
        self._store_error: str | None = None
        self._new_failures: list[LoadFailure] = []
        self.runtime = ModelRuntimeConfig()

    # -- configuration ----------------------------------------------------------------------
    def configure(self, runtime: ModelRuntimeConfig) -> None:
        """Apply new aliases, pins and cache size; aliases no longer served are dropped at once."""
        with self._lock:
            self.runtime = runtime
            for alias in list(self._serving):
                if alias not in runtime.aliases:
                    del self._serving[alias]
            self._evict()

    @property
    def default_alias(self) -> str:
        return self.runtime.aliases[0]

    # -- hot path ---------------------------------------------------------------------------
    def lookup(self, version: str | None = None, alias: str | None = None) -> LoadedVersion | None:
        """The loaded version for a request, or None when a pinned version must be loaded first."""
        with self._lock:
            if version is not None:
                lv = self._loaded.get(version)
                if lv is not None:
                    self._loaded.move_to_end(version)
                    return lv
                failure = self._failures.get(version)
                if failure is not None and self._recent(failure):
                    raise failure.error(self.model)
                return None
            alias = alias or self.default_alias
            if alias not in self.runtime.aliases:
                raise NotFoundError(
                    f"alias {alias!r} of model {self.model!r} is not served here (served: {self.runtime.aliases}); "
                    "pin a version or add the alias to the serve config", model=self.model, alias=alias)
            served = self._serving.get(alias)
            if served is None:
                failure = self._failures.get(self._store_targets.get(alias) or "")
                why = f": {failure.kind}: {failure.message}" if failure else ""
                raise NotReadyError(f"{self.model}@{alias} has no loaded version{why}", model=self.model, alias=alias)
            return self._loaded[served]

    # -- loading (blocking; call from a worker thread) --------------------------------------
    def ensure(self, version: str, retry_failed: bool = False) -> LoadedVersion:
        """Return the loaded version, loading, verifying and warming it first if needed."""
        with self._lock:
            lv = self._loaded.get(version)
            if lv is not None:
                self._loaded.move_to_end(version)
                return lv
            failure = self._failures.get(version)
            if failure is not None and not retry_failed and self._recent(failure):
                raise failure.error(self.model)
            pending = self._loading.get(version)
            if pending is None:
                pending = self._loading[version] = Future()
                owner = True
            else:
                owner = False
        if not owner:
            return pending.result()
        try:
            lv = self._load(version)
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        else:
            pending.set_result(lv)
            return lv
        finally:
            with self._lock:
                self._loading.pop(version, None)

    def _load(self, version: str) -> LoadedVersion:
        ref = ModelRef(self.model, version=version)
        try:
            self.store.resolve(ref)  # a version that does not exist is a 404, not a broken version
        except NotFoundError as exc:
            raise NotFoundError(str(exc), model=self.model, version=version) from None
        t0 = time.perf_counter()
        try:
            model = self._loader(version)
            self._warm(model)
        except Exception as exc:  # noqa: BLE001 - every failure refuses the version, with its reason
            failure = LoadFailure(version, load_error_kind(exc), str(exc))
            with self._lock:
                self._failures.pop(version, None)
                self._failures[version] = failure
                while len(self._failures) > MAX_FAILURES_KEPT:
                    del self._failures[next(iter(self._failures))]
                self._new_failures.append(failure)
            logger.error("refused %s:%s (%s): %s", self.model, version, failure.kind, failure.message)
            raise failure.error(self.model) from None
        lv = LoadedVersion(version, model, time.time(), time.perf_counter() - t0)
        with self._lock:
            self._loaded[version] = lv
            self._failures.pop(version, None)
            self._evict()
        logger.info("loaded %s:%s sha256=%s on %s in %.2f s", self.model, version, model.info.sha256[:12],
                    model.device, lv.load_s)
        return lv

    def refresh(self, retry_failed: bool = False, initial: bool = False) -> list[tuple[str, str | None, str]]:
        """Re-read the served aliases from the store and swap those that moved; returns (alias, old, new)."""
        try:
            records = self._read_aliases()
            self._store_error = None
        except Exception as exc:  # noqa: BLE001 - an unreachable store must not stop serving
            self._store_error = f"{type(exc).__name__}: {exc}"
            logger.warning("cannot read aliases of %s from %s: %s", self.model, self.store.root, exc)
            if initial:
                raise
            return []
        changes = []
        for alias in list(self.runtime.aliases):
            record = records.get(alias)
            self._store_targets[alias] = record.version if record else None
            current = self._serving.get(alias)
            if record is None or record.version == current:
                continue
            candidates = [record.version]
            if current is None:  # nothing serves this alias yet: earlier targets are better than nothing
                candidates += list(reversed(record.history))[:HISTORY_FALLBACK]
            for version in candidates:
                try:
                    self.ensure(version, retry_failed=retry_failed or version != record.version)
                except (NotFoundError, VersionRefusedError):
                    continue  # recorded in _failures (or not found); try the next candidate
                with self._lock:
                    if alias in self.runtime.aliases:
                        self._serving[alias] = version
                        self._evict()
                changes.append((alias, current, version))
                logger.info("%s@%s now serves version %s (was %s)%s", self.model, alias, version, current,
                            "" if version == record.version else f"; store says {record.version}, which was refused")
                break
        for version in self.runtime.pinned_versions:
            try:
                self.ensure(version, retry_failed=retry_failed)
            except (NotFoundError, VersionRefusedError) as exc:
                logger.error("pinned version %s:%s is unavailable: %s", self.model, version, exc)
        if initial and self.default_alias not in self._serving:
            target = self._store_targets.get(self.default_alias)
            failure = self._failures.get(target or "")
            why = f"{failure.kind}: {failure.message}" if failure else (
                f"the store has no alias {self.default_alias!r} for {self.model!r}" if target is None else "not loaded")
            raise ModelUnavailableError(f"cannot serve {self.model}@{self.default_alias}: {why}")
        return changes

    def _read_aliases(self) -> dict[str, Any]:
        """The served aliases' records: one small read each (ModelStore.aliases also lists every
        version to work out `latest`, which costs a request per version on S3 at every poll)."""
        if LATEST in self.runtime.aliases:
            return self.store.aliases(self.model)
        records = {alias: self.store.alias(self.model, alias) for alias in self.runtime.aliases}
        return {alias: record for alias, record in records.items() if record is not None}

    # -- bookkeeping ------------------------------------------------------------------------
    def _recent(self, failure: LoadFailure) -> bool:
        return time.monotonic() - failure.mono < self.runtime.failed_retry_s

    def _evict(self) -> None:
        protected = set(self._serving.values()) | set(self.runtime.pinned_versions)
        spare = [v for v in self._loaded if v not in protected]  # least recently used first
        for version in spare[: max(0, len(spare) - self.runtime.max_cached_versions)]:
            del self._loaded[version]
            logger.info("unloaded %s:%s (cache holds %d spare versions)", self.model, version,
                        self.runtime.max_cached_versions)

    def take_new_failures(self) -> list[LoadFailure]:
        """Refusals since the last call (for metrics)."""
        with self._lock:
            out, self._new_failures = self._new_failures, []
            return out

    def serving(self) -> dict[str, str]:
        with self._lock:
            return dict(self._serving)

    def status(self) -> dict[str, Any]:
        """Aliases (served and in the store), loaded versions and refused versions."""
        with self._lock:
            by_version: dict[str, list[str]] = {}
            for alias, version in self._serving.items():
                by_version.setdefault(version, []).append(alias)
            versions = [{**lv.info(), "aliases": sorted(by_version.get(v, [])),
                         "pinned": v in self.runtime.pinned_versions} for v, lv in self._loaded.items()]
            return {
                "default_alias": self.default_alias,
                "aliases": {a: self._serving.get(a) for a in self.runtime.aliases},
                "store_aliases": {a: self._store_targets.get(a) for a in self.runtime.aliases},
                "versions": sorted(versions, key=lambda v: v["loaded_at"]),
                "errors": [f.as_dict() for f in self._failures.values()],
                "store_error": self._store_error,
            }
