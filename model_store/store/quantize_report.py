"""How an int8 version compares with its parent on held-out images: the report `models quantize` prints and files.

The question is what a user of the int8 version loses. The parent's boxes scoring at least
`min_score` are the truth; the int8 version's boxes at that score are its answers. A pair is the same
class at IoU >= 0.5, one-to-one, highest score first (VOC/COCO matching, `metrics.greedy_match`):
recall is the share of the parent's boxes the int8 version finds, precision the share of its boxes
the parent has, per class and overall; mAP@0.5 ranks all of the int8 version's boxes against the
parent's as truth. |Δscore| of the pairs is reported, not judged: scores move by a few hundredths
under int8, and that changes no box a user sees. Fewer than `min_boxes` parent boxes is too few to
judge either way (3 boxes said nothing); a class is judged on its own from `min_class_boxes`.

Both versions run through the product `Detector` on the same prepared inputs; latency is the forward
pass on one thread, both models timed in alternation on the same inputs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ground.errors import QuantizeError
from model_store.core.agreement import Box, boxes_of
from model_store.core.detector import Detector
from model_store.core.metrics import IOU_THRESHOLD, average_precision_50, greedy_match
from model_store.core.preprocess import LetterboxMeta

Prepared = tuple[np.ndarray, LetterboxMeta]

PASS, FAIL, TOO_FEW = "pass", "fail", "too few boxes to judge"


@dataclass(frozen=True)
class Gate:
    """What an int8 version must keep of its parent's boxes to be published without --force."""

    min_recall: float = 0.9  # share of the parent's boxes the int8 version finds
    min_precision: float = 0.9  # share of the int8 version's boxes the parent has
    min_boxes: int = 50  # parent boxes on the held-out images below which nothing is judged
    min_class_boxes: int = 20  # boxes of one class from which that class is judged on its own
    min_score: float = 0.3  # boxes below this score count on neither side

    def __post_init__(self) -> None:
        for flag, value in (("--min-recall", self.min_recall), ("--min-precision", self.min_precision),
                            ("--min-score", self.min_score)):
            if not 0 <= value <= 1:
                raise QuantizeError(f"{flag} must be between 0 and 1, got {value:g}")
        for flag, value in (("--min-boxes", self.min_boxes), ("--min-class-boxes", self.min_class_boxes)):
            if value < 1:
                raise QuantizeError(f"{flag} must be at least 1, got {value}")

    def flags(self) -> list[str]:
        """The gate as command-line flags (for the command that reproduces a run)."""
        return ["--min-recall", f"{self.min_recall:g}", "--min-precision", f"{self.min_precision:g}",
                "--min-boxes", str(self.min_boxes), "--min-class-boxes", str(self.min_class_boxes),
                "--min-score", f"{self.min_score:g}"]


@dataclass(frozen=True)
class ClassAgreement:
    """The int8 version's boxes of one class (or of all: `label` "all") against the parent's."""

    label: str
    parent_boxes: int  # the parent's boxes >= min_score: the truth
    int8_boxes: int  # the int8 version's boxes >= min_score
    matched: int  # pairs at IoU >= 0.5, same class, one-to-one
    ap50: float | None  # AP@0.5 of the int8 boxes (all scores) against the parent's; None without truth

    @property
    def recall(self) -> float | None:
        return self.matched / self.parent_boxes if self.parent_boxes else None

    @property
    def precision(self) -> float | None:
        return self.matched / self.int8_boxes if self.int8_boxes else None


