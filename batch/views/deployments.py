"""The deployment routes: the deployments table, clock decisions, clock problems, effort and detection histories.

Reads need the API token (or the admin token), records and decisions the admin token. Everything is kept beside
the tables (model_store/tables/deployments.py, the decisions log) and applied by every later read, run and export;
the work is batch/deployments/'s, shared with `trapline deployments`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from batch.deployments import defaults, records
from batch.deployments import effort as eff
from batch.deployments.observed import observed
from batch.postprocessing.occurrences import SetPlace
from batch.views.deployments_protocol import (
    ClockCorrectionRequest,
    DeploymentsImportRequest,
    RevokeRequest,
    TimestampIssuesRequest,
)
from batch.views.deps import TABLES, set_place, tables_of
from ground.errors import InvalidParameterError, invalid_parameter
from model_store.tables.clock_check import check_clock
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from serve.deps import in_thread, read_auth, reviewer_auth, signed

router = APIRouter()


@router.get("/v1/deployments", tags=["deployments"], dependencies=[Depends(read_auth)],
            summary="The deployments with their pictures, and the clock corrections in force")
async def list_deployments(request: Request, tables: str | None = TABLES) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot read the deployments"):
        return await in_thread(records.list_deployments, await tables_of(request, tables))


@router.post("/v1/deployments", tags=["deployments"], status_code=201, dependencies=[Depends(reviewer_auth)],
             summary="Record deployments (Camtrap DP rows); a later record of one deploymentID replaces it")
async def import_deployments(request: Request, body: DeploymentsImportRequest) -> dict[str, Any]:
    if body.file is not None and body.deployments:
        raise InvalidParameterError("give deployments rows or a file, not both", field="file")
    source = body.deployments if body.file is None else (body.file.name, body.file.text)
    with invalid_parameter("file" if body.file else "deployments", "cannot record the deployments"):
        return await in_thread(records.import_deployments, await tables_of(request, body.tables), source,
                               signed(request, body.who), body.comment, body.timezone, body.removed)


@router.post("/v1/deployments/clock", tags=["deployments"], status_code=201, dependencies=[Depends(reviewer_auth)],
             summary="A camera's clock was off (or on another zone) for a while: a decision every read applies")
async def correct_clock(request: Request, body: ClockCorrectionRequest) -> dict[str, Any]:
    with invalid_parameter("clock", "cannot record the correction"):
        return await in_thread(records.correct_clock, await tables_of(request, body.tables), signed(request, body.who),
                               body.comment, camera_id=body.camera_id, recorded_from=body.recorded_from,
                               recorded_until=body.recorded_until, offset_s=body.offset_s, zone=body.zone)


@router.post("/v1/deployments/{deployment_id}/timestamp-issues", tags=["deployments"], status_code=201,
             dependencies=[Depends(reviewer_auth)], summary="Mark a deployment whose clock cannot be fixed")
async def timestamp_issues(request: Request, deployment_id: str, body: TimestampIssuesRequest) -> dict[str, Any]:
    with invalid_parameter("deployment_id", "cannot mark the deployment"):
        return await in_thread(records.mark_timestamp_issues, await tables_of(request, body.tables), deployment_id,
                               body.issues, signed(request, body.who), body.comment)


@router.post("/v1/deployments/decisions/{decision_id}/revoke", tags=["deployments"], status_code=201,
             dependencies=[Depends(reviewer_auth)], summary="Undo an earlier clock decision (it stays in the log)")
async def revoke(request: Request, decision_id: str, body: RevokeRequest) -> dict[str, Any]:
    with invalid_parameter("decision_id", "cannot revoke"):
        return await in_thread(records.revoke, await tables_of(request, body.tables), decision_id,
                               signed(request, body.who), body.comment)


def _clock_problems(tables: str) -> dict[str, Any]:
    found = check_clock(Tables(open_location(tables)))
    return {"clean": all(f.hint for f in found), "problems": [{**f.as_dict(), "hint": f.hint} for f in found]}


@router.get("/v1/deployments/clock-problems", tags=["deployments"], dependencies=[Depends(read_auth)],
            summary="Pictures outside their deployment, time jumps and resets, impossible dates, repeated times")
async def clock_problems(request: Request, tables: str | None = TABLES) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot check the clocks"):
        return await in_thread(_clock_problems, await tables_of(request, tables))


def _effort(place: SetPlace, gap_days: float, independence_min: float) -> dict[str, Any]:
    obs = observed(place.tables, place.model, place.filters_hash, place.store)
    effort = eff.efforts(obs.book, obs.pictures, gap_days)
    rates = eff.trap_rates(obs.book, effort, obs.detections, independence_min)
    hours = eff.activity(obs.detections, independence_min)
    return {"gap_days": gap_days, "independence_min": independence_min,
            "camera_days": {k: round(e.camera_days, 4) for k, e in effort.items()},
            "trap_rates": rates.astype(object).where(rates.notna(), None).to_dict("records"),
            "activity": {s: {h: int(v) for h, v in row.items()} for s, row in hours.iterrows()}}


@router.get("/v1/deployments/effort", tags=["deployments"], dependencies=[Depends(read_auth)],
            summary="Camera-days per deployment, trap rates per species, activity by local hour")
async def effort(place: SetPlace = Depends(set_place),
                 gap_days: float = Query(defaults.GAP_DAYS, gt=0, description="a longer stretch without pictures "
                                                                              "is not effort"),
                 independence_min: float = Query(defaults.INDEPENDENCE_MIN, ge=0)) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot compute the effort"):
        return await in_thread(_effort, place, gap_days, independence_min)


def _history(place: SetPlace, species: str, occasion_days: int, gap_days: float) -> str:
    obs = observed(place.tables, place.model, place.filters_hash, place.store)
    matrix = eff.detection_history(obs.book, eff.efforts(obs.book, obs.pictures, gap_days), obs.detections, species,
                                   occasion_days)
    return matrix.to_csv(na_rep="NA")


@router.get("/v1/deployments/history.csv", tags=["deployments"], dependencies=[Depends(read_auth)],
            response_class=Response, summary="A species' detection history: deployments x occasions (1, 0, NA)")
async def history(species: str = Query(..., min_length=1), place: SetPlace = Depends(set_place),
                  occasion_days: int = Query(defaults.OCCASION_DAYS, ge=1, le=366),
                  gap_days: float = Query(defaults.GAP_DAYS, gt=0)) -> Response:
    with invalid_parameter("tables", "cannot compute the detection history"):
        text = await in_thread(_history, place, species, occasion_days, gap_days)
    return Response(text, media_type="text/csv")
