"""The classifier deployment: one Serve deployment per served classifier (`classifier-<name>`).

Each classifier is its own deployment, sized, replicated, batched and hot-swapped independently
of the detectors that route to it (a promote of `species` never touches `detector-*`). Versions,
aliases, admission and the batcher are the ones every model replica has (serve/versioned.py);
what is particular here is one batch: the crops of every request in it (each request brings the
crops of one image) go through one forward pass per version, and each crop's probabilities
become a `Classification` with the request's classifier filters, by `Classifier.answer`, the
code the library and batch jobs use.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ground.errors import CropGeometryChangedError, InvalidParameterError, ModelRunError
from model_store import Classification, Classifier, FilterSet, Interrupt, ModelRef, ModelStore
from model_store.core.filters.species import check_species
from serve.answers import CropGeometry
from serve.config import ClassifierServeConfig
from serve.protocol import core_error
from serve.versioned import VersionedReplica, current_request_id
from serve.versions import LoadedVersion

logger = logging.getLogger("ray.serve.trapline")

MAX_CROPS_PER_REQUEST = 1000  # a detector keeps at most a few hundred boxes; more is not a real image


@dataclass
class _Crops:
    """One request's crops waiting for a batch, with its version and filters."""

    loaded: LoadedVersion
    crops: list[np.ndarray]
    filters: FilterSet
    boxes: list[tuple[str, float] | None] | None = None  # each crop's detection (label, score): the species ensemble's
    enqueued: float = field(default_factory=time.perf_counter)


def geometry_of(classifier: Classifier, version: str | None = None) -> CropGeometry:
    p = classifier.config.preprocess
    return CropGeometry(version=version, padding=p.crop_padding, square=p.crop_square)


class ClassifierReplica(VersionedReplica):
    """Serves one classifier. Lifecycle as for every model replica (see VersionedReplica): `__init__` loads
    nothing, the first `reconfigure` loads, verifies and warms the served versions, the alias poller and
    the admin broadcasts swap them. Request methods: `geometry` (how the served version wants its crops
    cut) and `classify(crops, geometry, filter_specs)` -> one `Classification` per crop, in order.

    A classifier that fails on a batch fails those requests with `model_error` naming it (HTTP 500);
    the replica keeps serving.
    """

    kind = "classifier"

    def __init__(self, config: ClassifierServeConfig | dict[str, Any], store_root: str | None = None,
                 cache_dir: str | None = None) -> None:
        cfg = ClassifierServeConfig.model_validate(config)  # as build_app validated it (as DetectorReplica's)
        self.device = cfg.effective_device
        self.onnx_threads = cfg.effective_onnx_threads
        self._infer_pool = ThreadPoolExecutor(1, thread_name_prefix="trapline-classify")
        super().__init__(cfg.name, store_root, cache_dir, self._load_classifier, lambda clf: clf.warmup(),
                         extra_pools=(self._infer_pool,))

    def _load_classifier(self, store: ModelStore, version: str) -> Classifier:
        return store.load_classifier(ModelRef(self.model, version=version), device=self.device,
                                     threads=self.onnx_threads)

    async def geometry(self, ref: str | None = None) -> CropGeometry:
        """Crop geometry of the version `ref` (default: the default alias) resolves to here."""
        loaded = await self._resolve(ref)
        return geometry_of(loaded.model, loaded.version)

    async def classify(self, crops: list[np.ndarray], geometry: CropGeometry, filter_specs: list[dict] | None = None,
                       ref: str | None = None, boxes: list[tuple[str, float] | None] | None = None
                       ) -> list[Classification]:
        """Classify one image's crops (RGB uint8, cut with `geometry`) with the version `ref` resolves to."""
        request_id = current_request_id()
        t0 = time.perf_counter()
        try:
            if not isinstance(crops, list) or len(crops) > MAX_CROPS_PER_REQUEST or not all(
                    isinstance(c, np.ndarray) and c.dtype == np.uint8 and c.ndim == 3 and c.shape[2] == 3
                    and c.size for c in crops):
                raise InvalidParameterError(f"crops must be a list of at most {MAX_CROPS_PER_REQUEST} RGB uint8 "
                                            "(H, W, 3) arrays")
            with self._admit("online"):
                loaded = await self._resolve(ref)
                wanted = geometry_of(loaded.model, loaded.version)
                if not isinstance(geometry, CropGeometry) or (geometry.padding, geometry.square) != (
                        wanted.padding, wanted.square):
                    raise CropGeometryChangedError(
                        f"{self.model}:{loaded.version} cuts crops with padding {wanted.padding}, square "
                        f"{wanted.square}, not {geometry}", classifier=self.model, version=loaded.version,
                        padding=wanted.padding, square=wanted.square)
                filters = FilterSet.from_specs(filter_specs or [])
                filters.check_classifier_labels(self.model, loaded.model.config.labels)
                check_species(filters.classifier_filters(self.model), loaded.model.species)  # not in the batch
                if boxes is not None and len(boxes) != len(crops):
                    raise InvalidParameterError(f"boxes must give one detection per crop: {len(boxes)} for "
                                                f"{len(crops)} crops")
                results = await self.batcher.submit(_Crops(loaded, crops, filters, boxes)) if crops else []
        except Exception as exc:
            raise self._refused(exc, request_id, ref) from None
        self.metrics.request_ms.observe((time.perf_counter() - t0) * 1000,
                                        tags={"model": self.model, "version": loaded.version})
        return results

    async def _run_items(self, items: list[_Crops],
                         interrupt: Interrupt | None = None) -> list[list[Classification] | BaseException]:
        # Crops come from online requests and the batch job's own classify stage, never the bulk lane.
        return await self._in_pool(self._infer_pool, self._run_batch, items)

    def _run_batch(self, items: list[_Crops]) -> list[list[Classification] | BaseException]:
        """One forward pass per version present in the batch; an error fails only the requests it concerns."""
        outcomes: list[Any] = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(id(item.loaded), []).append(i)
        for idxs in groups.values():
            loaded = items[idxs[0]].loaded
            clf: Classifier = loaded.model
            t0 = time.perf_counter()
            try:
                probs = clf.predict([crop for i in idxs for crop in items[i].crops])
            except Exception as exc:  # noqa: BLE001 - reported to each request of this group, typed
                api = core_error(exc)
                message = f"classifier {self.model}:{loaded.version} failed: {api.message if api else exc}"
                logger.warning("%s (batch of %d requests)", message, len(idxs))
                for i in idxs:
                    outcomes[i] = ModelRunError(message, classifier=f"{self.model}:{loaded.version}")
                continue
            n_crops = len(probs)
            self.metrics.batch(loaded.version, n_crops, (time.perf_counter() - t0) * 1000)
            self.stats.batch(loaded.version, n_crops)
            start = 0
            for i in idxs:
                n = len(items[i].crops)
                boxes = items[i].boxes or [None] * n
                outcomes[i] = [clf.answer(row, items[i].filters, detection=boxes[j])
                               for j, row in enumerate(probs[start:start + n])]
                start += n
        return outcomes
