"""Retire and purge result sets: `trapline tables retire SET`, `unretire SET`, `purge SET [--dry-run]`.

Retiring writes the set's record (model_store/tables/set_records.py) and nothing else: every reader leaves the set
out from then on, and `unretire` brings it back as it was.

Purging deletes a set's files, in an order that keeps every reader right at every moment, so that a purge killed
anywhere is finished by running it again:

1. its record says `purging`: readers leave the set out from here on (as a retired one);
2. people's identifications that point to it are moved first, when asked (`--move-decisions`): each is appended
   again pointing to the set readers now take, then the original is revoked; the log keeps both (decisions are
   never lost), and a rerun finds the copies it already made;
3. its images files are deleted (each part is then uncommitted: readers join every other file to its images row),
   then its other files (detections, classifications, snips, occurrences, its `trapline events` files), and the
   version's partition directories its files were the last of (a version purged to nothing is in no listing);
   then its snips (`crops/NAME/VERSION/SET/`, unless a snips row of another set names one: postprocess carries
   snips over with their path);
4. its record says `purged`, with the bytes reclaimed (the record stays under `_sets/`: `trapline tables sets`
   lists the set as purged, and a rerun says there is nothing left).

It is refused, before anything is written, for a set an alias of the store serves (the current set of the version
the alias points to: retire it first, so readers take another set, or move the alias) and for one that people's
identifications point to (unless `--move-decisions`). It holds the model version's run lease, as a reprocess run and
`tables compact` do, so no run writes into the set meanwhile. Locally and on S3 alike (`Storage.delete_many`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pyarrow.compute as pc
import pyarrow.dataset as ds

from ground.errors import BatchError
from model_store.core.crops import CROPS_DIR
from model_store.tables.decisions import DecisionsLog, IdentifyOccurrence, RevokeDecision, make
from model_store.tables.lease import RunLease
from model_store.tables.locations import open_location
from model_store.tables.manifest import new_run_id
from model_store.tables.reader import Tables
from model_store.tables.schema import SNIPS
from model_store.tables.set_records import SetRecord, read_record, utcnow_text, write_record
from model_store.tables.sets import SET_TABLES, ResultSet, aliases_of, current_sets, decisions_on, scan
from model_store.tables.writer import partition_parts

MOVED = "moved from decision {id} by the purge of result set {set}"


def find_set(tables: Tables, wanted: str) -> ResultSet:
    """The one set `wanted` names: its hash (or a unique prefix of 4+ hex digits), optionally after `NAME:VERSION/`."""
    model, _, set_hash = wanted.rpartition("/")
    if len(set_hash) < 4:
        raise BatchError(f"name a result set by its hash (4 or more hex digits), optionally NAME:VERSION/HASH; "
                         f"got {wanted!r}")
    sets = [s for s in scan(tables, model or None) if s.set_hash.startswith(set_hash)]
    if not sets:
        raise BatchError(f"no result set {wanted!r} in {tables.url} (`trapline tables sets` lists them)")
    if len(sets) > 1:
        raise BatchError(f"{wanted!r} names {len(sets)} result sets: {', '.join(s.set_id for s in sets)}")
    return sets[0]


def _record(s: ResultSet) -> SetRecord:
    return s.record or SetRecord(model_name=s.model_name, model_version=s.model_version, set_hash=s.set_hash,
                                 lineage=s.set_hash)


@dataclass
class RetireReport:
    set_id: str
    status: str  # what the set is now
    changed: bool
    readers_take: str | None  # the set readers take for its version now (None: none left)

    def line(self) -> str:
        now = f"readers now take {self.readers_take}" if self.readers_take else "readers have no set of it left"
        return f"result set {self.set_id} is {self.status}" + ("" if self.changed else " (it was already)") + \
            f"; {now}"


def retire(url: str, wanted: str, reason: str | None = None, undo: bool = False) -> RetireReport:
    """Hide a set from every reader (`undo`: show it again); reversible, and writes nothing but its record."""
    tables = Tables(open_location(url))
    s = find_set(tables, wanted)
    record = _record(s)
    if record.purge:
        raise BatchError(f"result set {s.set_id} is {record.purge}: its files are (being) deleted; "
                         "run the purge again to finish it" if record.purge == "purging" else
                         f"result set {s.set_id} is purged: nothing is left to show")
    changed = (record.retired_at is None) != undo
    if changed:
        record.retired_at, record.retired_reason = (None, None) if undo else (utcnow_text(), reason)
        write_record(tables.storage, record)
    now = current_sets(tables, [s.key]).get(s.key)
    return RetireReport(s.set_id, record.status, changed, f"{s.model_name}:{s.model_version}/{now}" if now else None)


@dataclass
class PurgeReport:
    set_id: str
    dry_run: bool
    files: int = 0
    bytes_reclaimed: int = 0
    images: int = 0
    decisions_moved: int = 0
    moved_to: str | None = None
    already_purged: bool = False
    snips_bytes: int = 0  # the set's JPEG snips under DST/crops/ (unless another set's rows still name them)
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.already_purged:
            return f"result set {self.set_id} was purged already: nothing left to delete"
        verb = "would delete" if self.dry_run else "deleted"
        moved = (f"; {'would move' if self.dry_run else 'moved'} {self.decisions_moved} people's identification(s) "
                 f"to {self.moved_to}" if self.decisions_moved else "")
        return "\n".join([f"{'dry run: ' if self.dry_run else ''}result set {self.set_id}: {verb} {self.files} "
                          f"file(s), {self.images} image row(s), {self.bytes_reclaimed} bytes "
                          f"({self.bytes_reclaimed / 2**20:.1f} MiB)"
                          + (f" and {self.snips_bytes} bytes of snips" if self.snips_bytes else "") + moved
                          + ("" if self.dry_run else f" in {self.wall_s:.1f}s"), *(f"note: {n}" for n in self.notes)])


def purge(url: str, wanted: str, *, dry_run: bool = False, move_decisions: bool = False, store: str | None = None,
          wait_s: float = 0.0) -> PurgeReport:
    """Delete a result set's files, crash-safe (see the module docstring); `dry_run` says what would go."""
    t0 = time.perf_counter()
    tables = Tables(open_location(url))
    s = find_set(tables, wanted)
    record = _record(s)
    report = PurgeReport(s.set_id, dry_run, files=len(s.files), bytes_reclaimed=s.bytes, images=s.images)
    if record.purge == "purged" and not s.files:
        _remove_emptied(tables, s)  # what an older trapline left: the directories of a version purged to nothing
        report.already_purged = True
        return report
    resuming = record.purge == "purging"  # its checks were passed when it began; readers already leave it out
    decisions = decisions_on(tables, [s]).get((f"{s.model_name}:{s.model_version}", s.set_hash), [])
    target = None
    if not resuming:
        _refuse_served(tables, s, store)
    if decisions:
        target = _decisions_target(tables, s)
        if not move_decisions:
            raise BatchError(
                f"{len(decisions)} people's identification(s) point to result set {s.set_id}; purge with "
                f"--move-decisions to move them to {target or 'the set readers take'} first (the log keeps both)")
        report.decisions_moved, report.moved_to = len(decisions), target
    if dry_run:
        return report
    lease = RunLease(tables.storage, s.model_name, s.model_version, new_run_id()).acquire(wait_s)
    try:
        if not resuming:
            record.purge = "purging"
            write_record(tables.storage, record)
        if decisions:
            _move(tables, s, decisions, target)
        for table in SET_TABLES:  # the images files first: each part is uncommitted before the rest goes
            tables.storage.delete_many([f.parts(s.model_name, s.model_version) for f in s.files if f.table == table])
        _remove_emptied(tables, s)
        report.snips_bytes = _remove_snips(tables, s)  # last: no row of the set refers to them any more
        record = read_record(tables.storage, s.model_name, s.model_version, s.set_hash) or record
        record.purge, record.purged_at = "purged", utcnow_text()
        record.bytes_reclaimed = (record.bytes_reclaimed or 0) + s.bytes + report.snips_bytes
        write_record(tables.storage, record)
    finally:
        lease.release()
    report.wall_s = round(time.perf_counter() - t0, 3)
    return report


