"""Which result set a command reads: a `TableSet` (one model version and filter set) and how one is picked.

`resolve_table_set` turns what a person typed (`--model NAME[:VERSION|@ALIAS]`, `--filters-hash`) into the one
set to read, leaving out the sets hidden from readers (model_store/tables/set_records.py); `current_kept` reads a
set's current image rows and kept boxes. The rows themselves are read by `model_store.tables.reader.Tables`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from ground.errors import BatchError
from model_store import ModelRef, ModelStore
from model_store.store.versions import version_sort_key
from model_store.tables.reader import Tables
from model_store.tables.schema import IMAGES
from model_store.tables.set_records import hidden_sets, superseded_sets


@dataclass(frozen=True)
class TableSet:
    """One model version and filter set in the tables: what export and postprocess work on."""

    model_name: str
    model_version: str
    filters_hash: str
    metadata: dict  # trapline metadata of a part of this set: model (labels, sha256), filters (specs)

    @property
    def labels(self) -> list[str]:
        return list(self.metadata.get("model", {}).get("labels") or [])

    @property
    def classifiers(self) -> list[dict]:
        """The classifiers of a set made with --classify (model_store.core.pipeline.routes_metadata entries)."""
        return list(self.metadata.get("filters", {}).get("classifiers") or [])

    @property
    def filter_specs(self) -> list[dict]:
        return list(self.metadata.get("filters", {}).get("specs") or [])


def resolve_table_set(tables: Tables, model: str | None = None, filters_hash: str | None = None,
                      store: str | None = None, hidden_ok: bool = False) -> TableSet:
    """Pick the model version (NAME, NAME:VERSION, NAME@ALIAS via the store) and filter set to read.

    Without `model` the tables must hold exactly one model version (`Tables.versions`: a version whose every set is
    retired or purged is none), a NAME alone takes its newest such version; without `filters_hash` the
    filter set of the newest row is used, leaving out sets hidden from readers (model_store/tables/set_records.py:
    retired, purged, or a redo not yet whole); a hidden set asked for by its hash is refused unless `hidden_ok`
    (the run writing it).
    """

    stored = tables.partitions(IMAGES)
    if not stored:
        raise BatchError(f"no images table under {tables.url} (run `trapline reprocess` first)")
    ref = None if model is None else ModelRef.parse(model)
    if ref is not None and ref.alias is not None:
        ref = ModelStore(store).resolve(ref)
    # a version named in full is read even when every set of it is hidden: the sets say why below
    named = stored if ref is not None and ref.version is not None else tables.versions()
    if ref is None:
        if len(named) != 1:
            raise BatchError(f"the tables hold several model versions ({_choices(named)}); choose one with --model"
                             if named else f"no model version in {tables.url} has a result set readers take (every "
                             f"set is retired or purged: `trapline tables sets --tables {tables.url}` lists them)")
        name, version = named[0]
    else:
        versions = sorted((v for n, v in named if n == ref.name), key=version_sort_key)
        if not versions or (ref.version is not None and ref.version not in versions):
            what = f"model {ref.name!r}" if ref.version is None else f"{ref.name}:{ref.version}"
            raise BatchError(f"no rows for {what} in {tables.url} (available: {_choices(tables.versions())})")
        name, version = ref.name, ref.version or versions[-1]
    t = tables.read(IMAGES, name, version, ["filters_hash", "processed_at", "run_id"])
    hidden = {} if hidden_ok else hidden_sets(tables.storage, name, version)
    if filters_hash is None:  # a set a whole redo replaced is read only when asked for by its hash
        hidden.update({h: "superseded" for h in superseded_sets(tables.storage, name, version)
                       if h in set(t["filters_hash"].unique().to_pylist()) - set(hidden)} if t.num_rows else {})
    if filters_hash in hidden:
        raise BatchError(f"result set {filters_hash} of {name}:{version} is {hidden[filters_hash]}: readers leave it "
                         f"out (`trapline tables sets --tables {tables.url}` lists the sets; `trapline tables "
                         f"unretire` shows a retired one again)")
    if hidden and t.num_rows:
        t = t.filter(pc.invert(pc.is_in(t["filters_hash"], pa.array(list(hidden), pa.string()))))
    if filters_hash is None:
        if not t.num_rows:
            what = "no image rows" if not hidden else "no image rows but in sets hidden from readers"
            raise BatchError(f"{name}:{version} has {what} in {tables.url}")
        newest = t.sort_by([("processed_at", "descending"), ("run_id", "descending")]).slice(0, 1)
        filters_hash = newest["filters_hash"][0].as_py()
    elif filters_hash not in set(t["filters_hash"].to_pylist()):
        known = sorted(set(t["filters_hash"].to_pylist()))
        raise BatchError(f"{name}:{version} has no rows with filters hash {filters_hash!r} (known: {known})")
    return TableSet(name, version, filters_hash, tables.filter_set_metadata(name, version, filters_hash))


def _choices(versions: list[tuple[str, str]]) -> str:
    return ", ".join(f"{n}:{v}" for n, v in versions) or "none readers take: every result set is retired or purged"


def current_kept(tables: Tables, tset: TableSet, subset: ds.Expression | None = None
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A table set's current image rows (within `subset`) and their kept boxes: one side of a comparison, what
    identify describes."""
    images = tables.current_images(tset.model_name, tset.model_version, tset.filters_hash, subset)
    return images, tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash,
                                               kept_only=True)
