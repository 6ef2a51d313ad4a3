"""What every model replica shares, detector or classifier: versions, hot swap, admission, batching, control.

`VersionedReplica` holds one model's versions (serve/versions.py), applies the deployment's
`user_config`, polls the store for alias moves, admits a bounded number of requests per lane,
feeds a two-lane batcher (serve/batcher.py) and answers the control calls the ingress
broadcasts (`status`, `refresh`, `preload`). Subclasses say how a version is loaded and warmed
and how a batch runs: `DetectorReplica` (serve/replica.py), `ClassifierReplica` (serve/classifier.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ray import serve

from ground.errors import NotFoundError, OverloadedError
from model_store import Interrupt, ModelRef, ModelStore
from serve.answers import BatchingOut, PreloadedVersion, ReplicaStatus
from serve.batcher import Lane, PriorityBatcher
from serve.config import ModelRuntimeConfig
from serve.protocol import core_error
from serve.telemetry import BatchStats, ReplicaMetrics
from serve.versions import LoadedVersion, VersionManager, warm_and_check

logger = logging.getLogger("ray.serve.trapline")


def current_request_id() -> str:
    """The Serve request id (the X-Request-ID header, or one Serve generated), '' outside a request."""
    try:
        return serve.context._get_serve_request_context().request_id or ""
    except Exception:  # noqa: BLE001 - outside Serve (unit tests) there is no request context
        return ""


class VersionedReplica:
    """Base of the model replicas. Lifecycle (Ray Serve calls these):

      - `__init__` once per replica: the store handle, the load pool, the batcher; loads nothing.
      - `reconfigure(user_config)` right after `__init__` and whenever the deployment's `user_config`
        changes: applies aliases, pins and batching. The first call loads, verifies and warms the
        served versions before the replica takes traffic; later calls swap in the background.
      - control methods (`status`, `refresh`, `preload`) are what the ingress broadcasts to every
        replica for GET /v1/models and the admin routes.

    Subclasses pass `loader(version)` and `warm(model)` and implement `_run_items(items, interrupt)`
    (one result or exception per item), which the batcher calls with one batch; `interrupt` (bulk batches
    only) is requested when an online request preempts the batch, and items it stopped report `RunInterruptedError`.
    """

    kind = "model"

    def __init__(self, model_name: str, store_root: str | None, cache_dir: str | None,
                 loader: Callable[[ModelStore, str], Any], warm: Callable[[Any], None] = warm_and_check,
                 extra_pools: tuple[ThreadPoolExecutor, ...] = ()) -> None:
        self.model = model_name
        self.store = ModelStore(store_root, cache_dir=cache_dir)
        self.versions = VersionManager(self.store, model_name, lambda version: loader(self.store, version), warm)
        self._load_pool = ThreadPoolExecutor(1, thread_name_prefix="trapline-load")
        self._pools = (*extra_pools, self._load_pool)
        self.metrics = ReplicaMetrics(model_name)
        self.stats = BatchStats()
        self.runtime: ModelRuntimeConfig | None = None
        self._poller: asyncio.Task | None = None
        self.batcher: PriorityBatcher = PriorityBatcher(self._run_items, self._batch_wait_s,
                                                        on_preempt=self._preempted)
        self._admitted: dict[Lane, int] = {"online": 0, "bulk": 0}
        try:
            self.replica_id = serve.get_replica_context().replica_id.unique_id
        except Exception:  # noqa: BLE001 - not inside Serve
            self.replica_id = "local"

    def _preempted(self) -> None:
        self.stats.preempted()
        self.metrics.bulk_preempted()

    async def _run_items(self, items: list[Any], interrupt: Interrupt | None = None) -> list[Any]:  # pragma: no cover
        raise NotImplementedError

    async def _in_pool(self, pool: ThreadPoolExecutor, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    # -- lifecycle ---------------------------------------------------------------------------
    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        runtime = ModelRuntimeConfig.model_validate(user_config)
        self.batcher.configure(runtime.max_batch_size, runtime.bulk_max_batch_size, runtime.preempt_bulk)
        first = self.runtime is None
        self.runtime = runtime
        self.versions.configure(runtime)
        if first:
            changes = await self._in_pool(self._load_pool, lambda: self.versions.refresh(initial=True))
            self._record_version_events(changes)
        else:
            asyncio.get_running_loop().create_task(self.refresh())
        if self._poller is None or self._poller.done():
            self._poller = asyncio.get_running_loop().create_task(self._poll_aliases())

    async def _poll_aliases(self) -> None:
        # Picks up `trapline models promote/rollback` done on the store by anyone.
        while True:
            interval = self.runtime.alias_poll_interval_s if self.runtime else 0
            await asyncio.sleep(interval if interval > 0 else 5.0)
            if interval > 0:
                try:
                    await self.refresh()
                except Exception:  # noqa: BLE001 - the poller must outlive any single failure
                    logger.exception("alias refresh of %s failed", self.model)

    def __del__(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)

    def _record_version_events(self, changes: list[tuple[str, str | None, str]]) -> None:
        for alias, old, new in changes:
            self.metrics.swapped(alias, old, new)
        for failure in self.versions.take_new_failures():
            self.metrics.refused(failure.version, failure.kind)

    # -- control (broadcast by the ingress) -----------------------------------------------------
    async def status(self) -> ReplicaStatus:
        """What this replica serves, what it refused, and its batching stats."""
        rt = self.runtime or ModelRuntimeConfig()
        # the settings BatchingOut shows, taken from the runtime config by their names (not re-listed here)
        batching = BatchingOut.model_validate(rt.model_dump(include=set(BatchingOut.model_fields)))
        return ReplicaStatus(replica=self.replica_id, model=self.model, kind=self.kind, **self.versions.status(),
                             batching=batching, stats=self.stats.snapshot(),
                             onnx_threads=getattr(self, "onnx_threads", None))

    async def refresh(self, retry_failed: bool = False) -> ReplicaStatus:
        """Re-read the aliases now and swap those that moved (after loading and warming the new version)."""
        changes = await self._in_pool(self._load_pool, lambda: self.versions.refresh(retry_failed=retry_failed))
        self._record_version_events(changes)
        return await self.status()

    async def preload(self, version: str) -> PreloadedVersion:
        """Load, verify and warm `version` (kept in the LRU); raises VersionRefusedError / NotFoundError."""
        try:
            loaded = await self._in_pool(self._load_pool, lambda: self.versions.ensure(version, True))
        finally:
            self._record_version_events([])
        return PreloadedVersion(replica=self.replica_id, **loaded.info())

    # -- requests ------------------------------------------------------------------------------
    async def _resolve(self, ref: str | None) -> LoadedVersion:
        version = alias = None
        if ref:
            parsed = ModelRef.parse(ref)
            if parsed.name != self.model:
                raise NotFoundError(f"this deployment serves model {self.model!r}, not {parsed.name!r}",
                                         model=parsed.name)
            version, alias = parsed.version, parsed.alias
        loaded = self.versions.lookup(version, alias)
        if loaded is None:  # a pinned version that is not loaded yet: load it on demand
            try:
                loaded = await self._in_pool(self._load_pool, self.versions.ensure, version)
            finally:
                self._record_version_events([])
        return loaded

    def _refused(self, exc: BaseException, request_id: str, ref: str | None) -> BaseException:
        api = core_error(exc)
        if api is None:
            logger.exception("request_id=%s model=%s ref=%s failed", request_id, self.model, ref)
            self.metrics.error("internal_error")
            self.stats.error("internal_error")
            return exc
        self.metrics.error(api.type)
        self.stats.error(api.type)
        logger.warning("request_id=%s model=%s ref=%s refused %s: %s", request_id, self.model, ref, api.type,
                       api.message)
        return api

    def _limit(self, lane: Lane) -> int:
        return self.runtime.online_limit if lane == "online" else self.runtime.bulk_limit

    def _overloaded(self, lane: Lane) -> OverloadedError | None:
        """The 503 for a request in `lane` when the lane has no place left, else None."""
        if self._admitted[lane] < self._limit(lane):
            return None
        return OverloadedError(
            f"{self.kind} {self.model!r} is at capacity: this replica already holds {self._limit(lane)} {lane} "
            "requests; retry shortly", headers={"Retry-After": str(self.runtime.retry_after_s)})

    def refuse_if_full(self, lane: Lane = "online") -> None:
        """Refuse now (503, counted) when the lane has no place: one hop calls this before the body is read,
        so a burst's refusals cost neither the transfer nor the memory of their images. `_admit` still
        decides for the requests that pass (another may take the place meanwhile)."""
        if (refusal := self._overloaded(lane)) is not None:
            raise self._refused(refusal, current_request_id(), None)

    @contextlib.contextmanager
    def _admit(self, lane: Lane):
        """Hold one of the lane's places for the request; refused at once (503) when there is none."""
        if (refusal := self._overloaded(lane)) is not None:
            raise refusal
        self._admitted[lane] += 1
        try:
            yield
        finally:
            self._admitted[lane] -= 1

    def _batch_wait_s(self) -> float:
        """How long a batch opened now waits for company. Adaptive: not at all, because the batcher
        opens a batch only when the replica is idle, and whatever arrived while the last batch ran
        is already queued; fixed: batch_wait_timeout_s (Serve's plain behaviour)."""
        return self.runtime.batch_wait_timeout_s if self.runtime.batch_wait_policy == "fixed" else 0.0
