"""Occurrences as people see them: the stored rows with the decisions log applied now, and the decisions.

The `occurrences` table holds each occurrence's determination as it was when the run wrote it; what a
person decided since (an identification, an edited classification) is applied here, on every read
(`redetermine`), so an identification or an edited label counts at once, for every reader
(the HTTP routes, `trapline events`, the report, the exports), and for any later run's tables (the log
is never tied to one run: batch/postprocessing/determine.py carries an identification to a new occurrence id).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow.dataset as ds

from batch.postprocessing.determine import HUMAN, MODEL, carry_identifications, determine, key_of
from batch.postprocessing.snips import read_source
from ground.errors import BatchError, DecisionError, NotFoundError
from model_store.core.crops import crop_box
from model_store.core.imaging import DEFAULT_MAX_PIXELS, ImageDecodeError, encode_jpeg
from model_store.tables.archive import open_location
from model_store.tables.browse import as_text
from model_store.tables.decisions import (
    ClassifyDetection,
    DecisionsLog,
    DetectionKey,
    IdentifyOccurrence,
    MergeOccurrences,
    MoveDetection,
    SplitOccurrence,
    make,
)
from model_store.tables.reader import Tables
from model_store.tables.schema import CLASSIFICATIONS, DETECTIONS, IMAGES, OCCURRENCES, SNIPS
from model_store.tables.table_set import TableSet, resolve_table_set
from model_store.tables.verdicts import PersonVerdicts

DETERMINED_BY = (MODEL, HUMAN)
DETERMINATION_COLUMNS = ("label", "score", "determined_by", "model_label", "model_score", "identified_by",
                         "decision_id")


@dataclass(frozen=True)
class OccurrenceSet:
    """The occurrences of one table set with the decisions applied (one row per occurrence, newest first)."""

    tset: TableSet
    images: pd.DataFrame  # the set's current image rows
    rows: pd.DataFrame
    log: DecisionsLog


@dataclass(frozen=True)
class SetPlace:
    """Which set's occurrences a person's decision is about: the tables (opened at the door), the model version and
    result set (None: as `occurrence_table_set` chooses) and the store for an alias. One value, so the decisions
    below take it whole instead of the same four-argument tail each."""

    tables: Tables
    model: str | None = None
    filters_hash: str | None = None
    store: str | None = None

    def load(self, filters_hash: str | None = None) -> OccurrenceSet:
        """The set's occurrences now (`filters_hash`: the set a first load resolved, so a re-read sees the same)."""
        return load(self.tables, self.model, filters_hash or self.filters_hash, self.store)


def occurrence_table_set(tables: Tables, model: str | None = None, filters_hash: str | None = None,
                         store: str | None = None) -> TableSet:
    """The model version (as `resolve_table_set`) and its newest set with occurrences, unless one is named. No model
    named over tables of several versions: the one version with occurrences, when only one has some (a reprocess with
    another version beside a tracked one, as `make demo` leaves them, opens on the tracked one)."""
    if model is None and len(versions := tables.versions()) > 1:
        tracked = [f"{n}:{v}" for n, v in versions if tables.parts(OCCURRENCES, n, v)]
        model = tracked[0] if len(tracked) == 1 else None
        if not tracked:
            raise NotFoundError(f"no model version has occurrences in {tables.url}: run `trapline postprocess "
                                "--filter track --config '{}' --model NAME:VERSION` first")
    tset = resolve_table_set(tables, model, filters_hash, store)
    if filters_hash is not None:
        return tset
    runs = tables.read(OCCURRENCES, tset.model_name, tset.model_version, ["filters_hash", "run_id"])
    if not runs.num_rows:
        raise NotFoundError(f"{tset.model_name}:{tset.model_version} has no occurrences in {tables.url}: run "
                            "`trapline postprocess --filter track --config '{}'` first")
    # The newest set by its image rows' processed_at (microseconds), as resolve_table_set picks: run ids alone
    # sort two runs of the same second by their random suffix.
    rows = tables.read(IMAGES, tset.model_name, tset.model_version, ["filters_hash", "processed_at", "run_id"],
                       filter=ds.field("filters_hash").isin(sorted(set(runs["filters_hash"].to_pylist()))))
    newest = rows.sort_by([("processed_at", "descending"), ("run_id", "descending")])["filters_hash"][0].as_py()
    return resolve_table_set(tables, f"{tset.model_name}:{tset.model_version}", newest, store)


