"""The `track` filter over stored tables: link each camera's kept detections across frames into occurrences.

`trapline postprocess --filter track` calls `link_occurrences` once, before it streams the parts: the
tracker (`model_store.core.filters.tracking.link_camera`) needs every frame of a camera in time order,
so, like the table-level filters (batch/postprocessing/table_filters.py), it decides over the evidence first
and hands each image its answer. The evidence is the whole history of the scope's cameras (a track may
last hours, so a window cannot be widened by a fixed margin and give the ids a whole-table run gives).

What it links are the detections the new filter set keeps (its other filters, table-level ones included);
the track filter itself never drops anything. Each occurrence gets a stable id, its determination (the
vote of batch/postprocessing/determine.py, overridden by the decisions log) and a row keyed by its first
detection's image, so the part that commits that image commits the occurrence too.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as ds

from batch.postprocessing.determine import HUMAN, carry_identifications, determine
from batch.postprocessing.reclassify import ExtraTables
from batch.postprocessing.snips import read_source
from batch.postprocessing.table_filters import Fired
from batch.postprocessing.track_edits import apply_track_edits
from model_store.core.crops import crop_box
from model_store.core.filters import DetectionArrays, FilterSet
from model_store.core.filters.appearance import animal_descriptor, appearance_descriptor
from model_store.core.filters.tracking import TrackConfig, confirmed_tracks, link_camera_scored
from model_store.core.imaging import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image
from model_store.core.masks import from_rle
from model_store.tables.archive import open_location
from model_store.tables.cameras import camera_or_default
from model_store.tables.decisions import DecisionsLog
from model_store.tables.reader import Tables
from model_store.tables.schema import CLASSIFICATIONS, IMAGES, SNIPS
from model_store.tables.scope import Scope
from model_store.tables.table_set import TableSet
from model_store.tables.verdicts import VERDICT_ACTIONS, PersonVerdicts

TRACK = "track"
IMAGE_KEY = ["uri", "content_id", "run_id"]
# (uri, content_id, source run_id, detection_index) of a stored detection
DetKey = tuple[str, str, str, int]


@dataclass
class Linked:
    """What the track filter decided: each kept detection's occurrence, and the occurrence rows by first image."""

    occurrence_of: dict[DetKey, str] = field(default_factory=dict)
    rows: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    detections_linked: int = 0
    occurrences: int = 0
    frames: int = 0  # summed over occurrences
    disagreements: int = 0  # occurrences a person determined where the model's vote names another label
    unreadable: int = 0  # images whose pixels could not be read for the appearance descriptor
    track_edits: int = 0  # people's cuts, joins and moves applied (the decisions log)

    @property
    def frames_per_occurrence(self) -> float:
        return round(self.frames / self.occurrences, 3) if self.occurrences else 0.0


def tracker_hash(config: TrackConfig) -> str:
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def occurrence_id(camera: str, first: Mapping[str, Any], config_hash: str) -> str:
    """Stable across reruns: the camera, the first detection's key and the tracker's config."""
    text = f"{camera}\0{first['uri']}\0{first['content_id']}\0{int(first['detection_index'])}\0{config_hash}"
    return "occ-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def kept_under(fs: FilterSet, images: pd.DataFrame, dets: pd.DataFrame, labels: list[str],
               table_fired: Mapping[str, Fired]) -> np.ndarray:
    """Which stored detections the filter set keeps (the core's `FilterSet.apply`, one call per image size)."""
    kept = np.zeros(len(dets), dtype=bool)
    if dets.empty:
        return kept
    sizes = dets[IMAGE_KEY].merge(images[IMAGE_KEY + ["width", "height"]], on=IMAGE_KEY, how="left")
    keys = list(zip(dets["uri"], dets["content_id"], dets["run_id"], strict=True))
    precomputed_all = {name: np.array([int(i) in fired.get(k, ()) for k, i in zip(keys, dets["detection_index"],
                                                                                 strict=True)], dtype=bool)
                       for name, fired in table_fired.items()}
    for (w, h), pos in sizes.groupby(["width", "height"], sort=False).indices.items():
        sub = dets.iloc[pos]
        boxes = np.stack([sub["bbox_x"] * w, sub["bbox_y"] * h, (sub["bbox_x"] + sub["bbox_w"]) * w,
                          (sub["bbox_y"] + sub["bbox_h"]) * h], axis=1).astype(np.float64)
        arrays = DetectionArrays(boxes, sub["score"].to_numpy(np.float64), sub["class_id"].to_numpy(np.int64),
                                 labels, int(w), int(h))
        kept[pos], _ = fs.apply(arrays, {n: m[pos] for n, m in precomputed_all.items()})
    return kept


