"""`--via auto`: find a running `trapline serve`, and send the archive through it only when that is not slower.

The deployment is already loaded and warm, so a job through it starts at once; a pool of the job's own
starts Ray Data, loads the model in each actor and warms it (POOL_START_S), then runs as many images at a
time as it has actors (one forward pass each). The deployment is taken when it runs at least as many at
a time as that pool would; when it runs fewer (a service sized by hand, or on a smaller share of the
machine), the two are weighed on this job's size, timed with the blank image the check sends through
the deployment anyway. The line `choose_via` returns says which, and why, with both sides' figures.
`preflight_serve` is that check, also made by every `--via serve` run before it starts: the driver's, so the
actors' module (detect.py) does not carry it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from batch.reprocess.detect import check_served, detector_handle
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import Plan
from batch.reprocess.sizing import plan_resources
from ground import env
from ground import service_records as services
from ground.errors import BatchError
from ground.ray_runtime import RayUnreachableError, check_reachable
from ground.service_records import ServiceRecord
from model_store import ImageDetections
from model_store.core.preprocess import LetterboxMeta

# What a pool of the job's own pays before its first image, at the least (Ray Data's start, each actor loading
# and warming the model; 12-65 s measured on 2 cores, BENCHMARKS.md "The whole job"): taken low, so that the
# deployment is never chosen on a start-up the pool would not have paid.
POOL_START_S = 10.0


@dataclass(frozen=True)
class Slots:
    """How many images a side runs at once (`workers` x one forward pass of `threads` threads each)."""

    workers: int
    threads: int
    what: str  # "replica" / "actor"

    def __str__(self) -> str:
        return f"{self.workers} {self.what}{'s' if self.workers != 1 else ''} x {self.threads} " \
               f"thread{'s' if self.threads != 1 else ''}"

    @property
    def threads_total(self) -> int:
        return self.workers * self.threads


def find_service(options: ReprocessOptions, log: Callable[[str], None]) -> ServiceRecord | None:
    """A running `trapline serve` on this machine that an `auto` run may send its images through: only when no
    cluster is named (--address, $RAY_ADDRESS) and this process is not already connected to one. A record whose
    process died is dropped and one whose Ray does not answer skipped, in seconds (ground/service_records.py)."""
    # late: batch.cli imports the job for `trapline --help`; Ray loads when a job runs
    import ray

    if options.via != "auto" or options.address or env.RAY_ADDRESS.get() or ray.is_initialized():
        return None

    def answers(record: ServiceRecord) -> bool:
        try:
            check_reachable(record.ray_address, timeout_s=2.0)
            return True
        except RayUnreachableError:
            return False

    found = services.live(answers)
    return found[0] if found else None


def pool_slots(options: ReprocessOptions, cpus: float, images: int) -> Slots:
    """The actor pool this job would start on `cpus` CPUs for `images` images (as `_prepare_cluster` sizes it)."""
    concurrency, actor_cpus = plan_resources(options.model_copy(update={"via": "actors"}), cpus, 0.0)
    n = concurrency[1] if isinstance(concurrency, tuple) else concurrency
    n = max(1, min(n, math.ceil(images / options.batch_size)))  # no more actors than batches
    return Slots(n, max(1, round(actor_cpus)), "actor")


def deployment_slots(model_name: str, app_name: str) -> Slots:
    """The running replicas of the model's deployment and the threads of one forward pass there (from each
    replica's status; 1 for a replica of an older trapline, which does not say)."""
    try:
        statuses = detector_handle(model_name, app_name).broadcast("status").results(timeout_s=30.0,
                                                                                     return_exceptions=True)
    except Exception:  # noqa: BLE001 - the replicas answered the check already: count them as few as can be
        statuses = []
    threads = [getattr(s, "onnx_threads", None) or 1 for s in statuses if not isinstance(s, BaseException)]
    return Slots(max(1, len(threads)), min(threads) if threads else 1, "replica")


