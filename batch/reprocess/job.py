"""The reprocessing job: `trapline reprocess ...`, and `python -m batch.reprocess ...` (for `ray job submit`), both
the registry's command (batch/commands.py, batch/reprocess/__main__.py).

    ray job submit --working-dir . -- python -m batch.reprocess \\
        --archive s3://traps/archive --out s3://traps/detections --model demo-detector@production

Steps: resolve the model (alias -> pinned version) and filters; list the archive; subtract what
this model version and filter set already has; run the Ray Data plan; write a manifest and print
a summary. A rerun picks up where an earlier (even killed) run stopped.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from batch.postprocessing.people import against_people, human_truth
from batch.reprocess import redo
from batch.reprocess.calls import images_per_call, spread_calls
from batch.reprocess.classify import stage_spec
from batch.reprocess.dataset import (
    PlanSpec,
    configure_data_context,
    execute,
    object_store_budget,
    runs_inline,
    start_data_helpers,
)
from batch.reprocess.detect import config_json
from batch.reprocess.failures import describe_error
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import Plan, RunPlaces, plan_run, resolve_options
from batch.reprocess.pool import execute_pool
from batch.reprocess.progress import Progress
from batch.reprocess.reporting import Reporter, close_manifest
from batch.reprocess.sizing import check_cpu_budget, estimate, local_concurrency, plan_resources, read_tasks
from batch.reprocess.summary import RunReport, apply_progress, apply_timeline, report_counts
from batch.reprocess.via import choose_via, find_service, preflight_serve
from ground.errors import BatchError, FilterConfigError, RunStoppedError, TraplineError
from ground.ray_output import console, is_quiet
from ground.ray_runtime import RayUnreachableError, ensure_ray, shutdown_ray
from model_store import FilterSet, ModelRunError, ModelStore
from model_store.core.pipeline import routes_metadata
from model_store.tables import journal
from model_store.tables.digests import record_book
from model_store.tables.lease import RunLease
from model_store.tables.listing import entries_table
from model_store.tables.manifest import RunManifest, close_abandoned, new_run_id, submission_id, write_manifest
from model_store.tables.metadata import part_metadata
from model_store.tables.schema import RUNS_DIR
from model_store.tables.stop import stop_requested
from model_store.tables.table_set import resolve_table_set


def run_reprocess(options: ReprocessOptions, on_part: Callable[[Progress], Any] | None = None,
                  log: Callable[[str], None] | None = None) -> RunReport:
    """Plan and (unless dry-run) run a reprocessing job; returns its report. Starts/stops local Ray if needed."""
    log = log or _log
    t0 = time.perf_counter()
    places = RunPlaces.open(options)  # the archive, the output tables and the store: opened once, handed down
    if options.dry_run:
        plan = plan_run(options, places)
        report = plan.report(None, "dry-run")
        report.estimate_s, report.estimate_basis = estimate(plan, local_concurrency(options))
        return report
    run_id = new_run_id()
    # One run at a time per table and model version, taken before planning so that a run that
    # waited sees what the one before it wrote.
    mv = places.store.get(options.model)
    resolved = resolve_options(options, mv, places.store)  # every option checked before the lease: a refused one
    out = places.out.storage                                # writes nothing
    lease = RunLease(out, mv.name, mv.version, run_id).acquire(options.wait_s)
    job_id = submission_id()
    try:
        lease.start_heartbeat()
        # Uploads the online door answered but whose recorder died before committing them: committed now,
        # so this run counts them as done instead of processing them again (tables/journal.py).
        recovered = journal.recover(out)
        if recovered:
            log(f"committed {recovered} recorded upload(s) a stopped service had answered but not yet written")

        def on_part_held(progress: Progress) -> None:  # a run whose lease was taken over, or asked to stop, ends here
            lease.check()
            if stop_requested(out, job_id):
                raise RunStoppedError(f"run {run_id} stopped on request (job {job_id}) after "
                                      f"{progress.counts['images']} image(s); a rerun resumes")
            if on_part is not None:
                on_part(progress)

        # The version the lease covers: resolved once, so an alias moved meanwhile cannot split them.
        return _run_planned(options, plan_run(options, places, mv, resolved), run_id, t0, on_part_held, log)
    finally:
        lease.release()


def _run_planned(options: ReprocessOptions, plan: Plan, run_id: str, t0: float,
                 on_part: Callable[[Progress], Any] | None, log: Callable[[str], None]) -> RunReport:
    todo = plan.selection.todo
    report = plan.report(run_id, "running")
    report.timeline["planned"] = _since(t0)
    if todo:
        # Config, weights checksum and one blank forward pass checked here, so a version that cannot
        # load or run fails with one clear line instead of inside every actor. Through a live deployment
        # the model is already loaded and is checked there (`preflight_serve`): nothing is loaded here.
        if options.via == "actors":
            preflight_model(plan.places.store, plan.model.ref)
        for route in plan.routes:  # each classifier loads (sha256) and runs on a blank crop, or the run stops here
            preflight_classifier(plan.places.store, route.ref, plan.filters)
    manifest: RunManifest | None = None
    started_ray = False
    try:
        spec = None
        if todo:  # a rerun with nothing new to do starts no Ray at all
            started_ray, spec = _prepare_cluster(plan, run_id, report, log)
            report.timeline["ray_ready"] = _since(t0)
            options = plan.options  # `auto` resolved to the deployment or the pool
        # Before our own manifest exists: files of runs that died half-way are cleaned up first.
        report.orphans_removed = len(plan.tables.remove_orphans())
        close_abandoned(plan.tables.storage, run_id)
        metadata = run_metadata(plan)
        manifest = RunManifest.start(
            run_id, "reprocess", arguments=options.model_dump(mode="json"), source=plan.places.archive.url(),
            out=plan.tables.url, model=metadata["model"], filters=metadata["filters"],
            provenance=metadata["provenance"], result_set=plan.result_hash)
        # What confirming the moved files learnt, kept: the next rerun confirms them from the book, reading nothing.
        record_book(plan.tables.storage, plan.confirmation.learnt)
        if plan.target is not None:
            redo.begin(plan.tables, plan.target, run_id)  # a new redo's record, before its first part
        manifest.counts = report_counts(report)
        write_manifest(plan.tables.storage, manifest)
        report.manifest = plan.tables.storage.url(RUNS_DIR, f"{run_id}.json")
        redone = f", {report.clips_redone} clip(s) redone for new clip settings" if report.clips_redone else ""
        log(f"run {run_id}: {report.to_process} image(s) to process ({report.already_done} already done{redone}) with "
            f"{report.model}{_routes_text(plan)} [filters {plan.result_hash}] -> {plan.tables.url}"
            + (f" via {options.via} (concurrency {spec.concurrency}, {spec.batch_size} image(s) a call)"
               if spec else ""))
        if spec is not None:
            reporter = Reporter(options.progress_interval_s, log, plan, manifest, report, on_part)
            run_plan = execute_pool if options.uses_pool else execute  # the job's own actors, or a Ray Data plan
            progress = run_plan(entries_table(todo), spec, on_part=reporter)
            apply_progress(report, progress)
            apply_timeline(report, progress, t0)
        report.status = "succeeded"
        if plan.target is not None and redo.finish(plan.tables, plan.target, whole=not report.held_back
                                                   and not options.needs_capture_times):
            log(f"result set {plan.result_hash} is whole: readers take it from now on")
        _check_people(plan, report)
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C or SIGTERM (`ray job stop`): ground/stops.py
        report.status, report.error = "interrupted", "interrupted"
        close_manifest(manifest, plan, report, t0, "interrupted", "interrupted")
        raise
    except RunStoppedError as exc:  # at a part boundary, with the plan shut down: remove what it left unfinished
        report.status, report.error = "interrupted", str(exc)
        report.orphans_removed += len(plan.tables.remove_orphans())
        close_manifest(manifest, plan, report, t0, "interrupted", str(exc))
        raise
    except BatchError:
        close_manifest(manifest, plan, report, t0, "failed", None)
        raise
    except Exception as exc:  # noqa: BLE001 - recorded in the manifest and the report, then reported
        report.status, report.error = "failed", describe_error(exc)
        close_manifest(manifest, plan, report, t0, "failed", report.error)
        return report
    finally:
        if started_ray:
            shutdown_ray()
    close_manifest(manifest, plan, report, t0, "succeeded", None)
    return report


def preflight_model(store: ModelStore, ref) -> None:
    """Load the version on this machine's CPU (a load failure is a ModelLoadError naming the version) and run one
    blank input: BatchError naming model, input and graph."""
    detector = store.load_detector(ref, threads=1)
    try:
        detector.warmup()
    except ModelRunError as exc:
        raise BatchError(f"cannot run {ref}: {exc}") from None


def preflight_classifier(store: ModelStore, ref: str, filters: FilterSet | None = None) -> None:
    """Load a classifier version here and run one blank crop, through the run's classifier filters (the species
    ensemble needs files published with the classifier): BatchError naming it when it cannot."""
    import numpy as np

    classifier = store.load_classifier(ref, threads=1)
    try:
        classifier.warmup()
        if filters is not None and filters.has_classifier_filters:
            n = classifier.config.num_classes
            classifier.answer(np.full(n, 1.0 / n, np.float32), filters, detection=("animal", 0.9))
    except ModelRunError as exc:
        raise BatchError(f"cannot run classifier {ref}: {exc}") from None
    except FilterConfigError as exc:
        raise BatchError(f"classifier {ref}: {exc}") from None


def _prepare_cluster(plan: Plan, run_id: str, report: RunReport, log: Callable[[str], None]) -> tuple[bool, PlanSpec]:
    """Connect to (or start) Ray, size the plan to the cluster, check a Serve deployment is there."""
    # late: batch.cli imports the job for `trapline --help`; Ray loads when a job runs
    import ray

    options = plan.options
    connected = ray.is_initialized()
    service = find_service(options, log)
    try:
        started = ensure_ray(service.ray_address if service else options.address, log_to_driver=False)
    except RayUnreachableError as exc:  # the user's address, not a failed run: one line, nothing written
        raise BatchError(str(exc)) from None
    try:
        started_via_auto = options.via == "auto"
        if started_via_auto:
            # the pool it is weighed against: in a Ray of its own on this machine when the service is local
            cpus = float(os.cpu_count() or 1) if service else float(ray.cluster_resources().get("CPU", 1))
            via, why = choose_via(plan, service, connected, cpus)
            if via == "actors" and service is not None:  # the service's Ray is for its replicas: use our own
                shutdown_ray()
                started = ensure_ray(None, log_to_driver=False)
            plan.options = options = options.model_copy(update={"via": via, **(
                {"serve_app": service.app_name} if service is not None and via == "serve" else {})})
            log(why)
        if not (options.uses_pool or runs_inline(options.via, options.has_stage, len(plan.selection.todo))):
            start_data_helpers()  # their processes start while the run is sized, checked and its manifest written
        if options.via == "actors" and started_via_auto:
            preflight_model(plan.places.store, plan.model.ref)
        resources = ray.cluster_resources()
        cpus, gpus = float(resources.get("CPU", 1)), float(resources.get("GPU", 0))
        concurrency, actor_cpus = plan_resources(options, cpus, gpus)
        per_call = images_per_call(options, plan.tiling is not None)
        if isinstance(concurrency, int):  # more actors than batches would only load the model for nothing
            concurrency = max(1, min(concurrency, math.ceil(len(plan.selection.todo) / per_call)))
            per_call = spread_calls(per_call, len(plan.selection.todo), concurrency)
        warning = check_cpu_budget(options, concurrency, cpus, actor_cpus)
        if warning:
            report.warnings.append(warning)
            log(f"warning: {warning}")
        spec = dataclasses.replace(_spec(plan, run_id, concurrency, actor_cpus), per_call=per_call)
        if options.via == "actors":
            spec = dataclasses.replace(spec, read_concurrency=read_tasks(options, concurrency, cpus, actor_cpus))
        spec = fit_to_free_cpus(spec, ray.available_resources(), log)
        if not options.uses_pool:  # the job's own pool has no Ray Data plan (nor its ~0.5 s import in the driver)
            # Ray Data's bars are Ray's output: only with -v (on a terminal) unless asked for.
            bars = not is_quiet() and sys.stderr.isatty()
            configure_data_context(options.progress_bars if options.progress_bars is not None else bars,
                                   object_store_budget(spec, plan.model.config.input_size))
        if options.via == "serve":
            preflight_serve(plan, options.serve_app)
    except BaseException:
        if started:
            shutdown_ray()
        raise
    return started, spec


def fit_to_free_cpus(spec: PlanSpec, available: dict[str, float], log: Callable[[str], None]) -> PlanSpec:
    """Shrink the CPU asks of a Serve-backed run so it fits in the CPUs the cluster has free.

    With --via serve the replicas already hold their CPUs for as long as they live; a run that
    asks for more than is left would wait forever for its read tasks (seen on 2-core machines).
    Ray's CPUs are logical, so asking for smaller shares only changes how many tasks run at once.
    """
    if spec.via != "serve":
        return spec
    free = float(available.get("CPU", 0.0))
    n = spec.concurrency[1] if isinstance(spec.concurrency, tuple) else spec.concurrency
    reads = spec.read_cpus if spec.decode == "tasks" else 0.0  # otherwise the clients read
    need = n * spec.num_cpus + reads + spec.write_cpus
    if need <= free + 1e-9:
        return spec
    if free < 0.05:
        raise BatchError(f"no free CPU in the Ray cluster for the job's tasks ({free:g} free): the Serve replicas "
                         "hold them all. Give the replicas fewer CPUs (num_cpus) or add a node.")
    f = free * 0.95 / need
    log(f"fitting the run into {free:g} free CPUs: CPU shares scaled by {f:.2f}")
    return dataclasses.replace(spec, num_cpus=round(spec.num_cpus * f, 3), read_cpus=round(spec.read_cpus * f, 3),
                               write_cpus=round(spec.write_cpus * f, 3))


def run_metadata(plan: Plan) -> dict[str, Any]:
    """The trapline metadata of the run's parts (tables/metadata.py), also what its manifest records."""
    mv, o = plan.model, plan.options
    meta = part_metadata(mv.name, mv.version, mv.config, o.model, plan.filters, plan.result_hash,
                         routes_metadata(plan.routes), o.crop_options.model_dump() if o.crops else None, plan.clips)
    return {**meta, "tiling": plan.tiling_settings} if plan.tiling is not None else meta


