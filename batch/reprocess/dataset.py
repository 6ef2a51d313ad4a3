"""The Ray Data plan: listing -> read + decode + letterbox + detect (actors); the run's writer commits parts.

Only paths travel to the inference actors (`decode="actors"`): each reads, decodes and runs its
own images. With `decode="tasks"` a stage of read tasks reads, decodes and letterboxes, and the
actors only infer (many CPUs feeding a GPU).

Streaming end to end: the driver hands Ray the listing (paths only), images are read inside
the tasks, and what comes back to the driver is the result rows (a few KB an image), which it hands to the
run's writer actor a part at a time (writer.py). Nothing is materialised, so memory stays flat however large
the archive is.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa

from batch.reprocess.actor_settings import ClientSettings, DetectorSettings
from batch.reprocess.calls import images_per_call
from batch.reprocess.detect import DetectorActor, ServeClient
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.progress import Progress
from batch.reprocess.read import read_and_prepare
from batch.reprocess.writer import RunWriter, part_sink
from ground import env
from ground.errors import RunStoppedError, StalledError
from model_store.core.clip_settings import ClipSettings
from model_store.tables.commit import write_results

WRITE_CPUS = 0.25  # the writer only serialises and uploads
# A --via serve run of at most this many images (and no crop/classify stage) runs in the driver, not as a Ray
# Data plan (`_execute_inline`), committing a part every INLINE_PART_IMAGES images with INLINE_WINDOW in flight.
INLINE_MAX_IMAGES = 1000
INLINE_PART_IMAGES = 100
INLINE_WINDOW = 16
INLINE_PARTS_AT_ONCE = 2
STOP_WAIT_S = 30.0  # how long a stopped or failed plan waits for its killed tasks to end
# Ray Data's get-or-create calls for the helper actors its executor makes (start_data_helpers).
DATA_HELPERS = (("ray.data._internal.stats", "get_or_create_stats_actor"),
                ("ray.data._internal.cluster_autoscaler.default_autoscaling_coordinator",
                 "get_or_create_autoscaling_coordinator"),
                ("ray.data._internal.execution.node_trackers.actor_location", "get_or_create_actor_location_tracker"))
FORWARDED_ENV = env.FORWARDED  # what the driver hands its tasks (ground/env.py says why)


@dataclass(frozen=True)
class PlanSpec:
    """What the stages need, all picklable (URLs and JSON, no open handles): the user's settings are `options`
    itself (a `ReprocessOptions`, read through the properties below, never copied field by field), beside what the
    driver resolved once: the pinned model and filters, where things are, and the CPUs each stage gets."""

    options: ReprocessOptions  # `via` already resolved (auto -> actors | serve), `serve_app` the service's
    archive_url: str
    out_url: str
    store_url: str
    model_name: str
    model_version: str
    model_sha256: str
    ref: str  # pinned NAME:VERSION
    config_json: str
    filter_specs: list[dict]
    filters_hash: str
    run_id: str
    metadata: dict
    rows_hash: str = ""  # the result set the rows are written to (a redo's is not the filters hash); "": filters_hash
    concurrency: int | tuple[int, int] = 1
    num_cpus: float = 1.0  # per inference actor or client: sized to the cluster (fit_to_free_cpus may shrink it)
    read_cpus: float = 0.5
    read_concurrency: int | None = None  # read tasks at once (--decode tasks); None: as many as CPUs allow
    write_cpus: float = WRITE_CPUS
    stage: Any = None  # batch.reprocess.classify.StageSpec: the crop/classify stage of --classify / --crops
    fenced: bool = True  # parts are committed only while this run holds the lease (write_results)
    clips: ClipSettings = ClipSettings()  # the clips' sampling, tracking and counting (options.clip_settings)
    per_call: int = 0  # images a call, spread over the actors for a small run (spread_calls); 0: images_per_call

    via = property(lambda self: self.options.via)
    decode = property(lambda self: self.options.decode)  # where images are decoded: the actors or read tasks
    num_gpus = property(lambda self: self.options.num_gpus)
    batch_size = property(lambda self: self.per_call or images_per_call(self.options, self.tiling is not None))
    read_batch_size = property(lambda self: self.options.read_batch_size)
    rows_per_file = property(lambda self: self.options.rows_per_file)
    max_pixels = property(lambda self: self.options.max_pixels)
    serve_app = property(lambda self: self.options.serve_app)
    filter_overrides = property(lambda self: self.options.filters)
    tiling = property(lambda self: json.loads(self.config_json).get("tiling"))  # the run's, resolved at plan
    stall_timeout_s = property(lambda self: self.options.stall_timeout_s)  # no part for this long fails the run


def listing_blocks(entries: pa.Table, read_batch_size: int) -> list[pa.Table]:
    """Split the listing into blocks: small ones for small archives (parallel reads), <=256 rows for big ones."""
    rows = max(read_batch_size, min(256, math.ceil(entries.num_rows / 512)))
    return [entries.slice(i, rows) for i in range(0, entries.num_rows, rows)]


def object_store_budget(spec: PlanSpec, input_size: tuple[int, int]) -> int:
    """Bytes of prepared images the job may hold in flight: a few batches per actor, 256 MiB..4 GiB.

    Without a cap Ray Data buffers up to a share of the whole object store before it applies
    back-pressure, so memory would grow with the archive instead of with the actor pool.
    """
    w, h = input_size
    actors = spec.concurrency[1] if isinstance(spec.concurrency, tuple) else spec.concurrency
    want = 6 * actors * max(spec.batch_size, spec.read_batch_size) * w * h * 3
    return int(min(max(want, 256 * 2**20), 4 * 2**30))


def configure_data_context(progress_bars: bool, object_store_bytes: int | None = None) -> None:
    """Ray Data settings for this job: progress bars only on a terminal, a bounded in-flight budget."""
    # late: batch.cli imports the job for `trapline --help`; Ray loads when a job runs
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress_bars
    ctx.enable_auto_log_stats = False
    # Prepared images are ~300 KB each (320 px input); 32 MiB output blocks keep the stages pipelined.
    ctx.target_max_block_size = 32 * 1024 * 1024
    limits = ctx.execution_options.resource_limits
    ctx.execution_options.resource_limits = type(limits)(
        cpu=limits.cpu, gpu=limits.gpu, memory=limits.memory,
        object_store_memory=object_store_bytes if object_store_bytes else limits.object_store_memory)


def runs_inline(via: str, has_stage: bool, images: int) -> bool:
    """Whether a run of `images` goes through the driver (`_execute_inline`) rather than a Ray Data plan."""
    return via == "serve" and not has_stage and images <= INLINE_MAX_IMAGES


def start_data_helpers() -> None:
    """Start Ray Data's own helper actors now, while the driver still prepares the run (best effort).

    A plan's executor creates three detached actors when it starts (its stats actor, which it waits for before the
    first task, an autoscaling coordinator and an actor-location tracker), each a new worker process that imports
    Ray Data (~1 s of CPU) while the inference actors are starting on the same cores: on 2 cores the first batch
    waited for all of them (NOTES.md, section 22). Made here, right after the run's Ray is up, they start beside the
    driver's model check instead. They are named and detached (`get_if_exists`): the executor finds these, and a
    cluster that has them already makes none. Ray Data has no public call for this; with a Ray whose internals
    differ nothing is started here and the executor makes them as before."""
    for module, name in DATA_HELPERS:  # by name, late: Ray loads when a job runs, and another Ray may lack them
        with contextlib.suppress(Exception):
            getattr(importlib.import_module(module), name)()


def worker_env(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """Ray remote args that give every stage the driver's S3 / store settings (none when there are none)."""
    environ = os.environ if environ is None else environ
    env = {k: environ[k] for k in FORWARDED_ENV if environ.get(k)}
    return {"runtime_env": {"env_vars": env}} if env else {}


