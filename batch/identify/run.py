"""`trapline identify --tables T --identifier REF`: kept detections -> sightings -> individuals.

Reads the current kept detections of one table set whose label the identifier covers, cuts each one's
snip from its archive image (the detection's box), describes them, matches each against all the others
through the gallery (a shortlist, then verified matching of `shortlist` candidates: cost ~ N x (N x words
+ shortlist x one RANSAC), the verification part linear in N), clusters the sightings over calibrated
P(same) >= threshold with people's decisions as constraints, and writes two tables beside `detections`:

    DST/sightings/run_id=RUN/part-0.parquet      one row per detection identified (or unidentifiable)
    DST/individuals/run_id=RUN/part-0.parquet    one row per individual; written last: commits the run

A reader takes the newest run whose individuals file exists, so a crash mid-run leaves the previous
result in force. Ids are kept stable against that previous run (batch/identify/decided.py,
model_store/core/identify/cluster.py). Plain Python in one process (no Ray Data yet).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from batch.identify.decided import Key, check_decision, constraints, fold, key_of
from batch.tables.archive import open_location
from batch.tables.decisions import DecisionsLog
from batch.tables.manifest import new_run_id
from batch.tables.reader import Tables, current_kept, resolve_table_set
from batch.tables.writer import parquet_bytes, write_file
from model_store.core.crops import crop_box
from model_store.core.identify.cluster import IdChanges, cluster, stable_ids
from model_store.core.identify.features import Description
from model_store.core.identify.gallery import Gallery
from model_store.core.identify.identifier import Identifier
from model_store.core.imaging import decode_image
from model_store.store.store import ModelStore
from trapline.errors import BatchError, DecisionError, LabelNotCoveredError

SIGHTINGS, INDIVIDUALS = "sightings", "individuals"
SIGHTINGS_SCHEMA = pa.schema([
    ("uri", pa.string()), ("content_id", pa.string()), ("detection_index", pa.int32()), ("rel_path", pa.string()),
    ("label", pa.string()), ("camera_id", pa.string()), ("capture_time", pa.timestamp("us")),
    ("individual_id", pa.string()), ("p_same", pa.float64()), ("decision", pa.string()), ("reason", pa.string()),
    ("nearest_uri", pa.string()), ("nearest_content_id", pa.string()), ("nearest_detection_index", pa.int32()),
    ("nearest_p", pa.float64()),
    # its best match in another individual: who a person compares it with before a merge
    ("other_uri", pa.string()), ("other_content_id", pa.string()), ("other_detection_index", pa.int32()),
    ("other_p", pa.float64()), ("identifier_name", pa.string()), ("identifier_version", pa.string()),
    ("identifier_sha256", pa.string()), ("run_id", pa.string()),
    # the detection's box (fractions of the image): its snip, cut again for people and the console
    ("bbox_x", pa.float64()), ("bbox_y", pa.float64()), ("bbox_w", pa.float64()), ("bbox_h", pa.float64()),
    # the result set the detection rows came from: detection_index is an index within it
    ("model_name", pa.string()), ("model_version", pa.string()), ("filters_hash", pa.string()),
])
INDIVIDUALS_SCHEMA = pa.schema([
    ("individual_id", pa.string()), ("name", pa.string()), ("label", pa.string()),
    ("first_seen", pa.timestamp("us")), ("last_seen", pa.timestamp("us")), ("cameras", pa.list_(pa.string())),
    ("sightings", pa.int32()), ("confirmed", pa.bool_()), ("run_id", pa.string()),
])


@dataclass
class IdentifyReport:
    run_id: str
    identifier: str
    sightings: int = 0
    unidentifiable: int = 0
    individuals: int = 0
    changes: IdChanges = field(default_factory=IdChanges)


def latest_run(tables_url: str) -> str | None:
    """The newest committed identify run (one whose individuals file exists), or None."""
    storage = open_location(tables_url)
    runs = [d.removeprefix("run_id=") for d in storage.listdir(INDIVIDUALS) if d.startswith("run_id=")]
    done = [r for r in runs if storage.exists(INDIVIDUALS, f"run_id={r}", "part-0.parquet")]
    return max(done) if done else None


def read_result(tables_url: str, table: str, run_id: str | None = None) -> pd.DataFrame:
    """One table (sightings or individuals) of a committed run (default: the newest); empty when none."""
    run_id = run_id or latest_run(tables_url)
    schema = SIGHTINGS_SCHEMA if table == SIGHTINGS else INDIVIDUALS_SCHEMA
    if run_id is None:
        return schema.empty_table().to_pandas()
    storage = open_location(tables_url)
    return pq.read_table(pa.BufferReader(storage.read_bytes(table, f"run_id={run_id}", "part-0.parquet"))).to_pandas()


def covered_detections(tables: Tables, ident: Identifier, model: str | None, store: str | None) -> pd.DataFrame:
    """Kept detections of the table set whose label the identifier covers, with their image's fields."""
    tset = resolve_table_set(tables, model, None, store)
    images, kept = current_kept(tables, tset)
    if kept.empty:
        raise BatchError(f"no kept detections in {tables.url} for {tset.model_name}:{tset.model_version}")
    covered = kept[kept["label"].isin(ident.config.applies_to)]
    if covered.empty:
        raise LabelNotCoveredError(
            f"identifier {ident.ref} identifies {', '.join(ident.config.applies_to)}, but the kept detections of "
            f"{tset.model_name}:{tset.model_version} are {', '.join(sorted(set(kept['label'])))}",
            labels=sorted(set(kept["label"])))
    cols = ["uri", "content_id", "rel_path", "camera_id", "capture_time", "width", "height"]
    return covered.merge(images[cols], on=["uri", "content_id"], how="inner").reset_index(drop=True).assign(
        model_name=tset.model_name, model_version=tset.model_version, filters_hash=tset.filters_hash)