def redetermine(rows: pd.DataFrame, log: DecisionsLog, model: str | None = None) -> pd.DataFrame:
    """The rows with each determination recomputed from its votes and the decisions log as it is now (the review
    decisions made on `model`, NAME:VERSION, and the edited classifications)."""
    if rows.empty:
        return rows.assign(comment=pd.Series(dtype=object))
    decisions = log.read()
    classified = PersonVerdicts(decisions, model)
    identifications = {d.occurrence_id: d for d in decisions if isinstance(d, IdentifyOccurrence)}
    identified = carry_identifications(dict(zip(rows["occurrence_id"], rows["detections"], strict=True)),
                                       identifications)
    out = [determine(list(votes), identified.get(oid), classified).as_dict()
           for oid, votes in zip(rows["occurrence_id"], rows["votes"], strict=True)]
    fresh = pd.DataFrame(out, index=rows.index)
    return rows.assign(**{c: fresh[c] for c in (*DETERMINATION_COLUMNS, "comment")})


def load(tables: Tables, model: str | None = None, filters_hash: str | None = None,
         store: str | None = None, camera: str | None = None) -> OccurrenceSet:
    """Every occurrence of a set (of one camera's images, when given: only those are read), the decisions applied."""
    tset = occurrence_table_set(tables, model, filters_hash, store)
    images = tables.current_images(tset.model_name, tset.model_version, tset.filters_hash,
                                   None if camera is None else ds.field("camera_id") == camera)
    rows = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                       table=OCCURRENCES)
    if not rows.empty:
        rows = retime(rows, images)
        rows = rows.sort_values(["first_time", "occurrence_id"], ascending=[False, True], na_position="last")
        rows = rows.drop_duplicates("occurrence_id").reset_index(drop=True)
    log = DecisionsLog(tables.storage)
    return OccurrenceSet(tset, images, redetermine(rows, log, f"{tset.model_name}:{tset.model_version}"), log)


def retime(rows: pd.DataFrame, images: pd.DataFrame) -> pd.DataFrame:
    """Occurrence rows with first/last time (UTC) from their frames' times as read now, and the first in local time
    (`first_time_local`: its night): a clock corrected after the tracking run moves its occurrences too
    (model_store/tables/clock.py); as is without deployments or corrections."""
    if "capture_time_recorded" not in images:
        return rows
    time_of = dict(zip(images["uri"], zip(images["capture_time"], images["capture_time_local"], strict=True),
                       strict=True))
    firsts, lasts, local = [], [], []
    for dets in rows["detections"]:
        times = sorted(t for d in dets if (t := time_of.get(d["uri"])) is not None and not pd.isna(t[0]))
        firsts.append(times[0][0] if times else pd.NaT)
        local.append(times[0][1] if times else pd.NaT)
        lasts.append(times[-1][0] if times else pd.NaT)

    def column(values: list) -> pd.Series:
        return pd.to_datetime(pd.Series(values, index=rows.index, dtype=object))

    return rows.assign(first_time=column(firsts), last_time=column(lasts), first_time_local=column(local))


def select(rows: pd.DataFrame, camera: str | None = None, label: str | None = None, since: dt.datetime | None = None,
           until: dt.datetime | None = None, determined_by: str | None = None) -> pd.DataFrame:
    """The rows matching every filter given (`label` matches the determination)."""
    if determined_by is not None and determined_by not in DETERMINED_BY:
        raise BatchError(f"determined_by must be one of {', '.join(DETERMINED_BY)}, got {determined_by!r}")
    keep = pd.Series(True, index=rows.index)
    if camera is not None:
        keep &= rows["camera_id"] == camera
    if label is not None:
        keep &= rows["label"] == label
    if since is not None:
        keep &= rows["last_time"] >= pd.Timestamp(since)
    if until is not None:
        keep &= rows["first_time"] <= pd.Timestamp(until)
    if determined_by is not None:
        keep &= rows["determined_by"] == determined_by
    return rows[keep]


