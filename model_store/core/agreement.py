"""Do two detectors (or one detector on two paths) find the same boxes? The yardstick of every fast path.

A reference box counts when its score is >= `min_score`; it is matched by a same-class box whose
score is within `max_dscore` and whose IoU is >= `min_iou` or whose corners are all within
`max_dpx` pixels (for boxes a few pixels across, where half a pixel moves IoU a lot); one-to-one,
best reference first, as MegaDetector's md_tests compares runs. A candidate box >= `min_score` that matches no reference
box (at any score: a 0.29 reference box may pair with a 0.31 candidate) is an extra. Used by the
parity suite against Ultralytics/YOLOv5 and by the benchmarks that price fast paths (reduced
decode, int8, rect) against the exact one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from model_store.core.records import ImageDetections

MIN_SCORE, MIN_IOU, MAX_DSCORE, MAX_DPX = 0.3, 0.9, 0.02, 1.0


@dataclass(frozen=True)
class Box:
    """One detection in original-image pixels."""

    class_id: int
    score: float
    xyxy: tuple[float, float, float, float]


@dataclass
class Agreement:
    """How candidate boxes compare with reference boxes, summed over images."""

    reference: int = 0  # reference boxes with score >= min_score
    matched: int = 0
    misses: list[str] = field(default_factory=list)
    extras: list[str] = field(default_factory=list)
    dscores: list[float] = field(default_factory=list)  # |candidate - reference| score of each matched box

    def __iadd__(self, other: Agreement) -> Agreement:
        self.reference += other.reference
        self.matched += other.matched
        self.misses += other.misses
        self.extras += other.extras
        self.dscores += other.dscores
        return self

    @property
    def ok(self) -> bool:
        return self.matched == self.reference and not self.extras

    @property
    def match_rate(self) -> float:
        return self.matched / self.reference if self.reference else 1.0

    @property
    def mean_abs_dscore(self) -> float:
        return sum(self.dscores) / len(self.dscores) if self.dscores else 0.0

    def summary(self) -> str:
        return f"{self.matched}/{self.reference} reference boxes matched, {len(self.extras)} extra"


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True)
class Match:
    """The fate of one reference box: the candidate it paired with (None: missed) and the best IoU seen."""

    reference: int  # index into the reference boxes as given
    candidate: int | None  # index into the candidate boxes as given
    iou: float


def match_boxes(reference: Sequence[Box], candidate: Sequence[Box], min_iou: float = MIN_IOU,
                max_dscore: float = MAX_DSCORE, max_dpx: float = MAX_DPX) -> list[Match]:
    """Pair boxes of one image one-to-one: best reference first, each with its best free same-class box.

    A pair needs the same class, scores within `max_dscore` and IoU >= `min_iou` (or every corner
    within `max_dpx`). Returns one Match per reference box, highest score first.
    """
    order = sorted(range(len(candidate)), key=lambda k: -candidate[k].score)
    used: set[int] = set()
    out = []
    for i in sorted(range(len(reference)), key=lambda i: -reference[i].score):
        ref = reference[i]
        best, best_iou = None, 0.0
        for k in order:
            cand = candidate[k]
            if k in used or cand.class_id != ref.class_id or abs(cand.score - ref.score) > max_dscore:
                continue
            overlap = iou(ref.xyxy, cand.xyxy)
            if max(abs(a - b) for a, b in zip(ref.xyxy, cand.xyxy, strict=True)) <= max_dpx:
                overlap = max(overlap, min_iou)  # within a pixel at every corner: the same box
            if overlap > best_iou:
                best, best_iou = k, overlap
        if best is not None and best_iou >= min_iou:
            used.add(best)
            out.append(Match(i, best, best_iou))
        else:
            out.append(Match(i, None, best_iou))
    return out


def compare(reference: Iterable[Box], candidate: Iterable[Box], where: str = "", min_score: float = MIN_SCORE,
            min_iou: float = MIN_IOU, max_dscore: float = MAX_DSCORE, max_dpx: float = MAX_DPX) -> Agreement:
    """Match `candidate` boxes against `reference` boxes of one image (see the module docstring).

    Seven parameters: the two box lists and the text that names a miss, then the four tolerances (min_score, min_iou,
    max_dscore, max_dpx) as keyword defaults, the module's constants; each parity check overrides the one or two its
    reference needs (a model's score floor, the tiled reference's looser IoU), as match_boxes takes them."""
    out = Agreement()
    refs, cands = list(reference), list(candidate)
    matches = match_boxes(refs, cands, min_iou, max_dscore, max_dpx)
    for m in matches:
        ref = refs[m.reference]
        counts = ref.score >= min_score
        out.reference += counts
        if m.candidate is not None:
            out.matched += counts
            if counts:
                out.dscores.append(abs(cands[m.candidate].score - ref.score))
        elif counts:
            out.misses.append(f"{where} class {ref.class_id} score {ref.score:.3f} at {_fmt(ref.xyxy)} "
                              f"(best same-class IoU within the score tolerance {m.iou:.2f})")
    used = {m.candidate for m in matches}
    out.extras = [f"{where} extra class {b.class_id} score {b.score:.3f} at {_fmt(b.xyxy)}"
                  for k, b in sorted(enumerate(cands), key=lambda kb: -kb[1].score)
                  if k not in used and b.score >= min_score]
    return out


def boxes_of(record: ImageDetections) -> list[Box]:
    """Every box of a record, kept and dropped (filters are not part of a model comparison)."""
    return [Box(d.class_id, d.score, d.box_px) for d in [*record.detections, *record.dropped]]


def _fmt(xyxy: tuple[float, ...]) -> str:
    return "[" + ", ".join(f"{v:.1f}" for v in xyxy) + "]"
