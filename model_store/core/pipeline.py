"""A pipeline: one detector, then classifiers for the detections whose labels are routed to them.

    animal  -> demo-species        (a route: detector labels -> one classifier model)

The classifier stage is the same code everywhere: `crop_jobs` cuts the crops of one image's
kept detections (from the full-resolution image), a classifier turns them into probabilities,
and `attach` writes the `Classification` records onto the detections. The library
(`Pipeline.classify`), the batch classify stage and the Serve composition call exactly these.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from model_store.core.classifier import Classifier
from model_store.core.config import ClassifierConfig, ConfigError
from model_store.core.crops import big_enough, crop_box
from model_store.core.filters import FilterSet
from model_store.core.records import Classification, Detection, ImageDetections, ModelInfo
from model_store.core.refs import ModelRef


class ClassifierRoute(BaseModel):
    """One classifier of a pipeline and the detector labels routed to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(..., description="NAME, NAME:VERSION or NAME@ALIAS of an onnx-classifier model")
    labels: list[str] = Field(default_factory=list, description=(
        "detector labels whose kept detections go to this classifier (default: the classifier's applies_to, "
        "else every label)"))
    min_crop_px: int = Field(8, ge=1, le=4096, description="boxes with a shorter side under this are not classified")

    @classmethod
    def parse(cls, text: str) -> ClassifierRoute:
        """`REF` or `REF=label,label` (the --classify form)."""
        ref, sep, labels = text.partition("=")
        ModelRef.parse(ref)  # InvalidRefError with the usual message
        route = [x.strip() for x in labels.split(",") if x.strip()] if sep else []
        if sep and not route:
            raise ConfigError(f"--classify {text!r}: give detector labels after '=' (e.g. {ref}=animal)")
        return cls(model=ref, labels=route)


@dataclass(frozen=True)
class CropSpec:
    """Which detections one classifier takes and how their crops are cut: all `crop_jobs` needs.

    A `ResolvedRoute` gives it from its pinned version's config; the Serve door builds it from the
    version its classifier replicas serve (serve/compose.py), without loading the model."""

    labels: tuple[str, ...]  # detector labels routed here; () = every label
    min_crop_px: int
    padding: float
    square: bool

    def takes(self, label: str) -> bool:
        return not self.labels or label in self.labels


@dataclass(frozen=True)
class ResolvedRoute:
    """A route pinned to one classifier version, its labels checked against the detector's."""

    name: str
    version: str
    sha256: str
    labels: tuple[str, ...]  # detector labels routed here; () = every label
    min_crop_px: int
    config: ClassifierConfig

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def info(self) -> ModelInfo:
        return ModelInfo(name=self.name, version=self.version, sha256=self.sha256)

    def takes(self, label: str) -> bool:
        return not self.labels or label in self.labels

    @property
    def crop_spec(self) -> CropSpec:
        p = self.config.preprocess
        return CropSpec(self.labels, self.min_crop_px, p.crop_padding, p.crop_square)

    def identity(self) -> dict:
        """What the results depend on: the pinned version and its routing (part of the result-set hash)."""
        return {"name": self.name, "version": self.version, "sha256": self.sha256, "labels": list(self.labels),
                "min_crop_px": self.min_crop_px}


def resolve_routes(store, routes: Sequence[ClassifierRoute | str], detector_labels: Sequence[str] | None,
                   filters: FilterSet | None = None) -> list[ResolvedRoute]:
    """Pin each route's classifier (alias -> version), check it is a classifier, its labels and the filters.

    `detector_labels` None skips the label check (routes that were checked where they were planned)."""
    out = []
    for route in routes:
        route = ClassifierRoute.parse(route) if isinstance(route, str) else route
        mv = store.get(route.model)
        if not mv.is_classifier:
            raise ConfigError(f"{mv.ref} is a detector (backend {mv.config.backend}); --classify needs a classifier "
                              "(backend onnx-classifier)")
        labels = tuple(route.labels or mv.config.applies_to)
        unknown = [label for label in labels if detector_labels is not None and label not in detector_labels]
        if unknown:
            raise ConfigError(f"classifier {mv.ref} is routed detector labels {unknown!r} that the detector does not "
                              f"have; it has {list(detector_labels)!r}")
        if filters is not None:
            filters.check_classifier_labels(mv.name, mv.config.labels)
        out.append(ResolvedRoute(mv.name, mv.version, mv.config.weights.sha256, labels, route.min_crop_px, mv.config))
    names = [r.name for r in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"each classifier model may appear once in a pipeline, got {names!r}")
    return out


IDENTITY_KEYS = ("name", "version", "sha256", "labels", "min_crop_px")