def detector_settings(spec: PlanSpec, archive_url: str | None) -> DetectorSettings:
    """DetectorActor's settings for a run (`archive_url` None: the rows come read and prepared by read tasks)."""
    return DetectorSettings(
        store_url=spec.store_url, ref=spec.ref, filter_specs=spec.filter_specs,
        device="cuda" if spec.num_gpus > 0 else "cpu",
        threads=max(1, round(spec.num_cpus)),  # one ONNX thread per whole CPU reserved
        # GPU actors decode on the CPUs they hold; a CPU actor decodes inline between batches
        decode_threads=max(1, round(spec.num_cpus)) if spec.num_gpus > 0 else 1,
        max_pixels=spec.max_pixels, archive_url=archive_url,
        clips_url=spec.archive_url, clips=spec.clips, tiling=spec.tiling,
    )


def client_settings(spec: PlanSpec, archive_url: str | None) -> ClientSettings:
    """ServeClient's settings for a run (`archive_url` None: the rows come read and prepared by read tasks)."""
    return ClientSettings(
        model_name=spec.model_name, ref=spec.ref, filter_overrides=spec.filter_overrides,
        expected={"version": spec.model_version, "sha256": spec.model_sha256, "filters_hash": spec.filters_hash},
        app_name=spec.serve_app, archive_url=archive_url, clips_url=spec.archive_url, clips=spec.clips,
        config_json=spec.config_json, max_pixels=spec.max_pixels, tiling=spec.tiling,
    )