@dataclass(frozen=True)
class QuantizeReport:
    """The measured agreement of an int8 version with its parent, and the decision taken on it."""

    parent: str  # NAME:VERSION
    candidate: str  # NAME:NEW_VERSION
    calibration_images: int
    heldout_images: int
    skipped_images: int  # files in DIR that did not decode
    holdout_fraction: float
    classes: tuple[ClassAgreement, ...]  # classes either version found, in label order
    total: ClassAgreement  # all classes together
    map50: float  # mean of the classes' AP@0.5 (classes the parent found)
    mean_abs_dscore: float  # of the matched pairs
    max_abs_dscore: float
    parent_ms: float
    int8_ms: float
    gate: Gate
    tail_nodes_float: int  # decode-tail nodes kept in float (see quantize.decode_tail)
    settings: str  # the quantization settings, for people
    command: str

    @property
    def verdict(self) -> str:
        """PASS, FAIL or TOO_FEW (fewer than gate.min_boxes parent boxes: no decision either way)."""
        if self.total.parent_boxes < self.gate.min_boxes:
            return TOO_FEW
        return FAIL if self.shortfalls() else PASS

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def judged(self, c: ClassAgreement) -> tuple[bool, bool]:
        """(recall judged, precision judged) for one class: enough boxes on the side that is the denominator."""
        floor = self.gate.min_boxes if c is self.total else self.gate.min_class_boxes
        return c.parent_boxes >= floor, c.int8_boxes >= floor

    def shortfalls(self) -> list[str]:
        """Every judged measure below its minimum, for people: 'person recall 83.3% (25/30) < 90%'."""
        out = []
        for c in (*self.classes, self.total):
            by_recall, by_precision = self.judged(c)
            if by_recall and c.recall < self.gate.min_recall:
                out.append(f"{c.label} recall {c.recall:.1%} ({c.matched}/{c.parent_boxes}) "
                           f"< {self.gate.min_recall * 100:g}%")
            if by_precision and c.precision < self.gate.min_precision:
                out.append(f"{c.label} precision {c.precision:.1%} ({c.matched}/{c.int8_boxes}) "
                           f"< {self.gate.min_precision * 100:g}%")
        return out

    def table(self) -> str:
        """The report as markdown: the summary, then recall, precision and AP per class."""
        g = self.gate
        speed = f"{self.parent_ms:.1f} / {self.int8_ms:.1f} ({self.int8_ms / self.parent_ms:.2f}×)" \
            if self.parent_ms > 0 else "-"
        verdict = {PASS: "pass", FAIL: "fail: " + "; ".join(self.shortfalls()),
                   TOO_FEW: f"too few boxes to judge: {self.total.parent_boxes} < --min-boxes {g.min_boxes}"}
        rows = [
            ("images (calibration / held-out / unreadable)",
             f"{self.calibration_images} / {self.heldout_images} / {self.skipped_images}"),
            (f"boxes scoring ≥ {g.min_score:g}: {self.parent} / int8", f"{self.total.parent_boxes} / "
                                                                         f"{self.total.int8_boxes}"),
            (f"recall of {self.parent}'s boxes (same class, IoU ≥ {IOU_THRESHOLD:g})", _pct(self.total, "recall")),
            ("precision of the int8 boxes", _pct(self.total, "precision")),
            (f"mAP@0.5 of int8, {self.parent}'s boxes as truth", f"{self.map50:.3f}"),
            ("\\|Δscore\\| of matched boxes, mean / max (reported, not judged)",
             f"{self.mean_abs_dscore:.4f} / {self.max_abs_dscore:.4f}"),
            ("ms/image, forward pass, 1 thread: parent / int8", speed),
            ("gate", f"recall ≥ {g.min_recall * 100:g}% and precision ≥ {g.min_precision * 100:g}%, overall and "
                     f"for each class with ≥ {g.min_class_boxes} boxes; judged from {g.min_boxes} boxes"),
            ("verdict", verdict[self.verdict]),
        ]
        lines = ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows), "",
                 f"| class | boxes {self.parent} / int8 | matched | recall | precision | AP@0.5 | judged |",
                 "|---|---|---|---|---|---|---|"]
        for c in (*self.classes, self.total):
            ap = "-" if c.ap50 is None else f"{c.ap50:.3f}"
            if c is self.total:
                ap = f"{self.map50:.3f} (mAP)"
            judged = " and ".join(m for m, j in zip(("recall", "precision"), self.judged(c), strict=True) if j)
            floor = g.min_boxes if c is self.total else g.min_class_boxes
            lines.append(f"| {c.label} | {c.parent_boxes} / {c.int8_boxes} | {c.matched} | {_pct(c, 'recall')} | "
                         f"{_pct(c, 'precision')} | {ap} | {judged or f'no: < {floor} boxes'} |")
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """The report as data (filed as the version's quantization.json, or under `_refused/`; read by the
        console): every figure of `table()`, the gate and the verdict."""
        def cls(c: ClassAgreement) -> dict:
            by_recall, by_precision = self.judged(c)
            return {"label": c.label, "parent_boxes": c.parent_boxes, "int8_boxes": c.int8_boxes,
                    "matched": c.matched, "recall": c.recall, "precision": c.precision, "ap50": c.ap50,
                    "recall_judged": by_recall, "precision_judged": by_precision}

        return {"parent": self.parent, "candidate": self.candidate, "verdict": self.verdict, "passed": self.passed,
                "shortfalls": self.shortfalls(), "calibration_images": self.calibration_images,
                "heldout_images": self.heldout_images, "skipped_images": self.skipped_images,
                "holdout_fraction": self.holdout_fraction, "total": cls(self.total),
                "classes": [cls(c) for c in self.classes], "map50": self.map50,
                "mean_abs_dscore": self.mean_abs_dscore, "max_abs_dscore": self.max_abs_dscore,
                "parent_ms": self.parent_ms, "int8_ms": self.int8_ms, "gate": dataclasses.asdict(self.gate),
                "settings": self.settings, "command": self.command}

    def card(self, description: str) -> str:
        """The model card (README.md) of the int8 version."""
        forced = "" if self.passed else f"\n\nPublished with --force: the verdict was \"{self.verdict}\".\n"
        return (f"# {self.candidate}\n\n{description}\n\n"
                f"Quantization: {self.settings}; {self.tail_nodes_float} box-decoding nodes after the last "
                f"feature map kept in float.{forced}\n\n"
                f"## Agreement with {self.parent} on held-out images\n\n{self.table()}\n\n"
                "Held-out images are never used for calibration. Latency was measured on the machine that ran "
                "the command; int8 gains depend on the CPU (VNNI/AMX help most).\n\n"
                f"## Command\n\n```\n{self.command}\n```\n")

    def refusal(self) -> str:
        """One line: why the int8 version was not published, and what to do."""
        g, n = self.gate, self.total.parent_boxes
        if self.verdict == TOO_FEW:
            per_image = n / self.heldout_images if self.heldout_images else 0.0
            if per_image > 0:
                more = math.ceil(g.min_boxes / per_image / self.holdout_fraction)
                need = (f"at {per_image:.2f} boxes per held-out image, about {more} images in DIR would give "
                        f"{g.min_boxes} at --holdout-fraction {self.holdout_fraction:g}")
            else:
                need = "DIR needs images in which the model finds objects"
            return (f"cannot judge {self.candidate}: {self.parent} finds {n} boxes scoring >= {g.min_score:g} on the "
                    f"{self.heldout_images} held-out images, fewer than --min-boxes {g.min_boxes}, too few to say "
                    f"what int8 loses; nothing published. Give --calibrate more images, or images with the objects "
                    f"the model is for ({need}), or publish without a verdict with --force")
        return (f"refused: {self.candidate} loses too much of {self.parent}'s boxes on {self.heldout_images} "
                f"held-out images: {'; '.join(self.shortfalls())} (mAP@0.5 {self.map50:.3f}); nothing published "
                "(per-class figures above; --min-recall/--min-precision set the bar, --force publishes anyway)")