def evidence(tables: Tables, tset: TableSet, scope: Scope) -> ds.Expression | None:
    """The images a scoped run links over: the whole history of the scope's cameras."""
    if scope.kind == "table":
        return None
    if scope.cameras and scope.kind == "camera":
        return ds.field("camera_id").isin(list(scope.cameras))
    rows = tables.read(IMAGES, tset.model_name, tset.model_version, ["camera_id"],
                       filter=(ds.field("filters_hash") == tset.filters_hash) & scope.expression())
    return ds.field("camera_id").isin(sorted({c for c in rows["camera_id"].to_pylist() if c is not None}))


def _votes(tables: Tables, tset: TableSet, images: pd.DataFrame, dets: pd.DataFrame,
           extra: ExtraTables) -> list[dict[str, Any]]:
    """One vote per detection: its first classifier's label (under the new set's classifier filters), else the
    detector's."""
    votes = [{"uri": u, "content_id": c, "detection_index": int(i), "label": lab, "score": float(s),
              "source": "detector"} for u, c, i, lab, s in
             zip(dets["uri"], dets["content_id"], dets["detection_index"], dets["label"], dets["score"], strict=True)]
    order = [c["name"] for c in tset.classifiers]
    if not order or dets.empty:
        return votes
    cls = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                      table=CLASSIFICATIONS)
    best: dict[tuple, tuple[int, dict]] = {}
    for row in cls.to_dict("records"):
        rank = order.index(row["classifier_name"]) if row["classifier_name"] in order else len(order)
        k = (row["uri"], row["content_id"], row["run_id"], int(row["detection_index"]))
        if k not in best or rank < best[k][0]:
            best[k] = (rank, row)
    for v, k in zip(votes, zip(dets["uri"], dets["content_id"], dets["run_id"], dets["detection_index"],
                               strict=True), strict=True):
        hit = best.get((*k[:3], int(k[3])))
        if hit is not None:
            row = extra.refiltered(hit[1], (v["label"], v["score"]))  # the box, for the species ensemble
            v.update(label=row["label"], score=float(row["score"]), source=row["classifier_name"])
    return votes


