"""`config.json`'s `species` entry of a classifier (model_store/core/config/classifier.py), kept here so the
config imports the species package and never the other way round."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

TAXONOMY_FILE, GEOFENCE_FILE = "taxonomy.txt", "geofence.json"


class TaxaListFile(BaseModel):
    """One taxa list (CSV `latin,common[,threshold]`) beside the classifier."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    file: str = Field(..., pattern=r"^taxa-[A-Za-z0-9._-]+\.csv$")
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$")


class SpeciesFiles(BaseModel):
    """A classifier's taxonomy and geofence files (SpeciesNet's formats) beside its weights, with their sha256:
    what the species ensemble reads (model_store/core/species/data.py; `models publish --taxonomy/--geofence`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    taxonomy: str = Field("taxonomy.txt", description="taxonomy file: one 7-field SpeciesNet label a line")
    taxonomy_sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$")
    geofence: str | None = Field(None, description="geofence file: SpeciesNet's JSON allow/block rules (None: none)")
    geofence_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    taxa_lists: dict[str, TaxaListFile] = Field(default_factory=dict, description="a project's taxa lists by name")
