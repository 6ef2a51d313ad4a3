"""Result sets over an archive's life (issue 59): what made each (provenance), `trapline tables sets`, a redo for
the same model version (resumed when stopped, read only once whole), retire and unretire, and a purge that refuses
what an alias serves or people's decisions point to, survives being killed halfway and reports what it reclaimed;
locally and on S3. No Ray: the reprocess stages run in this process (tests/fixtures/archive.py), with the job's own
redo steps around them (batch/reprocess/redo.py)."""

from __future__ import annotations

import json

import pytest

from batch.jobs.kinds import KINDS
from batch.reprocess import redo
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import plan_run
from batch.reprocess.summary import format_report
from ground.errors import BatchError
from model_store import ModelStore
from model_store.core.provenance import CORE_VERSION, core_fingerprint, trapline_version
from model_store.tables import browse, lifecycle
from model_store.tables.decisions import DecisionsLog, IdentifyOccurrence, make
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.set_records import read_record
from model_store.tables.sets import format_sets, listed
from model_store.tables.table_set import resolve_table_set
from tests.fixtures.archive import (
    brightness_config,
    brightness_model,
    build_archive,
    process_without_ray,
    write_local,
)
from trapline.cli import main as cli_main


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    d = tmp_path_factory.mktemp("sets-store")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    store.publish(brightness_model(d / "m.onnx"), "trapcam", "1", brightness_config())
    store.promote("trapcam:1")  # trapcam@production serves trapcam:1
    return store


def run(archive: str, out: str, store: ModelStore, **options):
    """A run as the job makes it: a redo's record before the first part, `whole` after a run over everything."""
    def begin(plan, run_id):
        redo.begin(plan.tables, plan.target, run_id)

    _, plan = process_without_ray(archive, out, store.root, "trapcam:1", on_plan=begin, **options)
    redo.finish(plan.tables, plan.target, whole=not plan.selection.held_back)
    return plan


def plan(archive: str, out: str, store: ModelStore, **options):
    return plan_run(ReprocessOptions(archive=archive, out=out, model="trapcam:1", store=store.root, **options))


def current(out: str) -> str:
    return resolve_table_set(Tables(open_location(out)), "trapcam:1").filters_hash