def _pct(c: ClassAgreement, measure: str) -> str:
    value = getattr(c, measure)
    if value is None:
        return "-"
    denominator = c.parent_boxes if measure == "recall" else c.int8_boxes
    return f"{value:.1%} ({c.matched}/{denominator})"


@dataclass(frozen=True)
class Comparison:
    """What running both detectors over the held-out inputs gave: each image's boxes, and ms/image."""

    parent_boxes: list[list[Box]]
    int8_boxes: list[list[Box]]
    parent_ms: float
    int8_ms: float


@dataclass(frozen=True)
class Agreement:
    """The int8 boxes against the parent's, per class and overall (see the module docstring)."""

    classes: tuple[ClassAgreement, ...]
    total: ClassAgreement
    map50: float
    dscores: tuple[float, ...]  # |int8 - parent| score of each matched pair


def agree(parent_boxes: Sequence[Sequence[Box]], int8_boxes: Sequence[Sequence[Box]], labels: Sequence[str],
          min_score: float) -> Agreement:
    """Match each image's int8 boxes to the parent's boxes (the truth) and count per class."""
    if len(parent_boxes) != len(int8_boxes):
        raise ValueError(f"{len(parent_boxes)} parent images for {len(int8_boxes)} int8 images")
    counts = np.zeros((len(labels), 3), np.int64)  # parent boxes, int8 boxes, matched
    dscores: list[float] = []
    truth, predictions = [], []
    for ref, cand in zip(parent_boxes, int8_boxes, strict=True):
        ref = [b for b in ref if b.score >= min_score]
        truth.append(np.array([[*b.xyxy, b.class_id] for b in ref], np.float64).reshape(-1, 5))
        predictions.append(np.array([[*b.xyxy, b.score, b.class_id] for b in cand], np.float64).reshape(-1, 6))
        answers = sorted((b for b in cand if b.score >= min_score), key=lambda b: -b.score)
        for c in {b.class_id for b in ref} | {b.class_id for b in answers}:
            ref_c = [b for b in ref if b.class_id == c]
            ans_c = [b for b in answers if b.class_id == c]
            claimed = greedy_match(np.array([b.xyxy for b in ans_c], np.float64).reshape(-1, 4),
                                   np.array([b.xyxy for b in ref_c], np.float64).reshape(-1, 4))
            counts[c] += (len(ref_c), len(ans_c), int((claimed >= 0).sum()))
            dscores += [abs(ans_c[j].score - ref_c[k].score) for j, k in enumerate(claimed) if k >= 0]
    per_class = average_precision_50(predictions, truth, len(labels))["per_class"]
    classes = tuple(ClassAgreement(label, *map(int, counts[c]), per_class.get(c))
                    for c, label in enumerate(labels) if counts[c, :2].any())
    total = ClassAgreement("all", *map(int, counts.sum(axis=0)), None)
    map50 = float(np.mean(list(per_class.values()))) if per_class else 0.0
    return Agreement(classes, total, map50, tuple(dscores))


