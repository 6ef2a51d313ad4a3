"""Smoothing over stored tables: `species_ensemble`'s `smoothing` ("image" or "event") re-decides each detection's
label with MegaDetector's rules (model_store/core/species/smoothing.py) over one image's, or one event's, detections.

An event is what `trapline events` calls one: a camera's images in capture order, a new one after a gap of more than
`smoothing_gap_s` seconds (MegaDetector's sequences). It needs every classification of an event before any image is
written, so `trapline postprocess` runs this pass first over the source set in scope (each classification under the
new filter set, as `ExtraTables.refiltered` decides it), and then writes each classification's smoothed label (source
`...+smoothed`) and what its image or event held before (`pre_smoothing_description`, as MegaDetector keeps it).
Each classifier is smoothed on its own.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pandas as pd
import pyarrow.dataset as ds

from model_store.core.species.smoothing import Item, description, smooth
from model_store.tables.cameras import camera_or_default
from model_store.tables.schema import CLASSIFICATIONS, DETECTIONS, IMAGES

Key = tuple[str, str, str, int, str]  # uri, content_id, run_id, detection_index, classifier
Smoothed = tuple[str, str]  # the label after smoothing, the group's pre_smoothing_description


def groups_of(images: pd.DataFrame, level: str, gap_s: float) -> list[list[tuple[str, str, str]]]:
    """The images smoothed together: each alone ("image"), or a camera's events by capture-time gap ("event"; an
    image without a capture time is its own group)."""
    keys = list(zip(images["uri"], images["content_id"], images["run_id"], strict=True))
    if level == "image":
        return [[k] for k in keys]
    imgs = images.assign(key=keys, camera_key=[camera_or_default(c) for c in images["camera_id"]])
    timed = imgs[imgs["capture_time"].notna()].sort_values(["camera_key", "capture_time", "uri"], kind="stable")
    gaps = timed.groupby("camera_key", sort=False)["capture_time"].diff().dt.total_seconds()
    timed = timed.assign(event_no=(gaps.isna() | (gaps > gap_s)).cumsum())
    out = [list(g["key"]) for _, g in timed.groupby("event_no", sort=True)]
    return out + [[k] for k in imgs[imgs["capture_time"].isna()]["key"]]


def smoothed_labels(extra, expr: ds.Expression, config) -> dict[Key, Smoothed]:
    """Each classification's label after smoothing, with what its image or event held before (MegaDetector's
    `pre_smoothing_description`), where smoothing changed it (the set read is `extra`'s: its tables, model version
    and source result set; `expr` the images in scope)."""
    tables, name, version, source_hash = extra.tables, extra.name, extra.version, extra.source_hash
    images = tables.read(IMAGES, name, version, ["uri", "content_id", "run_id", "camera_id", "capture_time",
                                                 "capture_time_source", "status"], filter=expr)
    same = ds.field("filters_hash") == source_hash
    dets = tables.read(DETECTIONS, name, version, ["uri", "content_id", "run_id", "detection_index", "label",
                                                   "score", "kept"], filter=same).to_pylist()
    rows = tables.read(CLASSIFICATIONS, name, version, filter=same).to_pylist()
    locations = extra.locations_of(images)
    boxes = {(d["uri"], d["content_id"], d["run_id"], int(d["detection_index"])): (d["label"], float(d["score"]))
             for d in dets if d["kept"]}
    by_image: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        box = boxes.get((row["uri"], row["content_id"], row["run_id"], int(row["detection_index"])))
        if box is None:
            continue
        new = extra.refiltered(row, box, locations.get(row["uri"]))
        by_image[(row["uri"], row["content_id"], row["run_id"])].append({**new, "box": box})
    out: dict[Key, Smoothed] = {}
    frame = images.to_pandas()
    for group in groups_of(frame, config.smoothing, config.smoothing_gap_s):
        per_classifier: dict[str, list[tuple[Key, Item]]] = defaultdict(list)
        for image in group:
            for r in by_image.get(image, ()):
                key = (*image, int(r["detection_index"]), r["classifier_name"])
                per_classifier[r["classifier_name"]].append(
                    (key, Item(r["box"][0], r["box"][1], r["label"], float(r["score"]))))
        for items in per_classifier.values():
            before = [it.label for _, it in items]
            said = description([it for _, it in items], config.smoothing_options)  # before smooth() changes them
            smooth([it for _, it in items], config.smoothing_options)
            out.update({key: (it.label, said) for (key, it), old in zip(items, before, strict=True) if it.label != old})
    return out
