"""Draw kept detections on the image (render=true): presentation only, the boxes come from the core record."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from model_store import Detection
from model_store.core.imaging import encode_jpeg

# One colour per class id (RGB), cycled; chosen to stay readable on foliage and night IR frames.
PALETTE = [(255, 56, 56), (56, 255, 56), (56, 140, 255), (255, 178, 29), (207, 210, 49), (72, 249, 10),
           (146, 204, 23), (61, 219, 134), (26, 147, 52), (0, 212, 187), (255, 149, 200), (0, 194, 255)]


def draw_detections(rgb: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A copy of `rgb` with each detection's box and "label score" drawn in original pixels."""
    out = np.ascontiguousarray(rgb).copy()
    h, w = out.shape[:2]
    thickness = max(1, round(min(w, h) / 300))
    scale = max(0.4, min(w, h) / 900)
    for det in detections:
        x, y, bw, bh = det.bbox
        x1, y1, x2, y2 = round(x * w), round(y * h), round((x + bw) * w), round((y + bh) * h)
        color = PALETTE[det.class_id % len(PALETTE)]
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness)
        text = f"{det.label} {det.score:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(h - 1, y1 + th + base + 4)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 4, ty + base // 2), color, cv2.FILLED)
        cv2.putText(out, text, (x1 + 2, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness,
                    cv2.LINE_AA)
    return out


def render_jpeg(rgb: np.ndarray, detections: Sequence[Detection], quality: int = 90) -> bytes:
    """The annotated image as JPEG bytes."""
    return encode_jpeg(draw_detections(rgb, detections), quality=quality)
