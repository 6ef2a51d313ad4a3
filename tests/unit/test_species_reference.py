"""trapline's species ensemble against SpeciesNet's own combiner, decision by decision (issue 57).

tests/fixtures/reference/build_species.py ran `speciesnet.ensemble_prediction_combiner.combine_predictions` on 3,000
generated detections (detector label and score, top-5 labels and scores over a real-ish taxonomy, a location, the
geofence on or off) and recorded its answers; every one of trapline's must be the same label, source and score.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from model_store.core.species.ensemble import EnsembleConfig, SpeciesData, combine
from model_store.core.species.geofence import Geofence, Location
from model_store.core.species.taxonomy import Taxonomy

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "speciesnet"


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(gzip.decompress((HERE / "ensemble_expected.json.gz").read_bytes()))


@pytest.fixture(scope="module")
def data() -> SpeciesData:
    taxonomy = Taxonomy.parse((HERE / "taxonomy.txt").read_text(), "taxonomy.txt")
    geofence = Geofence.parse((HERE / "geofence.json").read_bytes(), "geofence.json")
    geofence.check_taxa(taxonomy)
    return SpeciesData(taxonomy, geofence)


def test_every_decision_is_speciesnets(reference: dict, data: SpeciesData) -> None:
    labels = reference["labels"]
    on, off = EnsembleConfig(), EnsembleConfig(geofence=False)
    wrong, sources = [], Counter()
    for case in reference["cases"]:
        det, conf, idx, scores, country, region, fence, want, want_score, want_source = case
        location = Location(country=country, admin1_region=region) if country or region else None
        got = combine(det, conf, [labels[i] for i in idx], scores, data, location, on if fence else off)
        sources[want_source] += 1
        if (got.label, got.source) != (labels[want], want_source) or abs(got.score - want_score) > 1e-12:
            wrong.append((case, got))
    assert not wrong, f"{len(wrong)} of {len(reference['cases'])} decisions differ, e.g. {wrong[:3]}"
    assert len(reference["cases"]) >= 3000
    # The generated set reaches every rule: detector, classifier, each rollup rank, geofence rollups.
    for source in ("detector", "classifier", "classifier+rollup_to_genus", "classifier+rollup_to_family",
                   "classifier+rollup_to_order", "classifier+rollup_to_class", "classifier+rollup_to_kingdom",
                   "classifier+geofence+rollup_to_family", "classifier+geofence+rollup_to_order"):
        assert sources[source] > 0, source


def test_a_changed_threshold_changes_decisions(reference: dict, data: SpeciesData) -> None:
    """The thresholds are the config's, not constants: a stricter animal threshold rolls more labels up."""
    labels = reference["labels"]
    strict = EnsembleConfig(animal_classifier=0.95, animal_classifier_mid=0.9)
    changed = 0
    for det, conf, idx, scores, country, region, fence, want, _, want_source in reference["cases"][:500]:
        location = Location(country=country, admin1_region=region) if country or region else None
        got = combine(det, conf, [labels[i] for i in idx], scores, data, location, strict)
        changed += (got.label, got.source) != (labels[want], want_source)
    assert changed > 20
