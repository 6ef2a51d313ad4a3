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
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from batch.identify.decided import check_decision, constraints
from batch.identify.options import IdentifyOptions
from ground.errors import BatchError, DecisionError, LabelNotCoveredError
from ground.storage import Storage
from model_store.core.identify.cluster import IdChanges, cluster, stable_ids
from model_store.core.identify.features import Description
from model_store.core.identify.gallery import Gallery
from model_store.core.identify.identifier import Identifier
from model_store.store.store import ModelStore
from model_store.tables.archive import open_location
from model_store.tables.decisions import DecisionsLog
from model_store.tables.identities import (
    INDIVIDUALS,
    INDIVIDUALS_SCHEMA,
    SIGHTINGS,
    SIGHTINGS_SCHEMA,
    Key,
    cut_snips,
    fold,
    key_of,
    new_identify_run_id,
    read_result,
    summarise_individuals,
)
from model_store.tables.lease import RunLease
from model_store.tables.reader import Tables
from model_store.tables.table_set import current_kept, resolve_table_set
from model_store.tables.writer import parquet_bytes, write_file

IDENTIFY_LEASE = ("identify", "sightings")  # _leases/identify@sightings.json beside the model versions' leases


class LocalWorkers:
    """Describe and match in this process: each covered detection's snip described, then every description matched
    against all the others through one gallery (a shortlist, then verified matching)."""

    def __init__(self, ident: Identifier) -> None:
        self.ident = ident

    def describe(self, rows: pd.DataFrame) -> list[Description | str]:
        return self.ident.describe(cut_snips(rows))

    def match(self, descs: list[Description]) -> list[list]:
        """Per description, its verified candidates among the others (gallery indices = positions in `descs`)."""
        gallery = Gallery(self.ident)
        gallery.add(descs)
        return [gallery.query(d, exclude=g) for g, d in enumerate(descs)]


@dataclass
class IdentifyReport:
    run_id: str
    identifier: str
    sightings: int = 0
    unidentifiable: int = 0
    individuals: int = 0
    changes: IdChanges = field(default_factory=IdChanges)


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


def _new_id(members: list[Key]) -> str:
    return "ind-" + hashlib.sha1(repr(min(members)).encode()).hexdigest()[:10]


def run_identify(opts: IdentifyOptions, workers=None, wait_s: float = 0.0) -> IdentifyReport:
    """Identify every covered kept detection of `opts.tables` with `opts.identifier`; write and commit the sightings
    and individuals tables.

    One identify run at a time per set of tables (a lease, as a reprocess run holds one per model version;
    `wait_s` waits for a running one); a run that lost its lease commits nothing. `workers` describe and match
    (default: this process, `LocalWorkers`; batch/identify/distributed.py spreads both over Ray Data)."""
    run_id = new_identify_run_id()
    storage = open_location(opts.tables)  # opened once here; what follows takes the opened thing
    # The options checked before the lease, so a refused one writes nothing: the identifier, the tables' model
    # version and its labels (the detections an identify run reads are not what another identify run writes).
    ident = ModelStore(opts.store).load_identifier(opts.identifier)
    rows = covered_detections(Tables(storage), ident, opts.model, opts.store)
    lease = RunLease(storage, *IDENTIFY_LEASE, run_id).acquire(wait_s)
    try:
        lease.start_heartbeat()
        return _identify(storage, opts, run_id, lease.check, ident, rows, workers)
    finally:
        lease.release()


