"""What the classifiers said, for the report: each kept box's species (or rolled-up taxon) and counts per species.

A box's answer is its first classifier's (pipeline order), named as the exports name it: the
taxonomy path's end (`scientificName`), else the label. Boxes no classifier was routed to have
none and keep their detector label.
"""

from __future__ import annotations

import pandas as pd

from batch.export.fields import scientific_name
from model_store.tables.reader import Tables, TableSet
from model_store.tables.schema import CLASSIFICATIONS

SPECIES_COLUMNS = ["species", "species_score", "species_rank", "classifier"]


def with_species(tables: Tables, tset: TableSet, images: pd.DataFrame, kept: pd.DataFrame) -> pd.DataFrame:
    """`kept` with SPECIES_COLUMNS (null where no classifier answered); unchanged columns without classifiers."""
    if not tset.classifiers or kept.empty:
        return kept.assign(**{c: None for c in SPECIES_COLUMNS})
    cls = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                      table=CLASSIFICATIONS)
    first: dict[tuple[str, int], dict] = {}
    for row in cls.to_dict("records"):  # rows come in pipeline order per detection: keep the first
        first.setdefault((row["uri"], int(row["detection_index"])), row)
    answers = [first.get((u, int(i))) for u, i in zip(kept["uri"], kept["detection_index"], strict=True)]
    return kept.assign(
        species=[scientific_name(a) if a else None for a in answers],
        species_score=[float(a["score"]) if a else None for a in answers],
        species_rank=[a.get("rank") if a else None for a in answers],
        classifier=[f"{a['classifier_name']}:{a['classifier_version']}" if a else None for a in answers],
    )


def species_counts(kept: pd.DataFrame) -> list[dict]:
    """Per species (most boxes first): boxes, images, best and mean classifier score, its rank if rolled up."""
    answered = kept[kept["species"].notna()] if "species" in kept else kept.iloc[0:0]
    if answered.empty:
        return []
    g = answered.groupby("species")
    table = pd.DataFrame({"boxes": g.size(), "images": g["uri"].nunique(), "best": g["species_score"].max(),
                          "mean": g["species_score"].mean(),
                          "rank": g["species_rank"].agg(lambda s: next((r for r in s if isinstance(r, str)), ""))})
    table = table.sort_values(["boxes", "images"], ascending=False, kind="stable")
    return [{"species": name, "boxes": int(r.boxes), "images": int(r.images), "best": round(float(r.best), 2),
             "mean": round(float(r["mean"]), 2), "rank": r["rank"]} for name, r in table.iterrows()]


def species_frame(kept: pd.DataFrame) -> pd.DataFrame:
    """The classified boxes as (uri, label=species, score=classifier score): the gallery's input shape."""
    answered = kept[kept["species"].notna()] if "species" in kept else kept.iloc[0:0]
    return pd.DataFrame({"uri": answered["uri"], "label": answered["species"],
                         "score": answered["species_score"].astype(float)})


def classifier_names(tset: TableSet) -> list[str]:
    """NAME:VERSION of each classifier of the set, pipeline order."""
    return [f"{c['name']}:{c['version']}" for c in tset.classifiers]