def _routes_text(plan: Plan) -> str:
    return "".join(f" + {r.ref}" + (f" ({','.join(r.labels)})" if r.labels else "") for r in plan.routes)


def _stage(plan: Plan):
    if not plan.options.has_stage:
        return None

    return stage_spec(plan.routes, plan.options.crop_options, plan.result_hash, plan.options.classify_cpus)


def _spec(plan: Plan, run_id: str, concurrency: int | tuple[int, int], actor_cpus: float | None = None) -> PlanSpec:
    o, mv = plan.options, plan.model
    return PlanSpec(
        options=o, archive_url=plan.places.archive.url(), out_url=plan.tables.url,
        store_url=plan.places.store.root, model_name=mv.name, model_version=mv.version,
        model_sha256=mv.config.weights.sha256, ref=f"{mv.name}:{mv.version}", config_json=config_json(plan.run_config),
        filter_specs=plan.filters.as_specs(), filters_hash=plan.filters.hash, rows_hash=plan.result_hash, run_id=run_id,
        metadata=run_metadata(plan),
        concurrency=concurrency, num_cpus=actor_cpus or o.actor_cpus, read_cpus=o.read_cpus, stage=_stage(plan),
        clips=plan.clips,
    )


def _since(t0: float) -> float:
    return round(time.perf_counter() - t0, 3)


