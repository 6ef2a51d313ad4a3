"""Antenna's `/process`, independent of how it is reached: fetch each image, run it through the served pipeline
(the same ingress `detect` as `POST /v1/detect`: detector replicas, batching, classifier routes, hot swap), and
answer each image with its detections or its typed error. The push door (serve/antenna/door.py) and the pull worker
(serve/antenna/worker.py, through the door) use it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ground.errors import ImagesFailedError, TraplineError
from model_store import ImageDetections
from serve.antenna.answers import image_detections
from serve.antenna.catalog import Algorithms, Catalog, ServedPipeline
from serve.antenna.fetch import ImageFetcher
from serve.antenna.protocol import (
    DetectionResponse,
    PipelineRequest,
    PipelineResults,
    SourceImageRequest,
    SourceImageResponse,
)

logger = logging.getLogger("ray.serve.trapline")

# (detector name, version, image bytes, the pipeline's `tiling`) -> the image's record, classifications attached
# (IngressCore.detect's)
Detect = Callable[[str, str, bytes, Any], Awaitable[ImageDetections]]
# (url, detector name, version, image bytes, its record or its failure) -> journaled in trapline's tables before it
# is answered (serve/antenna/records.py `SourceRecorder.record`, when `antenna.record` is set)
RecordImage = Callable[[str, str, str, bytes, "ImageDetections | TraplineError"], Awaitable[object]]


@dataclass
class ImageOutcome:
    image: SourceImageRequest
    detections: list[DetectionResponse] | None = None
    error: TraplineError | None = None

    @property
    def message(self) -> str:
        assert self.error is not None
        return f"image {self.image.id}: {self.error.code}: {self.error.message}"


class Processor:
    """Lifecycle: built once per door with the catalog (store reads) and the detect call; `process` per request."""

    def __init__(self, catalog: Catalog, detect: Detect, fetcher: ImageFetcher,
                 record: RecordImage | None = None, fail_request: bool = False) -> None:
        self.catalog = catalog
        self.fail_request = fail_request  # antenna.push_failures: fail_request
        self.algorithms = Algorithms(catalog.store)
        self.detect = detect
        self.fetcher = fetcher
        self.record = record

    async def resolve(self, slug: str) -> ServedPipeline:
        return await asyncio.to_thread(self.catalog.resolve, slug)

    async def images(self, pipeline: ServedPipeline, images: list[SourceImageRequest]) -> list[ImageOutcome]:
        """Each image's detections, or the typed error that stopped it (fetch, decode, the model): never raises for
        one image. With recording, an image is journaled before it is answered; one that cannot be journaled is
        answered as that error (Antenna and the tables then agree: neither has it)."""
        bodies = await self.fetcher.fetch_all([i.url for i in images])
        detector = pipeline.detector

        async def one(image: SourceImageRequest, body: bytes | TraplineError) -> ImageOutcome:
            if isinstance(body, TraplineError):
                return ImageOutcome(image, error=body)
            try:
                outcome: ImageDetections | TraplineError = await self.detect(detector.name, detector.version, body,
                                                                             pipeline.config.tiling)
            except TraplineError as exc:
                outcome = exc
            try:
                if self.record is not None:
                    await self.record(image.url, detector.name, detector.version, body, outcome)
                if isinstance(outcome, TraplineError):
                    return ImageOutcome(image, error=outcome)
                dets = await asyncio.to_thread(image_detections, image.id, outcome, self.algorithms.get)
            except TraplineError as exc:
                return ImageOutcome(image, error=exc)
            return ImageOutcome(image, detections=dets)

        outcomes = await asyncio.gather(*(one(i, b) for i, b in zip(images, bodies, strict=True)))
        for o in outcomes:
            if o.error is not None:
                logger.warning("antenna: %s", o.message)
        return list(outcomes)

    async def process(self, request: PipelineRequest) -> PipelineResults:
        """Push mode: one answer for the request. An image that failed is left out of `source_images` (so Antenna
        does not mark it processed) and named in `errors`; when none was answered (or any failed, with
        `fail_request`), the request is answered with ImagesFailedError naming each one: the only answer whose
        message reaches Antenna's job log and failed count."""
        t0 = time.perf_counter()
        pipeline = await self.resolve(request.pipeline)
        outcomes = await self.images(pipeline, request.source_images)
        failed = [o for o in outcomes if o.error is not None]
        if failed and (self.fail_request or len(failed) == len(outcomes)):
            raise ImagesFailedError(f"{len(failed)} of {len(outcomes)} images could not be answered: "
                                    + "; ".join(f"{o.message} ({o.image.url})" for o in failed),
                                    images=[{"id": o.image.id, "url": o.image.url, "type": o.error.code,
                                             "reason": getattr(o.error, "reason", None), "message": o.error.message}
                                            for o in failed if o.error is not None])
        return results(request.pipeline, [o for o in outcomes if o.error is None], time.perf_counter() - t0,
                       [o.message for o in outcomes if o.error is not None] or None)

    async def process_each(self, request: PipelineRequest) -> ImageResults:
        """Pull mode: each image answered on its own, as Antenna takes one result per task."""
        t0 = time.perf_counter()
        pipeline = await self.resolve(request.pipeline)
        outcomes = await self.images(pipeline, request.source_images)
        seconds = (time.perf_counter() - t0) / max(1, len(outcomes))
        return ImageResults(pipeline=request.pipeline, images=[
            ImageResult(id=o.image.id, error=ImageError(type=o.error.code, message=o.error.message))
            if o.error is not None else ImageResult(id=o.image.id, result=results(request.pipeline, [o], seconds))
            for o in outcomes])


class ImageError(BaseModel):
    type: str
    message: str


class ImageResult(BaseModel):
    id: str
    result: PipelineResults | None = None
    error: ImageError | None = None


class ImageResults(BaseModel):
    """Pull mode's answer: one entry per image, in the request's order."""

    pipeline: str
    images: list[ImageResult]


def results(slug: str, done: list[ImageOutcome], seconds: float, errors: list[str] | None = None) -> PipelineResults:
    return PipelineResults(pipeline=slug, total_time=round(seconds, 6),
                           source_images=[SourceImageResponse(id=o.image.id, url=o.image.url) for o in done],
                           detections=[d for o in done for d in o.detections or []], errors=errors)
