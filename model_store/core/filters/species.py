"""The species ensemble as a classifier filter (`species_ensemble`): SpeciesNet's rules (model_store/core/species/
ensemble.py) turn a detection's box and its classifier's top-5 into one determination with its `source`.

Unlike the other classifier filters it reads more than the scores: the detector's label and score for the crop, the
classifier's taxonomy and geofence (published beside it: `models publish --taxonomy --geofence`) and where the camera
stands — the image's deployment's `country` / `admin1_region` when it has them, else the config's (a run's
`--country` / `--admin1`). It runs where the classifier filters run: live, and when stored tables are re-filtered.
"""

from __future__ import annotations

import uuid
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from ground.errors import FilterConfigError
from model_store.core.filters.classifier import ClassifierAnswer, ClassifierFilter, ClassifierFilterConfig
from model_store.core.species.ensemble import TOP_K, Decision, EnsembleConfig, SpeciesData, combine
from model_store.core.species.geofence import CountryCode, Location, RegionCode
from model_store.core.species.smoothing import SmoothingConfig
from model_store.core.species.taxa_list import TaxaRestriction
from model_store.core.species.taxonomy import ANIMAL, common_name, rank_of, taxa_of, taxon_path

NO_BOX = ("animal", 0.0)  # SpeciesNet's stand-in when a crop has no detection (its whole-image case)


class SpeciesEnsembleConfig(ClassifierFilterConfig, EnsembleConfig):
    """SpeciesNet's ensemble thresholds, and the location of cameras whose deployment does not say."""

    country: CountryCode | None = Field(None, description="ISO 3166-1 alpha-3 country of the cameras (a run's "
                                                          "--country), used when a deployment names none")
    admin1_region: RegionCode | None = Field(None, description="first-level region (2 characters, e.g. a US state)")
    taxa_list: str | None = Field(None, description="a taxa list published with the classifier (`models publish "
                                                    "--taxa-list NAME=FILE`): determinations walk up to the taxa it "
                                                    "allows (MegaDetector's restrict_to_taxa_list)")
    allow_walk_down: bool = Field(False, description="a taxon with one allowed descendant line becomes that taxon")
    protected_common_names: tuple[str, ...] = Field((), description="labels with these common names stay as they are")
    default_threshold: float = Field(0.0, ge=0, le=1, description="the lowest score an animal determination needs "
                                                                  "when the taxa list's threshold column gives none; "
                                                                  "below it the answer is 'animal'")
    smoothing: Literal["off", "image", "event"] = Field("off", description=(
        "MegaDetector's smoothing of the determinations over one image's or one event's detections; applied by "
        "`trapline postprocess` over stored tables (it needs the other detections)"))
    smoothing_gap_s: float = Field(60.0, gt=0, description="a gap longer than this between a camera's images starts "
                                                           "a new event")
    smoothing_options: SmoothingConfig = Field(SmoothingConfig(), description="MegaDetector's smoothing options")

    @model_validator(mode="after")
    def _region_needs_country(self) -> SpeciesEnsembleConfig:
        if self.admin1_region and not self.country:
            raise ValueError(f"admin1_region {self.admin1_region!r} needs a country")
        return self

    @property
    def location(self) -> Location | None:
        return Location(country=self.country, admin1_region=self.admin1_region) if self.country else None


def check_species(configs: list[tuple[str, object]], species: SpeciesData | None) -> None:
    """FilterConfigError when a classifier's filters (`FilterSet.classifier_filters`) hold a species_ensemble its
    published files cannot serve (no taxonomy, an unknown taxa list): refused at the door, not in a batch."""
    for name, config in configs:
        if name != SpeciesEnsembleFilter.name:
            continue
        if species is None:
            raise FilterConfigError(NO_TAXONOMY)
        if config.taxa_list is not None and config.taxa_list not in species.taxa_lists:  # type: ignore[attr-defined]
            raise FilterConfigError(f"species_ensemble.taxa_list: no taxa list {config.taxa_list!r} was published "
                                    f"with the classifier (it has {sorted(species.taxa_lists)})")


NO_TAXONOMY = ("species_ensemble needs the classifier's taxonomy: publish the classifier with "
               "`trapline models publish ... --taxonomy FILE [--geofence FILE]`")


def restricted(config: SpeciesEnsembleConfig, species: SpeciesData, decision: Decision) -> Decision:
    """A determination within the config's taxa list, and above its taxon's threshold (else `animal`)."""
    if config.taxa_list not in species.taxa_lists:
        raise FilterConfigError(f"species_ensemble.taxa_list: no taxa list {config.taxa_list!r} was published with "
                                f"the classifier (it has {sorted(species.taxa_lists)}); publish it with "
                                "`trapline models publish ... --taxa-list NAME=FILE`")
    key = (config.taxa_list, config.allow_walk_down, config.protected_common_names)
    restriction = species.cache.get(key)
    if restriction is None:
        restriction = species.cache[key] = TaxaRestriction(
            species.taxa_lists[config.taxa_list], species.taxonomy.labels, config.allow_walk_down,
            config.protected_common_names)
    target = restriction.target(decision.label)
    if target is None:
        return decision
    taxon, common = target
    label, source = decision.label, decision.source
    if (taxon, common) != (taxa_of(label), common_name(label)):
        known = species.taxonomy.by_taxa.get(taxon)
        uid = known.split(";")[0] if known else str(uuid.uuid5(uuid.NAMESPACE_URL, "trapline-species:" + taxon))
        label, source = f"{uid};{taxon};{common}", f"{source}+taxa_list"
    if label != ANIMAL and decision.score < restriction.threshold(taxon, config.default_threshold):
        return Decision(ANIMAL, decision.score, f"{source}+below_threshold")
    return Decision(label, decision.score, source)


class SpeciesEnsembleFilter(ClassifierFilter):
    """Detector + classifier ensemble after SpeciesNet: human and vehicle from the detector, blank, animal labels
    geofenced to where the camera stands, rolled up to genus, family, order, class when no species is certain; the
    answer's `source` says which rule decided."""

    name = "species_ensemble"
    config_model = SpeciesEnsembleConfig

    @staticmethod
    def transform(config: SpeciesEnsembleConfig, answer: ClassifierAnswer) -> bool:
        if answer.species is None:
            raise FilterConfigError(NO_TAXONOMY)
        order = np.argsort(-answer.scores, kind="stable")[:TOP_K]
        labels = [answer.labels[i] for i in order]
        scores = [float(answer.scores[i]) for i in order]
        det_label, det_score = answer.detection or NO_BOX
        decision = combine(det_label, det_score, labels, scores, answer.species,
                           answer.location or config.location, config)
        if config.taxa_list is not None:
            decision = restricted(config, answer.species, decision)
        answer.label, answer.score, answer.source = decision.label, decision.score, decision.source
        answer.taxon_path, answer.rank = taxon_path(decision.label), rank_of(decision.label)
        return (decision.label, decision.source) != (labels[0], "classifier")
