"""What trapline tells Antenna it runs (`/info`), read from the model store, never from the replicas.

Antenna's rules decide the names (ami/ml/models/): an algorithm is (key, version) with a globally unique slug key and
a category map that is never replaced once set, and a pipeline's algorithms are keyed by key alone with exactly one
detector. So each served version is its own algorithm, keyed `NAME-N` with version N; a promoted classifier adds its
new algorithm to the same pipeline; a promoted detector is a new pipeline, `SLUG-vN`, and a job Antenna started on
`SLUG-vM` keeps being answered by detector version M (a pin, loaded on demand by the replicas).
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass

from ground.errors import InvalidParameterError, TilingConfigError
from model_store import ModelRef, ModelStore
from model_store.core.tiling import resolve_tiling
from model_store.store.versions import ModelVersion, version_sort_key
from serve.antenna.protocol import AlgorithmConfig, CategoryMap, PipelineConfig, PipelineStage, ServiceInfo
from serve.antenna_config import AntennaConfig, AntennaPipelineConfig
from serve.config import ServeConfig

CATALOG_TTL_S = 2.0  # as often as replicas re-read their aliases (alias_poll_interval_s)
_NOT_SLUG = re.compile(r"[^A-Za-z0-9_-]+")


def antenna_version(store: ModelStore, mv: ModelVersion) -> int:
    """Antenna's integer version of a store version: the number itself, or its rank among the model's versions."""
    if mv.version.isdigit():
        return int(mv.version)
    ordered = sorted(store.list_versions(mv.name), key=version_sort_key)
    return ordered.index(mv.version) + 1


def algorithm_key(mv: ModelVersion, version: int) -> str:
    return _NOT_SLUG.sub("-", f"{mv.name}-{version}").strip("-")


@dataclass(frozen=True)
class ServedPipeline:
    """One pipeline as /info lists it now, with the store versions it stands for."""

    config: AntennaPipelineConfig
    detector: ModelVersion
    classifier: ModelVersion | None
    info: PipelineConfig

    @property
    def slug(self) -> str:
        return self.info.slug

    def algorithm(self, classifier: bool = False) -> AlgorithmConfig:
        return self.info.algorithms[1 if classifier else 0]


def served_slug(pipeline: AntennaPipelineConfig, detector_version: int) -> str:
    return f"{pipeline.slug}-v{detector_version}"


def _detector_algorithm(store: ModelStore, mv: ModelVersion) -> AlgorithmConfig:
    version = antenna_version(store, mv)
    labels = list(mv.config.labels)
    return AlgorithmConfig(
        name=f"{mv.name} (trapline)", key=algorithm_key(mv, version), version=version, version_name=mv.version,
        task_type="segmentation" if getattr(mv.config, "task", "detect") == "segment" else "detection",
        description=f"trapline detector {mv.name}:{mv.version} (sha256 {mv.sha256[:12]})",
        category_map=CategoryMap(labels=labels, data=[{"index": i, "label": x} for i, x in enumerate(labels)],
                                 version=mv.version))


def tiling_stages(pipeline: AntennaPipelineConfig, mv: ModelVersion) -> list[PipelineStage]:
    """The pipeline's tiled inference as /info's one place for it, a stage (none: its images run plain): the settings
    that run (its `tiling` over the detector's, as /v1/models and every record say them), or why each image is
    refused (a tile that does not fit this detector)."""
    cfg = mv.config
    try:
        tiling = resolve_tiling(cfg.tiling, pipeline.tiling, cfg.input_size, cfg.task)
    except TilingConfigError as exc:
        return [PipelineStage(key="tiling", name="tiled inference", description=f"each image refused: {exc.message}")]
    if tiling is None:
        return []
    return [PipelineStage(key="tiling", name="tiled inference",
                          description=json.dumps(tiling.describe(cfg.input_size), separators=(", ", ": ")))]


def classifier_labels(mv: ModelVersion) -> list[str]:
    """Antenna's label of each class, in the classifier's order: the scientific name (the taxonomy path's last
    entry) where the classifier's config has one, else its own label. Antenna creates its taxa from these."""
    taxonomy = mv.config.taxonomy
    return [taxonomy[x][-1] if x in taxonomy else x for x in mv.config.labels]


def _classifier_algorithm(store: ModelStore, mv: ModelVersion) -> AlgorithmConfig:
    version = antenna_version(store, mv)
    cfg = mv.config
    data = []
    for i, (label, name) in enumerate(zip(cfg.labels, classifier_labels(mv), strict=True)):
        entry = {"index": i, "label": name}
        path = cfg.taxonomy.get(label)
        if path and cfg.taxonomy_ranks:  # the label's own rank: the level its path ends at
            entry["taxon_rank"] = cfg.taxonomy_ranks[len(path) - 1].upper()
            entry["taxon_path"] = list(path)
        if name != label:
            entry["trapline_label"] = label
        data.append(entry)
    return AlgorithmConfig(
        name=f"{mv.name} (trapline)", key=algorithm_key(mv, version), version=version, version_name=mv.version,
        task_type="classification", description=cfg.description or f"trapline classifier {mv.name}:{mv.version}",
        category_map=CategoryMap(labels=[d["label"] for d in data], data=data, version=mv.version))


class Catalog:
    """The service's pipelines as Antenna sees them, re-read from the store at most every CATALOG_TTL_S seconds
    (a promotion shows in /info within that). Blocking: call it from a thread."""

    def __init__(self, config: ServeConfig, store: ModelStore) -> None:
        assert config.antenna is not None
        self.config = config
        self.antenna: AntennaConfig = config.antenna
        self.store = store
        self._lock = threading.Lock()
        self._cached: tuple[float, list[ServedPipeline]] | None = None

    def _served(self, model: str, classifier: bool) -> ModelVersion:
        served = self.config.classifier(model) if classifier else self.config.model(model)
        return self.store.get(ModelRef(model, alias=served.aliases[0]))

    def pipeline_at(self, p: AntennaPipelineConfig, detector: ModelVersion) -> ServedPipeline:
        """The pipeline `p` with this detector version and the classifier its alias serves now."""
        classifier = self._served(p.classifier, True) if p.classifier else None
        algorithms = [_detector_algorithm(self.store, detector)]
        if classifier is not None:
            algorithms.append(_classifier_algorithm(self.store, classifier))
        version = algorithms[0].version
        info = PipelineConfig(name=p.name or p.slug, slug=served_slug(p, version), version=version,
                              description=p.description or None, algorithms=algorithms,
                              stages=tiling_stages(p, detector))
        return ServedPipeline(p, detector, classifier, info)

    def pipelines(self) -> list[ServedPipeline]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > CATALOG_TTL_S:
                served = [self.pipeline_at(p, self._served(p.detector, False)) for p in self.antenna.pipelines]
                self._cached = (now, served)
            return self._cached[1]

    def info(self) -> ServiceInfo:
        return ServiceInfo(name=self.antenna.name, description=self.antenna.description,
                           pipelines=[p.info for p in self.pipelines()])

    def answerable(self) -> list[str]:
        """Every slug `resolve` answers: each pipeline at each version of its detector in the store (a pull worker
        started after a promotion still finds the jobs Antenna runs on the earlier slugs)."""
        return [served_slug(p, antenna_version(self.store, self.store.get(ModelRef(p.detector, version=v))))
                for p in self.antenna.pipelines for v in sorted(self.store.list_versions(p.detector),
                                                                 key=version_sort_key)]

    def resolve(self, slug: str) -> ServedPipeline:
        """The pipeline a request names: one /info lists now, or `SLUG-vM` of an earlier detector version M (a job
        Antenna started before a promotion), answered by that version."""
        for p in self.pipelines():
            if p.slug == slug:
                return p
        for p in self.antenna.pipelines:
            prefix = f"{p.slug}-v"
            if slug.startswith(prefix) and slug[len(prefix):].isdigit():
                wanted = int(slug[len(prefix):])
                for version in self.store.list_versions(p.detector):
                    mv = self.store.get(ModelRef(p.detector, version=version))
                    if antenna_version(self.store, mv) == wanted:
                        return self.pipeline_at(p, mv)
        served = [p.slug for p in self.pipelines()]
        raise InvalidParameterError(f"pipeline {slug!r} is not served here (served: {served})", pipeline=slug)


class Algorithms:
    """The Antenna algorithm of the store version that actually answered (during a swap it can be the previous one),
    built once per version. Blocking: call it from a thread."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self._known: dict[tuple[str, str], tuple[AlgorithmConfig, ModelVersion]] = {}

    def get(self, name: str, version: str, classifier: bool) -> tuple[AlgorithmConfig, ModelVersion]:
        known = self._known.get((name, version))
        if known is None:
            mv = self.store.get(ModelRef(name, version=version))
            build = _classifier_algorithm if classifier else _detector_algorithm
            known = self._known[(name, version)] = (build(self.store, mv), mv)
        return known