def _describe(crop: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A crop's two descriptors: the frame-by-frame pass's look, and the animal stitching compares."""
    return appearance_descriptor(crop), animal_descriptor(crop, mask)


def _from_snips(tables: Tables, tset: TableSet, images: pd.DataFrame, dets: pd.DataFrame) -> list | None:
    """Each detection's descriptors from its stored snip (a small JPEG: far cheaper than the frame), when every
    detection has one and none has a mask; else None (the frames are read instead, so that one camera's
    descriptors are alike)."""
    if "mask" in dets and dets["mask"].notna().any():
        return None  # a mask is in image pixels: the frame's crop reads the animal's own pixels
    snips = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash, table=SNIPS)
    if snips.empty:
        return None
    where = {(u, c, r, int(i)): s for u, c, r, i, s in snips[IMAGE_KEY + ["detection_index", "crop_uri"]].itertuples(
        index=False)}
    keys = [(u, c, r, int(i)) for u, c, r, i in dets[IMAGE_KEY + ["detection_index"]].itertuples(index=False)]
    if not all(k in where for k in keys):
        return None
    try:
        return [_describe(decode_image(open_location(where[k].rsplit("/", 1)[0]).fs.cat_file(where[k])))
                for k in keys]
    except (OSError, ImageDecodeError):
        return None


def _mask_in(rle: object, box: tuple[int, int, int, int], shape: tuple[int, int]) -> np.ndarray | None:
    """The detection's stored mask (COCO RLE, image pixels) cut to its crop, or None (a box-only model)."""
    if not isinstance(rle, dict) or rle.get("counts") is None:
        return None
    full = from_rle(rle)
    if full.shape != shape:
        return None  # stored at another image size (a resized source): the crop's own pixels are read instead
    x1, y1, x2, y2 = box
    return full[y1:y2, x1:x2]


def _appearance(config: TrackConfig, tables: Tables, tset: TableSet, dets: pd.DataFrame, images: pd.DataFrame,
                linked: Linked) -> tuple[np.ndarray, np.ndarray] | None:
    """The two descriptors of each detection (rows of `dets`): the look and the animal (`_describe`), from the
    snips, else cut from its frame (with the model's mask, where it gave one); None when off."""
    if config.appearance == "none" or dets.empty:
        return None
    snipped = _from_snips(tables, tset, images, dets)
    if snipped is not None:
        return (np.stack([a for a, _ in snipped]).astype(np.float32),
                np.stack([b for _, b in snipped]).astype(np.float32))
    rows = images.set_index(IMAGE_KEY)
    out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(dets)
    for key, pos in dets.groupby(IMAGE_KEY, sort=False).indices.items():
        try:
            rgb = read_source(rows.loc[key].to_dict() | {"uri": key[0]}, DEFAULT_MAX_PIXELS)
        except (OSError, ImageDecodeError):
            linked.unreadable += 1
            continue
        h, w = rgb.shape[:2]
        for p in pos:
            d = dets.iloc[p]
            box = (d["bbox_x"] * w, d["bbox_y"] * h, (d["bbox_x"] + d["bbox_w"]) * w, (d["bbox_y"] + d["bbox_h"]) * h)
            crop = crop_box(rgb, box)  # the crop code snips use: inside, >= 1x1
            mask = None
            if "mask" in d:
                x1, y1 = int(np.clip(np.floor(box[0]), 0, w - 1)), int(np.clip(np.floor(box[1]), 0, h - 1))
                mask = _mask_in(d["mask"], (x1, y1, x1 + crop.shape[1], y1 + crop.shape[0]), (h, w))
                mask = mask if mask is not None and mask.shape == crop.shape[:2] else None
            out[p] = _describe(crop, mask)
    if all(v is None for v in out):
        return None
    # An unreadable image's detections get a zero descriptor: no appearance evidence either way.
    blank = next(v for v in out if v is not None)
    return tuple(np.stack([v[i] if v is not None else np.zeros_like(blank[i]) for v in out]).astype(np.float32)
                 for i in range(2))


def link_occurrences(extra: ExtraTables, scope: Scope, table_fired: Mapping[str, Fired],
                     log: Callable[[str], None] = lambda line: None) -> Linked:
    """Link the kept detections of the scope's cameras into occurrences, determined and keyed for the commit. The
    tables, the source set and the filters are `extra`'s (the classifications it re-filters are this set's)."""
    tables, tset, fs, labels = extra.tables, extra.tset, extra.fs, extra.tset.labels
    config = dict(fs.filters)[TRACK]
    config_hash = tracker_hash(config)
    linked = Linked()
    name, version = tset.model_name, tset.model_version
    images = tables.current_images(name, version, tset.filters_hash, evidence(tables, tset, scope))
    if images.empty:
        return linked
    images = images[images["status"] != "failed"]
    dets = tables.committed_detections(images, name, version, tset.filters_hash)
    if not labels and not dets.empty:  # tables written without labels in their metadata: the rows name them
        seen = dict(zip(dets["class_id"], dets["label"], strict=True))
        labels = [seen.get(i, f"class_{i}") for i in range(int(max(seen)) + 1)]
    dets = dets[kept_under(fs, images, dets, labels, table_fired)].reset_index(drop=True)
    log(f"track: linking {len(dets)} kept detection(s) of {len(images)} image(s) on "
        f"{images['camera_id'].nunique(dropna=False)} camera(s)")
    if dets.empty:
        return linked
    dets = dets.merge(images[IMAGE_KEY + ["camera_id", "capture_time"]], on=IMAGE_KEY, how="left")
    dets["camera_key"] = [camera_or_default(c) for c in dets["camera_id"]]
    dets["t"] = (pd.to_datetime(dets["capture_time"]) - pd.Timestamp(0)).dt.total_seconds()
    # A clip's detections are in many frames of one file: each sampled frame is a frame of the camera, at the clip's
    # capture time plus its offset (stills have no frame number: the file is the frame).
    frame_number = dets["frame_number"] if "frame_number" in dets else pd.Series([None] * len(dets), dtype=object)
    if "frame_offset_s" in dets:
        dets["t"] = dets["t"] + pd.to_numeric(dets["frame_offset_s"]).fillna(0.0)
    dets["frame_key"] = [u if pd.isna(n) else f"{u}#{int(n)}" for u, n in zip(dets["uri"], frame_number,
                                                                              strict=True)]
    # Time order (frames without a capture time last), so each occurrence's first row is its first detection.
    dets = dets.sort_values(["camera_key", "t", "uri", "detection_index"], na_position="last", kind="stable")
    dets = dets.reset_index(drop=True)
    votes = _votes(tables, tset, images, dets, extra)
    described = _appearance(config, tables, tset, dets, images, linked)
    appearance, animal = described if described is not None else (None, None)
    track = np.full(len(dets), -1, dtype=np.int64)
    sure = np.ones(len(dets))
    stitches = np.full((len(dets), 3), np.nan)
    folds = np.full((len(dets), 4), np.nan)
    static = np.zeros(len(dets), dtype=bool)
    next_id = 0
    for _, pos in dets.groupby("camera_key", sort=False).indices.items():
        sub = dets.iloc[pos]
        boxes = np.stack([sub["bbox_x"], sub["bbox_y"], sub["bbox_x"] + sub["bbox_w"],
                          sub["bbox_y"] + sub["bbox_h"]], axis=1).astype(np.float64)
        # A frame without a capture time links to nothing (the tracker's rule): each of its boxes is one occurrence.
        ids, sure[pos], stitches[pos], folds[pos], static[pos] = link_camera_scored(
            sub["t"].to_numpy(np.float64), pd.factorize(sub["frame_key"])[0], boxes, config,
            labels=sub["label"].to_numpy(), scores=sub["score"].to_numpy(np.float64),
            appearance=None if appearance is None else appearance[pos], animal=None if animal is None else animal[pos])
        track[pos] = next_id + ids
        next_id += int(ids.max()) + 1 if len(ids) else 0
    decisions = DecisionsLog(tables.storage)
    classified = PersonVerdicts(decisions.read(VERDICT_ACTIONS), f"{name}:{version}")
    # Plain arrays once: row access through pandas (Arrow-backed strings) would cost more than the tracking.
    col = {c: dets[c].to_numpy(dtype=object) for c in ("uri", "content_id", "run_id", "camera_id", "camera_key",
                                                        "frame_key")}
    index, score = dets["detection_index"].to_numpy(np.int64), dets["score"].to_numpy(np.float64)
    # People's cuts, joins and moves (the decisions log), over what the tracker linked.
    track, sure, linked.track_edits = apply_track_edits(
        track, sure, list(zip(col["uri"], col["content_id"], index.tolist(), strict=True)), decisions.read())
    times = pd.to_datetime(dets["capture_time"]).to_numpy()
    confirmed = confirmed_tracks(track, config, score, static=static)
    counted_if_moving = confirmed_tracks(track, config, score)  # a person's identification of a flagged track
    order = np.argsort(track, kind="stable")  # within a track: time order (dets are sorted by time)
    members: dict[str, np.ndarray] = {}
    for pos in np.split(order, np.flatnonzero(np.diff(track[order])) + 1):
        p0 = pos[0]
        members[occurrence_id(col["camera_key"][p0], votes[p0], config_hash)] = pos
    keys_of = {oid: [{k: votes[p][k] for k in ("uri", "content_id", "detection_index")} for p in pos]
               for oid, pos in members.items()}
    identified = carry_identifications(keys_of, decisions.latest_identifications())
    for oid, pos in members.items():
        p0, best = pos[0], pos[int(np.argmax(score[pos]))]
        det = determine([votes[p] for p in pos], identified.get(oid), classified)
        known = times[pos][~np.isnat(times[pos])]
        frames = len(set(col["frame_key"][pos]))
        weakest = pos[1:][int(np.argmin(sure[pos[1:]]))] if len(pos) > 1 else None  # pos[0] starts the track
        flagged = bool(static[pos].all())
        # A person who identified a flagged occurrence said it is an animal: it counts as it would have.
        counted = bool(confirmed[track[p0]]) or (flagged and det.determined_by == HUMAN
                                                 and bool(counted_if_moving[track[p0]]))
        linked.rows.setdefault((col["uri"][p0], col["content_id"][p0], col["run_id"][p0]), []).append({
            "uri": col["uri"][p0], "content_id": col["content_id"][p0], "occurrence_id": oid,
            "camera_id": col["camera_id"][p0], "first_time": pd.Timestamp(known.min()) if len(known) else None,
            "last_time": pd.Timestamp(known.max()) if len(known) else None, "frames": frames,
            "detections": keys_of[oid], "best_uri": col["uri"][best], "best_content_id": col["content_id"][best],
            "best_detection_index": int(index[best]), "label": det.label, "score": det.score,
            "determined_by": det.determined_by, "model_label": det.model_label, "model_score": det.model_score,
            "identified_by": det.identified_by, "decision_id": det.decision_id, "votes": [votes[p] for p in pos],
            "confirmed": counted, "tracker_hash": config_hash, "static": flagged,
            "link_confidence": 1.0 if weakest is None else round(float(sure[weakest]), 4),
            "weakest_link": None if weakest is None else {k: votes[weakest][k] for k in ("uri", "content_id",
                                                                                          "detection_index")},
            "stitches": [{**{k: votes[p][k] for k in ("uri", "content_id", "detection_index")},
                          "distance": round(float(stitches[p, 0]), 6), "gap_frames": int(stitches[p, 1]),
                          "probability": round(float(stitches[p, 2]), 4)}
                         for p in pos[1:] if not np.isnan(stitches[p, 2]) and sure[p] == stitches[p, 2]],
            "folds": [{**{k: votes[p][k] for k in ("uri", "content_id", "detection_index")},
                       **{k: None if np.isnan(folds[p, i]) else round(float(folds[p, i]), 4)
                          for i, k in ((1, "share"), (2, "spread"), (3, "moved"))}}
                      for p in pos if not np.isnan(folds[p, 0])]})
        for p in pos:
            linked.occurrence_of[(col["uri"][p], col["content_id"][p], col["run_id"][p], int(index[p]))] = oid
        linked.occurrences += 1
        linked.frames += frames
        linked.disagreements += det.disagrees
    linked.detections_linked = len(dets)
    log(f"track: {linked.occurrences} occurrence(s) from {linked.detections_linked} detection(s), "
        f"{linked.frames_per_occurrence} frame(s) per occurrence"
        + (f", {linked.track_edits} people's cut(s), join(s) or move(s) applied" if linked.track_edits else ""))
    return linked

