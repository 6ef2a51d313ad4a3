"""Merging the boxes of an image's tiles: SAHI's three postprocess rules, in numpy, step for step.

One animal on a tile edge is seen by two or more tiles (and by the whole-image pass), each box cut differently.
`nms` keeps the best-scoring box of each matched group; `greedy_nmm` (SAHI's default) and `nmm` replace it by the
union of the boxes it matched, with the best score and its label. Matching is by intersection over the smaller box
(`ios`, SAHI's default: a cut box lies inside the whole one) or over the union. The order of operations follows
sahi 0.12's numpy backend (sahi/postprocess/_numpy_backend.py, combine.py `_apply_merge`): best score first, ties
broken by x1, y1, x2, y2; a float32 matrix of pairwise overlaps; a merged box re-checked against each box it
claimed as it grows. So the answers equal SAHI's box for box (tests/unit/test_tiling_parity.py).

`megadetector` is MegaDetector's `run_tiled_inference` de-duplication (megadetector 10.0, detection/
run_tiled_inference.py `in_place_nms`): one `torchvision.ops.nms` over all tiles' boxes, which suppresses a box whose
IoU with a kept one is *above* the threshold, computed in float32. What it sees is what MegaDetector's detector wrote:
boxes in whole pixels of their tile (PTDetector rounds them) and scores cut to 3 decimals, in the order the tiles and
each tile's boxes (lowest score first) were listed; torchvision's sort is stable, so equal cut scores keep that order.
The rule sees the same (`_md_order`), so it keeps the box MegaDetector keeps (tests/unit/test_md_tiling_parity.py);
the boxes it returns are the whole-pixel ones, the scores trapline's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the settings' model; at run time only its fields are read
    from model_store.core.tiling import TilingConfig


def _ratio(inter: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros(np.broadcast(inter, denominator).shape, np.result_type(inter, denominator))
    return np.divide(inter, denominator, out=out, where=denominator > 0)


def overlap_row(boxes: np.ndarray, i: int, metric: str) -> np.ndarray:
    """Box `i`'s ios or iou with every box, float32 (as SAHI's pairwise matrix holds it); one row at a time, so a
    tiled 8K frame's thousands of boxes never make an N x N matrix."""
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    lo, hi = np.maximum(boxes[i, :2], boxes[:, :2]), np.minimum(boxes[i, 2:], boxes[:, 2:])
    inter = np.maximum(0, hi[:, 0] - lo[:, 0]) * np.maximum(0, hi[:, 1] - lo[:, 1])
    if metric == "iou":
        return _ratio(inter, areas[i] + areas - inter).astype(np.float32)
    return _ratio(inter, np.minimum(areas[i], areas)).astype(np.float32)