def compare_detectors(parent: Detector, candidate: Detector, heldout: Sequence[Prepared],
                      repeats: int = 3) -> Comparison:
    """Run both detectors over `heldout` (chunks of the graph's batch size): every box, and ms/image."""
    step = parent.backend.fixed_batch or 1
    chunks = [list(heldout[i:i + step]) for i in range(0, len(heldout), step)]
    for det in (parent, candidate):
        det.warmup()
    best = {id(parent): [float("inf")] * len(chunks), id(candidate): [float("inf")] * len(chunks)}
    raw: dict[int, list[list[np.ndarray]]] = {id(parent): [], id(candidate): []}
    for rep in range(repeats):
        for k, chunk in enumerate(chunks):
            # Alternate which model goes first so neither always runs on a warmer cache.
            order = (parent, candidate) if (rep + k) % 2 == 0 else (candidate, parent)
            for det in order:
                t0 = time.perf_counter()
                out = det.infer([p for p, _ in chunk])
                best[id(det)][k] = min(best[id(det)][k], time.perf_counter() - t0)
                if rep == 0:
                    raw[id(det)].append(out)
    boxes: dict[int, list[list[Box]]] = {id(parent): [], id(candidate): []}
    for k, chunk in enumerate(chunks):
        for j, (_, meta) in enumerate(chunk):
            for det in (parent, candidate):
                boxes[id(det)].append(boxes_of(det.postprocess(raw[id(det)][k][j], meta)))
    n = max(len(heldout), 1)
    return Comparison(boxes[id(parent)], boxes[id(candidate)], sum(best[id(parent)]) * 1000 / n,
                      sum(best[id(candidate)]) * 1000 / n)
