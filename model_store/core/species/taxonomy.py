"""A classifier's taxonomy in SpeciesNet's form: one 7-field label a line, `uuid;class;order;family;genus;species;common
name`, the labels the classifier outputs and every ancestor a rollup may name.

Read from a versioned file published beside the classifier (model_store/core/species/data.py), never fetched at run
time. The map it builds is SpeciesNet's (`speciesnet.ensemble._load_taxonomy_from_file`): the 5-field taxa
(`class;order;family;genus;species`) to their label, with blank, vehicle and "no cv result" left out and human and
animal always in — so the kingdom-level ancestor of every animal (`;;;;`) is the label `animal`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ground.errors import ConfigError

# SpeciesNet's special labels (speciesnet/constants.py `Classification`): their uuids are part of the label.
BLANK = "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank"
ANIMAL = "1f689929-883d-4dae-958c-3d57ab5b6c16;;;;;;animal"
HUMAN = "990ae9dd-7a59-4344-afcb-1b7b21368000;mammalia;primates;hominidae;homo;sapiens;human"
VEHICLE = "e2895ed5-780b-48f6-8a11-9e27cb594511;;;;;;vehicle"
UNKNOWN = ("f2efdae9-efb8-48fb-8a91-eccf79ab4ffb;no cv result;no cv result;no cv result;no cv result;no cv result;"
           "no cv result")
NOT_ANIMALS = frozenset({BLANK, HUMAN, VEHICLE})

RANKS = ("class", "order", "family", "genus", "species")  # the five taxon fields, in label order
ROLLUP_RANKS = ("species", "genus", "family", "order", "class", "kingdom")


def taxa_of(label: str) -> str:
    """The 5-field taxon string of a 7-field label (`class;order;family;genus;species`)."""
    return ";".join(label.split(";")[1:6])


def check_label(label: str, where: str) -> list[str]:
    """The 7 fields of a label; ConfigError naming `where` when it has another number of fields."""
    parts = label.split(";")
    if len(parts) != 7:
        raise ConfigError(f"{where}: a SpeciesNet label has 7 fields 'uuid;class;order;family;genus;species;"
                          f"common name', got {len(parts)} in {label!r}")
    return parts


def ancestor_taxa(label: str, rank: str) -> str | None:
    """The 5-field taxa of `label`'s ancestor at `rank` (itself included), or None when the label has no taxon
    there; SpeciesNet's `get_ancestor_at_level` before the map look-up."""
    parts = label.split(";")
    if rank == "kingdom":
        return ";;;;" if parts[1] or label == ANIMAL else None
    depth = RANKS.index(rank) + 1
    if not parts[depth]:
        return None
    return ";".join(parts[1:depth + 1] + [""] * (5 - depth))


@dataclass(frozen=True)
class Taxonomy:
    """The labels of a taxonomy file and SpeciesNet's taxa -> label map over them."""

    labels: tuple[str, ...]
    by_taxa: dict[str, str]

    @classmethod
    def parse(cls, text: str, source: str = "taxonomy") -> Taxonomy:
        """Read a taxonomy file; ConfigError naming the line and the field for a malformed label."""
        labels = [line.strip() for line in text.splitlines() if line.strip()]
        if not labels:
            raise ConfigError(f"{source}: no labels (one 'uuid;class;order;family;genus;species;common name' a line)")
        seen: dict[str, int] = {}
        for n, label in enumerate(labels, 1):
            parts = check_label(label, f"{source} line {n}")
            if not parts[0]:
                raise ConfigError(f"{source} line {n}: field uuid is empty in {label!r}")
            taxa = parts[1:6]
            gap = next((RANKS[i] for i in range(4) if not taxa[i] and any(taxa[i + 1:])), None)
            if gap is not None and label != UNKNOWN:
                raise ConfigError(f"{source} line {n}: field {gap} is empty under a lower rank in {label!r}")
            if label in seen:
                raise ConfigError(f"{source} line {n}: label {label!r} repeats line {seen[label]}")
            seen[label] = n
        return cls.from_labels(labels)

    @classmethod
    def from_labels(cls, labels: Iterable[str]) -> Taxonomy:
        labels = tuple(labels)
        by_taxa = {taxa_of(label): label for label in labels}
        for label in (BLANK, VEHICLE, UNKNOWN):
            by_taxa.pop(taxa_of(label), None)
        for label in (HUMAN, ANIMAL):
            by_taxa[taxa_of(label)] = label
        return cls(labels, by_taxa)

    def ancestor(self, label: str, rank: str) -> str | None:
        """The label of `label`'s ancestor at `rank` here, or None (SpeciesNet's `get_ancestor_at_level`)."""
        taxa = ancestor_taxa(label, rank)
        return None if taxa is None else self.by_taxa.get(taxa)

    def unknown(self, labels: Sequence[str]) -> list[str]:
        """The labels (a classifier's outputs) that are neither in this taxonomy nor SpeciesNet's special labels."""
        known = set(self.labels) | NOT_ANIMALS | {ANIMAL, UNKNOWN}
        return [label for label in labels if label not in known]


def rank_of(label: str) -> str | None:
    """The rank of a label's own taxon (`species` ... `class`, `kingdom` for animal), None for blank/vehicle."""
    parts = label.split(";")
    if len(parts) != 7:
        return None
    for i in range(5, 0, -1):
        if parts[i]:
            return RANKS[i - 1]
    return "kingdom" if label == ANIMAL else None


def scientific_name(label: str) -> str:
    """`Genus species` for a species label, the lowest taxon's name otherwise, the common name for the rest."""
    parts = label.split(";")
    if len(parts) != 7:
        return label
    if parts[5] and parts[4]:
        return f"{parts[4].capitalize()} {parts[5]}"
    lowest = next((p for p in reversed(parts[1:5]) if p), "")
    return lowest.capitalize() if lowest and label != UNKNOWN else parts[6]


def common_name(label: str) -> str:
    parts = label.split(";")
    return parts[6] if len(parts) == 7 else label


def taxon_path(label: str) -> list[str]:
    """The non-empty taxon names of a label, root first (what a `Classification`'s `taxon_path` holds)."""
    parts = label.split(";")
    if len(parts) != 7 or label == UNKNOWN:
        return [label]
    path = [p for p in parts[1:5] if p]
    if parts[5]:
        path.append(scientific_name(label))
    return path or [parts[6]]
