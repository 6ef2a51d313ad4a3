"""The individual routes: list, show (sightings, closest others, history), snips, and people's decisions.

Reads need the API token (or the admin token), decisions the admin token. The newest `trapline identify` run is
shown with every later decision applied (batch/identify/individuals.py), so a merge, a split or a name shows at
once; the next run clusters with them. The tables are the `tables` given (under the jobs' allowed roots) or the
recorder's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import pandas as pd
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from batch.identify import individuals, weekly
from batch.views.deps import TABLES, tables_of, when_param
from batch.views.individuals_protocol import (
    DecisionRequest,
    DecisionView,
    IndividualDetail,
    IndividualPage,
    ReviewPage,
)
from ground.errors import InvalidParameterError
from model_store.tables.archive import open_location
from serve.deps import in_thread, read_auth, reviewer_auth, signed

router = APIRouter()


def _page(tables: str, limit: int, offset: int, **where: Any) -> dict[str, Any]:
    cur = individuals.current(open_location(tables))
    rows = individuals.select(cur, **where)
    return {"run_id": cur.run_id, "total": len(rows), "limit": limit, "offset": offset,
            "individuals": [individuals.summary(r) for r in rows.iloc[offset:offset + limit].to_dict("records")]}


def _sighting(s: dict[str, Any], n: int, tables: str) -> dict[str, Any]:
    """One sighting as the API shows it; `n`: its place among its individual's sightings (the snip's link)."""
    ident = s["individual_id"]
    return {"uri": s["uri"], "content_id": s["content_id"], "detection_index": int(s["detection_index"]),
            "rel_path": s["rel_path"], "camera_id": s["camera_id"], "capture_time": individuals.iso(s["capture_time"]),
            "individual_id": ident, "p_same": None if pd.isna(s["p_same"]) else float(s["p_same"]),
            "decision": s["decision"],
            "snip": f"/v1/individuals/{quote(ident)}/sightings/{n}/snip?{urlencode({'tables': tables})}"}


def _detail(tables: str, individual_id: str) -> dict[str, Any]:
    cur = individuals.current(open_location(tables))
    row = individuals.find(cur, individual_id)
    ident = row["individual_id"]
    shown = [_sighting(s, n, tables) for n, s in enumerate(individuals.sightings_of(cur, ident).to_dict("records"))]
    return {**individuals.summary(row), "run_id": cur.run_id, "sightings_shown": shown,
            "closest": individuals.closest(cur, ident), "history": individuals.history(cur, ident)}


def _review(tables: str, low: float, high: float, limit: int, offset: int) -> dict[str, Any]:
    cur = individuals.current(open_location(tables))
    queue = individuals.review_queue(cur, low, high)
    place = {}  # each sighting's place among its individual's sightings: its snip's link
    for ident in set(queue["individual_id"].iloc[offset:offset + limit]):
        for n, s in enumerate(individuals.sightings_of(cur, ident).itertuples()):
            place[(s.uri, s.content_id, int(s.detection_index))] = n
    shown = [_sighting(s, place[(s["uri"], s["content_id"], int(s["detection_index"]))], tables)
             for s in queue.iloc[offset:offset + limit].to_dict("records")]
    return {"run_id": cur.run_id, "total": len(queue), "limit": limit, "offset": offset, "low": low, "high": high,
            "sightings": shown}


def _decide(tables_url: str, body: DecisionRequest) -> dict[str, Any]:
    tables = open_location(tables_url)  # opened once for the check, the write and the answer
    fields = body.model_dump(exclude={"action", "tables", "who", "comment"})
    decision = individuals.decide(tables, body.action, body.who, body.comment, **fields)
    ident = getattr(decision, "individual_id", None)
    cur = individuals.current(tables)
    if ident is None:  # new individual: the one its sighting now belongs to
        ident = individuals.individual_of(cur, decision.sighting)
    try:
        shown = individuals.summary(individuals.find(cur, ident)) if ident else None
    except LookupError:
        shown = None
    return {"decision": decision.model_dump(mode="json"), "individual": shown}


@router.get("/v1/individuals", tags=["individuals"], dependencies=[Depends(read_auth)], response_model=IndividualPage,
            summary="Individuals of the newest identify run, people's decisions applied, last seen first")
async def list_individuals(request: Request, tables: str | None = TABLES, label: str | None = None,
                           camera: str | None = Query(None, description="seen by this camera"),
                           since: str | None = Query(None, description="seen at or after (YYYY-MM-DD or ISO time)"),
                           until: str | None = Query(None, description="seen at or before"),
                           confirmed: bool | None = Query(None, description="a person confirmed it (or not)"),
                           limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)) -> dict[str, Any]:
    # "\f" keeps the reason out of the OpenAPI page: FastAPI cuts a route's docstring there
    """
    \fNine parameters: FastAPI reads each as a query parameter of the route (their names and help are the HTTP
    API), the request itself for the default tables."""
    where = {"label": label, "camera": camera, "since": when_param("since", since),
             "until": when_param("until", until, True), "confirmed": confirmed}
    return await in_thread(_page, await tables_of(request, tables), limit, offset, **where)


@router.get("/v1/individuals/review", tags=["individuals"], dependencies=[Depends(read_auth)],
            response_model=ReviewPage,
            summary="Uncertain matches (P(same) between two thresholds) nobody decided, most informative first")
async def review(request: Request, tables: str | None = TABLES, low: float = Query(0.3, ge=0.0, le=1.0),
                 high: float = Query(0.7, ge=0.0, le=1.0), limit: int = Query(50, ge=1, le=500),
                 offset: int = Query(0, ge=0)) -> dict[str, Any]:
    if low > high:
        raise InvalidParameterError(f"low ({low}) is above high ({high})", field="low")
    return await in_thread(_review, await tables_of(request, tables), low, high, limit, offset)


def _weekly(tables: str, **thresholds: Any) -> dict[str, Any]:
    weeks = weekly.weekly(individuals.current(open_location(tables)).sightings)
    return {"weeks": weeks.astype(object).where(weeks.notna(), None).to_dict("records"),
            "readiness": weekly.readiness(weeks, **thresholds).as_dict()}


@router.get("/v1/individuals/weekly", tags=["individuals"], dependencies=[Depends(read_auth)],
            summary="Per week: individuals seen, new ones, the share of sightings assigned; ready to name?")
async def individuals_weekly(request: Request, tables: str | None = TABLES,
                             max_profiles: int = Query(weekly.MAX_PROFILES, ge=1),
                             max_new_share: float = Query(weekly.MAX_NEW_SHARE, ge=0.0, le=1.0),
                             stable_weeks: int = Query(weekly.STABLE_WEEKS, ge=1, le=52),
                             min_assigned_share: float = Query(weekly.MIN_ASSIGNED_SHARE, ge=0.0, le=1.0)
                             ) -> dict[str, Any]:
    return await in_thread(_weekly, await tables_of(request, tables), max_profiles=max_profiles,
                           max_new_share=max_new_share, stable_weeks=stable_weeks,
                           min_assigned_share=min_assigned_share)


@router.get("/v1/individuals/{individual_id}", tags=["individuals"], dependencies=[Depends(read_auth)],
            response_model=IndividualDetail,
            summary="One individual: its sightings with snip links, the closest other individuals, its history")
async def show_individual(request: Request, individual_id: str, tables: str | None = TABLES) -> dict[str, Any]:
    return await in_thread(_detail, await tables_of(request, tables), individual_id)


@router.get("/v1/individuals/{individual_id}/sightings/{n}/snip", tags=["individuals"],
            dependencies=[Depends(read_auth)], response_class=Response,
            summary="The JPEG snip of an individual's n-th sighting (oldest first)")
async def individual_snip(request: Request, individual_id: str, n: int, tables: str | None = TABLES) -> Response:
    data = await in_thread(individuals.snip, await tables_of(request, tables), individual_id, n)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@router.post("/v1/individuals/decisions", tags=["individuals"], status_code=201, dependencies=[Depends(reviewer_auth)],
             response_model=DecisionView,
             summary="A person's decision about individuals (confirm, reject, merge, split, name, new individual)")
async def decide(request: Request, body: DecisionRequest) -> dict[str, Any]:
    signed_body = body.model_copy(update={"who": signed(request, body.who)})  # the token's person signs it
    return await in_thread(_decide, await tables_of(request, body.tables), signed_body)