def weigh(images: int, served: Slots, pool: Slots, image_s: float) -> tuple[bool, str]:
    """Whether the deployment is not slower than the pool for `images` images, and the figures that say so.

    `image_s` is one image's forward pass on one replica (the check's blank image); a thread of the pool is
    taken to do as much as a thread of a replica, which favours the pool (a session's threads share less well
    than separate sessions)."""
    if served.threads_total >= pool.threads_total:
        than = "as many as" if served.threads_total == pool.threads_total else "more than"
        return True, f"{served}, {than} a pool of its own would run ({pool}), no actors to start"
    served_s = images * image_s / max(1, served.workers)
    pool_s = POOL_START_S + images * image_s * served.threads / pool.threads_total
    if served_s <= pool_s:
        return True, (f"{served}, fewer than a pool of its own ({pool}), but {images} image(s) take ~{served_s:.0f} s "
                      f"there against ~{pool_s:.0f} s with the pool's start-up")
    return False, (f"it runs {served}, a pool of its own {pool}: ~{pool_s:.0f} s against ~{served_s:.0f} s for "
                   f"{images} image(s)")


def choose_via(plan: Plan, service: ServiceRecord | None, connected: bool, cpus: float) -> tuple[str, str]:
    """`auto`: the live deployment when it serves the job's version and filter set (one blank image through it,
    checked like every answer) and is not slower than the job's own pool on `cpus` CPUs would be, else the pool.
    Returns the choice and the line that says so."""
    options, mv = plan.options, plan.model
    ref = f"{mv.name}:{mv.version}"
    if options.num_gpus:
        return "actors", f"{ref}: an actor pool of its own (--num-gpus asks for one)"
    if service is None and not (options.address or env.RAY_ADDRESS.get()):
        why = "in the Ray this process already runs" if connected else "no running trapline serve on this machine"
        return "actors", f"{ref}: an actor pool of its own ({why}; --via serve to use a deployment there)"
    where = f"the running trapline serve at {service.url}" if service else \
        f"Serve app {options.serve_app!r} on {options.address or env.RAY_ADDRESS.get()}"
    app = service.app_name if service else options.serve_app
    try:
        t0 = time.perf_counter()
        preflight_serve(plan, app)
        image_s = time.perf_counter() - t0
        served = deployment_slots(mv.name, app)
    except BatchError as exc:
        return "actors", f"{ref}: an actor pool of its own ({where} cannot take it: {str(exc).split('. ')[0]})"
    images = len(plan.selection.todo)
    fast, figures = weigh(images, served, pool_slots(options, cpus, images), image_s)
    if not fast:
        return "actors", f"{ref}: an actor pool of its own ({where} would be slower: {figures}; --via serve to use it)"
    return "serve", (f"{ref} through {where}: already loaded there, {figures}, no model to load "
                     "(--via actors for a pool of its own)")


def preflight_serve(plan: Plan, app_name: str) -> None:
    """One blank image through the deployment before the job starts, with the plan's filter overrides, checked
    against the plan's model version and filter set: fails fast with a clear message."""
    mv = plan.model
    model_name, ref, config = mv.name, f"{mv.name}:{mv.version}", mv.config
    expected = {"version": mv.version, "sha256": config.weights.sha256, "filters_hash": plan.filters.hash}
    try:
        handle = detector_handle(model_name, app_name)
        w, h = config.input_size
        blank = np.full((h, w, 3), config.preprocess.pad_value, np.uint8)
        meta = LetterboxMeta(1.0, 1.0, 0.0, 0.0, w, h)
        # the call the job makes: a deployment of a trapline without it fails here, with the message below
        [record] = handle.detect_prepared_many.remote([blank], [meta], ref, plan.options.filters or None).result()
        if isinstance(record, BaseException):
            raise record
    except Exception as exc:  # noqa: BLE001 - turn Ray/Serve lookup errors into one actionable message
        raise BatchError(
            f"cannot reach Serve deployment 'detector-{model_name}' of app {app_name!r} for {ref}: "
            f"{type(exc).__name__}: {exc}. Start the service on this cluster (and pass --address) "
            "or use --via actors") from None
    check_served(ImageDetections.model_validate(record), expected)
