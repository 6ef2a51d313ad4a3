"""The detector core: preprocess -> infer -> decode boxes -> NMS -> post-processing filters.

Both the online service and the batch jobs call exactly this code.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from model_store.core.backends import Backend, Interrupt, run_chunked
from model_store.core.config import ModelConfig
from model_store.core.filters import DetectionArrays, FilterSet
from model_store.core.heads import DecodeSpec, Raw, RawDetections, head_for, nms
from model_store.core.masks import detection_masks
from model_store.core.preprocess import (
    LetterboxMeta,
    Preprocessor,
    TensorBuffers,
    scaled_tensor,
    to_tensor,
    unletterbox,
)
from model_store.core.records import Detection, FiltersApplied, ImageDetections, ModelInfo
from model_store.core.tile_merge import merge_boxes
from model_store.core.tiling import TiledInput, TiledMeta, TilingConfig, resolve_tiling

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
        self.head = head_for(config.output_layout, config.task)
        self.tensors = TensorBuffers()  # each thread's float input tensor, reused batch after batch

    @property
    def device(self) -> str:
        return self.backend.device

    def filters(self, overrides: FilterOverrides | FilterSet | None = None) -> FilterSet:
        """The default filters with per-call overrides applied and checked against the labels."""
        if isinstance(overrides, FilterSet):
            fs = overrides
        else:
            fs = self.default_filters.with_overrides(overrides)
        fs.require_per_image()
        fs.check_labels(self.config.labels)
        return fs

    def tiling(self, override: Any = None) -> TilingConfig | None:
        """The tiling a call runs with: the config's, with a call's override (see `resolve_tiling`); None: off.
        TilingConfigError (422 at the doors) when it cannot run on this model."""
        return resolve_tiling(self.config.tiling, override, self.config.input_size, self.config.task)

    def use_tiling(self, tiling: TilingConfig | None) -> None:
        """Run every later call tiled with `tiling` (None: plain) unless told otherwise: a batch job's actors
        (the run's `--tiling` over the model's)."""
        self.config = self.config.model_copy(update={"tiling": tiling})
        self.preprocessor = Preprocessor(self.config)

    def prepare(self, rgb: np.ndarray, tiling: TilingConfig | None | str = "model"
                ) -> tuple[np.ndarray, LetterboxMeta]:
        """Letterbox one RGB image into an HWC uint8 model input plus the metadata to map boxes back (with
        tiling, "model" meaning the config's: a `TiledInput` and its `TiledMeta`)."""
        return self.preprocessor.prepare(rgb, tiling=tiling)

    def prepare_bytes(self, data: bytes, max_pixels: int) -> tuple[np.ndarray, LetterboxMeta]:
        """Decode image bytes (JPEGs scaled down where that loses nothing) and letterbox them."""
        return self.preprocessor.prepare_bytes(data, max_pixels)

    @property
    def interruptible(self) -> bool:
        """Whether a forward pass stops early when its Interrupt is requested (ONNX Runtime: yes; torch: no)."""
        return getattr(self.backend, "interruptible", False)

    @property
    def ref(self) -> str:
        return f"{self.info.name}:{self.info.version}"

    def infer(self, prepared: Sequence[np.ndarray], interrupt: Interrupt | None = None) -> list[Raw]:
        """Run prepared inputs through the model; returns one raw output per input, in order (a tuple of
        arrays per input when the model's head reads several outputs).

        Inputs of one shape share forward passes (rect letterbox gives each frame shape its own
        input shape; a camera's frames share one), and each pass is sized to what the graph
        accepts: a graph exported with a static batch runs formed batches in chunks of that
        size, the last one padded. Raises ModelRunError naming the model, input and expectation,
        or RunInterruptedError when `interrupt` was requested (from another thread) before the passes finished.
        """
        flat, owners, bound = [], [], 0
        for i, item in enumerate(prepared):  # a tiled image's inputs join the batch one by one (tiling.py)
            inputs = item.inputs if isinstance(item, TiledInput) else (item,)
            flat += inputs
            owners += [i] * len(inputs)
            if isinstance(item, TiledInput) and item.batch_tiles:
                bound = min(bound or item.batch_tiles, item.batch_tiles)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, item in enumerate(flat):
            groups.setdefault(item.shape, []).append(i)
        out: list[Raw] = [None] * len(flat)  # type: ignore[list-item]
        for idxs in groups.values():
            step = bound or len(idxs)  # tiles bound the pass: an 8K frame's 135 never make one tensor
            for start in range(0, len(idxs), step):
                part = idxs[start:start + step]
                raw = self.run_tensor(to_tensor([flat[i] for i in part], self.config.preprocess, self.tensors),
                                      interrupt)
                for j, i in enumerate(part):
                    out[i] = _one(raw, j)
        if not bound and not any(isinstance(item, TiledInput) for item in prepared):
            return out
        per_item: list[Raw] = [[] for _ in prepared]  # type: ignore[misc]
        for i, raw_one in zip(owners, out, strict=True):
            per_item[i].append(raw_one)  # type: ignore[union-attr]
        return [p if isinstance(item, TiledInput) else p[0] for p, item in zip(per_item, prepared, strict=True)]

    def run_tensor(self, tensor: np.ndarray, interrupt: Interrupt | None = None) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run a ready NCHW input tensor in the batch sizes the graph accepts; returns the stacked raw output
        (a tuple of stacked outputs when the head reads several)."""
        return run_chunked(self.backend, tensor, self.ref, interrupt, self.head.outputs)

    def decode(self, raw_one: Raw, input_size: tuple[int, int] | None = None) -> RawDetections:
        """Boxes above the score threshold in model-input pixels: the head's decode, then NMS when the head
        leaves it to us (end-to-end heads do not), at most `max_detections`."""
        cfg = self.config
        spec = DecodeSpec(cfg.num_classes, cfg.score_threshold, input_size or cfg.input_size)
        dets = self.head.decode(raw_one, spec)
        if self.head.nms:
            return nms(dets, cfg.nms_iou, cfg.max_detections, cfg.class_agnostic_nms)
        return dets if len(dets.scores) <= cfg.max_detections else dets.take(np.arange(cfg.max_detections))

    def postprocess(
        self, raw_one: Raw, meta: LetterboxMeta, filters: FilterSet | None = None,
        timing_ms: dict[str, float] | None = None,
    ) -> ImageDetections:
        """Decode one image's raw output into an ImageDetections record."""
        filters = self.default_filters if filters is None else filters
        masks: list[dict] | None = None
        if isinstance(meta, TiledMeta):
            boxes, scores, class_ids = self.tiled_boxes(raw_one, meta)  # type: ignore[arg-type]
        else:
            dets = self.decode(raw_one)
            protos = self.head.prototypes(raw_one)
            if protos is not None:  # a segmentation head: the masks of the boxes kept after NMS, and only those
                dets, masks = detection_masks(protos, dets, meta)
            boxes, scores, class_ids = unletterbox(dets.boxes_xyxy, meta), dets.scores, dets.class_ids
        arrays = DetectionArrays(boxes, scores, class_ids, self.config.labels, meta.width, meta.height)
        kept, flags = filters.apply(arrays)
        kept_list, dropped = [], []
        w, h = float(meta.width), float(meta.height)
        for i in range(len(scores)):
            x1, y1, x2, y2 = (float(v) for v in boxes[i])
            det = Detection(
                label=self.config.labels[int(class_ids[i])],
                class_id=int(class_ids[i]),
                score=round(float(scores[i]), 6),
                bbox=(x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h),
                box_px=(x1, y1, x2, y2),
                flags=flags[i],
                mask=None if masks is None else masks[i],
            )
            (kept_list if kept[i] else dropped).append(det)
        return ImageDetections(
            model=self.info, width=meta.width, height=meta.height, detections=kept_list, dropped=dropped,
            filters=FiltersApplied(names=filters.names, hash=filters.hash, configs=filters.as_specs()),
            tiling=meta.provenance() if isinstance(meta, TiledMeta) else None, timing_ms=timing_ms or {},
        )

    def tiled_boxes(self, raws: Sequence[Raw], meta: TiledMeta) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One tiled image's boxes in original pixels: each input decoded (NMS within it, as a plain image's), mapped
        back and shifted by its tile's origin, all merged by the tiling's rule, slivers under `min_box_px` dropped;
        best first. `max_detections` bounds each input, not the image: a light-trap sheet may hold more moths."""
        parts = []
        for raw_one, lb, (ox, oy) in zip(raws, meta.metas, meta.origins, strict=True):
            dets = self.decode(raw_one)
            boxes = unletterbox(dets.boxes_xyxy, lb)
            # A box the tile's edge clipped to nothing (it lay in the padding) says nothing; SAHI's models drop it.
            real = (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])
            boxes[:, [0, 2]] += ox
            boxes[:, [1, 3]] += oy
            parts.append((boxes[real], dets.scores[real], dets.class_ids[real]))
        t = meta.tiling
        boxes, scores, class_ids = merge_boxes(np.concatenate([p[0] for p in parts]),
                                               np.concatenate([p[1] for p in parts]),
                                               np.concatenate([p[2] for p in parts]),
                                               t, np.concatenate([np.full(len(p[1]), i) for i, p in enumerate(parts)]))
        if t.min_box_px:
            big = ((boxes[:, 2] - boxes[:, 0]) >= t.min_box_px) & ((boxes[:, 3] - boxes[:, 1]) >= t.min_box_px)
            boxes, scores, class_ids = boxes[big], scores[big], class_ids[big]
        return boxes, scores, class_ids

    def run_prepared(
        self, prepared: Sequence[np.ndarray], metas: Sequence[LetterboxMeta],
        filters: FilterSet | Sequence[FilterSet] | None = None, interrupt: Interrupt | None = None,
    ) -> list[ImageDetections | Exception]:
        """Prepared inputs -> records: the one run loop of the library, the Serve replica and the batch actors.

        One `infer` for the whole batch, then `postprocess` per input with `filters` (one set for all,
        or one per input). An input whose postprocessing fails gets its exception in its place, so
        it never fails its batch mates; a failed forward pass raises ModelRunError for all, and one
        stopped by `interrupt` raises RunInterruptedError (nothing was lost: run the inputs again).
        Each record's `timing_ms` holds inference (the batch's), postprocess and batch_size.
        """
        if not prepared:
            return []
        t0 = time.perf_counter()
        raw = self.infer(prepared, interrupt)
        return self._records(raw, metas, filters, _ms(time.perf_counter() - t0))

    def run_planar(self, planes: np.ndarray, metas: Sequence[LetterboxMeta], filters: FilterSet | None = None
                   ) -> list[ImageDetections | Exception]:
        """`run_prepared` for a batch already stacked as the input tensor's uint8 planes, (N, 3, H, W), as
        `letterbox_planar` makes them (a clip's frames): scaled to the input dtype in one pass, no transpose."""
        if not len(planes):
            return []
        t0 = time.perf_counter()
        raw = self.run_tensor(scaled_tensor(planes, self.config.preprocess, self.tensors))
        per_input = [_one(raw, j) for j in range(len(planes))]
        return self._records(per_input, metas, filters, _ms(time.perf_counter() - t0))

    def _records(self, raw: Sequence[Raw], metas: Sequence[LetterboxMeta],
                 filters: FilterSet | Sequence[FilterSet] | None, inference_ms: float
                 ) -> list[ImageDetections | Exception]:
        per_item = filters if isinstance(filters, list | tuple) else [filters or self.default_filters] * len(raw)
        out: list[ImageDetections | Exception] = []
        for one, meta, fs in zip(raw, metas, per_item, strict=True):
            t1 = time.perf_counter()
            try:
                record = self.postprocess(one, meta, fs)
            except Exception as exc:  # noqa: BLE001 - returned in place: one bad item must not fail the rest
                out.append(exc)
                continue
            record.timing_ms = {"inference": inference_ms, "postprocess": _ms(time.perf_counter() - t1),
                                "batch_size": float(len(raw))}
            out.append(record)
        return out

    def predict_batch(
        self, images: Sequence[np.ndarray], filters: FilterOverrides | FilterSet | None = None,
        tiling: Any = "model",
    ) -> list[ImageDetections]:
        """Detect objects in a batch of RGB uint8 images (any sizes); `tiling` overrides the config's (see
        `Detector.tiling`: false / "off", true / "on", or settings)."""
        if not images:
            return []
        fs = self.filters(filters)
        t0 = time.perf_counter()
        tiling = self.config.tiling if tiling == "model" else self.tiling(tiling)
        prepared = [self.prepare(img, tiling) for img in images]
        preprocess_ms = _ms((time.perf_counter() - t0) / len(images))
        results = []
        for res in self.run_prepared([p for p, _ in prepared], [m for _, m in prepared], fs):
            if isinstance(res, Exception):
                raise res
            res.timing_ms = {"preprocess": preprocess_ms, **res.timing_ms}
            results.append(res)
        return results

    def blank(self) -> np.ndarray:
        """A full-size input of padding only (what warm-ups and preflight checks send)."""
        w, h = self.config.input_size
        return np.full((h, w, 3), self.config.preprocess.pad_rgb, np.uint8)

    def warmup(self) -> None:
        """One forward pass of the whole pipeline on a blank frame (letterbox -> infer -> boxes -> NMS -> filters).

        What ONNX Runtime needs warm is the session's first run (thread pool, memory arena, lazy kernel set-up):
        measured on CPU, every later pass of an input shape seen before or not costs what a steady one does,
        except that the arena grows once when a larger batch first comes (0.2-0.4 s of CPU for a first batch of
        16 at 640 after a warm-up at 1, against 2 s to run that batch as a warm-up). So one pass at the graph's
        own batch (a static export: the batch it was exported with; a dynamic one: 1) and the model's full
        input size (the largest a rect letterbox makes) is the warm-up: it costs one image, and a version that
        loads but cannot run fails here, before it takes a request or a batch.
        """
        self.predict_batch([self.blank()])


def _one(raw: np.ndarray | tuple[np.ndarray, ...], j: int) -> Raw:
    """Input `j`'s raw output of a batch's stacked output (a tuple of them when the head reads several)."""
    return tuple(r[j] for r in raw) if isinstance(raw, tuple) else raw[j]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)
