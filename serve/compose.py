"""The classifier stage of the online door: kept detections -> crops -> classifier deployments -> records.

    HTTP -> [ingress core] -> detector-NAME (decode, detect, cut crops) -> [ingress core]
         -> classifier-SPECIES (batched, versioned) -> [ingress core] attach -> JSON

Where the crops are cut, and why there: in the detector replica, right after its batch. It has
just decoded the image at full resolution; cutting there costs a few slices, and only the crops
(a few KB each) travel on. Decoding again wherever the HTTP request is handled would cost a
second full decode per image (tens to hundreds of ms of CPU for a camera-trap JPEG) on the
ingress's small CPU share in the multi-model layout; shipping the decoded image instead would
move megabytes through the object store. With one model (`http.one_hop`) the detector replica
*is* the ingress, so the crops never leave the process either way.

The crops are cut with the geometry (padding, square) of the classifier version its replicas
serve, which this module learns from them (`geometry`) and keeps. A classifier replica checks
the geometry it receives against the version it picks; if a hot swap changed it, it refuses with
`CropGeometryChangedError` carrying the new one, and the request is run once more with it
(`IngressCore.detect`), so a record's crops always match the classifier version named in it.
The crop cutting (`crop_jobs`), the classifier answer (`Classifier.answer`) and `attach` are the
shared code of model_store/core/pipeline.py, so an HTTP record equals the library's and batch's.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_store import CropOptions, ImageDetections
from model_store.core.crops import crop_region, snip_jpeg
from model_store.core.pipeline import ClassifierRoute, CropSpec, attach, crop_jobs
from serve.answers import CropGeometry, CropOut, DetectAnswer


@dataclass(frozen=True)
class CropRequest:
    """What the detector replica cuts for one request: crops per classifier route, and snips to return."""

    routes: tuple[CropSpec, ...] = ()
    snips: CropOptions | None = None
    max_snips: int = 0

    @property
    def needs_image(self) -> bool:
        return bool(self.routes) or self.snips is not None


def cut_crops(rgb: np.ndarray, answer: DetectAnswer, request: CropRequest) -> None:
    """Add to `answer` the classifier crops (`crop_jobs`) and the JPEG snips (highest-scoring kept detections
    first, at most `max_snips`) of its image; snips are keyed by detection_index (position in `record.ranked()`)."""
    ranked = answer.record.ranked()
    if request.routes:
        answer.jobs = crop_jobs(rgb, ranked, request.routes)
    if request.snips is None:
        return
    h, w = rgb.shape[:2]
    answer.snips_truncated = False
    for j, (det, kept) in enumerate(ranked):
        if not kept:
            continue
        if len(answer.snips) >= request.max_snips:
            answer.snips_truncated = True
            break
        jpeg = snip_jpeg(rgb, det.box_px, request.snips, det.mask)
        if jpeg is not None:
            x0, y0, x1, y1 = crop_region(det.box_px, w, h, request.snips.padding, request.snips.square)
            answer.snips[j] = CropOut(jpeg_base64=base64.b64encode(jpeg).decode("ascii"), width=x1 - x0,
                                      height=y1 - y0)


Call = Callable[[Awaitable[Any]], Awaitable[Any]]


class Composer:
    """Routes of each detector, the classifier handles and their crop geometry; built once per ingress core.

    `crop_request` says what the detector must cut for a request; `finish` sends the crops to the
    classifier deployments (one call per classifier, concurrently; each batches with other
    requests in its replicas) and attaches the answers. `call` maps handle errors to API errors.
    """

    def __init__(self, routes: Mapping[str, Sequence[ClassifierRoute]], handles: Mapping[str, Any],
                 call: Call) -> None:
        self.routes = {name: list(r) for name, r in routes.items()}
        self.handles = dict(handles)
        self._call = call
        self._geometry: dict[str, CropGeometry] = {}

    def classifiers_of(self, model: str) -> list[ClassifierRoute]:
        return self.routes.get(model, [])

    async def geometry(self, classifier: str) -> CropGeometry:
        """How the version the classifier's replicas serve wants its crops cut; asked once, then kept."""
        if classifier not in self._geometry:
            self.learn(classifier, await self._call(self.handles[classifier].geometry.remote()))
        return self._geometry[classifier]

    def learn(self, classifier: str, geometry: CropGeometry) -> None:
        self._geometry[classifier] = geometry

    async def crop_request(self, model: str, classify: bool, snips: CropOptions | None,
                           max_snips: int) -> CropRequest | None:
        routes = self.classifiers_of(model) if classify else []
        if not routes and snips is None:
            return None
        specs = []
        for route in routes:
            geometry = await self.geometry(route.model)
            specs.append(CropSpec(tuple(route.labels), route.min_crop_px, geometry.padding, geometry.square))
        return CropRequest(tuple(specs), snips, max_snips)

    async def finish(self, model: str, answer: DetectAnswer, request: CropRequest | None) -> DetectAnswer:
        """The detector's answer with the classifier answers attached to its record (in place)."""
        if request is None or not request.routes:
            return answer
        record: ImageDetections = answer.record
        jobs = answer.jobs
        if jobs:
            by_route: dict[int, list[int]] = {}
            for i, job in enumerate(jobs):
                by_route.setdefault(job.route, []).append(i)
            routes = self.classifiers_of(model)
            filter_specs = record.filters.configs
            calls = [self._call(self.handles[routes[k].model].classify.remote(
                [jobs[i].crop for i in idxs], _geometry_of(request.routes[k]), filter_specs,
                boxes=[jobs[i].box for i in idxs]))
                for k, idxs in by_route.items()]
            results: list[Any] = [None] * len(jobs)
            for idxs, answers in zip(by_route.values(), await asyncio.gather(*calls), strict=True):
                for i, result in zip(idxs, answers, strict=True):
                    results[i] = result
            attach([record], jobs, results)
        answer.jobs = []  # the crops have been classified: the answer no longer holds their pixels
        answer.classified = True
        return answer


def _geometry_of(spec: CropSpec) -> CropGeometry:
    return CropGeometry(padding=spec.padding, square=spec.square)