def _identify(storage: Storage, opts: IdentifyOptions, run_id: str, fence, ident: Identifier, rows: pd.DataFrame,
              workers=None) -> IdentifyReport:
    """The run under its lease. Seven parameters: the run's own four (storage, options, id, lease check), what
    `run_identify` checked before taking the lease (the identifier, its covered detections), and the workers."""
    keys: list[Key] = [(r.uri, r.content_id, int(r.detection_index)) for r in rows.itertuples()]
    m = _match(rows, keys, workers or LocalWorkers(ident))
    ok, ok_keys = m.ok, m.ok_keys
    prev = read_result(storage, SIGHTINGS)
    previous = {(r.uri, r.content_id, int(r.detection_index)): r.individual_id for r in prev.itertuples()
                if r.individual_id is not None}
    decided = fold(DecisionsLog(storage).read(), previous)
    must, cannot, pinned = constraints(ok_keys, decided, previous)
    labels = cluster(len(ok), m.pairs, opts.threshold, must, cannot)
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
    report = IdentifyReport(run_id, ident.ref, sightings=len(rows), unidentifiable=len(rows) - len(ok),
                            changes=changes)
    sightings = _sightings(m, labels, ids, pinned, ident, run_id)
    individuals = summarise_individuals(sightings, decided, run_id)
    report.individuals = len(individuals)
    meta = {"identifier": ident.info.model_dump(), "threshold": opts.threshold, "run_id": run_id}
    fence()  # before the first file and at the commit: a run that lost its lease writes nothing more
    write_file(storage, parquet_bytes(pa.Table.from_pandas(sightings, SIGHTINGS_SCHEMA, preserve_index=False), meta),
               SIGHTINGS, f"run_id={run_id}", "part-0.parquet")
    fence()
    write_file(storage, parquet_bytes(pa.Table.from_pandas(individuals, INDIVIDUALS_SCHEMA, preserve_index=False),
                                      meta), INDIVIDUALS, f"run_id={run_id}", "part-0.parquet")  # commits
    return report


@dataclass(frozen=True)
class _Matched:
    """What describing and matching found, in two numberings: `rows` (every covered detection, i) and the ones
    described (g: `ok[g]` is their row, `ok_keys[g]` their key); `pairs` (g, g', P(same)) and `nearest` (g -> its best
    candidate) are in the second."""

    rows: pd.DataFrame
    descs: list[Any]  # a Description, or why the row could not be described
    ok: list[int]
    ok_keys: list[Key]
    pairs: list[tuple[int, int, float]]
    nearest: dict[int, Any]


def _match(rows: pd.DataFrame, keys: list[Key], workers: Any) -> _Matched:
    """Describe every row and match the described ones (`workers`: this process or Ray Data actors)."""
    descs = workers.describe(rows)
    ok = [i for i, d in enumerate(descs) if isinstance(d, Description)]
    pairs, nearest = [], {}
    for g, found in enumerate(workers.match([descs[i] for i in ok])):
        pairs += [(g, c.index, c.p_same) for c in found]
        if found:
            nearest[g] = found[0]
    return _Matched(rows, descs, ok, [keys[i] for i in ok], pairs, nearest)


def _sightings(m: _Matched, labels, ids: list[str], pinned, ident, run_id: str) -> pd.DataFrame:
    """One sightings row per covered detection: its individual (`ids`, by cluster `labels`), the decision and the
    evidence (its best match inside and outside its individual)."""
    rows, descs, ok, ok_keys, nearest = m.rows, m.descs, m.ok, m.ok_keys, m.nearest
    size = np.bincount(labels) if len(labels) else np.zeros(0, int)
    best_in: dict[int, float] = {}
    best_out: dict[int, tuple[float, int]] = {}  # sighting -> (P(same), sighting) of its best match elsewhere
    for a, b, p in m.pairs:
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


def record_decision(storage: Storage, decision):
    """Append a person's decision about individuals to the tables opened at the door, after checking that what it
    names exists in the newest run (an unknown individual or sighting is a DecisionError and nothing is written)."""
    sightings = read_result(storage, SIGHTINGS)
    known = set(sightings["individual_id"].dropna())
    check_decision(decision, known)
    keys = {(r.uri, r.content_id, int(r.detection_index)) for r in sightings.itertuples()}
    named = getattr(decision, "sightings", None) or [k for k in [getattr(decision, "sighting", None)] if k]
    for k in named:
        if key_of(k) not in keys:
            raise DecisionError(f"unknown sighting {k.uri} #{k.detection_index}: not in the newest identify run "
                                f"of {storage.url()}", field="sighting")
    return DecisionsLog(storage).append(decision)