def numpy_batch(block: pa.Table) -> dict[str, Any]:
    """A slice of the listing as the numpy columns a stage takes (what Ray Data's `batch_format="numpy"` hands it)."""
    return {name: block.column(name).to_numpy(zero_copy_only=False) for name in block.column_names}


def build_dataset(entries: pa.Table, spec: PlanSpec):
    """The lazy Ray Data plan for `entries` (ENTRY_SCHEMA rows); nothing runs until it is iterated."""
    # late: batch.cli imports the job for `trapline --help`; Ray loads when a job runs
    import ray.data

    remote = worker_env()
    # from_blocks computes block metadata in the driver and keeps the Arrow schema. from_arrow does
    # it in remote tasks of 1 CPU each, which never schedule when Serve replicas hold all but a
    # fraction of a CPU (a --via serve run on a 2-core machine hung exactly there).
    ds = ray.data.from_blocks(listing_blocks(entries, spec.read_batch_size))
    # Decoding in the actors, the actors also read (FileReader): a stage of read tasks only to move the
    # bytes cost more CPU per image than the decode itself on 2 cores (a task per block, the object store).
    archive_url = None
    if spec.decode == "tasks":
        # Capped: read tasks that take every free CPU leave none for the writer, whose input then piles up in
        # the object store until the last read is done (seen on 2 cores: every part written at the end).
        ds = ds.map_batches(read_and_prepare, batch_size=spec.read_batch_size, batch_format="pyarrow",
                            num_cpus=spec.read_cpus, concurrency=spec.read_concurrency, **remote,
                            fn_kwargs={"archive_url": spec.archive_url, "config_json": spec.config_json,
                                       "max_pixels": spec.max_pixels})
    else:
        archive_url = spec.archive_url
    if isinstance(spec.concurrency, tuple):
        pool = ray.data.ActorPoolStrategy(min_size=spec.concurrency[0], max_size=spec.concurrency[1])
    else:
        pool = ray.data.ActorPoolStrategy(size=spec.concurrency)
    if spec.via == "actors":
        ds = ds.map_batches(
            DetectorActor, batch_size=spec.batch_size, batch_format="numpy", compute=pool,
            num_cpus=spec.num_cpus, num_gpus=spec.num_gpus or None, **remote,
            fn_constructor_kwargs={"settings": detector_settings(spec, archive_url)},
        )
    else:
        ds = ds.map_batches(
            ServeClient, batch_size=spec.batch_size, batch_format="numpy", compute=pool, num_cpus=spec.num_cpus,
            **remote,
            fn_constructor_kwargs={"settings": client_settings(spec, archive_url)},
        )
    if spec.stage is not None:  # --classify / --crops: see batch/reprocess/classify.py
        from batch.reprocess.classify import add_stage

        ds = add_stage(ds, spec, remote)
    return ds


