"""A training set from people's reviews (issue 82, item 4): which images and boxes of one result set people verified,
the split by camera, and the manifest that says what it was made of. The formats that write it are in
batch/export/training_formats.py.

The rules (the review verdicts folded by model_store/tables/verdicts.py, for the version exported):

- a confirmed box keeps its label, a relabelled one takes the person's label, a box people added (one the version
  missed) is in with its label, a rejected box is out;
- an image marked empty (and no box added after the mark) is a negative: no box;
- an image nobody reviewed is left out; so is an image whose every box was rejected without the image being marked
  empty (nobody said what is there), and a failed image or a video;
- an image with a box nobody judged is *partly reviewed*: the whole-image formats (yolo, coco-dataset) leave it out,
  since an unjudged animal would teach "background"; crops take its verified boxes, each judged on its own.

The split puts whole cameras in one split (so no camera is in two splits, and every frame of an occurrence, which
lies in one camera, is in one split; an occurrence id met in two cameras joins them). Where the tables know
deployments (model_store/tables/deployments.py), cameras that stood at one site (its locationID, else its
locationName, else its coordinates to 4 decimals) join too: a site's background is in one split. The draw is by
`seed`: the groups are shuffled, then each goes to the split furthest below its share of images.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from batch.export.base import ExportJob
from batch.export.training_options import SPLITS, TrainingSetOptions
from batch.postprocessing.determine import key_of
from model_store.tables.decisions import DecisionsLog
from model_store.tables.deployments import DeploymentsTable
from model_store.tables.verdicts import VERDICT_ACTIONS, PersonVerdicts

SPLIT_RULE = ("whole cameras per split (cameras that share an occurrence or a deployment site join), the groups "
              "shuffled by the seed, each put in the split furthest below its share of images")
UNKNOWN_CAMERA = "unknown"


@dataclass(frozen=True)
class Box:
    """One verified box: its label and x, y, w, h normalised to the image (top-left corner)."""

    label: str
    bbox: tuple[float, float, float, float]
    kind: str  # confirmed | relabelled | added
    detection_index: int | None = None  # the version's detection it is (None: a box people added)
    occurrence_id: str | None = None  # a tracked set's occurrence the detection belongs to


@dataclass
class Item:
    """One reviewed image of the set: its verified boxes, whether it is a negative, whether every box was judged."""

    uri: str
    content_id: str
    rel_path: str | None
    camera_id: str
    width: int
    height: int
    size_bytes: int | None
    boxes: list[Box]
    negative: bool
    whole: bool
    occurrences: set[str] = field(default_factory=set)
    decisions: set[str] = field(default_factory=set)
    split: str = ""
    name: str = ""  # the picture's file name in the set


@dataclass
class Gathered:
    """The reviewed images of a set, what was left out (reason -> images) and the boxes rejected in them."""

    items: list[Item]
    left_out: Counter
    rejected: int
    sites: dict[str, set[str]] = field(default_factory=dict)  # camera -> the deployment sites it stood at


def _clip(bbox: Iterable[float]) -> tuple[float, float, float, float] | None:
    x, y, w, h = (float(v) for v in bbox)
    x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + w, 1.0), min(y + h, 1.0)
    return None if x1 <= x0 or y1 <= y0 else (x0, y0, x1 - x0, y1 - y0)


def _item(img: dict, dets: list[dict], verdicts: PersonVerdicts) -> tuple[Item | None, str | None, int]:
    """(the reviewed image, None) or (None, why it is left out); and how many of its boxes people rejected."""
    image = (img["uri"], img["content_id"])
    boxes, decisions, occurrences = [], set(), set()
    unjudged = rejected = 0
    for d in dets:
        v = verdicts.get(key_of(d))
        if v is None:
            unjudged += 1
            continue
        decisions.add(v.decision.decision_id)
        oid = d.get("occurrence_id")
        if isinstance(oid, str):
            occurrences.add(oid)
        if v.label is None:
            rejected += 1
            continue
        box = _clip((d["bbox_x"], d["bbox_y"], d["bbox_w"], d["bbox_h"]))
        if box is not None:
            kind = "relabelled" if v.decision.action == "classify" or v.label != d.get("said") else "confirmed"
            boxes.append(Box(v.label, box, kind, int(d["detection_index"]), oid if isinstance(oid, str) else None))
    for added in verdicts.added.get(image, ()):
        decisions.add(added.decision_id)
        box = _clip(added.bbox)
        if box is not None:
            boxes.append(Box(added.label, box, "added"))
    mark = verdicts.empty.get(image)
    if mark is not None:
        decisions.add(mark.decision_id)
    negative = not boxes and mark is not None and not verdicts.added.get(image)
    if not boxes and not negative:
        return None, ("partly_reviewed" if unjudged else "rejected_only"), rejected
    camera = img.get("camera_id")
    item = Item(img["uri"], img["content_id"], img.get("rel_path") or None,
                camera if isinstance(camera, str) and camera else UNKNOWN_CAMERA, int(img["width"]),
                int(img["height"]), _size(img.get("size_bytes")), boxes, negative, unjudged == 0, occurrences,
                decisions)
    return item, None, rejected


def _size(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _said(dets: pd.DataFrame) -> list[dict]:
    """Detection rows as dicts, each with `said`: the version's label (its first classifier's where one ran)."""
    rows = dets.to_dict("records")
    for r in rows:
        cls = r.get("classifications")
        r["said"] = cls[0]["label"] if isinstance(cls, list) and cls else r["label"]
    return rows


def gather(job: ExportJob[TrainingSetOptions]) -> Gathered:
    """The set's reviewed images (one slice of whole cameras at a time), with what people verified in each."""
    storage = job.tables.storage
    verdicts = PersonVerdicts(DecisionsLog(storage).read(VERDICT_ACTIONS),
                              f"{job.tset.model_name}:{job.tset.model_version}")
    looked = verdicts.images()
    out = Gathered([], Counter(), 0, camera_sites(DeploymentsTable(storage)))
    for rows in job.rows():
        by_image: dict[tuple[str, str], list[dict]] = {}
        for d in _said(rows.dets) if not rows.dets.empty else []:
            by_image.setdefault((d["uri"], d["content_id"]), []).append(d)
        for img in rows.images.to_dict("records"):
            image = (img["uri"], img["content_id"])
            if image not in looked:
                out.left_out["unreviewed"] += 1
            elif img.get("status") != "ok":
                out.left_out["failed"] += 1
            elif img.get("kind") == "video":
                out.left_out["video"] += 1
            else:
                item, why, rejected = _item(img, by_image.get(image, []), verdicts)
                out.rejected += rejected
                if item is None:
                    out.left_out[str(why)] += 1
                else:
                    out.items.append(item)
    return out


