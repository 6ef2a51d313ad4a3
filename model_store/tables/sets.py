"""The result sets in the tables, from their files: rows, bytes on disk, the code that made them, what refers to them.

One pass over the part files' footers (no row is read): a part holds one result set (a run writes one; `tables
compact` merges parts by their metadata, hence by set), named by the `filters_hash` column's statistics, else by
its trapline metadata. A part's files in the other tables share its name; one left without its images file (a
crashed run, a purge killed halfway) is named by its own footer.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow.parquet as pq

from ground.errors import BatchError
from model_store import ModelStore
from model_store.tables.decisions import DecisionsLog, IdentifyOccurrence, RevokeDecision
from model_store.tables.locations import open_location
from model_store.tables.reader import PART_RE, PART_TABLES, Tables
from model_store.tables.schema import EVENTS, IMAGES
from model_store.tables.set_records import SetRecord, records
from model_store.tables.table_set import resolve_table_set
from model_store.tables.writer import METADATA_KEY, partition_parts

# The tables a result set has files in, each partitioned by model version: the images (whose files commit a part),
# the part's other files, and `trapline events`' file per set and gap (batch/postprocessing/events.py).
SET_TABLES = (IMAGES, *PART_TABLES, EVENTS)


@dataclass
class SetFile:
    table: str
    part: str
    size: int

    def parts(self, model_name: str, model_version: str) -> tuple[str, ...]:
        return (self.table, *partition_parts(model_name, model_version), self.part)


@dataclass
class ResultSet:
    """One result set as `trapline tables sets` lists it."""

    model_name: str
    model_version: str
    set_hash: str
    images: int = 0  # image rows (a rerun's rows of the same image count again)
    bytes: int = 0  # every file of its parts, in every table
    parts: int = 0  # committed parts (images files)
    files: list[SetFile] = field(default_factory=list)
    first_run: str | None = None  # the oldest and newest run that wrote a part of it (run ids sort by time)
    last_run: str | None = None
    filters: list[str] = field(default_factory=list)  # its filters' names, in order
    classifiers: list[str] = field(default_factory=list)
    core_versions: list[int] = field(default_factory=list)  # 0: parts written before provenance was recorded
    fingerprints: list[str] = field(default_factory=list)
    trapline_versions: list[str] = field(default_factory=list)
    record: SetRecord | None = None
    current: bool = False  # the set readers take for its model version when none is named
    referred_by: list[str] = field(default_factory=list)

    @property
    def set_id(self) -> str:
        return f"{self.model_name}:{self.model_version}/{self.set_hash}"

    @property
    def key(self) -> tuple[str, str]:
        return self.model_name, self.model_version

    @property
    def status(self) -> str:
        return self.record.status if self.record else "whole"

    @property
    def created(self) -> str | None:
        return run_time(self.first_run) if self.first_run else (self.record.created_at if self.record else None)

    def as_dict(self) -> dict[str, Any]:
        return {"set": self.set_id, "model": f"{self.model_name}:{self.model_version}", "set_hash": self.set_hash,
                "status": self.status, "current": self.current, "images": self.images, "bytes": self.bytes,
                "parts": self.parts, "created": self.created, "last_run": self.last_run, "filters": self.filters,
                "classifiers": self.classifiers, "core_versions": self.core_versions,
                "core_fingerprints": self.fingerprints, "trapline_versions": self.trapline_versions,
                "redo_of": self.record.redo_of if self.record else None,
                "reason": self.record.reason if self.record else None, "referred_by": self.referred_by}


def run_time(run_id: str) -> str:
    """20240601T120000Z-1a2b3c -> 2024-06-01T12:00:00Z."""
    t = run_id.split("-", 1)[0]
    return f"{t[0:4]}-{t[4:6]}-{t[6:8]}T{t[9:11]}:{t[11:13]}:{t[13:15]}Z" if len(t) >= 15 else run_id


def _footer(tables: Tables, parts: tuple[str, ...]) -> tuple[pq.FileMetaData, str | None]:
    """A file's footer and the one filters_hash its rows have (None: not one, or no statistics)."""
    with tables.storage.fs.open(tables.storage.path(*parts), "rb") as f:
        meta = pq.ParquetFile(f).metadata
    names = meta.schema.names
    if "filters_hash" not in names or not meta.num_row_groups:
        return meta, None
    col = names.index("filters_hash")
    seen = set()
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(col).statistics
        if stats is None or not stats.has_min_max:
            return meta, None
        seen |= {stats.min, stats.max}
    found = [v.decode() if isinstance(v, bytes) else v for v in seen]
    return meta, found[0] if len(found) == 1 else None


