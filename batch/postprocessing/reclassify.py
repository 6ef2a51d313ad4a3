"""`trapline postprocess` for classifications: re-apply classifier filters to stored probability vectors.

The classifications table keeps each classifier's whole probability vector, and the tables'
metadata its labels and taxonomy, so a class mask or a rank rollup is re-applied with the
core's own `classification_from_scores`, without the model. Snip rows are carried into the new
set as they are (the files do not change with a filter).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds

from ground.errors import BatchError
from model_store import FilterSet, ModelInfo
from model_store.core.classifier import classification_from_scores
from model_store.core.pipeline import config_from_metadata, result_hash
from model_store.core.species.geofence import Location
from model_store.core.species.taxonomy import rank_of, taxon_path
from model_store.tables.clock import TimeBook, apply_clock
from model_store.tables.codec import classification_row
from model_store.tables.schema import CLASSIFICATIONS, CLASSIFICATIONS_SCHEMA, SNIPS, SNIPS_SCHEMA
from model_store.tables.table_set import TableSet
from model_store.tables.writer import parquet_bytes, partition_parts, write_file

EXTRA = ((CLASSIFICATIONS, CLASSIFICATIONS_SCHEMA), (SNIPS, SNIPS_SCHEMA))


def classifiers_of(metadata: Mapping[str, Any]) -> list[dict]:
    """The classifiers a table set was made with (`routes_metadata` entries; [] for detector-only sets)."""
    return list(metadata.get("filters", {}).get("classifiers") or [])


def new_result_hash(fs: FilterSet, metadata: Mapping[str, Any]) -> str:
    """The set hash a re-filtered set gets: the filters' hash, plus the source's classifiers if it had any."""
    classifiers = classifiers_of(metadata)
    if fs.has_classifier_filters and not classifiers:
        raise BatchError("these tables have no classifications: classifier filters need a run with --classify")
    for c in classifiers:
        fs.check_classifier_labels(c["name"], c["labels_out"])
    return result_hash(fs, classifiers, metadata.get("tiling"))  # a tiled set's re-filtered set stays tiled


def species_of(classifiers: Iterable[Mapping[str, Any]], fs: FilterSet, store: str | None) -> dict[str, Any]:
    """The taxonomy and geofence of each classifier the species ensemble applies to, read from the model store (the
    tables keep labels, not these files); a BatchError when a version was published without them."""
    wanted = [c for c in classifiers if any(name == "species_ensemble" for name, _ in fs.classifier_filters(c["name"]))]
    if not wanted:
        return {}
    from model_store import ModelStore  # late: only a set with the species ensemble reads the model store

    models = ModelStore(store)
    out = {}
    for c in wanted:
        data = models.species(f"{c['name']}:{c['version']}")
        if data is None:
            raise BatchError(f"species_ensemble needs the taxonomy of {c['name']}:{c['version']}: publish the "
                             "classifier with `trapline models publish ... --taxonomy FILE [--geofence FILE]`")
        out[c["name"]] = data
    return out


def camera_locations(storage, images: pa.Table) -> dict[str, Location]:
    """Where each image's camera stood, by uri, from the deployment covering it (its `country` / `admin1Region`, for
    the species ensemble's geofence), the deployments being those beside the tables at `storage`; {} when none says."""
    book = TimeBook.load(storage)
    places = {d.deployment_id: Location(country=d.deployment.country, admin1_region=d.deployment.admin1Region)
              for d in book.deployments if d.deployment.country}
    if not places:
        return {}
    placed = apply_clock(images.select(["uri", "camera_id", "capture_time", "capture_time_source"]).to_pandas(), book)
    return {uri: places[dep] for uri, dep in zip(placed["uri"], placed["deployment_id"], strict=True)
            if isinstance(dep, str) and dep in places}