def review_queue(rows: pd.DataFrame, below: float = 1.0) -> pd.DataFrame:
    """Occurrences of more than one detection whose weakest link the tracker is less sure of than `below`, least
    certain first: the merges a person should look at (tables written before link confidence was stored: none)."""
    if rows.empty or "link_confidence" not in rows.columns:
        return rows.iloc[0:0]
    sure = pd.to_numeric(rows["link_confidence"], errors="coerce")
    keep = sure.notna() & (sure < below) & (rows["detections"].map(len) > 1)
    return rows[keep].assign(_sure=sure[keep]).sort_values(["_sure", "occurrence_id"]).drop(columns="_sure")


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """One occurrence as a list shows it."""
    return {"occurrence_id": row["occurrence_id"], "camera_id": row["camera_id"],
            "first_time": _iso(row["first_time"]), "last_time": _iso(row["last_time"]), "frames": int(row["frames"]),
            "detections": len(row["detections"]), "confirmed": bool(row["confirmed"]),
            "determination": {"label": _text(row["label"]), "score": _num(row["score"]), "how": row["determined_by"],
                              "model_label": _text(row["model_label"]), "model_score": _num(row["model_score"]),
                              "identified_by": _text(row["identified_by"]), "decision_id": _text(row["decision_id"]),
                              "comment": _text(row.get("comment"))},
            "best": {"uri": row["best_uri"], "content_id": row["best_content_id"],
                     "detection_index": int(row["best_detection_index"])},
            "filters_hash": row["filters_hash"], "run_id": row["run_id"],
            "tracker_hash": _text(row["tracker_hash"]), "link_confidence": _num(row.get("link_confidence")),
            "weakest_link": _key(row.get("weakest_link")), "stitches": _stitches(row.get("stitches")),
            "folds": _folds(row.get("folds")), "static": _flag(row.get("static"))}


def _stitches(value: Any) -> list[dict[str, Any]]:
    """The stitching pass's joins of an occurrence, with their evidence (none for tables written before them)."""
    if value is None or isinstance(value, float):
        return []
    return [{**_key(s), "distance": _num(s.get("distance")), "gap_frames": int(s["gap_frames"]),
             "probability": _num(s.get("probability"))} for s in value if _key(s) is not None]


def _folds(value: Any) -> list[dict[str, Any]]:
    """The animal's second boxes the tracker folded in, with their evidence (none for tables written before)."""
    if value is None or isinstance(value, float):
        return []
    return [{**_key(f), **{k: _num(f.get(k)) for k in ("share", "spread", "moved")}} for f in value
            if _key(f) is not None]


def _flag(value: Any) -> bool | None:
    return None if value is None or (not isinstance(value, bool) and pd.isna(value)) else bool(value)


def _key(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, dict) or value.get("uri") is None:
        return None
    return {"uri": value["uri"], "content_id": value["content_id"], "detection_index": int(value["detection_index"])}


def find(occ: OccurrenceSet, occurrence_id: str) -> dict[str, Any]:
    hit = occ.rows[occ.rows["occurrence_id"] == occurrence_id]
    if hit.empty:
        raise NotFoundError(f"no occurrence {occurrence_id!r} in {occ.tset.model_name}:{occ.tset.model_version} "
                            f"[filters {occ.tset.filters_hash}]")
    return hit.iloc[0].to_dict()