def cut_snips(rows: pd.DataFrame) -> list[np.ndarray | None]:
    """Each detection's box cut from its archive image (None when the image cannot be read)."""
    out: list[np.ndarray | None] = [None] * len(rows)
    for uri, group in rows.groupby("uri", sort=False):
        bucket = uri.split("/", 3)[2] if uri.startswith("s3://") else ""
        try:
            rgb = decode_image(open_location(f"s3://{bucket}" if bucket else "/").fs.cat_file(uri))
        except Exception:  # noqa: BLE001 - gone, changed or undecodable: those sightings are unidentifiable
            continue
        h, w = rgb.shape[:2]
        for i, r in group.iterrows():
            box = (r.bbox_x * w, r.bbox_y * h, (r.bbox_x + r.bbox_w) * w, (r.bbox_y + r.bbox_h) * h)
            out[i] = crop_box(rgb, box)
    return out


def _new_id(members: list[Key]) -> str:
    return "ind-" + hashlib.sha1(repr(min(members)).encode()).hexdigest()[:10]


def run_identify(tables_url: str, identifier: str, store: str | None = None, model: str | None = None,
                 threshold: float = 0.5) -> IdentifyReport:
    """Identify every covered kept detection; write and commit the sightings and individuals tables."""
    if not 0.0 < threshold < 1.0:
        raise BatchError(f"--threshold is a P(same individual) between 0 and 1, got {threshold}")
    ident = ModelStore(store).load_identifier(identifier)
    tables = Tables(tables_url)
    rows = covered_detections(tables, ident, model, store)
    keys: list[Key] = [(r.uri, r.content_id, int(r.detection_index)) for r in rows.itertuples()]
    descs = ident.describe(cut_snips(rows))
    ok = [i for i, d in enumerate(descs) if isinstance(d, Description)]
    gallery = Gallery(ident)
    gallery.add([descs[i] for i in ok])
    pairs, nearest = [], {}
    for g, i in enumerate(ok):
        found = gallery.query(descs[i], exclude=g)
        pairs += [(g, c.index, c.p_same) for c in found]
        if found:
            nearest[g] = found[0]
    prev = read_result(tables_url, SIGHTINGS)
    previous = {(r.uri, r.content_id, int(r.detection_index)): r.individual_id for r in prev.itertuples()
                if r.individual_id is not None}
    decided = fold(DecisionsLog(tables_url).read(), previous)
    ok_keys = [keys[i] for i in ok]
    must, cannot, pinned = constraints(ok_keys, decided, previous)
    labels = cluster(len(ok), pairs, threshold, must, cannot)
    members: dict[int, list[Key]] = {}
    for g, lab in enumerate(labels):
        members.setdefault(int(lab), []).append(ok_keys[g])
    prev_ids = [decided.canonical(previous[k]) if k in previous else None for k in ok_keys]
    ids, changes = stable_ids(labels, prev_ids, lambda c: _new_id(members[c]), pinned)
    for g, k in enumerate(ok_keys):  # a rejected link is never remade, even through an id matched by overlap
        if ids[g] in decided.rejected.get(k, ()) and g not in pinned:
            lab = labels[g]
            new = _new_id(members[int(lab)]) + "r"
            ids = [new if labels[j] == lab else ids[j] for j in range(len(ids))]
    run_id = new_run_id()
    report = IdentifyReport(run_id, ident.ref, sightings=len(rows), unidentifiable=len(rows) - len(ok),
                            changes=changes)
    sightings = _sightings(rows, descs, ok, ids, labels, pinned, pairs, nearest, ok_keys, ident, run_id)
    individuals = summarise_individuals(sightings, decided, run_id)
    report.individuals = len(individuals)
    storage = open_location(tables_url)
    meta = {"identifier": ident.info.model_dump(), "threshold": threshold, "run_id": run_id}
    write_file(storage, parquet_bytes(pa.Table.from_pandas(sightings, SIGHTINGS_SCHEMA, preserve_index=False), meta),
               SIGHTINGS, f"run_id={run_id}", "part-0.parquet")
    write_file(storage, parquet_bytes(pa.Table.from_pandas(individuals, INDIVIDUALS_SCHEMA, preserve_index=False),
                                      meta), INDIVIDUALS, f"run_id={run_id}", "part-0.parquet")  # commits
    return report


