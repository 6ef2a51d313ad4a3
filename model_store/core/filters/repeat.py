"""Repeat-detection elimination: find boxes that recur at one place across many images of one camera.

Fixed cameras see "rocks and sticks" that a detector fires on in hundreds of frames; MegaDetector's
repeat-detection elimination exists for that. A detection recurs when at least `min_images`
images of the same camera (its own included), captured within `window_s` of it, hold a box whose
IoU with it is >= `iou`. The comparison ignores labels: the same stump may be called an animal
in one frame and a vehicle in the next.

`recurring` is pure numpy over one camera's candidate boxes; `fires_on_table` applies it to table rows (the
`repeat` filter's table-level predicate). batch/postprocessing/table_filters.py reads the rows and decides which
images form the context.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# Pairwise IoU is computed in blocks of at most this many pairs (~8 bytes x a few arrays each).
BLOCK_PAIRS = 2_000_000


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (N, 4) with every box in `b` (M, 4), both x1, y1, x2, y2."""
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def recurring(boxes: np.ndarray, image_ids: np.ndarray, times_s: np.ndarray | None, *, iou: float,
              min_images: int, window_s: float | None = None) -> np.ndarray:
    """For each box of one camera, whether it recurs (see the module docstring); returns a bool mask.

    `boxes` (N, 4) x1, y1, x2, y2 in one coordinate system (normalised is fine), `image_ids` (N,)
    ints naming each box's image, `times_s` (N,) capture times in seconds (NaN = unknown: such a
    box is compared only with boxes of its own image when a window is set). Cost is one IoU per
    pair of boxes inside a window, done in blocks.
    """
    n = len(boxes)
    out = np.zeros(n, dtype=bool)
    if n == 0 or min_images < 1:
        return out
    boxes = np.asarray(boxes, dtype=np.float64)
    image_ids = np.asarray(image_ids, dtype=np.int64)
    if window_s is None or times_s is None:
        times = np.zeros(n)
        window = np.inf
    else:
        times = np.asarray(times_s, dtype=np.float64)
        window = float(window_s)
    known = ~np.isnan(times)
    order = np.argsort(np.where(known, times, np.inf), kind="stable")
    t_sorted = np.where(known, times, np.inf)[order]
    boxes_s, images_s = boxes[order], image_ids[order]
    counts = np.zeros(n, dtype=np.int64)
    n_known = int(known.sum())
    start = 0
    while start < n_known:
        # Rows [start, stop) against the columns in their time window [lo, hi).
        lo = int(np.searchsorted(t_sorted, t_sorted[start] - window, side="left"))
        stop = start + 1
        while stop < n_known:
            hi_probe = int(np.searchsorted(t_sorted, t_sorted[stop] + window, side="right"))
            if (stop + 1 - start) * (min(hi_probe, n_known) - lo) > BLOCK_PAIRS:
                break
            stop += 1
        hi = min(int(np.searchsorted(t_sorted, t_sorted[stop - 1] + window, side="right")), n_known)
        counts[start:stop] = _distinct_matches(boxes_s[start:stop], t_sorted[start:stop], boxes_s[lo:hi],
                                               t_sorted[lo:hi], images_s[lo:hi], iou, window)
        start = stop
    counts[n_known:] = 1  # unknown time: only its own image
    out[order] = counts >= min_images
    return out


def _distinct_matches(rows: np.ndarray, row_t: np.ndarray, cols: np.ndarray, col_t: np.ndarray,
                      col_images: np.ndarray, iou: float, window: float) -> np.ndarray:
    """For each row box, the number of distinct images among the column boxes it matches.

    Seven parameters: the inner kernel of one camera's repeat test over flat arrays: the row boxes and their times, the
    column boxes, their times and their images, and the two thresholds (IoU, time window) of the RepeatConfig; its
    caller slices the arrays per camera, so the arrays are the natural arguments."""
    match = pairwise_iou(rows, cols) >= iou
    if np.isfinite(window):
        match &= np.abs(row_t[:, None] - col_t[None, :]) <= window
    r, c = np.nonzero(match)
    if not len(r):
        return np.zeros(len(rows), dtype=np.int64)
    pairs = np.unique(np.stack([r, col_images[c]], axis=1), axis=0)
    return np.bincount(pairs[:, 0], minlength=len(rows))


def fires_on_table(config, images: pd.DataFrame, dets: pd.DataFrame) -> np.ndarray:
    """Which stored detections (rows of the detections table) recur on their camera: a mask aligned with `dets`.
    `images` holds their images' rows (camera_id, capture_time); `config` is a RepeatConfig."""
    import pandas as pd  # late: every detector loads this module, and only the stored-tables pass needs pandas

    fired = np.zeros(len(dets), dtype=bool)
    if dets.empty:
        return fired
    keys = ["uri", "content_id", "run_id"]
    d = dets[keys + ["score", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]].merge(
        images[keys + ["camera_id", "capture_time"]], on=keys, how="left")
    area = d["bbox_w"] * d["bbox_h"]
    candidate = (d["score"] >= config.min_score) & (d["bbox_w"] > 0) & (d["bbox_h"] > 0)
    if config.max_box_fraction is not None:
        candidate &= area <= config.max_box_fraction
    rows = np.flatnonzero(candidate.to_numpy())
    if not len(rows):
        return fired
    sub = d.iloc[rows]
    boxes = np.stack([sub["bbox_x"], sub["bbox_y"], sub["bbox_x"] + sub["bbox_w"], sub["bbox_y"] + sub["bbox_h"]],
                     axis=1).astype(np.float64)
    image_ids = pd.factorize(sub["uri"])[0]
    times = (pd.to_datetime(sub["capture_time"]) - pd.Timestamp(0)).dt.total_seconds().to_numpy(dtype=np.float64)
    window_s = config.window_hours * 3600.0 if config.window_hours else None
    for _, pos in sub.groupby(sub["camera_id"].fillna(""), sort=False).indices.items():
        fired[rows[pos]] = recurring(boxes[pos], image_ids[pos], times[pos], iou=config.iou,
                                     min_images=config.min_images, window_s=window_s)
    return fired
