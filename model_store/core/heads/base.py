"""What every output head shares: the decoded detections, what a decoder is told, and the head's contract."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Dim = int | str  # a fixed size, or the symbolic name of a dynamic one
Raw = np.ndarray | tuple[np.ndarray, ...]  # one image's graph output(s): an array, or a tuple when a head reads several


@dataclass(frozen=True)
class RawDetections:
    """Detections of one image in model-input pixels (before NMS for heads that need it, after it otherwise).

    `extra` holds per-detection columns a head carries through NMS (e.g. a segmentation head's mask
    coefficients), row-aligned with the boxes; None when the head has none."""

    boxes_xyxy: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,) float32
    class_ids: np.ndarray  # (N,) int64
    extra: np.ndarray | None = None  # (N, k) float32

    @classmethod
    def empty(cls) -> RawDetections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def take(self, idx: np.ndarray) -> RawDetections:
        """The rows `idx` (an index array or boolean mask), in that order."""
        return RawDetections(self.boxes_xyxy[idx], self.scores[idx], self.class_ids[idx],
                             None if self.extra is None else self.extra[idx])


@dataclass(frozen=True)
class DecodeSpec:
    """What a decoder needs besides the raw output: the config's class count and threshold, and the
    (width, height) of the input tensor the image was fed as (heads with normalised boxes scale by it)."""

    num_classes: int
    score_threshold: float
    input_size: tuple[int, int]


class Head:
    """One output layout: how many graph outputs it reads, whether trapline runs NMS after it, and its decoder.

    A head is a small module under `model_store/core/heads/` with one subclass of this and one line in the
    registry (`heads/__init__.py`). `decode(raw, spec)` turns one image's output(s) into scored boxes in
    model-input pixels above the threshold; `fits(shapes, nc)` says whether the graph's output shapes are
    this layout for `nc` classes (a symbolic dim fits); `shape(nc)` is the expected shape for messages.
    A `normalised` head scales boxes by the input size, so it cannot take a rect letterbox (whose input
    size varies per image). A head of the task `segment` also hands over its `prototypes`, from which the
    detector assembles the masks of the detections kept after NMS and `max_detections` (only they pay)."""

    name: str = ""
    summary: str = ""  # one phrase for docs and errors: what the layout is and who exports it
    task: str = "detect"  # the config's `task`: detect (boxes) or segment (boxes and masks)
    outputs: int = 1  # graph outputs read, in graph order
    nms: bool = True  # whether trapline runs NMS on what `decode` returns
    normalised: bool = False

    def fits(self, shapes: Sequence[Sequence[Dim]], num_classes: int) -> bool:
        raise NotImplementedError

    def shape(self, num_classes: int) -> str:
        raise NotImplementedError

    def decode(self, raw: Raw, spec: DecodeSpec) -> RawDetections:
        raise NotImplementedError

    def check(self, shapes: Sequence[Sequence[Dim]], input_wh: tuple[int, int] | None) -> str | None:
        """What else the graph's output shapes contradict once they fit (None: nothing); `input_wh` is the
        graph's fixed input (width, height), None when its spatial dims are dynamic."""
        return None

    def prototypes(self, raw: Raw) -> np.ndarray | None:
        """One image's mask prototypes [32, H/4, W/4] (a segmentation head's; None for box-only heads). The
        detector assembles the kept detections' masks from them (`model_store.core.masks`)."""
        return None


def fixed(dim: Dim, want: int) -> bool:
    """A dim that is `want`, or symbolic (the graph does not fix it)."""
    return not isinstance(dim, int) or dim == want


def one_output(raw: Raw) -> np.ndarray:
    """The single array of a one-output head (a tuple of one is accepted)."""
    return np.asarray(raw[0] if isinstance(raw, tuple) else raw, dtype=np.float32)


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """(N, 4) centre x, centre y, width, height -> x1, y1, x2, y2."""
    boxes = np.empty_like(xywh)
    boxes[:, :2] = xywh[:, :2] - xywh[:, 2:] / 2
    boxes[:, 2:] = xywh[:, :2] + xywh[:, 2:] / 2
    return boxes


def best_class(cls_scores: np.ndarray, xywh_or_xyxy: np.ndarray, threshold: float, strict: bool = False,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row, the best class and its score; returns (boxes, scores, class_ids) of the rows at or above
    `threshold` (strictly above when `strict`, as the library that defined the head compares)."""
    class_ids = cls_scores.argmax(axis=1)
    scores = cls_scores[np.arange(len(cls_scores)), class_ids]
    ok = scores > threshold if strict else scores >= threshold
    return xywh_or_xyxy[ok], scores[ok].astype(np.float32), class_ids[ok].astype(np.int64)


def shapes_str(shapes: Sequence[Sequence[Dim]]) -> str:
    return " + ".join("[" + ", ".join(str(d) if isinstance(d, int) else f"{d}?" for d in s) + "]" for s in shapes)
