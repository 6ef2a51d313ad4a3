"""The identify tables (`sightings`, `individuals`) and how they read now: the contract between `trapline
identify`, which writes them, and every later reader (the HTTP routes, the console, exports, the online door's
gallery).

    DST/sightings/run_id=RUN/part-0.parquet      one row per detection identified (or unidentifiable)
    DST/individuals/run_id=RUN/part-0.parquet    one row per individual; written last: commits the run

A reader takes the newest run whose individuals file exists. People's decisions about individuals (the decisions
log, tables/decisions.py) are folded in on every read (`current`), the same fold the next run clusters with: a
merge, a split or a name shows the moment it is made.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ground.storage import Storage
from model_store.core.crops import crop_box
from model_store.core.imaging import decode_image
from model_store.tables.decisions import (
    INDIVIDUAL_DECISIONS,
    ConfirmSighting,
    Decision,
    DecisionsLog,
    DetectionKey,
    MergeIndividuals,
    NameIndividual,
    NewIndividual,
    RejectSighting,
    SplitIndividual,
)
from model_store.tables.locations import cached_location, opened
from model_store.tables.schema import INDIVIDUALS, INDIVIDUALS_SCHEMA, SIGHTINGS, SIGHTINGS_SCHEMA

Key = tuple[str, str, int]  # (uri, content_id, detection_index)


def key_of(k: DetectionKey) -> Key:
    return (k.uri, k.content_id, k.detection_index)


def decided_id(decision_id: str) -> str:
    """The id of an individual a person started (split off, or "no match"): stable, from the decision."""
    return "ind-" + hashlib.sha1(decision_id.encode()).hexdigest()[:10]


@dataclass
class Decided:
    pinned: dict[Key, str] = field(default_factory=dict)
    rejected: dict[Key, set[str]] = field(default_factory=lambda: defaultdict(set))
    names: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    confirmed_ids: set[str] = field(default_factory=set)

    def canonical(self, ident: str) -> str:
        while ident in self.aliases:
            ident = self.aliases[ident]
        return ident


def new_identify_run_id(now: dt.datetime | None = None) -> str:
    """Sortable to the microsecond (two runs in one second must not tie: the newest is the one in force):
    20240601T120000123456Z-1a2b3c."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:6]}"


def _run_order(run_id: str) -> str:
    """Runs named to the second (before microseconds were kept) sort as that second's first microsecond."""
    stamp = run_id.split("-", 1)[0].rstrip("Z")
    return stamp if len(stamp) > 15 else stamp + "000000"


def latest_run(storage: Storage) -> str | None:
    """The newest committed identify run (one whose individuals file exists), or None."""
    listed = opened(storage, "latest_run").listdir(INDIVIDUALS)
    runs = [d.removeprefix("run_id=") for d in listed if d.startswith("run_id=")]
    done = [r for r in runs if storage.exists(INDIVIDUALS, f"run_id={r}", "part-0.parquet")]
    return max(done, key=lambda r: (_run_order(r), r)) if done else None


def read_result(storage: Storage, table: str, run_id: str | None = None) -> pd.DataFrame:
    """One table (sightings or individuals) of a committed run (default: the newest); empty when none."""
    run_id = run_id or latest_run(opened(storage, "read_result"))
    schema = SIGHTINGS_SCHEMA if table == SIGHTINGS else INDIVIDUALS_SCHEMA
    if run_id is None:
        return schema.empty_table().to_pandas()
    return pq.read_table(pa.BufferReader(storage.read_bytes(table, f"run_id={run_id}", "part-0.parquet"))).to_pandas()


def cut_snips(rows: pd.DataFrame) -> list[np.ndarray | None]:
    """Each detection's box cut from its archive image (None when the image cannot be read)."""
    out: list[np.ndarray | None] = [None] * len(rows)
    for uri, group in rows.groupby("uri", sort=False):
        bucket = uri.split("/", 3)[2] if uri.startswith("s3://") else ""
        try:
            rgb = decode_image(cached_location(f"s3://{bucket}" if bucket else "/").fs.cat_file(uri))
        except Exception:  # noqa: BLE001 - gone, changed or undecodable: those sightings are unidentifiable
            continue
        h, w = rgb.shape[:2]
        for i, r in group.iterrows():
            box = (r.bbox_x * w, r.bbox_y * h, (r.bbox_x + r.bbox_w) * w, (r.bbox_y + r.bbox_h) * h)
            out[i] = crop_box(rgb, box)
    return out


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