def _remove_emptied(tables: Tables, s: ResultSet) -> None:
    """Remove the partitions of the set's model version that its files were the last of, in every table: a version
    left without files is gone from every listing (readers would skip its empty directories anyway)."""
    name_dir, version_dir = partition_parts(s.model_name, s.model_version)
    for table in SET_TABLES:
        tables.storage.remove_empty_dir(table, name_dir, version_dir)
        tables.storage.remove_empty_dir(table, name_dir)


def _remove_snips(tables: Tables, s: ResultSet) -> int:
    """Delete the set's snips directory (`crops/NAME/VERSION/SET/`, model_store/core/crops.py) unless a snips row of
    another set names a file in it (postprocess carries snips over with their path); returns the bytes freed."""
    parts = (CROPS_DIR, s.model_name, s.model_version, s.set_hash)
    if not tables.storage.exists(*parts):
        return 0
    marker = f"/{CROPS_DIR}/{s.model_name}/{s.model_version}/{s.set_hash}/"
    rows = tables.read(SNIPS, s.model_name, s.model_version, ["crop_uri"], dedupe=False,
                       filter=ds.field("filters_hash") != s.set_hash)
    if rows.num_rows and pc.any(pc.match_substring(rows["crop_uri"], marker)).as_py():
        return 0
    size = tables.storage.fs.du(tables.storage.path(*parts))
    tables.storage.fs.rm(tables.storage.path(*parts), recursive=True)
    tables.storage.remove_empty_dir(*parts[:-1])
    tables.storage.remove_empty_dir(*parts[:-2])
    return int(size)