def execute(entries: pa.Table, spec: PlanSpec, on_part: Callable[[Progress], Any] | None = None) -> Progress:
    """Run the plan, streaming; calls `on_part(progress)` after every committed part.

    The plan's result rows come back to this process `rows_per_file` at a time (a few KB an image: the images
    themselves stay in the actors) and go to the run's writer actor (writer.py), which this process kills however
    the run ends."""
    inline = runs_inline(spec.via, spec.stage is not None, entries.num_rows)
    actors = spec.concurrency[1] if isinstance(spec.concurrency, tuple) else spec.concurrency
    progress = Progress(total=entries.num_rows, in_flight=INLINE_PARTS_AT_ONCE if inline else actors)
    if entries.num_rows == 0:
        return progress
    if inline:
        return _execute_inline(entries, spec, progress, on_part)
    sink, settings = part_sink(spec)
    writer = RunWriter(sink, settings, spec.write_cpus, worker_env(), timeout_s=spec.stall_timeout_s)
    ds = build_dataset(entries, spec)
    batches = iter(ds.iter_batches(batch_size=spec.rows_per_file, batch_format="pyarrow"))

    try:
        for rows in _watched(batches, spec.stall_timeout_s, on_stall=lambda: _stop_executor(ds)):
            progress.add_parts(writer.submit(rows), on_part)
        progress.add_parts(writer.finish(), on_part)
    except BaseException as exc:  # a stop, a failure, Ctrl-C: no task of the plan may write once the run lets go
        try:
            writer.end_early(progress, on_part, stopped=isinstance(exc, RunStoppedError))
        finally:
            _stop_executor(ds)
        raise
    writer.kill()
    return progress


def _stop_executor(ds) -> None:
    """Shut a plan's streaming executor down with its tasks killed, not only interrupted, and return once they
    have ended: after this no task of the plan writes anything.

    A failed plan has shut itself down already, without force: its running tasks were sent an interrupt, which a
    task blocked in a storage client's retries (on that client's own thread) can outlive. And a forced shutdown
    does not wait for Ray Data's map tasks: they are streaming generators, for which `ray.get` returns at once.
    So every operator's running tasks are collected first, killed (`ray.cancel(force=True)`) and waited for by
    their completion refs. Ray Data has no public call for any of it: the dataset keeps the executor of its
    running iteration on a private attribute (`Dataset._synchronize_progress_bar` shuts it down the same way) and
    each operator lists its running tasks (`get_active_tasks`, which the executor polls)."""
    import ray  # late: batch.cli imports this module for `trapline --help`; Ray loads when a job runs

    executor = getattr(ds, "_current_executor", None)
    if executor is None:
        return
    tasks = []
    with contextlib.suppress(Exception):  # best effort: the run has ended already, with its own message
        tasks = [t.get_waitable() for op in list(executor._topology) for t in op.get_active_tasks()]
    with contextlib.suppress(Exception):
        executor.shutdown(force=True)
    done = []
    for waitable in tasks:
        with contextlib.suppress(Exception):  # an actor task cannot be killed: its actor is, by the pool's shutdown
            ray.cancel(waitable, force=True, recursive=True)
        done.append(waitable.completed() if isinstance(waitable, ray.ObjectRefGenerator) else waitable)
    if done:
        with contextlib.suppress(Exception):
            ray.wait(done, num_returns=len(done), timeout=STOP_WAIT_S)