def _sightings(rows, descs, ok, ids, labels, pinned, pairs, nearest, ok_keys, ident, run_id) -> pd.DataFrame:
    size = np.bincount(labels) if len(labels) else np.zeros(0, int)
    best_in: dict[int, float] = {}
    best_out: dict[int, tuple[float, int]] = {}  # sighting -> (P(same), sighting) of its best match elsewhere
    for a, b, p in pairs:
        if labels[a] == labels[b]:
            best_in[a] = max(best_in.get(a, 0.0), p)
            best_in[b] = max(best_in.get(b, 0.0), p)
        else:
            for x, y in ((a, b), (b, a)):
                if p > best_out.get(x, (-1.0, -1))[0]:
                    best_out[x] = (p, y)
    where = {i: g for g, i in enumerate(ok)}
    out = []
    for i, r in enumerate(rows.itertuples()):
        g = where.get(i)
        near = nearest.get(g) if g is not None else None
        nk = ok_keys[near.index] if near is not None else (None, None, None)
        other_p, other = best_out.get(g, (None, None)) if g is not None else (None, None)
        ok_ = ok_keys[other] if other is not None else (None, None, None)
        if g is None:
            decision, ind, p = "unidentifiable", None, None
        elif g in pinned:
            decision, ind, p = "confirmed", ids[g], 1.0
        else:
            decision = "new" if size[labels[g]] == 1 else "matched"
            ind, p = ids[g], best_in.get(g, near.p_same if near else 0.0)
        out.append({"uri": r.uri, "content_id": r.content_id, "detection_index": int(r.detection_index),
                    "rel_path": r.rel_path, "label": r.label, "camera_id": r.camera_id,
                    "capture_time": r.capture_time, "individual_id": ind, "p_same": p, "decision": decision,
                    "reason": descs[i] if g is None else None, "nearest_uri": nk[0], "nearest_content_id": nk[1],
                    "nearest_detection_index": nk[2], "nearest_p": near.p_same if near else None,
                    "other_uri": ok_[0], "other_content_id": ok_[1], "other_detection_index": ok_[2],
                    "other_p": other_p,
                    "identifier_name": ident.info.name, "identifier_version": ident.info.version,
                    "identifier_sha256": ident.info.sha256, "run_id": run_id, "bbox_x": r.bbox_x,
                    "bbox_y": r.bbox_y, "bbox_w": r.bbox_w, "bbox_h": r.bbox_h,
                    "model_name": r.model_name, "model_version": r.model_version, "filters_hash": r.filters_hash})
    return pd.DataFrame(out, columns=SIGHTINGS_SCHEMA.names)


def summarise_individuals(sightings: pd.DataFrame, decided, run_id: str) -> pd.DataFrame:
    """One `individuals` row per individual of `sightings`, with people's names and confirmations (`decided`)."""
    out = []
    for ind, g in sightings.dropna(subset=["individual_id"]).groupby("individual_id", sort=True):
        times = g["capture_time"].dropna()
        out.append({"individual_id": ind, "name": decided.names.get(ind), "label": g["label"].mode().iloc[0],
                    "first_seen": times.min() if len(times) else None, "last_seen": times.max() if len(times) else None,
                    "cameras": sorted(set(g["camera_id"].dropna())), "sightings": len(g),
                    "confirmed": bool(ind in decided.confirmed_ids or (g["decision"] == "confirmed").any()),
                    "run_id": run_id})
    return pd.DataFrame(out, columns=INDIVIDUALS_SCHEMA.names)


def record_decision(tables_url: str, decision):
    """Append a person's decision about individuals after checking that what it names exists in the newest
    run (an unknown individual or sighting is a DecisionError and nothing is written)."""
    sightings = read_result(tables_url, SIGHTINGS)
    known = set(sightings["individual_id"].dropna())
    check_decision(decision, known)
    keys = {(r.uri, r.content_id, int(r.detection_index)) for r in sightings.itertuples()}
    named = getattr(decision, "sightings", None) or [k for k in [getattr(decision, "sighting", None)] if k]
    for k in named:
        if key_of(k) not in keys:
            raise DecisionError(f"unknown sighting {k.uri} #{k.detection_index}: not in the newest identify run "
                                f"of {tables_url}", field="sighting")
    return DecisionsLog(tables_url).append(decision)
