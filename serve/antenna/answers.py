"""One image's trapline record as Antenna's detections: pixel x1,y1,x2,y2 boxes, the detector's label as a
classification (terminal only when no classifier answered), each classifier's answer with its scores."""

from __future__ import annotations

import datetime
from collections.abc import Callable

from model_store import ImageDetections
from model_store.core.records import Classification, Detection
from model_store.store.versions import ModelVersion
from serve.antenna.catalog import classifier_labels
from serve.antenna.protocol import (
    AlgorithmConfig,
    AlgorithmReference,
    BoundingBox,
    ClassificationResponse,
    DetectionResponse,
)

# (model name, version, is a classifier) -> its Antenna algorithm and store version (serve/antenna/catalog.py)
AlgorithmOf = Callable[[str, str, bool], tuple[AlgorithmConfig, ModelVersion]]


def _ref(algorithm: AlgorithmConfig) -> AlgorithmReference:
    return AlgorithmReference(name=algorithm.name, key=algorithm.key)


def _classification(c: Classification, algorithm_of: AlgorithmOf, now: datetime.datetime) -> ClassificationResponse:
    algorithm, mv = algorithm_of(c.model.name, c.model.version, True)
    names = dict(zip(mv.config.labels, classifier_labels(mv), strict=True))
    # A rolled-up answer (a higher taxon than any label) is already a taxon's name: Antenna takes it as it is.
    label = names.get(c.label, c.label)
    if c.scores:  # the whole vector, in the category map's order
        return ClassificationResponse(classification=label, labels=algorithm.category_map.labels,
                                      scores=list(c.scores), algorithm=_ref(algorithm), terminal=True, timestamp=now)
    top = c.top or []
    return ClassificationResponse(
        classification=label, labels=[names.get(t.label, t.label) for t in top] or [label],
        scores=[t.score for t in top] or [c.score], algorithm=_ref(algorithm), terminal=True, timestamp=now)


def _detection(image_id: str, d: Detection, detector: AlgorithmConfig, algorithm_of: AlgorithmOf,
               inference_s: float | None, now: datetime.datetime) -> DetectionResponse:
    x1, y1, x2, y2 = (float(v) for v in d.box_px)
    classes = [_classification(c, algorithm_of, now) for c in d.classifications]
    own = ClassificationResponse(classification=d.label, labels=[d.label], scores=[float(d.score)],
                                 algorithm=_ref(detector), terminal=not classes, timestamp=now)
    return DetectionResponse(source_image_id=image_id, bbox=BoundingBox(x1=x1, y1=y1, x2=x2, y2=y2),
                             inference_time=inference_s, algorithm=_ref(detector), timestamp=now,
                             classifications=[own, *classes])


def image_detections(image_id: str, record: ImageDetections, algorithm_of: AlgorithmOf) -> list[DetectionResponse]:
    """The kept detections of one image (what a filter dropped stays in trapline's record only)."""
    detector, _ = algorithm_of(record.model.name, record.model.version, False)
    now = datetime.datetime.now(datetime.UTC)
    infer_ms = record.timing_ms.get("infer")
    inference_s = round(infer_ms / 1000, 6) if infer_ms is not None else None
    return [_detection(image_id, d, detector, algorithm_of, inference_s, now) for d in record.detections]
