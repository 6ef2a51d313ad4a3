"""The taxonomy and geofence files of a classifier version: published with it, immutable, checked before use.

`trapline models publish model.onnx --name speciesnet --version 4.0.1a --taxonomy taxonomy_release.txt
--geofence geofence_release.json` writes both files beside the weights; the version's `config.json` names them with
their sha256 (`species`), so a file changed after publishing is refused like changed weights. Nothing is fetched at
run time. Publishing refuses a taxonomy that lacks a classifier label, a geofence with rules for a taxon the taxonomy
does not have, and either file malformed, naming the line or field.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ground.errors import ChecksumError, ConfigError
from model_store.core.species.ensemble import SpeciesData
from model_store.core.species.files import GEOFENCE_FILE, TAXONOMY_FILE, SpeciesFiles, TaxaListFile
from model_store.core.species.geofence import Geofence
from model_store.core.species.taxa_list import TaxaList, TaxaRestriction
from model_store.core.species.taxonomy import Taxonomy


@dataclass(frozen=True)
class SpeciesSources:
    """The bytes of the files to publish (from `--taxonomy` / `--geofence`)."""

    taxonomy: bytes
    geofence: bytes | None = None
    taxa_lists: dict[str, bytes] = field(default_factory=dict)  # name -> CSV `latin,common[,threshold]`


def parse_species(taxonomy: bytes, geofence: bytes | None, labels: Sequence[str], where: str,
                  taxa_lists: dict[str, bytes] | None = None) -> SpeciesData:
    """Both files parsed and checked against each other and the classifier's labels; ConfigError naming the problem."""
    try:
        text = taxonomy.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}/{TAXONOMY_FILE}: not UTF-8 text") from None
    tax = Taxonomy.parse(text, f"{where}/{TAXONOMY_FILE}")
    unknown = tax.unknown(labels)
    if unknown:
        raise ConfigError(f"{where}: the classifier's labels {unknown[:5]!r} are not in its taxonomy"
                          + (f" ({len(unknown)} in all)" if len(unknown) > 5 else ""))
    fence = Geofence.parse(geofence, f"{where}/{GEOFENCE_FILE}") if geofence is not None else Geofence({})
    fence.check_taxa(tax, f"{where}/{GEOFENCE_FILE}")
    lists = {}
    for name, data in (taxa_lists or {}).items():
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ConfigError(f"{where}: a taxa list's name is letters, digits, '.', '_' or '-', got {name!r}")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ConfigError(f"{where}/{taxa_file(name)}: not UTF-8 text") from None
        lists[name] = TaxaList.parse(text, f"{where}/{taxa_file(name)}")
        TaxaRestriction(lists[name], tax.labels, source=f"{where}/{taxa_file(name)}")  # refuses unknown taxa
    return SpeciesData(tax, fence, lists)


def taxa_file(name: str) -> str:
    return f"taxa-{name}.csv"


def species_extras(sources: SpeciesSources, labels: Sequence[str], where: str) -> tuple[dict[str, bytes], SpeciesFiles]:
    """The files to publish and the config entry naming them, after checking them."""
    parse_species(sources.taxonomy, sources.geofence, labels, where, sources.taxa_lists)
    extras = {TAXONOMY_FILE: sources.taxonomy}
    entry = {"taxonomy": TAXONOMY_FILE, "taxonomy_sha256": hashlib.sha256(sources.taxonomy).hexdigest()}
    if sources.geofence is not None:
        extras[GEOFENCE_FILE] = sources.geofence
        entry |= {"geofence": GEOFENCE_FILE, "geofence_sha256": hashlib.sha256(sources.geofence).hexdigest()}
    lists = {}
    for name, data in sources.taxa_lists.items():
        extras[taxa_file(name)] = data
        lists[name] = TaxaListFile(file=taxa_file(name), sha256=hashlib.sha256(data).hexdigest())
    return extras, SpeciesFiles(**entry, taxa_lists=lists)


def load_species(files: SpeciesFiles, read: Callable[[str], bytes], labels: Sequence[str], where: str) -> SpeciesData:
    """A published version's species files, read with `read(file name)`, their sha256 verified, parsed."""

    def verified(name: str, sha256: str | None) -> bytes:
        try:
            data = read(name)
        except FileNotFoundError:
            raise ConfigError(f"{where}: species file {name!r} is missing") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ChecksumError(f"{where}: sha256 of {name} is {actual}, config.json says {sha256}; refusing to use "
                                "it (re-publish the version or restore the file)")
        return data

    geofence = verified(files.geofence, files.geofence_sha256) if files.geofence else None
    lists = {name: verified(f.file, f.sha256) for name, f in files.taxa_lists.items()}
    return parse_species(verified(files.taxonomy, files.taxonomy_sha256), geofence, labels, where, lists)
