"""The detector core: preprocess -> infer -> decode boxes -> NMS -> post-processing filters.

Both the online service and the batch jobs call exactly this code.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .backends import Backend
from .config import ModelConfig
from .filters import DetectionArrays, FilterSet
from .preprocess import LetterboxMeta, Preprocessor, to_tensor, unletterbox
from .records import Detection, FiltersApplied, ImageDetections, ModelInfo
from .yolo import RawDetections, candidates, nms

FilterOverrides = Mapping[str, Mapping[str, Any] | None]


class Detector:
    """One loaded model version.

    Lifecycle: built once per process, replica or actor by `ModelStore.load_detector`, which
    verifies the weights' sha256 before the backend ever opens them. After that,
    `predict_batch` (or the three stages `prepare` / `infer` / `postprocess`, which batch jobs
    run in different places) may be called any number of times. Instances are not
    thread-safe for concurrent `infer` calls on GPU; give each worker its own.
    """

    def __init__(self, info: ModelInfo, config: ModelConfig, backend: Backend) -> None:
        self.info = info
        self.config = config
        self.backend = backend
        self.default_filters = config.default_filters()
        self.preprocessor = Preprocessor(config)

    @property
    def device(self) -> str:
        return self.backend.device

    def filters(self, overrides: FilterOverrides | FilterSet | None = None) -> FilterSet:
        """The default filters with per-call overrides applied and checked against the labels."""
        if isinstance(overrides, FilterSet):
            fs = overrides
        else:
            fs = self.default_filters.with_overrides(overrides)
        fs.check_labels(self.config.labels)
        return fs

    def prepare(self, rgb: np.ndarray) -> tuple[np.ndarray, LetterboxMeta]:
        """Letterbox one RGB image into an HWC uint8 model input plus the metadata to map boxes back."""
        return self.preprocessor.prepare(rgb)

    def prepare_bytes(self, data: bytes, max_pixels: int) -> tuple[np.ndarray, LetterboxMeta]:
        """Decode image bytes (JPEGs scaled down where that loses nothing) and letterbox them."""
        return self.preprocessor.prepare_bytes(data, max_pixels)

    def infer(self, prepared: Sequence[np.ndarray]) -> np.ndarray:
        """Run a batch of prepared inputs through the backend; returns the raw output tensor."""
        return self.backend.run(to_tensor(prepared, self.config.preprocess))

    def decode(self, raw_one: np.ndarray) -> RawDetections:
        """Boxes above the score threshold after NMS, in model-input pixels."""
        cfg = self.config
        cands = candidates(raw_one, cfg.output_layout, cfg.num_classes, cfg.score_threshold)
        return nms(cands, cfg.nms_iou, cfg.max_detections, cfg.class_agnostic_nms)

    def postprocess(
        self, raw_one: np.ndarray, meta: LetterboxMeta, filters: FilterSet | None = None,
        timing_ms: dict[str, float] | None = None,
    ) -> ImageDetections:
        """Decode one image's raw output into an ImageDetections record."""
        filters = self.default_filters if filters is None else filters
        dets = self.decode(raw_one)
        boxes = unletterbox(dets.boxes_xyxy, meta)
        arrays = DetectionArrays(boxes, dets.scores, dets.class_ids, self.config.labels, meta.width, meta.height)
        kept, flags = filters.apply(arrays)
        kept_list, dropped = [], []
        w, h = float(meta.width), float(meta.height)
        for i in range(len(dets.scores)):
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            det = Detection(
                label=self.config.labels[int(dets.class_ids[i])],
                class_id=int(dets.class_ids[i]),
                score=round(float(dets.scores[i]), 6),
                bbox=(x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h),
                box_px=(x1, y1, x2, y2),
                flags=flags[i],
            )
            (kept_list if kept[i] else dropped).append(det)
        return ImageDetections(
            model=self.info, width=meta.width, height=meta.height, detections=kept_list, dropped=dropped,
            filters=FiltersApplied(names=filters.names, hash=filters.hash, configs=filters.as_specs()),
            timing_ms=timing_ms or {},
        )

    def predict_batch(
        self, images: Sequence[np.ndarray], filters: FilterOverrides | FilterSet | None = None
    ) -> list[ImageDetections]:
        """Detect objects in a batch of RGB uint8 images (any sizes)."""
        if not images:
            return []
        fs = self.filters(filters)
        t0 = time.perf_counter()
        prepared = [self.prepare(img) for img in images]
        t1 = time.perf_counter()
        raw = self.infer([p for p, _ in prepared])
        t2 = time.perf_counter()
        results = []
        for i, (_, meta) in enumerate(prepared):
            t3 = time.perf_counter()
            res = self.postprocess(raw[i], meta, fs)
            res.timing_ms = {
                "preprocess": round((t1 - t0) * 1000 / len(images), 3),
                "inference": round((t2 - t1) * 1000, 3),
                "postprocess": round((time.perf_counter() - t3) * 1000, 3),
                "batch_size": float(len(images)),
            }
            results.append(res)
        return results

    def warmup(self, batch_sizes: Sequence[int] = (1,)) -> None:
        """Run blank inputs once per batch size so the first real request pays no allocation cost."""
        w, h = self.config.input_size
        blank = np.full((h, w, 3), self.config.preprocess.pad_value, np.uint8)
        for n in batch_sizes:
            self.infer([blank] * n)
