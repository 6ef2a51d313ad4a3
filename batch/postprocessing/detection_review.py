"""A person's review of one model version's detections, the verbs that make its accuracy measurable: confirm a
detection (box and label right), reject one (not an animal, or a wrong box), relabel one, mark an image empty, add a
box the version missed. Each is one decision in the tables' decisions log (model_store/tables/decisions.py), stamped
with the version and result set it was made on; readers fold them with model_store/tables/verdicts.py (the
occurrences' vote at once, the accuracy of the version: batch/postprocessing/accuracy.py).

The same functions behind the HTTP routes (batch/views/review.py) and the command line (`trapline review ...`):
each checks that what it names is in the set (a kept detection, a current image) before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow.compute as pc
import pyarrow.dataset as ds

from batch.postprocessing.determine import key_of
from batch.postprocessing.occurrences import SetPlace
from batch.postprocessing.people import kept_with_classifications
from ground.errors import NotFoundError
from model_store.tables.decisions import (
    AddMissedBox,
    ClassifyDetection,
    ConfirmDetection,
    DecisionsLog,
    DetectionKey,
    ImageKey,
    MarkEmpty,
    RejectDetection,
    make,
)
from model_store.tables.reader import Tables
from model_store.tables.schema import IMAGES
from model_store.tables.table_set import TableSet, resolve_table_set
from model_store.tables.verdicts import VERDICT_ACTIONS, PersonVerdicts

APPLIES = ("recorded: the occurrences' vote honours it at once, `trapline models accuracy` counts it, and so does "
           "every later run over these tables")


def said_label(row: Mapping[str, Any]) -> str:
    """What the version says a kept box is: its first classifier's label where one ran, else the detector's."""
    cls = row.get("classifications")
    return cls[0]["label"] if cls is not None and len(cls) else row["label"]


@dataclass(frozen=True)
class Reviewing:
    """One result set opened for review: its tables, the set, and its decisions log."""

    tables: Tables
    tset: TableSet

    @classmethod
    def open(cls, where: SetPlace, newest: bool = False) -> Reviewing:
        """The set `where` names; with `newest`, over tables of several versions and none named, the version
        written last (`_newest_written`) instead of a refusal. The tables are opened once for both."""
        tables = where.tables
        model = _newest_written(tables) if newest and where.model is None else where.model
        return cls(tables, resolve_table_set(tables, model, where.filters_hash, where.store))

    @property
    def model(self) -> str:
        return f"{self.tset.model_name}:{self.tset.model_version}"

    @property
    def log(self) -> DecisionsLog:
        return DecisionsLog(self.tables.storage)

    def _where(self) -> str:
        return f"{self.model} [filters {self.tset.filters_hash}]"

    def kept_boxes(self, uri: str) -> pd.DataFrame:
        """The set's kept boxes in one image (with their classifications)."""
        return self.kept_boxes_in([uri])

    def kept_boxes_in(self, uris: list[str]) -> pd.DataFrame:
        """The set's kept boxes in these images (with their classifications)."""
        return kept_with_classifications(self.tables, self.tset, ds.field("uri").isin(sorted(set(uris))))[1]

    def detection(self, key: DetectionKey) -> dict[str, Any]:
        """The kept detection `key` of the set; NotFoundError when there is none."""
        dets = self.kept_boxes(key.uri)
        hit = dets[(dets["content_id"] == key.content_id) & (dets["detection_index"] == key.detection_index)] \
            if not dets.empty else dets
        if hit.empty:
            raise NotFoundError(f"no kept detection {key.uri}#{key.detection_index} in {self._where()}")
        return hit.iloc[0].to_dict()

    def image(self, image: ImageKey) -> None:
        """NotFoundError unless `image` is a current image of the set."""
        rows = self.tables.current_images(self.tset.model_name, self.tset.model_version, self.tset.filters_hash,
                                          ds.field("uri") == image.uri)
        if rows.empty or image.content_id not in set(rows["content_id"]):
            raise NotFoundError(f"no image {image.uri} (content {image.content_id}) in {self._where()}")

    def image_named(self, text: str) -> ImageKey:
        """The set's current image whose URI or archive path is `text`."""
        images = self.tables.current_images(self.tset.model_name, self.tset.model_version, self.tset.filters_hash,
                                            (ds.field("uri") == text) | (ds.field("rel_path") == text))
        if images.empty:
            raise NotFoundError(f"no image {text!r} (a URI or a path in the archive) in {self._where()}")
        if len(images) > 1:
            raise NotFoundError(f"{text!r} names {len(images)} images in {self._where()}: give the URI")
        return ImageKey(uri=images["uri"].iloc[0], content_id=images["content_id"].iloc[0])

    def record(self, action: type, who: str, comment: str | None, **fields: Any) -> dict[str, Any]:
        decision = make(action, who, comment, model=self.model, filters_hash=self.tset.filters_hash, **fields)
        return self.log.append(decision).model_dump(mode="json")


