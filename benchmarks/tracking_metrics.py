"""Scoring tracks against the synthetic truth (tests/fixtures/tracking_scenes.py): counts and MOT-style metrics.

A method's tracks are given as one id per detection (-1: the method did not report that detection, e.g. a
tracker's not-yet-confirmed box). Counts: how many animals each method says a sequence held. MOT metrics
(motmetrics): every frame, the true boxes of the animals on view against the reported boxes, matched at
IoU >= 0.5; an ID switch is a true animal whose reported id changes, a fragmentation a true track whose
coverage is interrupted; both per 100 true tracks.
"""

from __future__ import annotations

import motmetrics as mm
import numpy as np

from model_store.core.filters.repeat import pairwise_iou

MATCH_IOU = 0.5


def mot_accumulator(seq: dict[str, np.ndarray], ids: np.ndarray) -> mm.MOTAccumulator:
    """One sequence's frame-by-frame matching of truth and reported tracks."""
    acc = mm.MOTAccumulator(auto_id=False)
    reported = ids >= 0
    n_frames = int(max(seq["gt_frame"].max(initial=-1), seq["frame_ids"].max(initial=-1))) + 1
    gt_order = np.argsort(seq["gt_frame"], kind="stable")
    gt_bounds = np.searchsorted(seq["gt_frame"][gt_order], np.arange(n_frames + 1))
    hyp_rows = np.flatnonzero(reported)
    hyp_order = hyp_rows[np.argsort(seq["frame_ids"][hyp_rows], kind="stable")]
    hyp_bounds = np.searchsorted(seq["frame_ids"][hyp_order], np.arange(n_frames + 1))
    for f in range(n_frames):
        g = gt_order[gt_bounds[f]:gt_bounds[f + 1]]
        h = hyp_order[hyp_bounds[f]:hyp_bounds[f + 1]]
        if not len(g) and not len(h):
            continue
        # motmetrics' own iou_matrix uses np.asfarray, gone in numpy 2: the same distance, NaN = no match
        dist = 1.0 - pairwise_iou(seq["gt_box"][g], seq["boxes"][h])
        dist[dist > 1 - MATCH_IOU] = np.nan
        acc.update(seq["gt_id"][g].tolist(), ids[h].tolist(), dist, frameid=f)
    return acc


def mot_summary(accs: list[mm.MOTAccumulator]) -> dict[str, float]:
    """ID switches and fragmentations per 100 true tracks, MOTA and IDF1, over a set of sequences."""
    if not accs:
        return {}
    mh = mm.metrics.create()
    per = mh.compute_many(accs, metrics=["num_switches", "num_unique_objects", "num_false_positives", "num_misses",
                                         "num_objects", "idtp", "idfp", "idfn"],
                          names=[str(i) for i in range(len(accs))])
    tot = per.sum()
    tot["num_fragmentations"] = sum(fragmentations(acc) for acc in accs)
    tracks = max(float(tot["num_unique_objects"]), 1.0)
    return {"true_tracks": int(tot["num_unique_objects"]),
            "id_switches_per_100": round(100 * float(tot["num_switches"]) / tracks, 2),
            "fragmentations_per_100": round(100 * float(tot["num_fragmentations"]) / tracks, 2),
            "mota": round(1 - float(tot["num_misses"] + tot["num_false_positives"] + tot["num_switches"])
                          / max(float(tot["num_objects"]), 1.0), 4),
            "idf1": round(2 * float(tot["idtp"]) / max(float(2 * tot["idtp"] + tot["idfp"] + tot["idfn"]), 1.0),
                          4)}


def fragmentations(acc: mm.MOTAccumulator) -> int:
    """motmetrics' num_fragmentations (per true track, the switches from tracked to missed between its first and
    last tracked frame), vectorised: motmetrics' own loops per object and takes minutes on a night."""
    ev = acc.mot_events
    ev = ev[ev["Type"].isin(["MATCH", "SWITCH", "MISS"])]
    if not len(ev):
        return 0
    frames = ev.index.get_level_values(0).to_numpy()
    oid = ev["OId"].to_numpy()
    order = np.lexsort((frames, oid.astype(str)))
    oid, missed = oid[order].astype(str), (ev["Type"].to_numpy() == "MISS")[order]
    total = 0
    starts = np.flatnonzero(np.concatenate([[True], oid[1:] != oid[:-1], [True]]))
    for a, b in zip(starts[:-1], starts[1:], strict=True):
        tracked = np.flatnonzero(~missed[a:b])
        if len(tracked):
            span = missed[a + tracked[0]:a + tracked[-1] + 1].astype(np.int8)
            total += int((np.diff(span) == 1).sum())
    return total


def count_errors(counts: list[int], truth: list[int]) -> np.ndarray:
    """Per sequence |count - true animals| / true animals (sequences without animals are left out)."""
    c, t = np.asarray(counts, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    keep = t > 0
    return np.abs(c[keep] - t[keep]) / t[keep]


def max_per_frame(seq: dict[str, np.ndarray]) -> int:
    """What counting by 'most boxes in any one frame' (trapline events today) says."""
    return int(np.bincount(seq["frame_ids"]).max()) if len(seq["frame_ids"]) else 0


def n_tracks(ids: np.ndarray) -> int:
    """Distinct reported tracks."""
    return int(len(np.unique(ids[ids >= 0])))