def test_redo_retire_and_purge_over_an_archives_life(tmp_path, store, capsys):
    spec = build_archive()
    archive, out = str(write_local(spec, tmp_path / "archive")), str(tmp_path / "tables")
    n = len(spec.images)
    first = run(archive, out, store)
    old = first.result_hash
    assert old == first.filters.hash and current(out) == old

    # provenance: every part and the set listing say which trapline and which core made the rows
    [s] = listed(Tables(open_location(out)), store=store.root)
    assert (s.set_hash, s.images, s.core_versions, s.fingerprints, s.trapline_versions) == (
        old, n, [CORE_VERSION], [core_fingerprint()], [trapline_version()])
    # the command opens the tables at its door and lists the same
    assert cli_main(["tables", "sets", "--tables", out, "--store", store.root, "--json"]) == 0
    [said] = json.loads(capsys.readouterr().out)
    assert said["set_hash"] == old and said["images"] == n
    assert s.bytes > 0 and s.current and s.status == "whole"
    assert s.filters == [f["name"] for f in first.filters.as_specs()]
    assert "alias production" in s.referred_by
    assert Tables(open_location(out)).metadata("trapcam", "1")["provenance"]["core_version"] == CORE_VERSION

    # nothing new without --redo; --redo makes a new set of everything, --reason kept
    assert len(plan(archive, out, store).selection.todo) == 0
    dry = plan(archive, out, store, redo=True, reason="letterbox fix")
    assert len(dry.selection.todo) == n and dry.result_hash != old
    assert f"redo of {old} (letterbox fix)" in format_report(dry.report(None, "dry-run"))
    with pytest.raises(ValueError, match="--reason goes with --redo"):
        ReprocessOptions(archive=archive, out=out, model="trapcam:1", reason="why")
    # the job form and POST /v1/jobs take it as the command line does (both come from the options model)
    job = KINDS["reprocess"].validate({"archive": archive, "out": out, "model": "trapcam:1", "redo": True,
                                       "reason": "letterbox fix", "redo_if_core_older_than": 2})
    assert {"--redo", "--reason=letterbox fix", "--redo-if-core-older-than=2"} <= set(
        KINDS["reprocess"].check_round_trip(job))  # the job's command line gives back the same options

    # a redo stopped after 5 images: readers keep the old set; --redo again resumes the same set
    stopped = run(archive, out, store, redo=True, reason="letterbox fix", limit=5)
    new = stopped.result_hash
    assert stopped.selection.held_back == n - 5 and current(out) == old
    record = read_record(Tables(open_location(out)).storage, "trapcam", "1", new)
    assert (record.state, record.redo_of, record.reason, record.provenance["core_version"]) == (
        "building", old, "letterbox fix", CORE_VERSION)
    resumed = run(archive, out, store, redo=True)
    assert resumed.result_hash == new and len(resumed.selection.todo) == n - 5
    assert resumed.selection.already_done == 5
    assert current(out) == new  # whole now: readers take it, the old set stays readable by its hash
    assert resolve_table_set(Tables(open_location(out)), "trapcam:1", old).filters_hash == old
    after = plan(archive, out, store)  # a plain rerun after the redo: nothing new, into the new set
    assert (after.result_hash, len(after.selection.todo)) == (new, 0)

    # --redo-if-core-older-than: only a set an older core made is redone
    assert plan(archive, out, store, redo_if_core_older_than=CORE_VERSION).result_hash == new
    older = plan(archive, out, store, redo_if_core_older_than=CORE_VERSION + 1)
    assert older.result_hash not in (old, new) and len(older.selection.todo) == n

    # retire hides a set from every reader, unretire shows it again
    camera = Tables(open_location(out)).read("images", columns=["camera_id"])["camera_id"][0].as_py()
    assert (
        browse.latest(Tables(open_location(out)), camera)["image"]["filters_hash"] == new
    )  # the console's tile: the newest
    assert "now take trapcam:1/" + old in lifecycle.retire(out, new[:8], "bad").line()
    assert current(out) == old
    assert (
        browse.latest(Tables(open_location(out)), camera)["image"]["filters_hash"] == old
    )  # hidden from the console too
    with pytest.raises(BatchError, match="retired"):
        resolve_table_set(Tables(open_location(out)), "trapcam:1", new)
    assert lifecycle.retire(out, f"trapcam:1/{new}", undo=True).status == "whole" and current(out) == new

    sets = {s.set_hash: s for s in listed(Tables(open_location(out)), store=store.root)}
    assert sets[old].referred_by == [f"redone as {new}"] and "alias production" in sets[new].referred_by
    assert "redo of " + old + ": letterbox fix" in format_sets(list(sets.values()))

    # purge: refused for the set an alias serves, and for one people's decisions point to unless moved
    with pytest.raises(BatchError, match="alias.*production.*retire it first"):
        lifecycle.purge(out, new, store=store.root)
    log = DecisionsLog(open_location(out))
    decision = log.append(make(IdentifyOccurrence, "ana", occurrence_id="occ-1", label="deer", model="trapcam:1",
                               filters_hash=old))
    with pytest.raises(BatchError, match="1 people's identification.*--move-decisions"):
        lifecycle.purge(out, old, dry_run=True, store=store.root)
    dry_purge = lifecycle.purge(out, old, dry_run=True, move_decisions=True, store=store.root)
    assert dry_purge.bytes_reclaimed == sets[old].bytes > 0 and dry_purge.images == n
    assert len(listed(Tables(open_location(out)))) == 2  # a dry run deletes nothing

    readers_before = Tables(open_location(out)).current_images("trapcam", "1", new)
    snips = tmp_path / "tables" / "crops" / "trapcam" / "1" / old / "c0ffee"
    snips.mkdir(parents=True)
    (snips / "IMG_1_0.jpg").write_bytes(b"x" * 1000)  # the set's snips go with it (no other set names them)
    done = lifecycle.purge(out, old, move_decisions=True, store=store.root)
    assert (done.bytes_reclaimed, done.decisions_moved, done.moved_to) == (dry_purge.bytes_reclaimed, 1, new)
    assert done.snips_bytes == 1000 and not snips.exists()
    moved = [d for d in log.read(("identify",)) if d.decision_id != decision.decision_id]
    assert [(d.who, d.label, d.filters_hash) for d in moved] == [("ana", "deer", new)]  # never lost
    assert (
        read_record(Tables(open_location(out)).storage, "trapcam", "1", old).bytes_reclaimed
        == done.bytes_reclaimed + 1000
    )
    assert Tables(open_location(out)).current_images("trapcam", "1", new).equals(readers_before)
    assert [s.set_hash for s in listed(Tables(open_location(out))) if s.files] == [new]
    assert lifecycle.purge(out, old).already_purged