class ExtraTables:
    """The classifications and snips rows of one source part, re-filtered per image and written before the commit."""

    def __init__(self, tables, tset: TableSet, fs: FilterSet, store: str | None = None) -> None:
        """`tset` is the source set (its model version, filters hash and metadata), `fs` the filters applied now."""
        self.tables, self.tset, self.fs = tables, tset, fs
        self.name, self.version, self.source_hash = tset.model_name, tset.model_version, tset.filters_hash
        self.classifiers = {c["name"]: c for c in classifiers_of(tset.metadata)}
        self.configs = {n: config_from_metadata(c) for n, c in self.classifiers.items()}
        self.species = species_of(self.classifiers.values(), fs, store)
        # a smoothing pass's (label, pre_smoothing_description) (batch/postprocessing/species_smoothing.py)
        self.smoothed: dict[tuple, tuple[str, str]] = {}
        self.groups: dict[str, dict[tuple[str, str, str], list[dict]]] = {}
        self.out: dict[str, list[dict]] = {CLASSIFICATIONS: [], SNIPS: []}
        self.changed = 0

    def load_part(self, part: str) -> None:
        self.groups = {}
        for table, _ in EXTRA:
            index: dict[tuple[str, str, str], list[dict]] = {}
            if part in set(self.tables.parts(table, self.name, self.version)):
                rows = self.tables.read(table, self.name, self.version, parts=[part],
                                        filter=ds.field("filters_hash") == self.source_hash).to_pylist()
                for r in rows:
                    index.setdefault((r["uri"], r["content_id"], r["run_id"]), []).append(r)
            self.groups[table] = index

    def locations_of(self, images: pa.Table) -> dict[str, Location]:
        """Where each image's camera stood, by uri (`camera_locations`); {} when the ensemble is not applied."""
        return camera_locations(self.tables.storage, images) if self.species else {}

    def refiltered(self, row: Mapping[str, Any], box: tuple[str, float] | None = None,
                   location: Location | None = None) -> dict[str, Any]:
        """One stored classification row under the new filter set's classifier filters (as it is without its
        classifier's metadata or scores); `box`: its detection's label and score, `location`: where its camera stood
        (the species ensemble reads both)."""
        c = self.classifiers.get(row["classifier_name"])
        if c is None or row["scores"] is None:
            return dict(row)
        info = ModelInfo(name=c["name"], version=c["version"], sha256=c["sha256"])
        answer = classification_from_scores(info, self.configs[c["name"]], row["scores"], self.fs, detection=box,
                                            location=location, species=self.species.get(c["name"]))
        return {**row, **classification_row(row["detection_index"], answer)}

    def carry(self, key: tuple[str, str, str], new_hash: str, run_id: str,
              boxes: Mapping[int, tuple[str, float]] | None = None,
              location: Location | None = None) -> dict[int, list[dict[str, Any]]]:
        """Re-filter one image's classifications and carry its snips into the new set; the labels that changed, by
        detection index ({"classifier", "from", "to", "score"}). `boxes`: the image's detections by index."""
        relabelled: dict[int, list[dict[str, Any]]] = {}
        for row in self.groups.get(CLASSIFICATIONS, {}).get(key, []):
            new = self.refiltered(row, (boxes or {}).get(row["detection_index"]), location)
            smoothed = self.smoothed.get((*key, int(row["detection_index"]), row["classifier_name"]))
            if smoothed is not None:
                label, before = smoothed
                new |= {"label": label, "source": f"{new['source']}+smoothed", "taxon_path": taxon_path(label),
                        "rank": rank_of(label), "flags": [*(new["flags"] or []), "smoothed"],
                        "pre_smoothing_description": before}
            if new["label"] != row["label"]:
                self.changed += 1
                relabelled.setdefault(row["detection_index"], []).append(
                    {"classifier": row["classifier_name"], "from": row["label"], "to": new["label"],
                     "score": new["score"]})
            self.out[CLASSIFICATIONS].append({**new, "filters_hash": new_hash, "run_id": run_id})
        for row in self.groups.get(SNIPS, {}).get(key, []):
            self.out[SNIPS].append({**row, "filters_hash": new_hash, "run_id": run_id})
        return relabelled

    def flush(self, storage, part: str, meta: Mapping[str, Any]) -> list[str]:
        """Write the part's rows of each extra table that has any; answers the tables written."""
        written = []
        for table, schema in EXTRA:
            rows: Sequence[dict] = self.out[table]
            if rows:
                write_file(storage, parquet_bytes(pa.Table.from_pylist(list(rows), schema=schema), meta), table,
                           *partition_parts(self.name, self.version), part)
                written.append(table)
            self.out[table] = []
        return written
