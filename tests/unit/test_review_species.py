"""The report's species: each kept box's first classifier answer (taxon name, else label), counts per species,
captions, and a header without the machine's directory layout."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from batch.review.build import box_caption, shown_location
from batch.review.species import species_counts, species_frame, with_species


class StubTables:
    def __init__(self, classifications: pd.DataFrame) -> None:
        self.classifications = classifications

    def committed_detections(self, images, name, version, filters_hash, table="detections", kept_only=False,
                             filter=None):
        assert table == "classifications"
        return self.classifications


def cls(uri, index, label, score, path=(), rank=None, name="species", version="2", source=None):
    return {"uri": uri, "detection_index": index, "label": label, "score": score, "taxon_path": list(path),
            "rank": rank, "classifier_name": name, "classifier_version": version, "source": source}


def test_each_box_gets_its_first_classifiers_answer_and_species_are_counted():
    kept = pd.DataFrame([{"uri": u, "detection_index": i, "label": lab, "score": 0.9}
                         for u, i, lab in (("a", 0, "animal"), ("a", 1, "animal"), ("b", 0, "animal"),
                                           ("b", 1, "person"), ("c", 0, "animal"))])
    classifications = pd.DataFrame([
        cls("a", 0, "red_fox", 0.8, ["Mammalia", "Canidae", "Vulpes vulpes"]),
        cls("a", 0, "other", 0.99, name="second"),  # a second classifier: the first one's answer counts
        cls("a", 1, "Canidae", 0.7, ["Mammalia", "Canidae"], rank="family", source="classifier+rollup_to_family"),
        cls("b", 0, "red_fox", 0.6, ["Mammalia", "Canidae", "Vulpes vulpes"]),
        cls("c", 0, "Canidae", 0.65, ["Mammalia", "Canidae"], rank="family",
            source="classifier+geofence+rollup_to_family"),
    ])
    tset = SimpleNamespace(model_name="md", model_version="5", filters_hash="h", classifiers=[{"name": "species"}])
    out = with_species(StubTables(classifications), tset, pd.DataFrame(), kept)
    species = [s if isinstance(s, str) else None for s in out["species"]]  # pandas may hold None as NaN
    assert species == ["Vulpes vulpes", "Canidae", "Vulpes vulpes", None, "Canidae"]
    assert out["classifier"].iloc[0] == "species:2" and pd.isna(out["species_score"].iloc[3])
    assert species_counts(out) == [
        {"species": "Canidae", "boxes": 2, "images": 2, "best": 0.7, "mean": 0.68, "rank": "family",
         "sources": "classifier+rollup_to_family (1), classifier+geofence+rollup_to_family (1)"},
        {"species": "Vulpes vulpes", "boxes": 2, "images": 2, "best": 0.8, "mean": 0.7, "rank": "", "sources": ""},
    ]
    frame = species_frame(out)
    assert list(frame["label"]) == ["Vulpes vulpes", "Canidae", "Vulpes vulpes", "Canidae"]
    captions = [box_caption(d) for d in out.itertuples(index=False)]
    assert captions == ["Vulpes vulpes 0.80", "Canidae 0.70 (classifier+rollup_to_family)", "Vulpes vulpes 0.60",
                        "person 0.90", "Canidae 0.65 (classifier+geofence+rollup_to_family)"]


def test_without_classifiers_nothing_changes():
    kept = pd.DataFrame([{"uri": "a", "detection_index": 0, "label": "deer", "score": 0.5}])
    tset = SimpleNamespace(classifiers=[])
    out = with_species(None, tset, pd.DataFrame(), kept)
    assert species_counts(out) == [] and box_caption(next(out.itertuples(index=False))) == "deer 0.50"


def test_the_header_names_the_tables_without_the_machines_directory_layout(tmp_path):
    assert shown_location(str(tmp_path / "out" / "detections"), tmp_path / "out" / "report") == "../detections"
    far = Path("/srv/data/projects/x/y/z/detections")
    assert shown_location(str(far), tmp_path / "report") == "detections"
    assert shown_location("s3://traps/detections", tmp_path) == "s3://traps/detections"
