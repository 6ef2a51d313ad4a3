"""The occurrence routes: list, show (frames, snips, history), identify and classify, over one set of tables.

Reads need the API token (or the admin token), decisions the admin token. A decision is appended to the tables'
decisions log (model_store/tables/decisions.py) and the occurrence is answered as it is determined now
(batch/postprocessing/occurrences.py applies the log on every read). The tables are the `tables` given (under the
jobs' allowed roots) or, by default, the recorder's.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from batch.postprocessing import occurrences
from batch.views.deps import TABLES, opened_tables, set_place, tables_of, when_param
from batch.views.occurrences_protocol import (
    ClassifyRequest,
    IdentifyRequest,
    MergeRequest,
    MoveRequest,
    OccurrenceDetail,
    OccurrencePage,
    OccurrenceView,
    SplitRequest,
    TrackEditView,
)
from ground.errors import invalid_parameter
from model_store.tables.decisions import DetectionKey
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from serve.deps import in_thread, read_auth, reviewer_auth, service_of, signed

router = APIRouter()


def _page(place: occurrences.SetPlace, limit: int, offset: int, **where: Any) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot read occurrences"):
        occ = occurrences.load(place.tables, place.model, place.filters_hash, place.store, where.get("camera"))
        rows = occurrences.select(occ.rows, **where)
    return _listing(occ, rows, limit, offset)


def _listing(occ: occurrences.OccurrenceSet, rows: Any, limit: int, offset: int) -> dict[str, Any]:
    shown = rows.iloc[offset:offset + limit].to_dict("records")
    return {"model": f"{occ.tset.model_name}:{occ.tset.model_version}", "filters_hash": occ.tset.filters_hash,
            "total": len(rows), "limit": limit, "offset": offset,
            "occurrences": [occurrences.summary(r) for r in shown]}


def _review(place: occurrences.SetPlace, below: float, limit: int, offset: int) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot read occurrences"):
        occ = place.load()
        rows = occurrences.review_queue(occ.rows, below)
    return _listing(occ, rows, limit, offset)


def _detail(tables: str, occurrence_id: str, model: str | None, filters_hash: str | None,
            store: str | None) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot read occurrences"):
        opened = Tables(open_location(tables))
        occ = occurrences.load(opened, model, filters_hash, store)
        row = occurrences.find(occ, occurrence_id)
        frames = occurrences.frames(opened, occ, row)
    query = urlencode({"tables": tables, "model": f"{occ.tset.model_name}:{occ.tset.model_version}",
                       "filters_hash": occ.tset.filters_hash})
    for n, f in enumerate(frames):
        f["snip"] = f"/v1/occurrences/{quote(occurrence_id)}/snips/{n}?{query}"
    return {**occurrences.summary(row), "model": f"{occ.tset.model_name}:{occ.tset.model_version}",
            "frames_shown": frames, "history": occurrences.history(occ, row)}


@router.get("/v1/occurrences", tags=["occurrences"], dependencies=[Depends(read_auth)], response_model=OccurrencePage,
            summary="Occurrences (one animal's detections across frames), newest first, with their determination")
async def list_occurrences(place: occurrences.SetPlace = Depends(set_place), camera: str | None = None,
                           label: str | None = Query(None, description="the determination's label"),
                           since: str | None = Query(None, description="seen at or after (YYYY-MM-DD or ISO time)"),
                           until: str | None = Query(None, description="seen at or before"),
                           determined_by: str | None = Query(None, pattern="^(model|human)$"),
                           limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)) -> dict[str, Any]:
    # "\f" keeps the reason out of the OpenAPI page: FastAPI cuts a route's docstring there
    """
    \fEight parameters: FastAPI reads each as a query parameter of the route (the set's `tables`, `model` and
    `filters_hash` already come whole, as one `SetPlace` dependency)."""
    where = {"camera": camera, "label": label, "since": when_param("since", since),
             "until": when_param("until", until, True), "determined_by": determined_by}
    return await in_thread(_page, place, limit, offset, **where)


@router.get("/v1/occurrences/review", tags=["occurrences"], dependencies=[Depends(read_auth)],
            response_model=OccurrencePage,
            summary="Occurrences whose weakest link the tracker is least sure of, least certain first")
async def review_occurrences(place: occurrences.SetPlace = Depends(set_place),
                             below: float = Query(1.0, ge=0.0, le=1.0, description="link confidence under this"),
                             limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)) -> dict[str, Any]:
    return await in_thread(_review, place, below, limit, offset)


@router.get("/v1/occurrences/{occurrence_id}", tags=["occurrences"], dependencies=[Depends(read_auth)],
            response_model=OccurrenceDetail, summary="One occurrence: its frames with snip links and its history")
async def show_occurrence(request: Request, occurrence_id: str, tables: str | None = TABLES,
                          model: str | None = None, filters_hash: str | None = None) -> dict[str, Any]:
    return await in_thread(_detail, await tables_of(request, tables), occurrence_id, model, filters_hash,
                           service_of(request).config.store)


@router.get("/v1/occurrences/{occurrence_id}/snips/{n}", tags=["occurrences"], dependencies=[Depends(read_auth)],
            summary="The JPEG snip of an occurrence's n-th frame", response_class=Response)
async def occurrence_snip(request: Request, occurrence_id: str, n: int, tables: str | None = TABLES,
                          model: str | None = None, filters_hash: str | None = None) -> Response:
    with invalid_parameter("tables", "cannot read occurrences"):
        data = await in_thread(occurrences.snip, await opened_tables(request, tables), occurrence_id, n, model,
                               filters_hash, service_of(request).config.store)
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})


@router.post("/v1/occurrences/{occurrence_id}/identify", tags=["occurrences"], dependencies=[Depends(reviewer_auth)],
             response_model=OccurrenceView, summary="A person's determination of an occurrence (the decisions log)")
async def identify(request: Request, occurrence_id: str, body: IdentifyRequest) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot identify"):
        return await in_thread(occurrences.identify, await _place(request, body), occurrence_id, body.label,
                               signed(request, body.who), body.comment)


@router.post("/v1/occurrences/{occurrence_id}/classify", tags=["occurrences"], dependencies=[Depends(reviewer_auth)],
             response_model=OccurrenceView,
             summary="A person's label for one detection of the occurrence; the occurrence is re-determined at once")
async def classify(request: Request, occurrence_id: str, body: ClassifyRequest) -> dict[str, Any]:
    key = DetectionKey(uri=body.uri, content_id=body.content_id, detection_index=body.detection_index)
    with invalid_parameter("tables", "cannot classify"):
        return await in_thread(occurrences.classify, await _place(request, body), key, body.label,
                               signed(request, body.who), body.comment, occurrence_id)


async def _place(request: Request, body: Any) -> occurrences.SetPlace:
    """The set a decision's body names, its tables found (or defaulted) as every view finds them."""
    return occurrences.SetPlace(await opened_tables(request, body.tables), body.model, body.filters_hash,
                                service_of(request).config.store)


