"""Geofence rules in SpeciesNet's format, and the one question they answer: is this taxon out of place here?

The file is a JSON object from a 5-field taxon (`class;order;family;genus;species`) to its rules, `{"allow": {...},
"block": {...}}`, each a map from an ISO 3166-1 alpha-3 country to a list of first-level regions (2 letters, e.g. US
states); an empty list is the whole country. A taxon with allow rules is out of place in every country not allowed
(and, where regions are listed, in every other region of it); block rules win over allow rules; a taxon not listed is
allowed everywhere. The decision is SpeciesNet's `should_geofence_animal_classification`
(speciesnet/geofence_utils.py), held to it by tests/unit/test_species_reference.py.

`from_fixes_csv` reads SpeciesNet's `data/geofence_fixes.csv` (`species,rule,country_code,admin1_region_code`).
"""

from __future__ import annotations

import csv
import io
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    RootModel,
    ValidationError,
    field_validator,
)

from ground.errors import ConfigError
from ground.problems import describe, problems
from model_store.core.species.taxonomy import Taxonomy, taxa_of


def _country(value: str) -> str:
    if len(value) != 3 or not value.isalpha():
        raise ValueError("a country is an ISO 3166-1 alpha-3 code (3 letters, e.g. 'USA')")
    return value.upper()


def _region(value: str) -> str:
    if len(value) != 2 or not value.isalnum():
        raise ValueError("a first-level region is a 2-character code (e.g. the US state 'CA')")
    return value.upper()


CountryCode = Annotated[str, AfterValidator(_country)]
RegionCode = Annotated[str, AfterValidator(_region)]
Regions = dict[CountryCode, list[RegionCode]]


class Location(BaseModel):
    """Where a camera stands: an ISO 3166-1 alpha-3 country and, optionally, a first-level region (2 characters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    country: CountryCode | None = Field(None, description="ISO 3166-1 alpha-3 country code, e.g. 'USA', 'DEU'")
    admin1_region: RegionCode | None = Field(None, description="first-level region within the country, e.g. 'CA'")

    @field_validator("country", "admin1_region", mode="before")
    @classmethod
    def _empty(cls, value: object) -> object:
        return value or None  # an empty cell of a deployments table is no location


class TaxonRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    allow: Regions = Field(default_factory=dict, description="countries (and their regions) the taxon lives in")
    block: Regions = Field(default_factory=dict, description="countries (and their regions) it does not; wins")


def _taxon_key(key: str) -> str:
    parts = key.split(";")
    if len(parts) != 5:
        raise ValueError(f"a geofence key is a 5-field taxon 'class;order;family;genus;species', got {key!r}")
    return key


class Geofence(RootModel[dict[str, TaxonRules]]):
    """The rules by 5-field taxon."""

    @field_validator("root")
    @classmethod
    def _keys(cls, value: dict[str, TaxonRules]) -> dict[str, TaxonRules]:
        for key in value:
            _taxon_key(key)
        return value

    @classmethod
    def parse(cls, data: bytes | str, source: str = "geofence") -> Geofence:
        """A geofence JSON file; ConfigError naming the taxon and field of a bad entry."""
        try:
            return cls.model_validate_json(data)
        except ValidationError as exc:
            raise ConfigError(f"invalid geofence {source}: {describe(problems(exc))}") from None

    @classmethod
    def from_fixes_csv(cls, text: str, source: str = "geofence fixes") -> Geofence:
        """SpeciesNet's fixes CSV (`species,rule,country_code,admin1_region_code`) as a geofence of its own."""
        rules: dict[str, dict[str, dict[str, list[str]]]] = {}
        reader = csv.DictReader(io.StringIO(text))
        wanted = {"species", "rule", "country_code", "admin1_region_code"}
        if set(reader.fieldnames or ()) != wanted:
            raise ConfigError(f"{source}: the header must be {sorted(wanted)}, got {reader.fieldnames!r}")
        for n, row in enumerate(reader, 2):
            if row["rule"] not in ("allow", "block"):
                raise ConfigError(f"{source} line {n}: rule must be allow or block, got {row['rule']!r}")
            regions = rules.setdefault(row["species"], {}).setdefault(row["rule"], {}).setdefault(
                row["country_code"], [])
            if row["admin1_region_code"]:
                regions.append(row["admin1_region_code"])
        try:
            return cls.model_validate(rules)
        except ValidationError as exc:
            raise ConfigError(f"invalid geofence {source}: {describe(problems(exc))}") from None

    def check_taxa(self, taxonomy: Taxonomy, source: str = "geofence") -> None:
        """ConfigError naming the taxa this geofence has rules for that the taxonomy does not know."""
        known = set(taxonomy.by_taxa) | {taxa_of(label) for label in taxonomy.labels}
        unknown = sorted(set(self.root) - known)
        if unknown:
            raise ConfigError(f"{source}: rules for taxa the taxonomy does not have: {unknown[:5]!r}"
                              + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))

    def blocks(self, label: str, location: Location | None) -> bool:
        """Whether `label` (7-field) is out of place at `location` (SpeciesNet's rule order; no country: never)."""
        if location is None or not location.country:
            return False
        rules = self.root.get(taxa_of(label))
        if rules is None:
            return False
        country, region = location.country, location.admin1_region
        if rules.allow:
            if country not in rules.allow:
                return True
            allowed = rules.allow[country]
            if region and allowed and region not in allowed:
                return True
        if rules.block and country in rules.block:
            blocked = rules.block[country]
            if not blocked or (region and region in blocked):
                return True
        return False
