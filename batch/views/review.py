"""The review routes: a page of a version's images to review, the verbs that make its accuracy measurable (confirm,
reject, relabel, mark empty, add a missed box), and the version's accuracy and score thresholds from people's
decisions.

Reads need a reader's token, decisions a reviewer's (signed by the token's person: serve/deps.py `signed`). A decision
is appended to the tables' decisions log (batch/postprocessing/detection_review.py checks first that what it names is
in the set); the accuracy is batch/postprocessing/accuracy.py's, as `trapline models accuracy` prints it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from batch.jobs.deps import control_of
from batch.postprocessing import detection_review as review
from batch.postprocessing.accuracy import measure
from batch.postprocessing.occurrences import SetPlace
from batch.postprocessing.thresholds import proposal
from batch.views.deps import TABLES, opened_tables, set_place
from batch.views.occurrences_protocol import TrackEditView as DecisionView
from batch.views.picture_files import file_url
from batch.views.picture_queries import pictures_of
from batch.views.review_protocol import (
    AddBoxRequest,
    ConfirmRequest,
    EmptyRequest,
    RejectRequest,
    RelabelRequest,
    ReviewPage,
    ThresholdsQuery,
)
from ground.errors import NotFoundError, invalid_parameter
from model_store.core.refs import check_segment
from model_store.tables.archive import is_web
from model_store.tables.decisions import DetectionKey, ImageKey
from serve.deps import in_thread, read_auth, reviewer_auth, service_of, signed

router = APIRouter()


async def _place(request: Request, body: Any) -> SetPlace:
    return SetPlace(await opened_tables(request, body.tables), body.model, body.filters_hash,
                    service_of(request).config.store)


def _key(body: Any) -> DetectionKey:
    return DetectionKey(uri=body.uri, content_id=body.content_id, detection_index=body.detection_index)


def _image(body: Any) -> ImageKey:
    return ImageKey(uri=body.uri, content_id=body.content_id)


async def _decide(request: Request, body: Any, fn: Any, *args: Any) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot record the review"):
        decision = await in_thread(fn, await _place(request, body), *args, signed(request, body.who), body.comment)
    return {"decision": decision, "applies": review.APPLIES}


_DECIDE = {"tags": ["review"], "dependencies": [Depends(reviewer_auth)], "response_model": DecisionView,
           "status_code": 201}


@router.post("/v1/review/confirm", summary="A detection's box and label are right (a true positive)", **_DECIDE)
async def confirm(request: Request, body: ConfirmRequest) -> dict[str, Any]:
    return await _decide(request, body, lambda p, w, c: review.confirm(p, _key(body), w, c, body.label))


@router.post("/v1/review/reject", summary="A detection is not an animal, or its box is wrong (a false positive)",
             **_DECIDE)
async def reject(request: Request, body: RejectRequest) -> dict[str, Any]:
    return await _decide(request, body, lambda p, w, c: review.reject(p, _key(body), w, c, body.reason))


@router.post("/v1/review/relabel", summary="A detection's box is right and its label is another", **_DECIDE)
async def relabel(request: Request, body: RelabelRequest) -> dict[str, Any]:
    return await _decide(request, body, review.relabel, _key(body), body.label)


@router.post("/v1/review/empty", summary="No animal in this image (its detections: false positives)", **_DECIDE)
async def empty(request: Request, body: EmptyRequest) -> dict[str, Any]:
    return await _decide(request, body, review.mark_empty, _image(body))


@router.post("/v1/review/add", summary="An animal the version missed: its box and label (a false negative)",
             **_DECIDE)
async def add_box(request: Request, body: AddBoxRequest) -> dict[str, Any]:
    return await _decide(request, body, review.add_box, _image(body), body.bbox, body.label)


def _listing(request: Request, place: SetPlace, camera: str | None, todo: bool, limit: int,
             offset: int) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot list images to review"):
        out = review.listing(place, camera, todo, limit, offset)
        # the pictures as the pictures views serve them: a link the page's <img> opens without the token, where the
        # tables' archive is known (else the boxes are shown without their picture)
        # the location as the request (or the default) named it, as the other views hand it to pictures_of: a
        # configured source is found by it (`url` drops a trailing slash and a file:// scheme)
        src = pictures_of(service_of(request).config, place.tables.storage.root_url, control_of(request).paths.check)
    for image in out["images"]:
        served = src.served or is_web(image["uri"])
        image["picture"] = file_url(service_of(request).link_key(), src.tables, image["uri"], "full") if served \
            else None
    return out


@router.get("/v1/review/images", tags=["review"], dependencies=[Depends(read_auth)], response_model=ReviewPage,
            summary="A version's images to review, each with its kept boxes and what people said of them")
async def images(request: Request, place: SetPlace = Depends(set_place), camera: str | None = None,
                 todo: bool = Query(True, description="only the images nobody reviewed yet"),
                 limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0)) -> dict[str, Any]:
    return await in_thread(_listing, request, place, camera, todo, limit, offset)


def _accuracy(place: SetPlace) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot measure"):
        return measure(place)


async def _version_place(request: Request, name: str, version: str, tables: str | None,
                         filters_hash: str | None) -> SetPlace:
    try:
        check_segment("model name", name)
        check_segment("version", version)
    except ValueError as exc:
        raise NotFoundError(f"no model version {name}:{version}: {exc}") from None
    return SetPlace(await opened_tables(request, tables), f"{name}:{version}", filters_hash,
                    service_of(request).config.store)


@router.get("/v1/models/{name}/{version}/accuracy", tags=["models"], dependencies=[Depends(read_auth)],
            summary="A version's precision, recall, F1 and confusion table from people's decisions in the tables")
async def accuracy(request: Request, name: str, version: str, tables: str | None = TABLES,
                   filters_hash: str | None = None) -> dict[str, Any]:
    return await in_thread(_accuracy, await _version_place(request, name, version, tables, filters_hash))


def _thresholds(place: SetPlace, target: float, min_label: int, min_camera: int) -> dict[str, Any]:
    with invalid_parameter("tables", "cannot propose thresholds"):
        return proposal(place, target, min_label, min_camera)


@router.get("/v1/models/{name}/{version}/thresholds", tags=["models"], dependencies=[Depends(read_auth)],
            summary="Per-label score thresholds reaching a target precision on people's reviews in the tables "
                    "(as `trapline models thresholds` proposes them)")
async def thresholds(request: Request, name: str, version: str,
                     q: Annotated[ThresholdsQuery, Query()]) -> dict[str, Any]:
    place = await _version_place(request, name, version, q.tables, q.filters_hash)
    return await in_thread(_thresholds, place, q.target_precision, q.min_label_evidence, q.min_camera_evidence)