def _refuse_served(tables: Tables, s: ResultSet, store: str | None) -> None:
    current = current_sets(tables, [s.key]).get(s.key)
    if current != s.set_hash:
        return
    aliases = aliases_of(store, [s.model_name]).get(s.key, [])
    if aliases:
        raise BatchError(f"result set {s.set_id} is what readers take for {s.model_name}:{s.model_version}, which "
                         f"alias(es) {', '.join(sorted(aliases))} serve: retire it first (`trapline tables retire "
                         f"{s.set_id}`) so readers take another set, or move the alias")


def _decisions_target(tables: Tables, s: ResultSet) -> str | None:
    """The set of the same model version readers take once `s` is hidden: the visible one a run wrote last (None:
    none is left)."""
    others = [o for o in scan(tables, f"{s.model_name}:{s.model_version}")
              if o.set_hash != s.set_hash and o.parts and not (o.record and o.record.hidden)]
    return max(others, key=lambda o: o.last_run or "").set_hash if others else None


def _move(tables: Tables, s: ResultSet, decisions: list[IdentifyOccurrence], target: str | None) -> None:
    if target is None:
        raise BatchError(f"people's identifications point to result set {s.set_id} and no other set of "
                         f"{s.model_name}:{s.model_version} is left to move them to: it cannot be purged")
    log = DecisionsLog(tables.storage)
    done = {d.comment for d in log.read(("identify",)) if d.comment}
    for d in decisions:
        note = MOVED.format(id=d.decision_id, set=s.set_id)
        if note not in done:  # a rerun of a purge killed here finds the copies it made
            log.append(make(IdentifyOccurrence, d.who, note, occurrence_id=d.occurrence_id, label=d.label,
                            detections=d.detections, model=d.model, filters_hash=target))
        log.append(make(RevokeDecision, d.who, note, revoked_id=d.decision_id))