def _log(message: str) -> None:
    print(message, file=console(), flush=True)  # the terminal, also while Ray's output goes to its log file


def run_job(options: ReprocessOptions, progress: Callable[[str], None] | None = None) -> RunReport:
    """The registry's reprocess command (batch/commands.py): what `trapline reprocess`, `python -m batch.reprocess`
    and a job run. `ray job stop` sends SIGTERM, which `trapline`'s main raises as Ctrl-C (ground/stops.py):
    the run ends as interrupted, its manifest says so and its lease is released."""
    return run_reprocess(options, log=progress)


def _check_people(plan: Plan, report: RunReport) -> None:
    """How far this version agrees with people's identifications in the tables (none: nothing is read but the log's
    directory); the log is honoured by every reader, this only reports."""
    try:
        truth, _ = human_truth(plan.tables)
        if not truth:
            return
        tset = resolve_table_set(plan.tables, f"{plan.model.name}:{plan.model.version}", plan.result_hash,
                                 hidden_ok=True)
        seen = against_people(plan.tables, tset, truth)
    except (TraplineError, OSError) as exc:  # the run's parts are committed: a report that cannot be made is a warning
        report.warnings.append(f"could not compare with people's identifications: {exc}")
        return
    report.identified, report.agrees_with_people = seen["identified"], seen["agreed"]


if __name__ == "__main__":  # the module ran a job before issue 65; without this it would exit 0 having run nothing
    sys.exit("python -m batch.reprocess.job is gone: run `python -m batch.reprocess` (= trapline reprocess) with the "
             "same flags")