def fold(decisions: list[Decision], previous: dict[Key, str]) -> Decided:
    """The decisions, oldest first, over the previous run's sighting -> individual id."""
    out = Decided()
    members: dict[str, set[Key]] = defaultdict(set)
    for k, ident in previous.items():
        members[ident].add(k)
    for d in decisions:
        if not isinstance(d, INDIVIDUAL_DECISIONS):
            continue
        if isinstance(d, ConfirmSighting):
            ident = out.canonical(d.individual_id)
            out.pinned[key_of(d.sighting)] = ident
            out.rejected[key_of(d.sighting)].discard(ident)
            out.confirmed_ids.add(ident)
        elif isinstance(d, RejectSighting):
            k, ident = key_of(d.sighting), out.canonical(d.individual_id)
            out.rejected[k].add(ident)
            if out.pinned.get(k) == ident:
                del out.pinned[k]
        elif isinstance(d, MergeIndividuals):
            keep, gone = out.canonical(d.individual_id), out.canonical(d.other_id)
            if keep == gone:
                continue  # already one (an earlier merge): nothing left to do
            out.aliases[gone] = keep
            for k in members.pop(gone, set()):
                members[keep].add(k)
                out.pinned.setdefault(k, keep)
            for k, ident in out.pinned.items():
                if ident == gone:
                    out.pinned[k] = keep
            out.pinned.update({k: keep for k in members[keep] if k not in out.pinned})
            out.confirmed_ids.add(keep)
            if gone in out.names and keep not in out.names:
                out.names[keep] = out.names[gone]
        elif isinstance(d, SplitIndividual):
            new = decided_id(d.decision_id)
            old = out.canonical(d.individual_id)
            for s in d.sightings:
                out.pinned[key_of(s)] = new
                out.rejected[key_of(s)].add(old)
            out.confirmed_ids.add(new)
        elif isinstance(d, NameIndividual):
            out.names[out.canonical(d.individual_id)] = d.name
        elif isinstance(d, NewIndividual):
            k = key_of(d.sighting)
            if k in previous:
                out.rejected[k].add(out.canonical(previous[k]))
            out.pinned[k] = decided_id(d.decision_id)
            out.confirmed_ids.add(out.pinned[k])
    return out


@dataclass
class Current:
    """The newest run's sightings (individual ids and decisions as people left them) and its individuals."""

    run_id: str | None
    sightings: pd.DataFrame
    individuals: pd.DataFrame
    decisions: list[Decision]
    decided: Decided
    previous: dict[Key, str]  # sighting -> the individual the run put it in (what the decisions are folded over)


def row_key(row: Any) -> Key:
    return (row.uri, row.content_id, int(row.detection_index))


def current(tables: Storage) -> Current:
    """The newest committed identify run of `tables` with the decisions log applied (empty when none ran)."""
    sightings = read_result(tables, SIGHTINGS)
    run_id = sightings["run_id"].iloc[0] if len(sightings) else None
    previous = {row_key(r): r.individual_id for r in sightings.itertuples() if not pd.isna(r.individual_id)}
    decisions = DecisionsLog(tables).read()
    decided = fold(decisions, previous)
    ids, how = [], []
    for r in sightings.itertuples():
        k = row_key(r)
        if k in decided.pinned:
            ids.append(decided.pinned[k])
            how.append("confirmed")
        elif k not in previous:
            ids.append(None)
            how.append(r.decision)
        elif decided.canonical(previous[k]) in decided.rejected.get(k, ()):
            ids.append(None)  # a person said it is not that individual: it waits for the next run
            how.append("rejected")
        else:
            ids.append(decided.canonical(previous[k]))
            how.append(r.decision)
    sightings = sightings.assign(individual_id=ids, decision=how)
    return Current(run_id, sightings, summarise_individuals(sightings, decided, run_id or ""), decisions, decided,
                   previous)


def individual_ids(tables: Storage, model_name: str, model_version: str, filters_hash: str) -> dict[Key, str]:
    """(uri, content_id, detection_index) -> individual id now, for the sightings of one result set (detection
    indices are indices within it): what exports write as Camtrap DP's individualID. Empty when none ran."""
    cur = current(tables)
    s = cur.sightings
    if s.empty or "filters_hash" not in s.columns:  # no run, or one made before sightings named their result set
        return {}
    s = s[(s["model_name"] == model_name) & (s["model_version"] == model_version)
          & (s["filters_hash"] == filters_hash) & s["individual_id"].notna()]
    return {row_key(r): r.individual_id for r in s.itertuples()}
