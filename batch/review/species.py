"""What the classifiers said, for the report: each kept box's species (or rolled-up taxon) and counts per species.

A box's answer is its first classifier's (pipeline order), named as the exports name it: the
taxonomy path's end (`scientificName`), else the label. Boxes no classifier was routed to have
none and keep their detector label.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pyarrow.dataset as ds

from batch.export.fields import scientific_name
from model_store.tables.browse import as_text
from model_store.tables.reader import Tables
from model_store.tables.schema import CLASSIFICATIONS
from model_store.tables.table_set import TableSet

SPECIES_COLUMNS = ["species", "species_score", "species_rank", "species_source", "classifier"]


def with_species(tables: Tables, tset: TableSet, images: pd.DataFrame, kept: pd.DataFrame,
                 filter: ds.Expression | None = None) -> pd.DataFrame:
    """`kept` with SPECIES_COLUMNS (null where no classifier answered); unchanged columns without classifiers.
    `filter` narrows the classifications read (the uri span of a slice of cameras)."""
    if not tset.classifiers or kept.empty:
        return kept.assign(**{c: None for c in SPECIES_COLUMNS})
    cls = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                      table=CLASSIFICATIONS, filter=filter)
    first: dict[tuple[str, int], dict] = {}
    for row in cls.to_dict("records"):  # rows come in pipeline order per detection: keep the first
        first.setdefault((row["uri"], int(row["detection_index"])), row)
    answers = [first.get((u, int(i))) for u, i in zip(kept["uri"], kept["detection_index"], strict=True)]
    return kept.assign(
        species=[scientific_name(a) if a else None for a in answers],
        species_score=[float(a["score"]) if a else None for a in answers],
        species_rank=[a.get("rank") if a else None for a in answers],
        species_source=[as_text(a.get("source")) if a else None for a in answers],  # the rule that decided it
        classifier=[f"{a['classifier_name']}:{a['classifier_version']}" if a else None for a in answers],
    )


class SpeciesCounts:
    """Per species: boxes, images, best and summed classifier score, and the rank of its first box rolled up to one
    (by uri and detection index), over the kept boxes added (slices of other images; `result()`)."""

    def __init__(self) -> None:
        self.table: pd.DataFrame | None = None
        self.sources: dict[str, Counter[str]] = {}  # per species: how many boxes each rule decided (`source`)

    def add(self, kept: pd.DataFrame) -> None:
        answered = kept[kept["species"].notna()] if "species" in kept else kept.iloc[0:0]
        if answered.empty:
            return
        for name, source in zip(answered["species"], answered.get("species_source", [None] * len(answered)),
                                strict=True):
            if isinstance(source, str):
                self.sources.setdefault(name, Counter())[source] += 1
        answered = answered.assign(order=list(zip(answered["uri"], answered["detection_index"], strict=True)))
        ranked = answered[[isinstance(r, str) for r in answered["species_rank"]]].groupby("species")
        g = answered.groupby("species")
        part = pd.DataFrame({"boxes": g.size(), "images": g["uri"].nunique(), "best": g["species_score"].max(),
                             "sum": g["species_score"].sum(), "n": g["species_score"].count(),
                             "first": ranked["order"].first(), "rank": ranked["species_rank"].first()})
        if self.table is None:
            self.table = part
            return
        both = self.table.join(part, how="outer", rsuffix="_")
        for k in ("boxes", "images", "sum", "n"):
            both[k] = both[k].fillna(0) + both[f"{k}_"].fillna(0)
        both["best"] = both[["best", "best_"]].max(axis=1)
        later = [isinstance(b, tuple) and (not isinstance(a, tuple) or b < a)
                 for a, b in zip(both["first"], both["first_"], strict=True)]
        both["first"] = both["first"].where(~pd.Series(later, index=both.index), both["first_"])
        both["rank"] = both["rank"].where(~pd.Series(later, index=both.index), both["rank_"])
        self.table = both[part.columns]

    def result(self) -> list[dict]:
        """Most boxes first (then most images, then by name)."""
        if self.table is None:
            return []
        table = self.table.sort_index().sort_values(["boxes", "images"], ascending=False, kind="stable")
        return [{"species": name, "boxes": int(r.boxes), "images": int(r.images), "best": round(float(r.best), 2),
                 "mean": round(float(r["sum"] / r["n"]), 2), "rank": r["rank"] if isinstance(r["rank"], str) else "",
                 "sources": ", ".join(f"{s} ({n})" for s, n in self.sources.get(name, Counter()).most_common())}
                for name, r in table.iterrows()]


def species_counts(kept: pd.DataFrame) -> list[dict]:
    """Per species (most boxes first): boxes, images, best and mean classifier score, its rank if rolled up."""
    counts = SpeciesCounts()
    counts.add(kept)
    return counts.result()


def species_frame(kept: pd.DataFrame) -> pd.DataFrame:
    """The classified boxes as (uri, label=species, score=classifier score): the gallery's input shape."""
    answered = kept[kept["species"].notna()] if "species" in kept else kept.iloc[0:0]
    return pd.DataFrame({"uri": answered["uri"], "label": answered["species"],
                         "score": answered["species_score"].astype(float)})


def classifier_names(tset: TableSet) -> list[str]:
    """NAME:VERSION of each classifier of the set, pipeline order."""
    return [f"{c['name']}:{c['version']}" for c in tset.classifiers]
