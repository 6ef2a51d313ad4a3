"""How big a run should be on this cluster (actors, CPUs each) and how long it will take."""

from __future__ import annotations

import math
import os
import time

from batch.reprocess.dataset import WRITE_CPUS
from batch.reprocess.detect import config_json
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import Plan
from batch.reprocess.read import preparer

SAMPLE_IMAGES = 4
READ_SHARE = 0.2  # of the CPUs, kept for read + decode tasks when inference runs on CPU


def stage_cpus(options: ReprocessOptions) -> float:
    """CPUs the crop/classify stage's one actor holds (none without --classify / --crops)."""
    return options.classify_cpus if options.has_stage else 0.0


def plan_resources(options: ReprocessOptions, cpus: float, gpus: float) -> tuple[int | tuple[int, int], float]:
    """(actor concurrency, CPUs per actor) for a cluster with `cpus` and `gpus`; explicit options win.

    GPU actors are one per GPU share, Serve clients 2-4 light actors. CPU inference: the
    writer keeps 0.25 and the rest is split into about one actor per CPU, each with one ONNX
    thread per whole CPU it holds; the actors read and decode their own images. With
    `--decode tasks` the read tasks also keep a fifth of the CPUs (at least one task's worth), so
    that no actor can stall waiting for a read slot, and `--classify` / `--crops` keep
    `--classify-cpus` for their actor. Two CPUs: two actors of 0.87 CPU (0.62 with read tasks);
    one CPU: one actor of 0.75 (0.25).
    """
    if options.num_gpus > 0:
        return options.concurrency or max(1, int(gpus // options.num_gpus)), options.actor_cpus
    if options.via == "serve":
        # at least two clients: while one finishes its batch (its last images drain), the other keeps the
        # replicas busy; one alone left all replicas but one idle at every batch's end
        return options.concurrency or max(2, min(4, int(cpus // 2))), options.actor_cpus
    reads = max(options.read_cpus, READ_SHARE * cpus) if options.decode == "tasks" else 0.0
    stage = stage_cpus(options)
    spare = max(cpus - reads - stage - WRITE_CPUS, 0.25)
    if options.num_cpus is not None:
        return options.concurrency or max(1, int(spare // options.num_cpus)), options.num_cpus
    concurrency = options.concurrency or max(1, math.ceil(spare - 0.05))
    most = concurrency[1] if isinstance(concurrency, tuple) else concurrency
    return concurrency, max(0.25, math.floor(100 * spare / most) / 100)


def read_tasks(options: ReprocessOptions, concurrency: int | tuple[int, int], cpus: float,
               actor_cpus: float) -> int | None:
    """How many read tasks may run at once with `--decode tasks` (None: no read stage): what the actors, a
    crop/classify actor and the writer leave, so that the writer always finds its CPU."""
    if options.decode != "tasks":
        return None
    n = concurrency[1] if isinstance(concurrency, tuple) else concurrency
    stage = stage_cpus(options)
    free = cpus - n * actor_cpus - stage - WRITE_CPUS
    return max(1, math.floor(free / options.read_cpus + 1e-9))


def check_cpu_budget(options: ReprocessOptions, concurrency: int | tuple[int, int], cpus: float,
                     actor_cpus: float | None = None) -> str | None:
    """A warning when the actors would leave no CPU for a read or write task (the job would stall, not fail)."""
    n = concurrency[0] if isinstance(concurrency, tuple) else concurrency
    actor_cpus = actor_cpus or options.actor_cpus
    # Read and write tasks come and go; the actors hold their CPUs for the whole run.
    task, what = (options.read_cpus, "a read task") if options.decode == "tasks" else (WRITE_CPUS, "the writer")
    need = n * actor_cpus + task
    if need > cpus + 1e-9:
        return (f"{n} actor(s) x {actor_cpus} CPU + {task} CPU for {what} need {need:g} CPUs "
                f"but the cluster has {cpus:g}; the job waits for the cluster to grow. "
                "Lower --concurrency or --num-cpus on a fixed cluster.")
    return None


def estimate(plan: Plan, concurrency: int) -> tuple[float | None, str | None]:
    """Seconds to process the selection: from this model's last run here, else timed on a few samples."""
    n = len(plan.selection.todo)
    if n == 0:
        return 0.0, "nothing to process"
    past = [m for m in plan.tables.manifests()
            if m.kind == "reprocess" and m.status == "succeeded" and m.model.get("name") == plan.model.name
            and (m.images_per_s or 0) > 0 and m.counts.get("processed", 0) >= 20]
    if past:
        rate = past[-1].images_per_s or 1.0
        return n / rate, f"{rate:.1f} images/s measured by run {past[-1].run_id}"
    return sample_estimate(plan, concurrency)


def sample_estimate(plan: Plan, concurrency: int) -> tuple[float | None, str | None]:
    archive = plan.places.archive
    try:
        det = plan.places.store.load_detector(plan.model.ref, threads=math.ceil(plan.options.actor_cpus))
    except Exception as exc:  # noqa: BLE001 - an estimate must never fail a dry run
        return None, f"no estimate ({type(exc).__name__}: {exc})"
    prep = preparer(config_json(plan.run_config))  # timed as the run runs: tiled when it is
    times = []
    for entry in plan.selection.todo[: SAMPLE_IMAGES + 1]:
        t0 = time.perf_counter()
        try:
            prepared, _ = prep.prepare_bytes(archive.fs.cat_file(entry.path), plan.options.max_pixels)
        except Exception:  # noqa: BLE001 - bad samples say nothing about speed
            continue
        det.infer([prepared])
        times.append(time.perf_counter() - t0)
    if len(times) < 2:
        return None, "no estimate (no readable sample images)"
    per_image = sum(times[1:]) / len(times[1:])  # the first call pays warm-up
    rate = concurrency / per_image
    return len(plan.selection.todo) / rate, f"~{rate:.1f} images/s timed on {len(times) - 1} sample image(s), rough"


def local_concurrency(options: ReprocessOptions) -> int:
    if isinstance(options.concurrency, tuple):
        return options.concurrency[1]
    concurrency, _ = plan_resources(options, float(os.cpu_count() or 1), 0.0)
    return concurrency if isinstance(concurrency, int) else concurrency[1]