APPLIES = "at the next `trapline postprocess --filter track` over these tables, and every one after it"


def _key(ref: Any) -> DetectionKey:
    return DetectionKey(uri=ref.uri, content_id=ref.content_id, detection_index=ref.detection_index)


@router.post("/v1/occurrences/{occurrence_id}/split", tags=["occurrences"], dependencies=[Depends(reviewer_auth)],
             response_model=TrackEditView,
             summary="Cut an occurrence at one of its detections: it and the later ones are another animal")
async def split(request: Request, occurrence_id: str, body: SplitRequest) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot split"):
        decision = await in_thread(occurrences.split, await _place(request, body), occurrence_id, _key(body.at),
                                   signed(request, body.who), body.comment)
    return {"decision": decision, "applies": APPLIES}


@router.post("/v1/occurrences/{occurrence_id}/merge", tags=["occurrences"], dependencies=[Depends(reviewer_auth)],
             response_model=TrackEditView, summary="Two occurrences are one animal")
async def merge(request: Request, occurrence_id: str, body: MergeRequest) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot merge"):
        decision = await in_thread(occurrences.merge, await _place(request, body), occurrence_id, body.other_id,
                                   signed(request, body.who), body.comment)
    return {"decision": decision, "applies": APPLIES}


@router.post("/v1/occurrences/{occurrence_id}/move", tags=["occurrences"], dependencies=[Depends(reviewer_auth)],
             response_model=TrackEditView, summary="One detection of the occurrence belongs to another occurrence")
async def move(request: Request, occurrence_id: str, body: MoveRequest) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot move"):
        decision = await in_thread(occurrences.move, await _place(request, body), occurrence_id,
                                   _key(body.detection), body.to, signed(request, body.who), body.comment)
    return {"decision": decision, "applies": APPLIES}