def _trapline(meta: pq.FileMetaData) -> dict[str, Any]:
    raw = (meta.metadata or {}).get(METADATA_KEY)
    return json.loads(raw) if raw else {}


def _listing(tables: Tables, table: str, name: str, version: str) -> list[tuple[str, int]]:
    """(part file name, size) of one partition of `table` (hidden temp files excluded)."""
    try:
        found = tables.storage.fs.ls(tables.storage.path(table, *partition_parts(name, version)), detail=True)
    except FileNotFoundError:
        return []
    out = []
    for entry in found:
        base = entry["name"].rstrip("/").rsplit("/", 1)[-1]
        if base.endswith(".parquet") and not base.startswith((".", "_")) and entry.get("type", "file") == "file":
            out.append((base, int(entry.get("size") or 0)))
    return sorted(out)


def scan(tables: Tables, model: str | None = None) -> list[ResultSet]:
    """Every result set (of model `NAME` or `NAME:VERSION` when given) with its files and what made it."""
    kept = records(tables.storage)  # a version purged to nothing is in no partition, its purged sets here
    versions = sorted({p for t in SET_TABLES for p in tables.partitions(t)} | {r.key for r in kept})
    if model:
        name, _, version = model.partition(":")
        versions = [(n, v) for n, v in versions if n == name and (not version or v == version)]
    found: dict[tuple[str, str, str], ResultSet] = {}
    for name, version in versions:
        by_part: dict[str, str] = {}
        for table in SET_TABLES:  # images first: the other files of a part are named by it
            for part, size in _listing(tables, table, name, version):
                set_hash = by_part.get(part)
                meta = None
                if set_hash is None or table == IMAGES:
                    meta, set_hash = _footer(tables, (table, *partition_parts(name, version), part))
                    set_hash = set_hash or _trapline(meta).get("filters", {}).get("hash")
                    if set_hash is None:
                        continue  # not a trapline part: left alone
                rs = found.setdefault((name, version, set_hash), ResultSet(name, version, set_hash))
                rs.files.append(SetFile(table, part, size))
                rs.bytes += size
                if table == IMAGES and meta is not None:
                    by_part[part] = set_hash
                    _add_images_part(rs, part, meta)
        for record in (r for r in kept if r.key == (name, version)):
            rs = found.setdefault((name, version, record.set_hash), ResultSet(name, version, record.set_hash))
            rs.record = record
    return [found[k] for k in sorted(found)]


def _add_images_part(rs: ResultSet, part: str, meta: pq.FileMetaData) -> None:
    rs.images += meta.num_rows
    rs.parts += 1
    if m := PART_RE.match(part):
        run = m.group("run_id")
        rs.first_run = min(rs.first_run or run, run)
        rs.last_run = max(rs.last_run or run, run)
    info = _trapline(meta)
    prov = info.get("provenance") or {}
    _add(rs.core_versions, int(prov.get("core_version") or 0))
    if prov.get("core_fingerprint"):
        _add(rs.fingerprints, prov["core_fingerprint"])
    if prov.get("trapline"):
        _add(rs.trapline_versions, prov["trapline"])
    if not rs.filters:
        rs.filters = [s.get("name", "?") for s in info.get("filters", {}).get("specs") or []]
        rs.classifiers = [f"{c.get('name')}:{c.get('version')}" for c in info.get("filters", {}).get("classifiers")
                          or []]


def _add(values: list, value: Any) -> None:
    if value not in values:
        values.append(value)
        values.sort()


