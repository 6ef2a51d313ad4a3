"""The report's animals: occurrences (a tracked set's) counted per camera and night/day beside the max-per-frame
count of events, and where a model's vote now disagrees with a person's identification."""

from __future__ import annotations

from typing import Any

import pandas as pd

from batch.refilter.events import DEFAULT_GAP_S, group_events, period_counts, set_occurrences
from model_store.tables.reader import TableSet


def animals(tables_url: str, tset: TableSet, images: pd.DataFrame, kept: pd.DataFrame, store: str | None = None,
            gap_s: float = DEFAULT_GAP_S) -> dict[str, Any] | None:
    """None when the set was not tracked; else the confirmed occurrences among `images`, per camera and period,
    and the disagreements (a person's label, the model's vote)."""
    occ = set_occurrences(tables_url, tset, store)
    if occ is None:
        return None
    occ = occ[occ["uri"].isin(set(images["uri"]))]
    confirmed = occ[occ["confirmed"].astype(bool)]
    events = group_events(images, kept, gap_s, tset.filters_hash, confirmed)
    human = occ[occ["determined_by"] == "human"]
    disagree = human[human["model_label"].notna() & (human["model_label"] != human["label"])]
    return {"occurrences": len(confirmed), "events": len(events), "gap_s": gap_s,
            "periods": period_counts(events, confirmed), "identified": len(human),
            "disagreements": [{"occurrence_id": r.occurrence_id, "camera": r.camera_id, "label": r.label,
                               "model_label": r.model_label, "who": r.identified_by}
                              for r in disagree.itertuples(index=False)]}


def individuals(tables_url: str, tset: TableSet, images: pd.DataFrame) -> dict[str, Any] | None:
    """None when `trapline identify` has not run on this result set; else the individuals seen among `images`
    (people's decisions applied), per camera: how many, their sightings, and the named ones."""
    from model_store.tables.identities import current  # late: most reports have no identify run to read

    cur = current(tables_url)
    s = cur.sightings
    if s.empty or "filters_hash" not in s.columns:
        return None
    s = s[(s["model_name"] == tset.model_name) & (s["model_version"] == tset.model_version)
          & (s["filters_hash"] == tset.filters_hash) & s["individual_id"].notna() & s["uri"].isin(set(images["uri"]))]
    if s.empty:
        return None
    names = {r.individual_id: r.name for r in cur.individuals.itertuples() if isinstance(r.name, str)}
    per_camera = []
    for camera, g in s.groupby(s["camera_id"].fillna("-"), sort=True):
        ids = sorted(set(g["individual_id"]))
        per_camera.append({"camera_id": camera, "individuals": len(ids), "sightings": len(g),
                           "named": sorted(names[i] for i in ids if i in names)})
    return {"individuals": int(s["individual_id"].nunique()), "sightings": len(s), "run_id": cur.run_id,
            "per_camera": per_camera}
