"""How an int8 version compares with its parent on held-out images: the report `models quantize` prints and files.

Both versions run through the product `Detector` on the same prepared inputs. Box agreement uses
`agreement.compare` (parent = reference); mAP@0.5 takes the parent's detections as ground truth;
latency is the forward pass on one thread, both models timed in alternation on the same inputs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from model_store.core.agreement import MAX_DPX, MAX_DSCORE, MIN_IOU, MIN_SCORE, Agreement, boxes_of, compare
from model_store.core.detector import Detector
from model_store.core.metrics import average_precision_50
from model_store.core.preprocess import LetterboxMeta

Prepared = tuple[np.ndarray, LetterboxMeta]


@dataclass(frozen=True)
class QuantizeReport:
    """The measured agreement of an int8 version with its parent, and the decision taken on it."""

    parent: str  # NAME:VERSION
    candidate: str  # NAME:NEW_VERSION
    calibration_images: int
    heldout_images: int
    skipped_images: int  # files in DIR that did not decode
    reference_boxes: int
    matched_boxes: int
    extra_boxes: int
    mean_abs_dscore: float
    map50: float
    parent_ms: float
    int8_ms: float
    min_match: float
    tail_nodes_float: int  # decode-tail nodes kept in float (see quantize.decode_tail)
    settings: str  # the quantization settings, for people
    command: str

    @property
    def match_rate(self) -> float:
        return self.matched_boxes / self.reference_boxes if self.reference_boxes else 0.0

    @property
    def passed(self) -> bool:
        return self.reference_boxes > 0 and self.match_rate >= self.min_match

    def table(self) -> str:
        """The report as a markdown table."""
        speed = f"{self.parent_ms:.1f} / {self.int8_ms:.1f} ({self.int8_ms / self.parent_ms:.2f}×)" \
            if self.parent_ms > 0 else "-"
        rows = [
            ("images (calibration / held-out / unreadable)",
             f"{self.calibration_images} / {self.heldout_images} / {self.skipped_images}"),
            (f"box match rate vs {self.parent} (score ≥ {MIN_SCORE}; IoU ≥ {MIN_IOU} or corners within {MAX_DPX:g} px; "
             f"\\|Δscore\\| ≤ {MAX_DSCORE})",
             f"{self.match_rate:.1%} ({self.matched_boxes}/{self.reference_boxes}), {self.extra_boxes} extra"),
            (f"mAP@0.5 of int8, {self.parent}'s detections as truth", f"{self.map50:.3f}"),
            ("mean \\|Δscore\\| of matched boxes", f"{self.mean_abs_dscore:.4f}"),
            ("ms/image, forward pass, 1 thread: parent / int8", speed),
            ("required match rate (--min-match)", f"{self.min_match:.1%}"),
        ]
        return "\n".join(["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])

    def card(self, description: str) -> str:
        """The model card (README.md) of the int8 version."""
        return (f"# {self.candidate}\n\n{description}\n\n"
                f"Quantization: {self.settings}; {self.tail_nodes_float} box-decoding nodes after the last "
                "feature map kept in float.\n\n"
                f"## Agreement with {self.parent} on held-out images\n\n{self.table()}\n\n"
                "Held-out images are never used for calibration. Latency was measured on the machine that ran "
                "the command; int8 gains depend on the CPU (VNNI/AMX help most).\n\n"
                f"## Command\n\n```\n{self.command}\n```\n")

    def refusal(self) -> str:
        """One line: why the int8 version was not published."""
        if not self.reference_boxes:
            return (f"refused: {self.parent} finds no box with score >= {MIN_SCORE} on the {self.heldout_images} "
                    "held-out images, so agreement cannot be measured; nothing published (give DIR images with "
                    "objects, or --force)")
        return (f"refused: {self.candidate} matches {self.match_rate:.1%} of {self.parent}'s boxes "
                f"({self.matched_boxes}/{self.reference_boxes}, {self.extra_boxes} extra; mAP@0.5 {self.map50:.3f}) "
                f"on {self.heldout_images} held-out images, below --min-match {self.min_match:g}; "
                "nothing published (use --force to publish anyway)")


@dataclass(frozen=True)
class Comparison:
    """What running both detectors over the held-out inputs measured."""

    agreement: Agreement
    map50: float
    parent_ms: float
    int8_ms: float


def compare_detectors(parent: Detector, candidate: Detector, heldout: Sequence[Prepared],
                      repeats: int = 3) -> Comparison:
    """Run both detectors over `heldout` (chunks of the graph's batch size); agreement, mAP and ms/image."""
    step = parent.backend.fixed_batch or 1
    chunks = [list(heldout[i:i + step]) for i in range(0, len(heldout), step)]
    for det in (parent, candidate):
        det.warmup([step])
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
    agreement = Agreement()
    truth, predictions = [], []
    for k, chunk in enumerate(chunks):
        for j, (_, meta) in enumerate(chunk):
            ref = boxes_of(parent.postprocess(raw[id(parent)][k][j], meta))
            cand = boxes_of(candidate.postprocess(raw[id(candidate)][k][j], meta))
            agreement += compare(ref, cand, where=f"held-out #{k * step + j}")
            truth.append(np.array([[*b.xyxy, b.class_id] for b in ref], np.float64).reshape(-1, 5))
            predictions.append(np.array([[*b.xyxy, b.score, b.class_id] for b in cand], np.float64).reshape(-1, 6))
    map50 = average_precision_50(predictions, truth, parent.config.num_classes)["map50"]
    n = max(len(heldout), 1)
    return Comparison(agreement, map50, sum(best[id(parent)]) * 1000 / n, sum(best[id(candidate)]) * 1000 / n)
