"""The species ensemble as a classifier filter (`species_ensemble`): SpeciesNet's rules (model_store/core/species/
ensemble.py) turn a detection's box and its classifier's top-5 into one determination with its `source`.

Unlike the other classifier filters it reads more than the scores: the detector's label and score for the crop, the
classifier's taxonomy and geofence (published beside it: `models publish --taxonomy --geofence`) and where the camera
stands — the image's deployment's `country` / `admin1_region` when it has them, else the config's (a run's
`--country` / `--admin1`). It runs where the classifier filters run: live, and when stored tables are re-filtered.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, model_validator

from model_store.core.filters.classifier import ClassifierAnswer, ClassifierFilter, ClassifierFilterConfig
from model_store.core.species.ensemble import TOP_K, EnsembleConfig, combine
from model_store.core.species.geofence import CountryCode, Location, RegionCode
from model_store.core.species.taxonomy import rank_of, taxon_path
from trapline.errors import FilterConfigError

NO_BOX = ("animal", 0.0)  # SpeciesNet's stand-in when a crop has no detection (its whole-image case)


class SpeciesEnsembleConfig(ClassifierFilterConfig, EnsembleConfig):
    """SpeciesNet's ensemble thresholds, and the location of cameras whose deployment does not say."""

    country: CountryCode | None = Field(None, description="ISO 3166-1 alpha-3 country of the cameras (a run's "
                                                          "--country), used when a deployment names none")
    admin1_region: RegionCode | None = Field(None, description="first-level region (2 characters, e.g. a US state)")

    @model_validator(mode="after")
    def _region_needs_country(self) -> SpeciesEnsembleConfig:
        if self.admin1_region and not self.country:
            raise ValueError(f"admin1_region {self.admin1_region!r} needs a country")
        return self

    @property
    def location(self) -> Location | None:
        return Location(country=self.country, admin1_region=self.admin1_region) if self.country else None


class SpeciesEnsembleFilter(ClassifierFilter):
    """Detector + classifier ensemble after SpeciesNet: human and vehicle from the detector, blank, animal labels
    geofenced to where the camera stands, rolled up to genus, family, order, class when no species is certain; the
    answer's `source` says which rule decided."""

    name = "species_ensemble"
    config_model = SpeciesEnsembleConfig

    @staticmethod
    def transform(config: SpeciesEnsembleConfig, answer: ClassifierAnswer) -> bool:
        if answer.species is None:
            raise FilterConfigError("species_ensemble needs the classifier's taxonomy: publish the classifier with "
                                    "`trapline models publish ... --taxonomy FILE [--geofence FILE]`")
        order = np.argsort(-answer.scores, kind="stable")[:TOP_K]
        labels = [answer.labels[i] for i in order]
        scores = [float(answer.scores[i]) for i in order]
        det_label, det_score = answer.detection or NO_BOX
        decision = combine(det_label, det_score, labels, scores, answer.species,
                           answer.location or config.location, config)
        answer.label, answer.score, answer.source = decision.label, decision.score, decision.source
        answer.taxon_path, answer.rank = taxon_path(decision.label), rank_of(decision.label)
        return (decision.label, decision.source) != (labels[0], "classifier")
