"""The taxonomy and geofence files of a classifier version: published with it, immutable, checked before use.

`trapline models publish model.onnx --name speciesnet --version 4.0.1a --taxonomy taxonomy_release.txt
--geofence geofence_release.json` writes both files beside the weights; the version's `config.json` names them with
their sha256 (`species`), so a file changed after publishing is refused like changed weights. Nothing is fetched at
run time. Publishing refuses a taxonomy that lacks a classifier label, a geofence with rules for a taxon the taxonomy
does not have, and either file malformed, naming the line or field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from model_store.core.species.ensemble import SpeciesData
from model_store.core.species.files import GEOFENCE_FILE, TAXONOMY_FILE, SpeciesFiles
from model_store.core.species.geofence import Geofence
from model_store.core.species.taxonomy import Taxonomy
from trapline.errors import ChecksumError, ConfigError


@dataclass(frozen=True)
class SpeciesSources:
    """The bytes of the files to publish (from `--taxonomy` / `--geofence`)."""

    taxonomy: bytes
    geofence: bytes | None = None


def parse_species(taxonomy: bytes, geofence: bytes | None, labels: Sequence[str], where: str) -> SpeciesData:
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
    return SpeciesData(tax, fence)


def species_extras(sources: SpeciesSources, labels: Sequence[str], where: str) -> tuple[dict[str, bytes], SpeciesFiles]:
    """The files to publish and the config entry naming them, after checking them."""
    parse_species(sources.taxonomy, sources.geofence, labels, where)
    extras = {TAXONOMY_FILE: sources.taxonomy}
    entry = {"taxonomy": TAXONOMY_FILE, "taxonomy_sha256": hashlib.sha256(sources.taxonomy).hexdigest()}
    if sources.geofence is not None:
        extras[GEOFENCE_FILE] = sources.geofence
        entry |= {"geofence": GEOFENCE_FILE, "geofence_sha256": hashlib.sha256(sources.geofence).hexdigest()}
    return extras, SpeciesFiles(**entry)


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
    return parse_species(verified(files.taxonomy, files.taxonomy_sha256), geofence, labels, where)