def stalled(stall_timeout_s: float) -> StalledError:
    """The one error of a run that made no progress for `stall_timeout_s` (the plan's or the job's own pool)."""
    return StalledError(f"no part committed for {stall_timeout_s:g} s: the run is stuck (a lost node whose actors "
                        "cannot be placed again?); it stops here with its lease released, and a rerun resumes where "
                        "it stopped (--stall-timeout to wait longer)")


def _watched(batches, stall_timeout_s: float, on_stall=None):
    """The plan's batches, closed however the loop over them ends, and failing with StalledError when none
    arrives for `stall_timeout_s` (0: wait for ever).

    Closed explicitly: when the caller stops early (a crash, a lost lease) Ray Data shuts its executor down only
    once the generator is closed; left to the garbage collector its actors would keep their CPUs for an unknown
    time, starving the next run on the cluster. Ray Data also waits for ever for an actor it cannot place (the
    node of the pool was lost and no other node has room), with the run's lease held: so with a timeout the
    batches are pulled on a helper thread and the driver can give up. That thread closes the generator at its
    next batch, or stays blocked in a process that is about to end (the CLI, `ray job submit`), whose actors Ray
    then stops."""
    if not stall_timeout_s:
        with contextlib.closing(batches):
            yield from batches
        return
    box: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand(item) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def pull() -> None:
        try:
            for item in batches:
                if not hand(("part", item)):
                    return
            hand(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the driver's thread, which raises it
            hand(("error", exc))
        finally:
            batches.close()  # from the thread that ran it: allowed once next() has returned

    threading.Thread(target=pull, name="parts", daemon=True).start()
    try:
        while True:
            try:
                kind, item = box.get(timeout=stall_timeout_s)
            except queue.Empty:
                if on_stall is not None:
                    on_stall()
                raise stalled(stall_timeout_s) from None
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()


def _execute_inline(entries: pa.Table, spec: PlanSpec, progress: Progress,
                    on_part: Callable[[Progress], Any] | None) -> Progress:
    """A small job through the live deployment, driven from this process: the same stages (`ServeClient` reads
    the files and keeps `window` images in flight to the replicas, `write_results` commits each part, fenced)
    without a Ray Data plan. For a card of a few hundred images the plan's start-up (its stats and autoscaling
    actors, a client actor, the first blocks) cost more than the images themselves; the replicas do the work
    either way, and a larger archive gets the streaming plan."""
    client = ServeClient(replace(client_settings(spec, spec.archive_url), window=INLINE_WINDOW))
    rows = min(spec.rows_per_file, INLINE_PART_IMAGES)

    def run_part(start: int) -> dict[str, Any]:
        return write_results(client(numpy_batch(entries.slice(start, rows))), out_url=spec.out_url,
                             model_name=spec.model_name, model_version=spec.model_version,
                             model_sha256=spec.model_sha256, filters_hash=spec.rows_hash or spec.filters_hash,
                             run_id=spec.run_id, metadata=spec.metadata, fenced=spec.fenced).to_pylist()[0]

    # Two parts at a time: while one part's last images drain and its rows are written, the next one's files
    # are read and sent, so the replicas never wait between parts (one part at a time left every replica but
    # one idle at each part's end). Parts are reported in order.
    parts = ThreadPoolExecutor(INLINE_PARTS_AT_ONCE, thread_name_prefix="inline-part")
    futures = [parts.submit(run_part, start) for start in range(0, entries.num_rows, rows)]
    counted = 0
    try:
        for future in futures:
            row = future.result()
            counted += 1
            progress.add_parts([row], on_part)
    except BaseException:
        # A stop (at the next part), a failure, Ctrl-C: the parts not yet started are dropped; the running ones end,
        # and those that were written are counted.
        parts.shutdown(wait=True, cancel_futures=True)
        ended = [f.result() for f in futures[counted:] if not f.cancelled() and f.exception() is None]
        with contextlib.suppress(Exception):
            progress.add_parts(ended, on_part)
        raise
    parts.shutdown(wait=True)
    return progress