def camera_sites(deployments: DeploymentsTable) -> dict[str, set[str]]:
    """camera -> the sites its deployments stood at: locationID, else locationName, else the coordinates."""
    out: dict[str, set[str]] = {}
    for r in deployments.records():
        d = r.deployment
        out.setdefault(r.camera_id, set()).add(d.locationID or d.locationName
                                               or f"{d.latitude:.4f},{d.longitude:.4f}")
    return out


def _groups(items: list[Item], sites: dict[str, set[str]]) -> dict[str, str]:
    """camera -> its group: cameras joined when an occurrence id is met in both, or they stood at one site
    (union-find)."""
    parent: dict[str, str] = {}

    def root(c: str) -> str:
        while parent.setdefault(c, c) != c:
            c = parent[c]
        return c

    first: dict[str, str] = {}
    for it in items:
        root(it.camera_id)
        for link in (*(f"occurrence:{o}" for o in it.occurrences),
                     *(f"site:{s}" for s in sites.get(it.camera_id, ()))):
            a, b = root(first.setdefault(link, it.camera_id)), root(it.camera_id)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {c: root(c) for c in parent}


def split(items: list[Item], fractions: dict[str, float], seed: int, sites: dict[str, set[str]] | None = None
          ) -> None:
    """Set each item's `split`: whole camera groups (`sites`: camera -> its deployment sites), shuffled by `seed`,
    each to the split furthest below its share."""
    group_of = _groups(items, sites or {})
    sizes = Counter(group_of[it.camera_id] for it in items)
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    total = sum(sizes.values())
    wanted = {s: f * total for s, f in fractions.items() if f > 0}
    have = dict.fromkeys(wanted, 0)
    chosen = {}
    for g in order:
        s = max(wanted, key=lambda s: ((wanted[s] - have[s]) / wanted[s], -SPLITS.index(s)))
        chosen[g] = s
        have[s] += sizes[g]
    for it in items:
        it.split = chosen[group_of[it.camera_id]]


