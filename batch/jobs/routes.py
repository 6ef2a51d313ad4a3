"""The jobs and preview routes: parse, check the token, call `JobControl` in a thread, answer.

Attached to the ingress's FastAPI app by `attach_jobs(api, service)`, one of the service's features
(trapline/service.py); the handlers find the control plane and the service on `request.app.state`. Submit and stop
need the admin token; reads need the API token when one is configured (the admin token is accepted for them too).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from batch.jobs.backfill import BackfillWatcher
from batch.jobs.control import STATUSES, JobControl
from batch.jobs.deps import control_of
from batch.jobs.kinds import KINDS
from batch.jobs.launch import router as launch_router
from batch.jobs.report_links import with_report_links
from model_store import ModelStore
from model_store.core.filters import FilterName
from serve.deps import Service, in_thread, operator_auth, read_auth, service_of

router = APIRouter()


class JobRequest(BaseModel):
    """`POST /v1/jobs`: a kind and its options; nothing else (no entry point, no runtime_env)."""

    model_config = ConfigDict(extra="forbid")
    kind: str = Field(..., description=f"one of {', '.join(KINDS)}")
    options: dict[str, Any] = Field(default_factory=dict, description="the command's options, as its flags name "
                                                                      "them (archive, out, model, ...)")
    name: str | None = Field(None, min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$",
                             description="a name for people, shown in the job lists (e.g. 'site A, spring 2026')")


class PreviewRequest(BaseModel):
    """`POST /v1/postprocess/preview`: a filter and its config, tried on one stored image."""

    model_config = ConfigDict(extra="forbid")
    tables: str
    image: str = Field(..., description="the image's URI or its path relative to the archive")
    filter: FilterName
    config: dict[str, Any] | None = None
    remove: bool = False
    model: str | None = None
    filters_hash: str | None = None


@router.post("/v1/jobs", tags=["jobs"], status_code=201, dependencies=[Depends(operator_auth)],
             summary="Submit a job (validated with the command's own options model) to the cluster's job manager")
async def submit_job(request: Request, body: JobRequest) -> JSONResponse:
    job = await in_thread(control_of(request).submit, body.kind, body.options, name=body.name)
    return JSONResponse(job, status_code=201)


@router.get("/v1/jobs", tags=["jobs"], dependencies=[Depends(read_auth)],
            summary="Trapline jobs on the cluster (however submitted), newest first")
async def list_jobs(request: Request, kind: str | None = Query(None, description=", ".join(KINDS)),
                    status: str | None = Query(None, description=", ".join(STATUSES)),
                    model: str | None = Query(None, description="a model name or NAME:VERSION"),
                    limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)) -> dict[str, Any]:
    page = await in_thread(control_of(request).list, kind, status, model, limit, offset)
    with_report_links(service_of(request).link_key(), page["jobs"])
    return page


@router.get("/v1/jobs/{job_id}", tags=["jobs"], dependencies=[Depends(read_auth)],
            summary="One job: status, options, timestamps, progress and stage metrics from its run manifest")
async def show_job(request: Request, job_id: str) -> dict[str, Any]:
    job = await in_thread(control_of(request).show, job_id)
    return with_report_links(service_of(request).link_key(), [job])[0]


@router.get("/v1/jobs/{job_id}/logs", tags=["jobs"], dependencies=[Depends(read_auth)],
            summary="The tail of a job's log")
async def job_logs(request: Request, job_id: str, tail: int = Query(200, ge=0, le=100_000)) -> dict[str, Any]:
    return await in_thread(control_of(request).logs, job_id, tail)


@router.post("/v1/jobs/{job_id}/stop", tags=["jobs"], status_code=202, dependencies=[Depends(operator_auth)],
             summary="Stop a job: a reprocess ends at its next part, lease released, nothing half-written")
async def stop_job(request: Request, job_id: str) -> JSONResponse:
    return JSONResponse(await in_thread(control_of(request).stop, job_id), status_code=202)


@router.post("/v1/postprocess/preview", tags=["post-processing"], dependencies=[Depends(read_auth)],
             summary="What a filter would change on one stored image (kept / dropped / relabelled), without writing")
async def preview(request: Request, body: PreviewRequest) -> dict[str, Any]:
    control = control_of(request)
    raw = {**body.model_dump(exclude_none=True, exclude_defaults=True), "dry_run": True}
    kind, options = await in_thread(control.prepare, "postprocess", raw)
    report = await in_thread(kind.spec.run, options, None)
    out = dataclasses.asdict(report)
    out["summary"] = {k: out[k] for k in ("detections_checked", "flagged", "kept_before", "kept_after", "relabelled",
                                          "detections_linked", "occurrences", "frames_per_occurrence")}
    return out


def attach_jobs(api: FastAPI, service: Service) -> None:
    """Add the jobs, preview and job-form routes to the ingress's app, and (with on_promote policies)
    start the backfill watcher when the app starts. The views over the tables are `attach_views`'s."""
    cfg = service.config
    jobs_cfg = cfg.jobs
    if not jobs_cfg.enabled:
        return
    control = JobControl(jobs_cfg, cfg.store)  # build_app made it absolute
    api.state.trapline_jobs = control  # the service itself is app.state.service (serve/deps.py)
    api.include_router(router)
    api.include_router(launch_router)
    policies = {m.name: (m.on_promote.alias or m.aliases[0], m.on_promote.reprocess)
                for m in cfg.models if m.on_promote is not None}
    if policies:
        watcher = BackfillWatcher(control, ModelStore(cfg.store, cache_dir=cfg.cache_dir), policies,
                                  jobs_cfg.promote_poll_s)
        api.state.trapline_backfill = watcher

        async def start() -> None:
            api.state.trapline_backfill_task = asyncio.create_task(watcher.run())

        api.router.on_startup.append(start)