def confirm(where: SetPlace, key: DetectionKey, who: str, comment: str | None = None,
            label: str | None = None) -> dict[str, Any]:
    """Record that a detection's box and label are right (`label`: the one the person saw, default the version's)."""
    r = Reviewing.open(where)
    said = said_label(r.detection(key))
    return r.record(ConfirmDetection, who, comment, detection=key, label=label or said)


def reject(where: SetPlace, key: DetectionKey, who: str, comment: str | None = None,
           reason: str = "not_animal") -> dict[str, Any]:
    """Record that a detection is not an animal (or its box is wrong)."""
    r = Reviewing.open(where)
    r.detection(key)
    return r.record(RejectDetection, who, comment, detection=key, reason=reason)


def relabel(where: SetPlace, key: DetectionKey, label: str, who: str, comment: str | None = None) -> dict[str, Any]:
    """Record that a detection's box is right and its label is `label` (the edited classification)."""
    r = Reviewing.open(where)
    r.detection(key)
    return r.record(ClassifyDetection, who, comment, detection=key, label=label)


def mark_empty(where: SetPlace, image: ImageKey, who: str, comment: str | None = None) -> dict[str, Any]:
    """Record that an image holds no animal."""
    r = Reviewing.open(where)
    r.image(image)
    return r.record(MarkEmpty, who, comment, image=image)


def add_box(where: SetPlace, image: ImageKey, bbox: tuple[float, float, float, float], label: str, who: str,
            comment: str | None = None) -> dict[str, Any]:
    """Record an animal the version missed in an image: its box (x, y, w, h normalised) and label."""
    r = Reviewing.open(where)
    r.image(image)
    return r.record(AddMissedBox, who, comment, image=image, bbox=tuple(bbox), label=label)


def _newest_written(tables: Tables) -> str | None:
    """Over tables of several versions and none named, the version whose newest image row is the latest: a person
    opening the Review page reviews what the last run found (the page names it, and its picker takes another). The
    verbs still take the version from the page (`model` in each decision), never this default."""
    versions = tables.versions()
    if len(versions) < 2:
        return None  # one version (or none: resolve_table_set says why)

    def written(nv: tuple[str, str]) -> tuple:
        newest = pc.max(tables.read(IMAGES, *nv, ["processed_at"])["processed_at"]).as_py()
        return (newest.timestamp() if newest else float("-inf")), nv

    name, version = max(versions, key=written)
    return f"{name}:{version}"


def listing(where: SetPlace, camera: str | None = None, todo: bool = True, limit: int = 20,
            offset: int = 0) -> dict[str, Any]:
    """A page of the set's images to review (`todo`: those nobody reviewed yet), each with its kept boxes, what the
    version says of each, the verdict in force and the boxes people added: what the console's Review page shows."""
    r = Reviewing.open(where, newest=True)
    images = r.tables.current_images(r.tset.model_name, r.tset.model_version, r.tset.filters_hash,
                                     None if camera is None else ds.field("camera_id") == camera)
    verdicts = PersonVerdicts(r.log.read(VERDICT_ACTIONS), r.model)
    if not images.empty:
        if todo:
            looked = verdicts.images()
            images = images[[(u, c) not in looked for u, c in zip(images["uri"], images["content_id"], strict=True)]]
        images = images.sort_values(["camera_id", "capture_time", "uri"], na_position="last", kind="stable")
    shown = images.iloc[offset:offset + limit]
    dets = r.kept_boxes_in(list(shown["uri"])) if not shown.empty else pd.DataFrame()
    by_image = {k: g for k, g in dets.groupby(["uri", "content_id"], sort=False)} if not dets.empty else {}
    out = []
    for row in shown.to_dict("records"):
        image = (row["uri"], row["content_id"])
        boxes = []
        g = by_image.get(image)
        for d in ([] if g is None else g.to_dict("records")):
            v = verdicts.get(key_of(d))
            boxes.append({"uri": d["uri"], "content_id": d["content_id"], "detection_index": int(d["detection_index"]),
                          "label": said_label(d), "score": float(d["score"]),
                          "bbox": [float(d[c]) for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")],
                          "verdict": None if v is None else v.label or "(none)",
                          "decided": None if v is None else v.decision.action})
        when = row.get("capture_time")
        out.append({"uri": row["uri"], "content_id": row["content_id"], "camera_id": row.get("camera_id"),
                    "capture_time": None if when is None or pd.isna(when) else pd.Timestamp(when).isoformat(),
                    "empty": image in verdicts.empty and not verdicts.added.get(image), "boxes": boxes,
                    "added": [b.model_dump(mode="json") for b in verdicts.added.get(image, ())]})
    return {"model": r.model, "filters_hash": r.tset.filters_hash, "total": len(images), "limit": limit,
            "offset": offset, "images": out}