def frames(tables: Tables, occ: OccurrenceSet, row: dict[str, Any]) -> list[dict[str, Any]]:
    """Each detection of the occurrence in time order: its image, box, vote, classifications and snip."""
    t = occ.tset
    keys = {(d["uri"], d["content_id"], int(d["detection_index"])) for d in row["detections"]}
    uris = sorted({k[0] for k in keys})
    images = occ.images[occ.images["uri"].isin(uris)]
    by_table = {}
    for table in (DETECTIONS, CLASSIFICATIONS, SNIPS):  # only these images' rows are read
        df = tables.committed_detections(images, t.model_name, t.model_version, t.filters_hash, table=table,
                                         filter=ds.field("uri").isin(uris))
        by_table[table] = {} if df.empty else {
            k: g for k, g in df.groupby(["uri", "content_id", "detection_index"])}
    times = dict(zip(images["uri"], images["capture_time"], strict=True))
    votes = {(v["uri"], v["content_id"], int(v["detection_index"])): v for v in row["votes"]}
    out = []
    for k in sorted(keys, key=lambda k: (pd.Timestamp(times.get(k[0])) if times.get(k[0]) is not None
                                         else pd.Timestamp.max, k)):
        det = by_table[DETECTIONS].get(k)
        d = det.iloc[0] if det is not None else None
        snip = by_table[SNIPS].get(k)
        cls = by_table[CLASSIFICATIONS].get(k)
        out.append({"uri": k[0], "content_id": k[1], "detection_index": k[2], "capture_time": _iso(times.get(k[0])),
                    "label": None if d is None else d["label"], "score": None if d is None else float(d["score"]),
                    "bbox": None if d is None else [float(d[c]) for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")],
                    "vote": votes.get(k),
                    "classifications": [] if cls is None else [
                        {"classifier": c["classifier_name"], "version": c["classifier_version"], "label": c["label"],
                         "score": float(c["score"]), "source": as_text(c.get("source"))}
                        for c in cls.to_dict("records")],
                    "snip": None if snip is None else snip.iloc[0]["crop_uri"]})
    return out



def history(occ: OccurrenceSet, row: dict[str, Any]) -> list[dict[str, Any]]:
    """The decisions about this occurrence or its detections, oldest first."""
    keys = {key_of(d) for d in row["detections"]}
    out = []
    for d in occ.log.read():
        mine = (isinstance(d, IdentifyOccurrence) and (d.occurrence_id == row["occurrence_id"]
                                                       or d.decision_id == row["decision_id"])) \
            or (isinstance(d, ClassifyDetection) and d.detection in keys) \
            or (isinstance(d, SplitOccurrence) and d.cut_at in keys) \
            or (isinstance(d, MergeOccurrences) and bool(keys.intersection(d.detections))) \
            or (isinstance(d, MoveDetection) and (d.detection in keys or d.to in keys))
        if mine:
            out.append(d.model_dump(mode="json"))
    return out


def identify(where: SetPlace, occurrence_id: str, label: str, who: str, comment: str | None = None) -> dict[str, Any]:
    """Record a person's identification of an occurrence; the occurrence as it is now determined."""
    occ = where.load()
    row = find(occ, occurrence_id)
    detections = [DetectionKey(uri=d["uri"], content_id=d["content_id"], detection_index=int(d["detection_index"]))
                  for d in row["detections"]]
    occ.log.append(make(IdentifyOccurrence, who, comment, occurrence_id=occurrence_id, label=label,
                        detections=detections, model=f"{occ.tset.model_name}:{occ.tset.model_version}",
                        filters_hash=occ.tset.filters_hash))
    return summary(find(where.load(occ.tset.filters_hash), occurrence_id))


def classify(where: SetPlace, key: DetectionKey, label: str, who: str, comment: str | None = None,
             occurrence_id: str | None = None) -> dict[str, Any]:
    """Record a person's label for one detection (of `occurrence_id`, when given); its occurrence re-determined
    at once."""
    occ = where.load()
    rows = [find(occ, occurrence_id)] if occurrence_id is not None else occ.rows.to_dict("records")
    hit = [r for r in rows if key in {key_of(d) for d in r["detections"]}]
    if not hit:
        looked = f"occurrence {occurrence_id}" if occurrence_id else "any occurrence"  # `where` is the set
        raise NotFoundError(f"detection {key.uri}#{key.detection_index} is not in {looked} of "
                            f"{occ.tset.model_name}:{occ.tset.model_version} [filters {occ.tset.filters_hash}]")
    occ.log.append(make(ClassifyDetection, who, comment, detection=key, label=label,
                        model=f"{occ.tset.model_name}:{occ.tset.model_version}", filters_hash=occ.tset.filters_hash))
    return summary(find(where.load(occ.tset.filters_hash), hit[0]["occurrence_id"]))


def split(where: SetPlace, occurrence_id: str, at: DetectionKey, who: str,
          comment: str | None = None) -> dict[str, Any]:
    """Record a person's cut of an occurrence at one of its detections (not its first): it and the ones after it
    are another animal from the next track run on. The decision, as logged."""
    occ = where.load()
    keys = [key_of(d) for d in find(occ, occurrence_id)["detections"]]
    if at not in keys:
        raise NotFoundError(f"detection {at.uri}#{at.detection_index} is not in occurrence {occurrence_id}")
    if at == keys[0]:
        raise DecisionError("cannot cut an occurrence at its first detection: nothing would stay", field="at")
    return occ.log.append(make(SplitOccurrence, who, comment, cut_at=at, occurrence_id=occurrence_id)).model_dump(
        mode="json")


def merge(where: SetPlace, occurrence_id: str, other_id: str, who: str, comment: str | None = None) -> dict[str, Any]:
    """Record that two occurrences are one animal, from the next track run on. The decision, as logged."""
    occ = where.load()
    if other_id == occurrence_id:
        raise DecisionError(f"cannot merge occurrence {occurrence_id!r} into itself", field="other_id")
    firsts = [key_of(find(occ, o)["detections"][0]) for o in (occurrence_id, other_id)]
    return occ.log.append(make(MergeOccurrences, who, comment, detections=firsts,
                               occurrence_ids=[occurrence_id, other_id])).model_dump(mode="json")


def move(where: SetPlace, occurrence_id: str, detection: DetectionKey, to_id: str, who: str,
         comment: str | None = None) -> dict[str, Any]:
    """Record that one detection of an occurrence belongs to another, from the next track run on. The decision."""
    occ = where.load()
    if detection not in [key_of(d) for d in find(occ, occurrence_id)["detections"]]:
        raise NotFoundError(f"detection {detection.uri}#{detection.detection_index} is not in occurrence "
                            f"{occurrence_id}")
    if to_id == occurrence_id:
        raise DecisionError("the detection is already in that occurrence", field="to")
    to = key_of(find(occ, to_id)["detections"][0])
    return occ.log.append(make(MoveDetection, who, comment, detection=detection, to=to,
                               occurrence_id=to_id)).model_dump(mode="json")


def snip(tables: Tables, occurrence_id: str, n: int, model: str | None = None, filters_hash: str | None = None,
         store: str | None = None) -> bytes:
    """The JPEG snip of the occurrence's `n`-th frame: the stored snip when the set has one, else cut now from the
    source image with the shared crop code."""
    occ = load(tables, model, filters_hash, store)
    row = find(occ, occurrence_id)
    shown = frames(tables, occ, row)
    if not 0 <= n < len(shown):
        raise NotFoundError(f"occurrence {occurrence_id} has {len(shown)} frame(s); no frame {n}")
    f = shown[n]
    if f["snip"]:
        try:
            with open_location(f["snip"].rsplit("/", 1)[0]).fs.open(f["snip"], "rb") as fh:
                return fh.read()
        except OSError:
            pass  # removed since: cut it again
    if f["bbox"] is None:
        raise NotFoundError(f"frame {n} of occurrence {occurrence_id} has no detection row")
    image = occ.images[occ.images["uri"] == f["uri"]].iloc[0].to_dict()
    try:
        rgb = read_source(image, DEFAULT_MAX_PIXELS)
    except (OSError, ImageDecodeError) as exc:
        raise NotFoundError(f"the image of frame {n} cannot be read: {exc}") from None
    h, w = rgb.shape[:2]
    x, y, bw, bh = f["bbox"]
    return encode_jpeg(crop_box(rgb, (x * w, y * h, (x + bw) * w, (y + bh) * h)))


def _iso(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return pd.Timestamp(value).isoformat()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None  # pandas gives NaN for a missing string


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)

