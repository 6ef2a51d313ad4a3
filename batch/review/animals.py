"""The report's animals: occurrences (a tracked set's) counted per camera and night/day beside the max-per-frame
count of events, and where a model's vote now disagrees with a person's identification.

Both read their whole table (the occurrences, the identities) once and count the images they are given a slice of
whole cameras at a time (`Animals.add`, `Individuals.add`): events and per-camera rows are whole in a slice."""

from __future__ import annotations

from typing import Any

import pandas as pd

from batch.postprocessing.events import DEFAULT_GAP_S, group_events, period_counts, set_occurrences
from model_store.tables.reader import Tables
from model_store.tables.table_set import TableSet


class Animals:
    """A tracked set's confirmed occurrences and events, counted over the slices added (`result()`)."""

    def __init__(self, occ: pd.DataFrame, tset: TableSet, gap_s: float = DEFAULT_GAP_S) -> None:
        self.occ, self.tset, self.gap_s = occ, tset, gap_s
        self.occurrences = self.events = self.identified = 0
        self.periods: dict[tuple[str, str], dict] = {}
        self.disagreements: list[tuple[Any, dict]] = []  # (the occurrence's row, what the page lists)

    def add(self, images: pd.DataFrame, kept: pd.DataFrame) -> None:
        occ = self.occ[self.occ["uri"].isin(set(images["uri"]))]
        confirmed = occ[occ["confirmed"].astype(bool)]
        events = group_events(images, kept, self.gap_s, self.tset.filters_hash, confirmed)
        human = occ[occ["determined_by"] == "human"]
        disagree = human[human["model_label"].notna() & (human["model_label"] != human["label"])]
        self.occurrences += len(confirmed)
        self.events += len(events)
        self.identified += len(human)
        for p in period_counts(events, confirmed):
            row = self.periods.setdefault((p["camera_id"], p["period"]), {**p, "events": 0, "max_per_frame": 0,
                                                                          "occurrences": 0, "labels": {}})
            for k in ("events", "max_per_frame", "occurrences"):
                row[k] += p[k]
            for label, n in p["labels"].items():
                row["labels"][label] = row["labels"].get(label, 0) + n
        self.disagreements += [(int(i), {"occurrence_id": r.occurrence_id, "camera": r.camera_id, "label": r.label,
                                         "model_label": r.model_label, "who": r.identified_by})
                               for i, r in zip(disagree.index, disagree.itertuples(index=False), strict=True)]

    def result(self) -> dict[str, Any]:
        return {"occurrences": self.occurrences, "events": self.events, "gap_s": self.gap_s,
                "periods": [self.periods[k] for k in sorted(self.periods)], "identified": self.identified,
                "disagreements": [d for _, d in sorted(self.disagreements, key=lambda d: d[0])]}


def set_animals(tables: Tables, tset: TableSet, store: str | None = None,
                gap_s: float = DEFAULT_GAP_S) -> Animals | None:
    """None when the set was not tracked; else its occurrences (read once) to count slices of images against."""
    occ = set_occurrences(tables, tset, store)
    return None if occ is None else Animals(occ.reset_index(drop=True), tset, gap_s)



class Individuals:
    """The individuals seen (people's decisions applied) among the slices of images added (`result()`)."""

    def __init__(self, sightings: pd.DataFrame, names: dict[str, str], run_id: str) -> None:
        self.sightings, self.names, self.run_id = sightings, names, run_id
        self.ids: set[str] = set()
        self.seen = 0
        self.per_camera: dict[str, tuple[set[str], int]] = {}

    def add(self, images: pd.DataFrame) -> None:
        s = self.sightings[self.sightings["uri"].isin(set(images["uri"]))]
        self.seen += len(s)
        self.ids |= set(s["individual_id"])
        for camera, g in s.groupby(s["camera_id"].fillna("-"), sort=True):
            ids, n = self.per_camera.get(camera, (set(), 0))
            self.per_camera[camera] = (ids | set(g["individual_id"]), n + len(g))

    def result(self) -> dict[str, Any] | None:
        if not self.seen:
            return None
        per_camera = [{"camera_id": camera, "individuals": len(ids), "sightings": n,
                       "named": sorted(self.names[i] for i in ids if i in self.names)}
                      for camera, (ids, n) in sorted(self.per_camera.items())]
        return {"individuals": len(self.ids), "sightings": self.seen, "run_id": self.run_id, "per_camera": per_camera}


def set_individuals(tables: Tables, tset: TableSet) -> Individuals | None:
    """None when `trapline identify` has not run on this result set; else its sightings (read once) to count
    slices of images against."""
    from model_store.tables.identities import current  # late: most reports have no identify run to read

    cur = current(tables.storage)
    s = cur.sightings
    if s.empty or "filters_hash" not in s.columns:
        return None
    s = s[(s["model_name"] == tset.model_name) & (s["model_version"] == tset.model_version)
          & (s["filters_hash"] == tset.filters_hash) & s["individual_id"].notna()]
    if s.empty:
        return None
    names = {r.individual_id: r.name for r in cur.individuals.itertuples() if isinstance(r.name, str)}
    return Individuals(s, names, cur.run_id)

