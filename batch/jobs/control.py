"""Submit, list, show, tail and stop jobs through Ray's Job Submission API; progress from the run manifests.

Lifecycle: one `JobControl` per ingress replica, built with the serve config's `jobs:` block and the service's
store root. Its methods block (Ray's client is synchronous) and are called from the routes in a thread. Ray's
job manager holds the jobs (status, logs, timestamps), and the jobs' own manifests in the tables' `_runs/`
their progress: this class keeps no state of its own (only a cache of ended jobs' final progress, which no
longer changes), so every replica (and a restarted one) sees the same.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import shlex
from typing import Any

from pydantic import BaseModel

from batch.jobs.kinds import KINDS, REFUSED, JobKind, recognise
from batch.jobs.paths import PathPolicy
from batch.option_variants import fields_of
from batch.options import ModelRefMark, marked_fields
from ground.errors import (
    DuplicateJobError,
    InvalidParameterError,
    JobFinishedError,
    JobNotFoundError,
    JobsUnavailableError,
    PathNotAllowedError,
    TraplineError,
    invalid_parameter,
)
from model_store import ModelRef, ModelStore
from model_store.tables.archive import open_location
from model_store.tables.manifest import RunManifest, read_manifests
from model_store.tables.reader import Tables
from model_store.tables.stop import request_stop, stop_requested
from model_store.tables.table_set import resolve_table_set
from serve.jobs_config import JobsConfig

logger = logging.getLogger("ray.serve.trapline")

ACTIVE = ("PENDING", "RUNNING")
STATUSES = ("pending", "running", "succeeded", "failed", "stopped")
SUBMISSION_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
ENDED_KEPT = 2000  # ended jobs whose final progress is kept in memory


def options_digest(kind: str, options: BaseModel) -> str:
    """Two jobs with this digest do the same work: kind and every option, defaults included."""
    canonical = json.dumps({"kind": kind, "options": options.model_dump(mode="json")}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class JobControl:
    """The archive door's jobs on the cluster's job manager (see the module docstring)."""

    def __init__(self, config: JobsConfig, store_root: str | None, client: Any = None) -> None:
        self.config = config
        self.store_root = store_root
        self.paths = PathPolicy(config.roots, config.s3_buckets, config.working_dir)
        self._client = client
        self._ended: dict[str, dict[str, Any] | None] = {}  # job id -> its final progress

    # -- Ray's job manager ----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            # late: the job client (and its HTTP stack) loads when the first job route is used, not at replica start
            from ray.job_submission import JobSubmissionClient

            try:
                self._client = JobSubmissionClient(self.config.address or _cluster_address())
            except Exception as exc:  # noqa: BLE001 - any failure to reach it is the same to a caller
                raise JobsUnavailableError(f"the cluster's job manager does not answer: {_first_line(exc)}",
                                           headers={"Retry-After": "5"}) from None
        return self._client

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except RuntimeError as exc:
            text = str(exc)
            if "does not exist" in text:
                raise JobNotFoundError(f"no job {args[0] if args else ''!r} on this cluster") from None
            if "already exists" in text:
                raise DuplicateJobError(f"a job with submission id {kwargs.get('submission_id')!r} was submitted "
                                        "before; nothing was submitted", job_id=kwargs.get("submission_id"))
            raise JobsUnavailableError(f"the cluster's job manager refused {method}: {_first_line(exc)}") from None
        except (OSError, ValueError, ConnectionError) as exc:
            raise JobsUnavailableError(f"the cluster's job manager does not answer: {_first_line(exc)}",
                                       headers={"Retry-After": "5"}) from None

    # -- submit ---------------------------------------------------------------------------------------
    def prepare(self, kind_name: str, raw: Any, trusted: bool = False) -> tuple[JobKind, BaseModel]:
        """Validate a job before anything is submitted: its kind, its options (the command's model), the
        locations it names (unless `trusted`: the serve config's own policy) and its model version."""
        kind = KINDS.get(kind_name) if isinstance(kind_name, str) else None
        if kind is None:
            raise InvalidParameterError(f"unknown job kind {kind_name!r} (kinds: {', '.join(KINDS)})", field="kind")
        options = kind.validate(raw)
        updates: dict[str, Any] = {}
        if "store" in fields_of(kind.options) and getattr(options, "store", None) is None and self.store_root:
            updates["store"] = self.store_root  # the job resolves models in the service's store
        if not trusted:
            for field in kind.paths:
                value = getattr(options, field, None)
                if value is not None and not (field == "store" and value == self.store_root):
                    updates[field] = self.paths.check(field, value)
        if updates:
            options = kind.validate({**options.model_dump(exclude_unset=True), **updates})
        options = self._fill(kind, options, trusted)
        for field, mark in marked_fields(kind.options, ModelRefMark).items():  # the versions it names exist
            ref = getattr(options, field)
            if ref and (mark.in_store or "@" in ref or ":" not in ref):
                with invalid_parameter(field, field):
                    ModelStore(getattr(options, "store", None) or self.store_root).get(ModelRef.parse(ref))
        if kind.spec.check is not None:  # against the store and the tables: the model's input size, its labels...
            with invalid_parameter("options", kind.name):
                kind.spec.check(options)
        kind.check_round_trip(options)
        return kind, options

    def submit(self, kind_name: str, raw: Any, submission_id: str | None = None, origin: str = "http",
               trusted: bool = False, name: str | None = None) -> dict[str, Any]:
        """Validate, refuse a duplicate of a running job, submit; the job's view."""
        kind, options = self.prepare(kind_name, raw, trusted)
        asked = options_digest(kind.name, options)  # as requested: the same request again is a duplicate
        options = self._pin_source(kind, options)
        digest = options_digest(kind.name, options)
        for job in self._trapline_jobs():
            if job["status"] in ("pending", "running") and {asked, digest} & {job["digest"], job["request_digest"]}:
                raise DuplicateJobError(f"an identical {kind.name} job is {job['status']}: {job['id']}; nothing "
                                        "was submitted (stop it first, or change the options)", job_id=job["id"])
        if submission_id is not None and not SUBMISSION_ID.match(submission_id):
            raise InvalidParameterError(f"submission id {submission_id!r} is not [A-Za-z0-9_.-]{{1,128}}")
        metadata = {"trapline": "1", "kind": kind.name, "origin": origin, "digest": digest, "request_digest": asked,
                    "name": name or "",
                    "model": str(getattr(options, "model", None) or ""),
                    "options": json.dumps(options.model_dump(mode="json", exclude_defaults=True), sort_keys=True)}
        entrypoint = shlex.join(kind.command(self.config.python or "python", options))
        job_id = self._call("submit_job", entrypoint=entrypoint, submission_id=submission_id, metadata=metadata,
                            entrypoint_num_cpus=self.config.entrypoint_num_cpus or None)
        logger.info("jobs: submitted %s job %s (%s)", kind.name, job_id, origin)
        return self.show(job_id, progress=False)

    def _fill(self, kind: JobKind, options: BaseModel, trusted: bool) -> BaseModel:
        """The options the kind fixes at submit from its others (train: the tables its record goes to, from the
        crops' manifest), each location checked as a caller's would be, saying where it came from."""
        if kind.spec.fill is None:
            return options
        with invalid_parameter("options", kind.name):
            filled = kind.spec.fill(options)
        for field, value in filled.items():
            if field in kind.paths and not trusted:
                try:
                    filled[field] = self.paths.check(field, value)
                except PathNotAllowedError as exc:
                    raise PathNotAllowedError(f"{exc} (taken from the crops' manifest: give {field} to record the "
                                              "job elsewhere)", field=field, fields=[field]) from None
        return kind.validate({**options.model_dump(exclude_unset=True), **filled}) if filled else options

    def _pin_source(self, kind: JobKind, options: BaseModel) -> BaseModel:
        """A job whose command pins its source (postprocess) and that names no source set gets the newest one now,
        in its options, and its model version pinned (an alias may move): a rerun of the job (after a stop, or a
        failure) then resumes from the same source, not from the set its first run began to write, nor from another
        version's rows."""
        if not kind.spec.pins_source or options.filters_hash is not None:
            return options
        with invalid_parameter("tables", "tables"):  # nothing there to post-process: refused before anything runs
            tset = resolve_table_set(Tables(open_location(options.tables)), options.model, None, options.store)
        pinned = {"filters_hash": tset.filters_hash, "model": f"{tset.model_name}:{tset.model_version}"}
        return kind.validate({**options.model_dump(exclude_unset=True), **pinned})

    # -- read -----------------------------------------------------------------------------------------
    def _trapline_jobs(self) -> list[dict[str, Any]]:
        views = [self._view(d) for d in self._call("list_jobs")]
        return [v for v in views if v is not None]

    def list(self, kind: str | None = None, status: str | None = None, model: str | None = None,
             limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """Trapline jobs (however they were submitted), newest first, filtered, one page."""
        if kind is not None and kind not in KINDS:
            raise InvalidParameterError(f"unknown job kind {kind!r} (kinds: {', '.join(KINDS)})", field="kind")
        if status is not None and status not in STATUSES:
            raise InvalidParameterError(f"unknown status {status!r} (statuses: {', '.join(STATUSES)})",
                                        field="status")
        jobs = [j for j in self._trapline_jobs() if (kind is None or j["kind"] == kind)
                and (status is None or j["status"] == status) and (model is None or _same_model(j["model"], model))]
        jobs.sort(key=lambda j: (j.pop("_start_ms") or 0, j["id"]), reverse=True)
        page = jobs[offset:offset + limit]
        for job in page:  # a list of requests says how many images each did, finished or not
            job["progress"] = self._progress(job) if job["status"] != "pending" else None
        return {"jobs": page, "total": len(jobs), "limit": limit, "offset": offset}

    def show(self, job_id: str, progress: bool = True) -> dict[str, Any]:
        self._check_id(job_id)
        view = self._view(self._call("get_job_info", job_id))
        if view is None:
            raise JobNotFoundError(f"job {job_id!r} is not a trapline job")
        view.pop("_start_ms")
        if progress:
            view["progress"] = self._progress(view)
        return view

    def logs(self, job_id: str, tail: int = 200) -> dict[str, Any]:
        self.show(job_id, progress=False)  # 404 for a job that is not ours
        lines = self._call("get_job_logs", job_id).splitlines()
        return {"id": job_id, "lines": lines[-tail:] if tail else lines, "total_lines": len(lines)}

    # -- stop -----------------------------------------------------------------------------------------
    def stop(self, job_id: str) -> dict[str, Any]:
        """A running reprocess or postprocess ends at its next part (a stop request beside its manifest); any other
        job, or one that has not started its parts yet, is stopped by the job manager (SIGTERM: closed as Ctrl-C)."""
        job = self.show(job_id)
        if job["status"] not in ("pending", "running"):
            raise JobFinishedError(f"job {job_id} has already ended ({job['status']}); nothing to stop",
                                   job_id=job_id, job_status=job["status"])
        how = "signal"
        command, progress = KINDS[job["kind"]].spec, job.get("progress") or {}
        out = open_location(job["options"][command.tables]) if command.resumes and job["options"] else None
        # Asked once, a run writing parts ends at its next one; asked again (or before its first part), at once.
        if out is not None and command.writing(progress) and not stop_requested(out, job_id):
            request_stop(out, job_id, by="POST /v1/jobs/{id}/stop")
            how = "at_next_part"
        else:
            self._call("stop_job", job_id)
        logger.info("jobs: stop of %s requested (%s)", job_id, how)
        return {**self.show(job_id, progress=False), "stop": how}

    # -- views ----------------------------------------------------------------------------------------
    def _view(self, details: Any) -> dict[str, Any] | None:
        """A Ray job as trapline shows it, or None when it runs no trapline command."""
        meta = dict(details.metadata or {})
        entry = details.entrypoint or ""
        found = recognise(entry)
        if meta.get("trapline") == "1" and meta.get("kind") in KINDS:
            kind = KINDS[meta["kind"]]
            options = found[1] if found and found[0] is kind else None
            origin = meta.get("origin", "http")
        elif found is not None:
            kind, options = found
            origin = "ray job submit"
        else:
            return None
        status = str(getattr(details.status, "value", details.status)).lower()
        job_id = details.submission_id or details.job_id
        # Shown without the shell-only options (refused over HTTP), so that a view's options resubmit as they are.
        opts = options.model_dump(mode="json", exclude=set(REFUSED)) if options is not None else None
        if status in ("failed", "stopped") and opts and kind.tables in opts and _stopped_on_request(
                opts[kind.tables], job_id):
            status = "stopped"
        return {"id": job_id, "name": meta.get("name") or None, "kind": kind.name, "status": status, "origin": origin,
                "resumes": kind.spec.resumes,
                "model": (getattr(options, "model", None) or getattr(options, "ref", None)) if options is not None
                else meta.get("model") or None,
                "options": opts, "digest": options_digest(kind.name, options) if options is not None else None,
                "request_digest": meta.get("request_digest") or None,
                "submitted_at": _ms(details.start_time), "ended_at": _ms(details.end_time),
                "message": details.message, "entrypoint": entry, "_start_ms": details.start_time}

    def _progress(self, job: dict[str, Any]) -> dict[str, Any] | None:
        """The run's manifest (the newest written by this job) as progress: images done / total, rate, ETA,
        and each stage's counts. An ended job's is read once and kept (it no longer changes)."""
        ended = job["status"] in ("succeeded", "failed", "stopped")
        if ended and job["id"] in self._ended:
            return self._ended[job["id"]]
        tables = (job.get("options") or {}).get(KINDS[job["kind"]].tables)
        if not tables:
            return None
        try:
            manifests = [m for m in read_manifests(open_location(tables)) if m.ray_job_id == job["id"]]
        except (OSError, TraplineError, ValueError):
            return None
        progress = manifest_progress(manifests[-1]) if manifests else None
        if ended:
            if len(self._ended) >= ENDED_KEPT:
                self._ended.pop(next(iter(self._ended)))  # the oldest kept
            self._ended[job["id"]] = progress
        return progress

    @staticmethod
    def _check_id(job_id: str) -> None:
        if not SUBMISSION_ID.match(job_id):
            raise JobNotFoundError(f"no job {job_id!r}: not a job id")


def manifest_progress(m: RunManifest) -> dict[str, Any]:
    c = m.counts
    if m.kind == "train":
        return train_progress(m)
    if m.kind == "reprocess":
        done, total = int(c.get("processed", 0)), int(c.get("to_process", 0))
        stages = {"plan": {k: c.get(k, 0) for k in ("found", "selected", "already_done", "to_process",
                                                    "clips_redone")},
                  "detect": {k: c.get(k, 0) for k in ("processed", "ok", "empty", "failed", "raw_detections",
                                                      "detections")},
                  "commit": {k: c.get(k, 0) for k in ("parts", "orphans_removed")}}
    else:
        done, total = int(c.get("images", 0)), int(c.get("in_scope", 0))
        track = ("detections_linked", "occurrences", "frames_per_occurrence", "disagreements")
        stages = {"refilter": {k: v for k, v in c.items() if k not in track}}
        if c.get("detections_linked"):  # the track filter's own metrics (batch/postprocessing/tracks.py)
            stages["track"] = {k: c.get(k, 0) for k in track}
    rate = m.images_per_s or 0.0
    eta = round((total - done) / rate, 1) if rate > 0 and total > done and m.status == "running" else None
    return {"run_id": m.run_id, "run_status": m.status, "images_done": done, "images_total": total,
            "fraction": round(done / total, 4) if total else None, "images_per_s": rate, "eta_s": eta,
            "started_at": m.started_at, "updated_at": m.updated_at, "ended_at": m.ended_at, "error": m.error,
            "stages": stages}


def train_progress(m: RunManifest) -> dict[str, Any]:
    """A fine-tune's record (batch/train/record.py) as progress: epochs done of n, the last epoch's train loss and
    validation top-1, and the version it published; `unit` says the counts are epochs, not images."""
    c = m.counts
    done, total = int(c.get("epoch", 0)), int(c.get("epochs", 0))
    return {"run_id": m.run_id, "run_status": m.status, "unit": "epochs", "images_done": done, "images_total": total,
            "fraction": round(done / total, 4) if total else None, "images_per_s": None, "eta_s": None,
            "epoch": done, "epochs": total, "loss": c.get("loss"), "val_top1": c.get("val_top1"),
            "published": m.published, "started_at": m.started_at, "updated_at": m.updated_at, "ended_at": m.ended_at,
            "error": m.error, "stages": {"train": {k: c[k] for k in ("epoch", "epochs", "loss", "val_top1",
                                                                    "val_crops", "train_crops", "crops_per_s")
                                                  if k in c}}}


def _stopped_on_request(tables: str, job_id: str) -> bool:
    try:
        return stop_requested(open_location(tables), job_id)
    except (OSError, TraplineError, ValueError):
        return False


def _same_model(job_model: str | None, wanted: str) -> bool:
    if not job_model:
        return False
    return job_model == wanted or job_model.split("@")[0].split(":")[0] == wanted


def _ms(value: Any) -> str | None:
    if not value:
        return None
    return dt.datetime.fromtimestamp(value / 1000, dt.timezone.utc).isoformat(timespec="seconds")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cluster_address() -> str | None:
    """This replica's cluster (its GCS address), where Ray's client finds the job server."""
    import ray  # late: `trapline jobs` imports this module without Ray running

    return ray.get_runtime_context().gcs_address if ray.is_initialized() else None