def name_pictures(items: list[Item]) -> None:
    """Each item's file name in the set: its path in the archive with "/" as "__" (unique: a clash gets a digest)."""
    taken: set[str] = set()
    for it in sorted(items, key=lambda i: (i.rel_path or i.uri, i.uri)):
        base = (it.rel_path or it.uri.rstrip("/").rsplit("/", 1)[-1]).strip("/").replace("/", "__")
        name = base
        if name in taken:
            stem, dot, ext = base.rpartition(".")
            tag = hashlib.sha256(it.uri.encode()).hexdigest()[:8]
            name = f"{stem}-{tag}.{ext}" if dot else f"{base}-{tag}"
        taken.add(name)
        it.name = name


def labels_of(items: list[Item]) -> list[str]:
    """Every verified label of the set, sorted: class i of YOLO, category i + 1 of COCO."""
    return sorted({b.label for it in items for b in it.boxes})


def split_counts(items: list[Item]) -> dict[str, dict[str, Any]]:
    """Per split: images, negatives, boxes per label, the cameras in it and the occurrences (a tracked set's) its
    boxes belong to."""
    out = {}
    for s in SPLITS:
        mine = [it for it in items if it.split == s]
        out[s] = {"images": len(mine), "negatives": sum(it.negative for it in mine),
                  "boxes": dict(sorted(Counter(b.label for it in mine for b in it.boxes).items())),
                  "cameras": sorted({it.camera_id for it in mine}),
                  "occurrences": len({b.occurrence_id for it in mine for b in it.boxes if b.occurrence_id})}
    return out


def manifest(job: ExportJob[TrainingSetOptions], found: Gathered, used: list[Item], labels: list[str],
             partly_out: bool, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the set made of the images `used` was made of: the decisions (ids, count, digest), the tables, the
    versions, the seed, the split rule and its counts, and what was left out."""
    o, tset = job.options, job.tset
    ids = sorted({d for it in used for d in it.decisions})
    return {
        "format": o.format, "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "tables": job.tables.url, "model": f"{tset.model_name}:{tset.model_version}", "filters_hash": tset.filters_hash,
        "model_sha256": tset.metadata.get("model", {}).get("sha256"),
        "classifiers": [f"{c['name']}:{c['version']}" for c in tset.classifiers],
        "scope": o.scope().as_dict(),
        "decisions": {"count": len(ids), "sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(), "ids": ids},
        "seed": o.seed, "split": {"rule": SPLIT_RULE, "fractions": o.fractions()},
        "labels": labels, "splits": split_counts(used), "rejected_boxes": found.rejected,
        "left_out": left_out(found, partly_out), "pictures": o.pictures, **(extra or {}),
    }


def left_out(found: Gathered, partly_out: bool) -> dict[str, int]:
    """reason -> images not in the set (`partly_out`: partly reviewed images are not exported whole)."""
    left = Counter(found.left_out)
    if partly_out:
        left["partly_reviewed"] += sum(not it.whole for it in found.items)
    return {k: n for k, n in sorted(left.items()) if n}


def left_out_notes(found: Gathered, partly_out: bool) -> list[str]:
    """What the user should know about the images not in the set."""
    why = {"unreviewed": "nobody reviewed", "rejected_only": "every box rejected and the image not marked empty",
           "failed": "failed to read", "video": "videos (frames are not exported)",
           "partly_reviewed": "partly reviewed (a box nobody judged)"}
    return [f"left out {n} image(s): {why[k]}" for k, n in left_out(found, partly_out).items()]


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    return os.path.abspath(url.removeprefix("file://"))
