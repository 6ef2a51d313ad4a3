"""Decode a segmentation head (Ultralytics `-seg`: YOLOv8, YOLO11, YOLO26): boxes, then each kept box's mask.

A segmentation export has two outputs: the detection head with 32 mask coefficients after each box's class
scores, and the prototypes `[B, 32, H/4, W/4]`. Two head forms, as Ultralytics' own predictor reads them:
- NMS form (`output_layout` yolov8): `[B, 4 + nc + 32, anchors]`, boxes cx, cy, w, h; thresholded and NMS'd
  exactly like the detection head, the coefficients riding along;
- end-to-end form (`output_layout` end2end, YOLO26 `end2end=True`): `[B, K, 6 + 32]`, rows x1, y1, x2, y2,
  score, class, coefficients: the graph's top-K kept as they are, the score threshold applied, no NMS.
Masks are assembled only for the boxes that survive (`model_store.core.masks`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_store.core.config import ModelConfig
from model_store.core.masks import MaskWindow, assemble, to_rle
from model_store.core.preprocess import LetterboxMeta
from model_store.core.yolo import RawDetections, candidate_rows, nms_rows

MASK_COEFFICIENTS = 32
PROTO_STRIDE = 4  # Ultralytics' prototypes are at 1/4 of the model input, P3 upsampled twice


@dataclass(frozen=True)
class RawSegments:
    """One image's kept detections (model-input pixels) with their mask coefficients and the prototypes."""

    dets: RawDetections
    coeffs: np.ndarray  # (N, 32)
    protos: np.ndarray  # (32, mh, mw)

    def masks(self, meta: LetterboxMeta) -> list[MaskWindow | None]:
        """Each detection's mask in image pixels (None: empty at the model input, which Ultralytics drops)."""
        _, mh, mw = self.protos.shape
        return assemble(self.protos, self.coeffs, self.dets.boxes_xyxy, (mh * PROTO_STRIDE, mw * PROTO_STRIDE), meta)


def split_outputs(raw_one) -> tuple[np.ndarray, np.ndarray]:
    """(head, protos) of one image's outputs, whichever order the graph lists them in."""
    if not isinstance(raw_one, tuple | list) or len(raw_one) != 2:
        got = type(raw_one).__name__ if not isinstance(raw_one, np.ndarray) else f"one output {list(raw_one.shape)}"
        raise ValueError(f"a segmentation model has two outputs (detections, prototypes [32, H/4, W/4]); got {got}")
    a, b = (np.asarray(x) for x in raw_one)
    head, protos = (a, b) if a.ndim == 2 else (b, a)
    if protos.ndim != 3 or protos.shape[0] != MASK_COEFFICIENTS or head.ndim != 2:
        raise ValueError(f"a segmentation model's outputs are detections [rows, anchors] and prototypes "
                         f"[{MASK_COEFFICIENTS}, H/4, W/4]; got {list(a.shape)} and {list(b.shape)}")
    return head, protos


def decode_segments(raw_one, cfg: ModelConfig) -> RawSegments:
    """Boxes above the threshold (after NMS for the NMS form), in model-input pixels, with their coefficients."""
    head, protos = split_outputs(raw_one)
    nc = cfg.num_classes
    if cfg.output_layout == "end2end":
        if head.shape[1] != 6 + MASK_COEFFICIENTS:
            raise ValueError(f"an end-to-end segmentation output has rows of 6+{MASK_COEFFICIENTS} values, "
                             f"got {list(head.shape)}")
        rows = np.flatnonzero(head[:, 4] >= cfg.score_threshold)[:cfg.max_detections]
        dets = RawDetections(head[rows, :4].astype(np.float32), head[rows, 4].astype(np.float32),
                             head[rows, 5].astype(np.int64))
        return RawSegments(dets, head[rows, 6:].astype(np.float32), protos)
    cands, anchors = candidate_rows(head, "yolov8", nc, cfg.score_threshold, extra=MASK_COEFFICIENTS)
    keep = nms_rows(cands, cfg.nms_iou, cfg.max_detections, cfg.class_agnostic_nms)
    dets = RawDetections(cands.boxes_xyxy[keep], cands.scores[keep], cands.class_ids[keep])
    coeffs = head[4 + nc:, anchors[keep]].T.astype(np.float32)
    return RawSegments(dets, coeffs, protos)


def segment_masks(segments: RawSegments, meta: LetterboxMeta) -> tuple[RawDetections, list[dict]]:
    """The detections that keep a mask and each one's mask as COCO RLE in image pixels.

    A detection whose mask is empty at the model input is left out, as Ultralytics' predictor leaves it out."""
    windows = segments.masks(meta)
    keep = np.array([w is not None for w in windows], bool)
    d = segments.dets
    dets = RawDetections(d.boxes_xyxy[keep], d.scores[keep], d.class_ids[keep])
    return dets, [to_rle(w, meta.height, meta.width) for w in windows if w is not None]
