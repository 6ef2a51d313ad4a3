"""SpeciesNet's ensemble: a detection's detector category and score and its classifier's top-5 become one
determination (label, score, source), by SpeciesNet's rules in SpeciesNet's order with its defaults
(speciesnet/ensemble_prediction_combiner.py `combine_predictions`, speciesnet/geofence_utils.py):

1. human from the detector (score > 0.7), or from the classifier when the detector half-agrees;
2. vehicle likewise (a confident human label on a vehicle box is a human);
3. blank when the detector saw little and the classifier says blank, or the classifier is all but certain;
4. an animal label the classifier is sure of (or fairly sure, on an animal box) stands, unless the geofence
   blocks it where the camera stands: then it rolls up to the first family/order/class/kingdom whose summed score
   reaches the label's own (`classifier+geofence+rollup_to_family` ...);
5. otherwise the first of genus, family, order, class, kingdom whose summed top-5 score passes the rollup
   threshold (blocked taxa skipped: `classifier+rollup_to_genus` ...), else `animal` from a confident animal box
   (`detector`), else "no cv result".

Every threshold is a field of `EnsembleConfig`; the defaults are SpeciesNet's, and tests/unit/test_species_reference.py
holds the decisions to SpeciesNet's own code on generated inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from model_store.core.species.geofence import Geofence, Location
from model_store.core.species.taxonomy import ANIMAL, BLANK, HUMAN, NOT_ANIMALS, UNKNOWN, VEHICLE, Taxonomy

Rank = Literal["species", "genus", "family", "order", "class", "kingdom"]
TOP_K = 5  # SpeciesNet's NUM_CLASSIFICATIONS_FOR_ENSEMBLE: the ensemble looks at the top 5 labels only


class EnsembleConfig(BaseModel):
    """The ensemble's thresholds (SpeciesNet's defaults) and which detector labels are a human, vehicle, animal."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    human_detector: float = Field(0.7, ge=0, le=1, description="a human box above this is human (source detector)")
    human_detector_mid: float = Field(0.2, ge=0, le=1, description="a human box above this ...")
    human_classifier: float = Field(0.5, ge=0, le=1, description="... is human when the classifier's top label is "
                                                                 "human or vehicle above this")
    vehicle_detector: float = Field(0.7, ge=0, le=1, description="a vehicle box above this is a vehicle")
    vehicle_detector_mid: float = Field(0.2, ge=0, le=1, description="a vehicle box above this ...")
    vehicle_human_classifier: float = Field(0.5, ge=0, le=1, description="... is human when the classifier says human "
                                                                         "above this")
    vehicle_classifier: float = Field(0.4, ge=0, le=1, description="... is a vehicle when the classifier says vehicle "
                                                                   "above this")
    blank_detector: float = Field(0.2, ge=0, le=1, description="a box below this ...")
    blank_classifier: float = Field(0.5, ge=0, le=1, description="... is blank when the classifier says blank above "
                                                                 "this")
    blank_classifier_alone: float = Field(0.99, ge=0, le=1, description="blank whatever the box, above this")
    animal_classifier: float = Field(0.8, ge=0, le=1, description="an animal label above this stands (geofenced)")
    animal_classifier_mid: float = Field(0.65, ge=0, le=1, description="an animal label above this ...")
    animal_detector_mid: float = Field(0.2, ge=0, le=1, description="... stands on an animal box above this")
    rollup: float = Field(0.65, ge=0, le=1, description="a taxon's summed top-5 score must pass this to be the answer")
    rollup_ranks: tuple[Rank, ...] = Field(("genus", "family", "order", "class", "kingdom"),
                                          description="ranks tried in turn when no label stands")
    geofence_rollup_ranks: tuple[Rank, ...] = Field(("family", "order", "class", "kingdom"),
                                                   description="ranks a blocked label rolls up through")
    animal_detector: float = Field(0.5, ge=0, le=1, description="an animal box above this is 'animal' when nothing "
                                                                "else holds")
    geofence: bool = Field(True, description="apply the geofence (False: labels stand wherever the camera is)")
    human_labels: tuple[str, ...] = Field(("person", "human"), description="detector labels that are a human")
    vehicle_labels: tuple[str, ...] = Field(("vehicle",), description="detector labels that are a vehicle")
    animal_labels: tuple[str, ...] = Field(("animal",), description="detector labels that are an animal")


@dataclass(frozen=True)
class SpeciesData:
    """What the ensemble reads beside the classifier: its taxonomy and geofence (an empty geofence blocks nothing),
    and the taxa lists published with it, by name (`TaxaList`, model_store/core/species/taxa_list.py)."""

    taxonomy: Taxonomy
    geofence: Geofence
    taxa_lists: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # built restrictions, by their options