def result_hash(filters: FilterSet, routes: Sequence[ResolvedRoute | Mapping],
                tiling: Mapping[str, Any] | None = None) -> str:
    """The identity of a result set: the filter set's hash alone without classifiers or tiling (so detector-only
    tables keep their keys), else a hash of the filters, every classifier version and route, and the tiling
    settings (`TilingConfig.describe`: tiled boxes are other boxes).

    `routes` are resolved routes, or their `routes_metadata` entries as stored tables record them."""
    if not routes and not tiling:
        return filters.hash
    ids = [r.identity() if isinstance(r, ResolvedRoute) else {k: r[k] for k in IDENTITY_KEYS} for r in routes]
    identity: dict[str, Any] = {"filters": filters.as_specs(), "classifiers": ids}
    if tiling:
        # `geometry` came after the first tiled sets: SAHI's geometry (the only one then) is left out, so sets tiled
        # before it keep their keys and are skipped, not re-run
        identity["tiling"] = {k: v for k, v in tiling.items() if (k, v) != ("geometry", "sahi")}
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass
class CropJob:
    """One crop waiting for one classifier: which detection of which image it belongs to."""

    image: int  # position of the image in the batch
    detection: int  # position in the image's `ranked()` list (= detection_index in the tables)
    route: int  # position of the classifier in the pipeline
    crop: np.ndarray
    box: tuple[str, float] | None = None  # the detection's label and score (the species ensemble reads them)
    location: Any = None  # where the camera stood (a species `Location`), when the caller knows


def crop_jobs(rgb: np.ndarray, ranked: Sequence[tuple[Detection, bool]],
              routes: Sequence[ResolvedRoute | CropSpec], image: int = 0) -> list[CropJob]:
    """The crops one image's kept detections need, one job per (detection, routed classifier).

    `ranked` is `ImageDetections.ranked()` (or the same list rebuilt from a table's rows in
    detection_index order): a job's `detection` is its position there.
    """
    specs = [r.crop_spec if isinstance(r, ResolvedRoute) else r for r in routes]
    jobs = []
    for j, (det, kept) in enumerate(ranked):
        if not kept:
            continue
        for k, spec in enumerate(specs):
            if spec.takes(det.label) and big_enough(det.box_px, spec.min_crop_px):
                jobs.append(CropJob(image, j, k, crop_box(rgb, det.box_px, spec.padding, spec.square),
                                    (det.label, float(det.score))))
    return jobs


def attach(records: Sequence[ImageDetections], jobs: Sequence[CropJob],
           results: Sequence[Classification]) -> None:
    """Put each job's classification on its detection (in place), in pipeline order."""
    ranked = [r.ranked() for r in records]
    for job, result in sorted(zip(jobs, results, strict=True), key=lambda p: p[0].route):
        ranked[job.image][job.detection][0].classifications.append(result)


def classify_jobs(classifiers: Sequence[Classifier], jobs: Sequence[CropJob],
                  filters: FilterSet | None) -> list[Classification]:
    """Run every classifier once over its jobs' crops; results in job order."""
    out: list[Classification | None] = [None] * len(jobs)
    for k, classifier in enumerate(classifiers):
        mine = [i for i, job in enumerate(jobs) if job.route == k]
        if not mine:
            continue
        answers = classifier.classify([jobs[i].crop for i in mine], filters, detections=[jobs[i].box for i in mine],
                                      locations=[jobs[i].location for i in mine])
        for i, result in zip(mine, answers, strict=True):
            out[i] = result
    return out  # type: ignore[return-value]


class Pipeline:
    """The classifier stage of a pipeline, loaded: classifiers in route order.

    Lifecycle: `Pipeline.load(store, routes)` once per process / actor (each classifier's
    weights sha256-verified); `classify(images, records)` then adds classifications to records
    that the detector produced for those images, any number of times.
    """

    def __init__(self, routes: Sequence[ResolvedRoute], classifiers: Sequence[Classifier]) -> None:
        self.routes = list(routes)
        self.classifiers = list(classifiers)

    @classmethod
    def load(cls, store, routes: Sequence[ResolvedRoute], device: str = "cpu", threads: int | None = None) -> Pipeline:
        return cls(routes, [store.load_classifier(r.ref, device=device, threads=threads) for r in routes])

    def classify(self, images: Sequence[np.ndarray], records: Sequence[ImageDetections],
                 filters: FilterSet | None = None) -> None:
        """Classify the routed kept detections of `records` (in place), cropping from the matching `images`."""
        jobs = [job for i, (rgb, rec) in enumerate(zip(images, records, strict=True))
                for job in crop_jobs(rgb, rec.ranked(), self.routes, i)]
        attach(records, jobs, classify_jobs(self.classifiers, jobs, filters))


def routes_metadata(routes: Sequence[ResolvedRoute]) -> list[dict]:
    """What tables record about a pipeline's classifiers (enough to re-filter and export without the store)."""
    return [{**r.identity(), "labels_out": list(r.config.labels), "taxonomy": dict(r.config.taxonomy),
             "taxonomy_ranks": list(r.config.taxonomy_ranks), "top_k": r.config.top_k} for r in routes]


def config_from_metadata(meta: Mapping) -> ClassifierConfig:
    """A stand-in classifier config rebuilt from `routes_metadata` (labels, taxonomy, top_k), for re-filtering."""
    return ClassifierConfig.model_construct(
        backend="onnx-classifier", labels=list(meta["labels_out"]), taxonomy=dict(meta.get("taxonomy") or {}),
        taxonomy_ranks=list(meta.get("taxonomy_ranks") or []), top_k=int(meta.get("top_k") or 5))