def test_a_purge_killed_halfway_leaves_readers_right_and_a_rerun_finishes_it(tmp_path, store, monkeypatch):
    spec = build_archive()
    archive, out = str(write_local(spec, tmp_path / "archive")), str(tmp_path / "tables")
    run(archive, out, store)
    old = current(out)
    run(archive, out, store, redo=True)
    new = current(out)
    before = Tables(open_location(out)).current_images("trapcam", "1", new)
    storage_type = type(Tables(open_location(out)).storage)
    real = storage_type.delete_many
    calls = []

    def dies_after_the_images(self, entries):
        calls.append(entries)
        if len(calls) == 2:  # the images files are gone, the detections files not yet
            raise KeyboardInterrupt
        return real(self, entries)

    monkeypatch.setattr(storage_type, "delete_many", dies_after_the_images)
    with pytest.raises(KeyboardInterrupt):
        lifecycle.purge(out, old)
    monkeypatch.setattr(storage_type, "delete_many", real)
    assert read_record(Tables(open_location(out)).storage, "trapcam", "1", old).purge == "purging"
    assert current(out) == new and Tables(open_location(out)).current_images("trapcam", "1", new).equals(before)
    with pytest.raises(BatchError, match="purging"):
        resolve_table_set(Tables(open_location(out)), "trapcam:1", old)
    left = [s for s in listed(Tables(open_location(out))) if s.set_hash == old][0]
    assert left.files and all(f.table != "images" for f in left.files)  # uncommitted: nothing a reader joins to
    again = lifecycle.purge(out, old)
    assert (
        again.files == len(left.files)
        and read_record(Tables(open_location(out)).storage, "trapcam", "1", old).purge == "purged"
    )
    assert not [s for s in listed(Tables(open_location(out))) if s.set_hash == old][0].files


def test_sets_and_purge_on_s3(tmp_path, store, s3_bucket, s3_server):
    """The same listing and purge against a real S3 server (moto): the tables of two sets are made locally (the
    stages are S3-agnostic and slow against moto) and uploaded as they are."""
    spec = build_archive()
    archive, local = str(write_local(spec, tmp_path / "archive")), str(tmp_path / "tables")
    run(archive, local, store)
    old = current(local)
    run(archive, local, store, redo=True, reason="decoder fix")
    out = f"{s3_bucket}/tables"
    s3 = Tables(open_location(out)).storage
    s3.fs.put(local + "/", s3.path(), recursive=True)
    sets = {s.set_hash: s for s in listed(Tables(open_location(out)), store=store.root)}
    assert (
        len(sets) == 2
        and sets[old].bytes == {s.set_hash: s for s in listed(Tables(open_location(local)))}[old].bytes > 0
    )
    assert current(out) != old
    report = lifecycle.purge(out, old, store=store.root)
    assert report.bytes_reclaimed == sets[old].bytes
    assert [s.set_hash for s in listed(Tables(open_location(out))) if s.files] == [current(out)]
    assert json.loads(json.dumps([s.as_dict() for s in listed(Tables(open_location(out)))]))[0]["status"] in (
        "purged",
        "whole",
    )