@dataclass(frozen=True)
class Decision:
    label: str
    score: float
    source: str


def rollup(labels: Sequence[str], scores: Sequence[float], ranks: Sequence[str], threshold: float,
           data: SpeciesData, location: Location | None, geofence: bool) -> Decision | None:
    """The first rank whose best unblocked taxon's summed score passes `threshold` (SpeciesNet's
    `roll_up_labels_to_first_matching_level`), or None.

    Seven parameters: SpeciesNet's roll-up function's own arguments (labels, scores, target_taxonomy_levels,
    non_blank_threshold, enable_geofence, as ranks, threshold, geofence here), with its taxonomy and geofence maps as
    one SpeciesData and its country and admin1 region as one Location; keeping its shape keeps each call site
    comparable line by line with the code tests/unit/test_species_reference.py holds it to."""
    for rank in ranks:
        sums: dict[str, float] = {}
        for label, score in zip(labels, scores, strict=True):
            up = data.taxonomy.ancestor(label, rank)
            if up:
                sums[up] = sums.get(up, 0.0) + score
        best, best_score = None, 0.0
        for up, total in sums.items():
            if total > best_score and not (geofence and data.geofence.blocks(up, location)):
                best, best_score = up, total
        if best_score > threshold and best:
            return Decision(best, best_score, f"classifier+rollup_to_{rank}")
    return None


def geofenced(labels: Sequence[str], scores: Sequence[float], data: SpeciesData, location: Location | None,
              config: EnsembleConfig) -> Decision:
    """The top label where it is allowed; rolled up until the summed score reaches its own where it is not."""
    if not (config.geofence and data.geofence.blocks(labels[0], location)):
        return Decision(labels[0], scores[0], "classifier")
    up = rollup(labels, scores, config.geofence_rollup_ranks, scores[0] - 1e-10, data, location, config.geofence)
    if up is None:
        return Decision(UNKNOWN, scores[0], "classifier+geofence+rollup_failed")
    return Decision(up.label, up.score, "classifier+geofence+" + up.source[len("classifier+"):])


def combine(detector_label: str, detector_score: float, labels: Sequence[str], scores: Sequence[float],
            data: SpeciesData, location: Location | None = None,
            config: EnsembleConfig = EnsembleConfig()) -> Decision:  # noqa: B008 - frozen, shared default
    """One detection's determination from its box and its classifier's labels and scores, best first.

    Seven parameters: one detection's four inputs as SpeciesNet's combine_predictions reads them per box (the
    detector's label and score, the classifier's labels and scores), then the species data, the camera's location and
    the thresholds (EnsembleConfig); the first four are plain values from two different models' answers, with no
    object of their own in the species filter that calls this."""
    labels, scores = list(labels[:TOP_K]), [float(s) for s in scores[:TOP_K]]
    c = config
    top, top_score = labels[0], scores[0]
    is_human = detector_label in c.human_labels
    is_vehicle = detector_label in c.vehicle_labels
    is_animal = detector_label in c.animal_labels
    if is_human:
        if detector_score > c.human_detector:
            return Decision(HUMAN, detector_score, "detector")
        if detector_score > c.human_detector_mid and top in (HUMAN, VEHICLE) and top_score > c.human_classifier:
            return Decision(HUMAN, top_score, "classifier")
    if is_vehicle:
        if detector_score > c.vehicle_detector_mid and top == HUMAN and top_score > c.vehicle_human_classifier:
            return Decision(HUMAN, top_score, "classifier")
        if detector_score > c.vehicle_detector:
            return Decision(VEHICLE, detector_score, "detector")
        if detector_score > c.vehicle_detector_mid and top == VEHICLE and top_score > c.vehicle_classifier:
            return Decision(VEHICLE, top_score, "classifier")
    if detector_score < c.blank_detector and top == BLANK and top_score > c.blank_classifier:
        return Decision(BLANK, top_score, "classifier")
    if top == BLANK and top_score > c.blank_classifier_alone:
        return Decision(BLANK, top_score, "classifier")
    if top not in NOT_ANIMALS and (
            top_score > c.animal_classifier
            or (top_score > c.animal_classifier_mid and is_animal and detector_score > c.animal_detector_mid)):
        return geofenced(labels, scores, data, location, c)
    up = rollup(labels, scores, c.rollup_ranks, c.rollup, data, location, c.geofence)
    if up is not None:
        return up
    if is_animal and detector_score > c.animal_detector:
        return Decision(ANIMAL, detector_score, "detector")
    return Decision(UNKNOWN, top_score, "classifier")
