"""Which result set a run writes: the current one, or a new one for a redo (model_store/tables/set_records.py).

A plain run writes into the set readers take for its model version and filters: the newest whole redo of them, else
the filters' own set (its hash is the filters hash). `--redo` makes a new set even where one exists (after a fix in
trapline's core, say): a new hash, a record saying what it redoes and why, `building` until a run into it has gone
over the whole archive; readers keep the old set until then, and `--redo` again resumes it (its done rows are
skipped like any rerun's). `--redo-if-core-older-than N` redoes only when the current set holds a part a core older
than N made (model_store/core/provenance.py), and otherwise is a plain run.
"""

from __future__ import annotations

from dataclasses import dataclass

from batch.reprocess.options import ReprocessOptions
from model_store.core.provenance import provenance
from model_store.tables.reader import Tables
from model_store.tables.set_records import SetRecord, read_record, records, redo_hash, utcnow_text, write_record
from model_store.tables.sets import scan


@dataclass(frozen=True)
class Target:
    """The set a run writes (`set_hash`); with `record`, a redo: new (written when the run starts) or resumed."""

    set_hash: str
    record: SetRecord | None = None
    resumed: bool = False
    note: str | None = None  # for the summary: what the redo is, or why none was made

    @property
    def new(self) -> bool:
        return self.record is not None and not self.resumed


def core_versions(tables: Tables, model_name: str, model_version: str, set_hash: str) -> list[int]:
    """The core versions of the parts of one set (0: parts written before provenance was recorded)."""
    return next((s.core_versions for s in scan(tables, f"{model_name}:{model_version}") if s.set_hash == set_hash),
                [])


def choose_target(tables: Tables, model_name: str, model_version: str, lineage: str,
                  options: ReprocessOptions) -> Target:
    """The set this run writes (see the module docstring), by the run's `redo`, `reason` and
    `redo_if_core_older_than`. Reads only."""
    redo, reason, core_older_than = options.redo, options.reason, options.redo_if_core_older_than
    mine = [r for r in records(tables.storage, model_name, model_version) if r.lineage == lineage]
    live = [r for r in mine if r.retired_at is None and r.purge is None]
    building = [r for r in live if r.state == "building"]
    whole = sorted((r for r in live if r.state == "whole" and r.redo_of is not None and r.set_hash != lineage),
                   key=lambda r: r.whole_at or r.created_at)
    own = next((r for r in mine if r.set_hash == lineage), None)
    current = whole[-1].set_hash if whole else (None if own is not None and own.hidden else lineage)
    if not redo and core_older_than is not None:
        made_by = core_versions(tables, model_name, model_version, current) if current else []
        if current is not None and made_by and min(made_by) >= core_older_than:
            return Target(current, note=f"no redo: result set {current} was made by core {','.join(map(str, made_by))}"
                                        f" (not older than {core_older_than})")
        redo = bool(made_by) or current is None
        reason = reason or (f"made by core {min(made_by)} < {core_older_than}" if made_by else None)
    if redo or current is None:
        if building:
            b = building[-1]
            return Target(b.set_hash, b, resumed=True, note=f"resumes the redo of {b.redo_of} begun {b.created_at}"
                                                             + (f" ({b.reason})" if b.reason else ""))
        why = reason if redo else "every result set of these filters is retired"
        record = SetRecord(model_name=model_name, model_version=model_version, set_hash=redo_hash(lineage),
                           lineage=lineage, redo_of=current, reason=why, state="building", provenance=provenance())
        return Target(record.set_hash, record, note=f"redo of {current or 'nothing visible'}" + (
            f" ({why})" if why else "") + f": readers keep {current or 'no set'} until this set is whole")
    return Target(current)


def begin(tables: Tables, target: Target, run_id: str) -> None:
    """Write a new redo's record (building) before the run's first part."""
    if target.new:
        write_record(tables.storage, target.record.model_copy(update={"created_by": run_id}))


def finish(tables: Tables, target: Target, whole: bool) -> bool:
    """After a run that succeeded: a redo whose run went over the whole archive is whole, and readers take it from
    now on. Returns whether it became whole."""
    if target.record is None or not whole:
        return False
    record = read_record(tables.storage, target.record.model_name, target.record.model_version, target.set_hash)
    if record is None or record.state != "building":
        return False
    write_record(tables.storage, record.model_copy(update={"state": "whole", "whole_at": utcnow_text()}))
    return True