def _order(boxes: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Best score first; equal scores by x1, then y1, x2, y2."""
    return np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 1], boxes[:, 0], -scores))


def _nms(boxes: np.ndarray, scores: np.ndarray, metric: str, threshold: float) -> list[int]:
    """Keep the best box, suppress every box matching it, go on with the best box not suppressed."""
    keep, suppressed = [], np.zeros(len(boxes), bool)
    for idx in _order(boxes, scores):
        if not suppressed[idx]:
            keep.append(int(idx))
            suppressed |= overlap_row(boxes, idx, metric) >= threshold
    return keep


def _greedy_nmm(boxes: np.ndarray, scores: np.ndarray, metric: str, threshold: float) -> dict[int, list[int]]:
    """The best box claims every unclaimed box after it that matches it; go on with the next unclaimed one."""
    order = _order(boxes, scores)
    merges: dict[int, list[int]] = {}
    claimed = np.zeros(len(boxes), bool)
    for i, idx in enumerate(order):
        if claimed[idx]:
            continue
        rest = order[i + 1:]
        rest = rest[~claimed[rest]]
        taken = rest[overlap_row(boxes, idx, metric)[rest] >= threshold]
        claimed[taken] = True
        merges[int(idx)] = taken.tolist()
    return merges


def _outranked(boxes: np.ndarray, scores: np.ndarray, i: int) -> np.ndarray:
    """The boxes box `i` outranks: a lower score, or an equal one and coordinates not sorting after i's."""
    before = np.zeros(len(boxes), bool)  # i's coordinates sort before j's
    equal = np.ones(len(boxes), bool)
    for col in range(4):
        before |= equal & (boxes[i, col] < boxes[:, col])
        equal &= boxes[i, col] == boxes[:, col]
    out = (scores[i] > scores) | ((scores[i] == scores) & ~before)
    out[i] = False
    return out


def _nmm(boxes: np.ndarray, scores: np.ndarray, metric: str, threshold: float) -> dict[int, list[int]]:
    """Transitive: each box, best first, claims the unclaimed boxes it outranks and matches, for its own keeper
    when it was claimed itself (A claims B, B's matches go to A)."""
    merges: dict[int, list[int]] = {}
    keeper = np.full(len(boxes), -1, np.intp)
    for idx in _order(boxes, scores).tolist():
        if keeper[idx] < 0:
            keeper[idx] = idx
            merges[idx] = []
        into = int(keeper[idx])
        matched = _outranked(boxes, scores, idx) & (overlap_row(boxes, idx, metric) >= threshold)
        for m in np.flatnonzero(matched).tolist():
            if keeper[m] < 0:
                merges[into].append(m)
                keeper[m] = into
    return merges


def _md_order(scores: np.ndarray, tiles: np.ndarray) -> np.ndarray:
    """MegaDetector's order: score cut to 3 decimals (its CONF_DIGITS, truncated), best first; ties by tile, then
    within a tile lowest score first (its detector lists a tile's boxes reversed)."""
    cut = np.floor(scores * 1000 + 1e-9) / 1000
    return np.lexsort((scores, tiles, -cut))


def _md_nms(boxes: np.ndarray, scores: np.ndarray, tiles: np.ndarray, metric: str, threshold: float) -> list[int]:
    """torchvision's nms in MegaDetector's order: keep the first box, drop every box overlapping it above
    `threshold` (float32, as the tensor holds it), go on with the next box not dropped."""
    keep, suppressed = [], np.zeros(len(boxes), bool)
    b32 = boxes.astype(np.float32)
    for idx in _md_order(scores, tiles):
        if not suppressed[idx]:
            keep.append(int(idx))
            suppressed |= overlap_row(b32, idx, metric) > np.float32(threshold)
    return keep


RULES = {"nms": _nms, "nmm": _nmm, "greedy_nmm": _greedy_nmm, "megadetector": _md_nms}


def merge_boxes(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, how: TilingConfig,
                tiles: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tiles' boxes (original pixels) merged as `how` says (its `merge` rule, `match_metric` and
    `match_threshold`), within each label unless `how.class_agnostic`; returns boxes (float32), scores and class ids,
    best first. `tiles` (the input each box came from, in order) is what the `megadetector` rule orders ties by; its
    boxes are first rounded to whole pixels, as MegaDetector's are."""
    rule, metric, threshold, class_agnostic = how.merge, how.match_metric, how.match_threshold, how.class_agnostic
    if rule == "megadetector":
        boxes = np.round(boxes)
        tiles = np.zeros(len(scores), np.intp) if tiles is None else tiles
    if len(scores) < 2:
        return boxes.astype(np.float32), scores, classes
    fn = RULES[rule]
    b64, s64 = boxes.astype(np.float64), scores.astype(np.float64)
    groups = [np.arange(len(scores))] if class_agnostic else [np.flatnonzero(classes == c) for c in np.unique(classes)]
    if rule == "megadetector":
        keep = [int(g[k]) for g in groups for k in _md_nms(b64[g], s64[g], tiles[g], metric, threshold)]
        out_b, out_s, out_c = b64[keep], s64[keep], classes[keep]
    elif rule == "nms":
        keep = [int(g[k]) for g in groups for k in fn(b64[g], s64[g], metric, threshold)]
        out_b, out_s, out_c = b64[keep], s64[keep], classes[keep]
    else:
        merges = {int(g[k]): [int(g[m]) for m in ms] for g in groups
                  for k, ms in fn(b64[g], s64[g], metric, threshold).items()}
        out_b, out_s, out_c = _grown(merges, b64, s64, classes, metric, threshold)
    order = np.argsort(-out_s, kind="stable")
    return out_b[order].astype(np.float32), out_s[order].astype(scores.dtype), out_c[order]


def _grown(merges: dict[int, list[int]], boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
           metric: str, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each kept box grown by the boxes it claimed, one by one while the grown box still matches the next (SAHI's
    `has_match` before `merge_object_prediction_pair`): union of boxes, best score, the best score's label (the
    claimed box's on a tie, as SAHI's `get_merged_category` has it)."""
    out_b, out_s, out_c = [], [], []
    for keep, claimed in merges.items():
        box, score, label = boxes[keep].copy(), float(scores[keep]), int(classes[keep])
        for m in claimed:
            if _pair_overlap(box, boxes[m], metric) < threshold:
                continue
            box = np.concatenate([np.minimum(box[:2], boxes[m, :2]), np.maximum(box[2:], boxes[m, 2:])])
            if not score > scores[m]:
                label = int(classes[m])
            score = max(score, float(scores[m]))
        out_b.append(box)
        out_s.append(score)
        out_c.append(label)
    return np.asarray(out_b, np.float64).reshape(-1, 4), np.asarray(out_s, np.float64), np.asarray(out_c, classes.dtype)


def _pair_overlap(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    """ios / iou of two boxes in float64, as SAHI's `has_match` computes it."""
    wh = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None)
    inter = wh[0] * wh[1]
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    denominator = min(area_a, area_b) if metric == "ios" else area_a + area_b - inter
    return float(inter / denominator) if denominator > 0 else 0.0