def decisions_on(tables: Tables, sets: Iterable[ResultSet]) -> dict[tuple[str, str], list[IdentifyOccurrence]]:
    """(NAME:VERSION, set hash) -> people's identifications in force that point to that set (their boxes are read
    there), for the given sets."""
    wanted = {(f"{s.model_name}:{s.model_version}", s.set_hash) for s in sets}
    log = DecisionsLog(tables.storage).read(("identify", "revoke"))
    revoked = {d.revoked_id for d in log if isinstance(d, RevokeDecision)}
    out: dict[tuple[str, str], list[IdentifyOccurrence]] = {}
    for d in log:
        if isinstance(d, IdentifyOccurrence) and d.decision_id not in revoked and (d.model, d.filters_hash) in wanted:
            out.setdefault((d.model, d.filters_hash), []).append(d)
    return out


def aliases_of(store: str | None, names: Iterable[str]) -> dict[tuple[str, str], list[str]]:
    """(model name, version) -> the store's aliases that point to it; {} when the store cannot be read."""
    out: dict[tuple[str, str], list[str]] = {}
    try:
        ms = ModelStore(store)
        for name in set(names):
            for alias, ref in ms.aliases(name).items():
                out.setdefault((name, ref.version), []).append(alias)
    except Exception:  # noqa: BLE001 - a listing of the tables must not fail for want of the store
        return {}
    return out


def current_sets(tables: Tables, versions: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(name, version) -> the set readers take when none is named (resolve_table_set's choice)."""
    out = {}
    for name, version in set(versions):
        try:
            out[(name, version)] = resolve_table_set(tables, f"{name}:{version}").filters_hash
        except BatchError:
            continue  # no visible rows
    return out


def list_sets(url: str, model: str | None = None, store: str | None = None) -> list[ResultSet]:
    """`trapline tables sets`: the tables at `url` opened here, at the command's door, and listed."""
    return listed(Tables(open_location(url)), model, store)


def listed(tables: Tables, model: str | None = None, store: str | None = None) -> list[ResultSet]:
    """`scan` with the readers' current set of each version and what refers to each set filled in."""
    sets = scan(tables, model)
    versions = {(s.model_name, s.model_version) for s in sets}
    current = current_sets(tables, versions)
    aliases = aliases_of(store, {n for n, _ in versions})
    decisions = decisions_on(tables, sets)
    for s in sets:
        key = (s.model_name, s.model_version)
        s.current = current.get(key) == s.set_hash
        if s.current:
            s.referred_by += [f"alias {a}" for a in sorted(aliases.get(key, []))]
            s.referred_by.append("readers (the current set of its model version)")
        if n := len(decisions.get((f"{s.model_name}:{s.model_version}", s.set_hash), [])):
            s.referred_by.append(f"{n} people's identification(s)")
        redone = [o.set_hash for o in sets if o.record and o.record.redo_of == s.set_hash and o.key == key]
        s.referred_by += [f"redone as {h}" for h in redone]
    return sets


def format_sets(sets: list[ResultSet]) -> str:
    if not sets:
        return "no result sets"
    lines = []
    for s in sets:
        core = ",".join(str(v) for v in s.core_versions) or "-"
        prints = ",".join(s.fingerprints) or "not recorded"
        lines.append(f"{s.set_id}  {s.status}{' (current)' if s.current else ''}")
        lines.append(f"    {s.images} image row(s) in {s.parts} part(s), {_size(s.bytes)} on disk; created {s.created}"
                     f"{f', last run {run_time(s.last_run)}' if s.last_run else ''}")
        lines.append(f"    filters {', '.join(s.filters) or '-'}"
                     + (f"; classifiers {', '.join(s.classifiers)}" if s.classifiers else "")
                     + f"; core {core} ({prints}); trapline {','.join(s.trapline_versions) or 'not recorded'}")
        if s.record and (s.record.redo_of or s.record.reason):
            lines.append(f"    redo of {s.record.redo_of or '-'}" + (f": {s.record.reason}" if s.record.reason else ""))
        lines.append(f"    referred to by: {'; '.join(s.referred_by) or 'nothing known'}")
    lines.append("(exports are files elsewhere: the tables keep no record of them)")
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
