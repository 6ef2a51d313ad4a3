"""A project's taxa list (CSV `latin,common`): labels restricted to the taxa it allows, after MegaDetector's
`restrict_to_taxa_list` (postprocessing/classification_postprocessing.py).

Each taxonomic label walks up its taxonomy (species as `genus species`, then genus, family, order, class) to the first
taxon the list allows — a listed taxon, or an ancestor of one. A taxon with several allowed children (or listed
itself) is the answer; one with a single allowed child line is the answer too, unless `allow_walk_down`, which
follows the line down to the listed taxon (only one felid allowed: every felid is that one). A label reaching no
allowed taxon becomes `animal`. Blank, vehicle, animal, "no cv result" and human are left alone, and so are labels
with a protected common name. An allowed taxon shows the list's common name. Held to MegaDetector's code by
tests/unit/test_species_taxa_list.py.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from ground.errors import ConfigError
from model_store.core.species.smoothing import level_of
from model_store.core.species.taxonomy import ANIMAL, HUMAN


@dataclass(frozen=True)
class TaxaList:
    """The list's scientific names (lower case) and their common names, first entry of a name kept; `thresholds`:
    the optional `threshold` column (trapline's addition: the lowest score a determination of that taxon needs)."""

    common: dict[str, str]
    thresholds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, source: str = "taxa list") -> TaxaList:
        """CSV with columns `latin` and `common` (an `original_common`, when given, wins); ConfigError naming the
        line for a name that is not 1 to 3 words."""
        reader = csv.DictReader(io.StringIO(text))
        missing = [c for c in ("latin", "common") if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{source}: column(s) {missing} missing (a taxa list is CSV with 'latin' and 'common')")
        common: dict[str, str] = {}
        thresholds: dict[str, float] = {}
        for n, row in enumerate(reader, 2):
            latin = (row.get("latin") or "").strip().lower()
            if not latin:
                continue
            if not 1 <= len(latin.split(" ")) <= 3:
                raise ConfigError(f"{source} line {n}: latin {latin!r} is not a scientific name of 1 to 3 words")
            name = (row.get("common") or "").strip().lower()
            if (row.get("original_common") or "").strip():
                name = row["original_common"].strip().lower()
            if latin not in common and (row.get("threshold") or "").strip():
                try:
                    threshold = float(row["threshold"])
                except ValueError:
                    threshold = -1.0
                if not 0.0 <= threshold <= 1.0:
                    raise ConfigError(f"{source} line {n}: threshold must be a number from 0 to 1, got "
                                      f"{row['threshold']!r}")
                thresholds[latin] = threshold
            common.setdefault(latin, name)
        if not common:
            raise ConfigError(f"{source}: no taxa")
        return cls(common, thresholds)


def _latin_of(taxa: list[str]) -> str | None:
    """The scientific name a 5-field taxon is known by: `genus species`, else its lowest named rank."""
    if not taxa[0]:
        return None
    if taxa[4]:
        return f"{taxa[3]} {taxa[4]}"
    return next(t for t in reversed(taxa[:4]) if t)


class TaxaRestriction:
    """A taxa list over a taxonomy: which taxa are allowed, and what each label becomes."""

    def __init__(self, taxa: TaxaList, labels: Sequence[str], allow_walk_down: bool = False,
                 protected_common_names: Sequence[str] = (), source: str = "taxa list") -> None:
        self.taxa, self.allow_walk_down, self.protected = taxa, allow_walk_down, set(protected_common_names)
        # latin -> (5 taxon fields, common name); the first label of a name wins, as in MegaDetector
        self.by_latin: dict[str, tuple[list[str], str]] = {}
        for label in labels:
            parts = label.split(";")
            self._insert(parts[1:6], parts[6])
        for fields in self._missing_parents():
            self._insert(fields, f"{_latin_of(fields)} species")
        unknown = [latin for latin in taxa.common if latin not in self.by_latin]
        if unknown:
            raise ConfigError(f"{source}: taxa the classifier's taxonomy does not have: {unknown[:5]!r}"
                              + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""))
        self.children = self._allowed()

    def _insert(self, taxa: list[str], common: str) -> None:
        latin = _latin_of(taxa)
        if latin is not None:
            self.by_latin.setdefault(latin, (taxa, common))

    def _missing_parents(self) -> list[list[str]]:
        """Ranks named in a label but without a label of their own (MegaDetector inserts them, sorted)."""
        made: dict[str, list[str]] = {}
        for latin, (taxa, _) in self.by_latin.items():
            if "no cv result" in latin:
                continue
            for i in range(0, 4):
                if taxa[i] and taxa[i] not in self.by_latin:
                    fields = taxa[:i + 1] + [""] * (4 - i)
                    made.setdefault(";".join(fields), fields)
        return [made[k] for k in sorted(made)]

    def _allowed(self) -> dict[str, set[str | None]]:
        """Each allowed taxon's allowed children (None: the taxon is listed itself, a leaf)."""
        children: dict[str, set[str | None]] = {}
        for latin in self.taxa.common:
            taxa = self.by_latin[latin][0]
            child: str | None = None
            if taxa[4]:
                children.setdefault(latin, set()).add(None)
                child = latin
            for parent in reversed(taxa[:4]):
                if not parent:
                    continue
                create = True
                if child is None:
                    if children.get(parent):
                        create = False
                elif None in children.get(parent, ()):
                    children[parent] = set()
                if create:
                    children.setdefault(parent, set()).add(child)
                child = parent
        return children

    def threshold(self, taxon: str, default: float) -> float:
        """The lowest score a determination of `taxon` (5 fields) needs: its list row's, else `default`."""
        latin = _latin_of(taxon.split(";"))
        return self.taxa.thresholds.get(latin, default) if latin is not None else default

    def target(self, label: str) -> tuple[str, str] | None:
        """(5-field taxon, common name) a taxonomic label becomes; None when it is left alone."""
        parts = label.split(";")
        if len(parts) != 7 or level_of(label) == 0 or label == HUMAN or parts[6] in self.protected:
            return None
        taxa = parts[1:6]
        found = None
        for i in range(4, -1, -1):
            name = f"{taxa[3]} {taxa[4]}" if i == 4 and taxa[4] else taxa[i]
            if not name:
                continue
            allowed = self.children.get(name)
            if allowed is None:
                continue
            if None in allowed or len(allowed) > 1 or not self.allow_walk_down:
                found = name
            else:
                candidate = name
                while next(iter(allowed)) is not None and len(allowed) == 1:
                    candidate = next(iter(allowed))  # type: ignore[assignment]
                    allowed = self.children[candidate]
                found = candidate
            break
        if found is None:
            return ";".join(ANIMAL.split(";")[1:6]), ANIMAL.split(";")[6]
        taxon, common = self.by_latin[found]
        return ";".join(taxon), self.taxa.common.get(found, common)
