"""Occurrences: the `track` filter over stored tables, the occurrences table, determinations and the decisions log.

No Ray: the tables are written directly with known animals (tests/fixtures/occurrences.py), and the fixture
archive's tables (real pixels: the appearance descriptor) come from the in-process detector."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from batch.jobs.control import manifest_progress
from batch.postprocessing import occurrences
from batch.postprocessing.determine import HUMAN, MODEL, carry_identifications, determine, vote
from batch.postprocessing.run_report import format_report
from ground.errors import NotFoundError, ScopeError
from model_store import FilterConfigError, FilterSet
from model_store.tables.decisions import ClassifyDetection, DecisionsLog, DetectionKey, IdentifyOccurrence, make
from model_store.tables.locations import open_location
from model_store.tables.manifest import read_manifests
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES, OCCURRENCES
from tests.fixtures.occurrences import FILTERS, SHEET_MODEL, write_sheet_tables
from tests.fixtures.postprocess import postprocess
from tests.fixtures.review import two_version_tables
from trapline.cli import main

NO_APPEARANCE = {"appearance": "none"}  # geometry alone links the sheet; one test adds the pixels


def k(uri: str, i: int = 0) -> dict:
    return {"uri": uri, "content_id": "c", "detection_index": i}


def v(uri: str, label: str, score: float, i: int = 0) -> dict:
    return {**k(uri, i), "label": label, "score": score, "source": "detector"}


def ident(oid: str, label: str, keys: list[dict], who: str = "ann") -> IdentifyOccurrence:
    return make(IdentifyOccurrence, who, occurrence_id=oid, label=label,
                detections=[DetectionKey(**key) for key in keys])


# -- the determination, pure ------------------------------------------------------------------------------
def test_the_vote_sums_scores_and_a_person_overrides_it_visibly():
    votes = [v("a", "fox", 0.9), v("b", "deer", 0.6), v("c", "deer", 0.5)]
    assert vote(votes) == ("deer", pytest.approx(1.1 / 3))
    assert vote([v("a", "fox", 0.5), v("b", "deer", 0.5)])[0] == "deer"  # a tie: the same answer every run
    assert vote([]) == (None, None)
    d = determine(votes, ident("occ-1", "lynx", [k("a")]))
    assert (d.label, d.determined_by, d.model_label, d.disagrees) == ("lynx", HUMAN, "deer", True)
    agree = determine(votes, ident("occ-1", "deer", [k("a")]))
    assert agree.determined_by == HUMAN and not agree.disagrees
    # an edited classification replaces that detection's vote (score 1) and the vote is taken again
    edit = make(ClassifyDetection, "bob", detection=DetectionKey(**k("a")), label="fox")
    fox = determine(votes + [v("d", "fox", 0.3)], None, {edit.detection: edit})
    assert (fox.label, fox.determined_by) == ("fox", MODEL) and fox.score == pytest.approx(1.3 / 4)


def test_an_identification_follows_its_detections_to_a_new_occurrence_id():
    old = ident("occ-old", "lynx", [k("a"), k("b")])
    # same detection keys (another tracker config): the occurrence holding most of them
    assert carry_identifications({"occ-1": [k("a"), k("b")], "occ-2": [k("c")]}, {"occ-old": old}) == {"occ-1": old}
    # another model version: indices differ, the images are the same
    assert carry_identifications({"occ-3": [k("a", 4), k("b", 2)]}, {"occ-old": old}) == {"occ-3": old}
    # two occurrences share the images equally: ambiguous, nothing is guessed
    assert carry_identifications({"x": [k("a", 4)], "y": [k("b", 5)]}, {"occ-old": old}) == {}
    # an occurrence a person identified itself keeps its own identification
    own = ident("occ-1", "fox", [k("a")])
    assert carry_identifications({"occ-1": [k("a"), k("b")]}, {"occ-old": old, "occ-1": own}) == {"occ-1": own}


def test_track_is_a_registered_table_level_filter_that_cannot_run_per_image():
    fs = FilterSet.from_specs([{"name": "score", "config": {"min_score": 0.2}}, {"name": "track", "config": {}}])
    assert fs.table_level == ["track"] and fs.hash != FilterSet.from_specs([fs.as_specs()[0]]).hash
    with pytest.raises(FilterConfigError, match="postprocess --filter track"):
        fs.require_per_image()
    with pytest.raises(FilterConfigError, match="max_gap_s"):
        FilterSet.from_specs([{"name": "track", "config": {"max_gap_s": -1}}])
    with pytest.raises(FilterConfigError, match="speed"):
        FilterSet.from_specs([{"name": "track", "config": {"speed": 1}}])


# -- over tables -----------------------------------------------------------------------------------------
@pytest.fixture
def sheet(tmp_path):
    return write_sheet_tables(tmp_path / "sheet")


@pytest.mark.parametrize("appearance", ["none", "colour"])
def test_postprocess_track_writes_occurrences_and_links_each_detection(sheet, appearance):
    lines: list[str] = []
    report = postprocess(str(sheet), "track", {"appearance": appearance}, progress=lines.append,
                             progress_interval=0)
    assert not report.notes  # with appearance on, every frame's pixels were read
    assert report.detections_linked == 12 + 8 + 1 + 3 + 5
    assert report.occurrences == 5  # moth A, moth B, the speck, moth C an hour later, the deer
    assert report.frames_per_occurrence == pytest.approx(29 / 5)
    assert any(line.startswith("track: 5 occurrence(s) from 29 detection(s)") for line in lines)
    assert report.tables == [IMAGES, DETECTIONS, OCCURRENCES]  # the summary names every table it wrote
    assert "tables    wrote {images,detections,occurrences}" in format_report(report)
    [manifest] = [m for m in read_manifests(Tables(open_location(str(sheet))).storage) if m.run_id == report.run_id]
    assert manifest_progress(manifest)["stages"]["track"] == {  # the job's metrics, as GET /v1/jobs/{id} shows them
        "detections_linked": 29, "occurrences": 5, "frames_per_occurrence": pytest.approx(5.8), "disagreements": 0}
    tables = Tables(open_location(str(sheet)))
    occ = tables.read(OCCURRENCES, SHEET_MODEL, "1").to_pandas().set_index("occurrence_id")
    assert (occ["filters_hash"] == report.filters_hash).all() and (occ["run_id"] == report.run_id).all()
    by_frames = occ.sort_values("frames")["frames"].tolist()
    assert by_frames == [1, 3, 5, 8, 12]
    assert occ["confirmed"].sum() == 4  # the lone speck (0.1) is an occurrence, not an animal
    deer = occ[occ["camera_id"] == "burst"].iloc[0]
    assert (deer["label"], deer["determined_by"], deer["model_label"]) == ("deer", MODEL, "deer")
    assert deer["first_time"] == dt.datetime(2026, 6, 1, 22, 0, 0) and deer["frames"] == 5
    assert len(deer["detections"]) == 5 and deer["uri"].endswith("/archive/burst/0.jpg")
    assert len(set(occ["tracker_hash"])) == 1
    det = tables.read(DETECTIONS, SHEET_MODEL, "1").to_pandas()
    old, new = det[det.filters_hash == FILTERS], det[det.filters_hash == report.filters_hash]
    assert old["occurrence_id"].isna().all()  # written before the column: still readable
    assert new["occurrence_id"].notna().all() and set(new["occurrence_id"]) == set(occ.index)
    # each occurrence's detections are exactly the detection rows naming it
    for oid, row in occ.iterrows():
        mine = new[new.occurrence_id == oid]
        assert sorted(zip(mine.uri, mine.detection_index)) == sorted((d["uri"], d["detection_index"])
                                                                     for d in row["detections"])


def test_ids_are_stable_across_reruns_and_a_camera_scope_gives_the_same_ones(sheet, tmp_path):
    again = tmp_path / "again"
    shutil.copytree(sheet, again)  # the same tables, the same archive
    whole = postprocess(str(sheet), "track", NO_APPEARANCE)
    ids = set(Tables(open_location(str(sheet))).read(OCCURRENCES, SHEET_MODEL, "1")["occurrence_id"].to_pylist())
    postprocess(str(again), "track", NO_APPEARANCE, cameras=["burst"])
    burst = Tables(open_location(str(again))).read(OCCURRENCES, SHEET_MODEL, "1").to_pandas()
    assert set(burst["camera_id"]) == {"burst"} and set(burst["occurrence_id"]) <= ids
    rest = postprocess(str(again), "track", NO_APPEARANCE, cameras=["sheet"], filters_hash=FILTERS)
    assert rest.filters_hash == whole.filters_hash and rest.occurrences == 4
    assert (
        set(Tables(open_location(str(again))).read(OCCURRENCES, SHEET_MODEL, "1")["occurrence_id"].to_pylist()) == ids
    )


def test_a_person_wins_over_every_later_run_and_the_disagreement_is_counted(sheet):
    postprocess(str(sheet), "track", NO_APPEARANCE)
    occ = occurrences.load(Tables(open_location(str(sheet))))
    deer = occ.rows[occ.rows.camera_id == "burst"].iloc[0]
    shown = occurrences.identify(
        occurrences.SetPlace(Tables(open_location(str(sheet)))), deer["occurrence_id"], "roe deer", "ann", "antlers"
    )
    assert shown["determination"] == {**shown["determination"], "label": "roe deer", "how": HUMAN,
                                      "model_label": "deer", "identified_by": "ann", "comment": "antlers"}
    with pytest.raises(NotFoundError, match="no occurrence"):
        occurrences.identify(occurrences.SetPlace(Tables(open_location(str(sheet)))), "occ-nope", "fox", "ann")
    # a later run (another filter set on top) keeps the person's determination and counts the disagreement
    later = postprocess(str(sheet), "score", {"min_score": 0.2})
    assert later.occurrences == 4 and later.disagreements == 1
    rows = Tables(open_location(str(sheet))).read(OCCURRENCES, SHEET_MODEL, "1").to_pandas()
    mine = rows[(rows.filters_hash == later.filters_hash) & (rows.camera_id == "burst")].iloc[0]
    assert (mine["label"], mine["determined_by"], mine["model_label"]) == ("roe deer", HUMAN, "deer")
    now = occurrences.load(Tables(open_location(str(sheet))))
    assert set(occurrences.select(now.rows, determined_by=HUMAN)["label"]) == {"roe deer"}
    assert len(occurrences.select(now.rows, camera="sheet", label="moth")) == 3
    history = occurrences.history(now, occurrences.find(now, mine["occurrence_id"]))
    assert [h["action"] for h in history] == ["identify"] and history[0]["who"] == "ann"


def test_editing_a_classification_redetermines_its_occurrence_at_once(sheet):
    postprocess(str(sheet), "track", NO_APPEARANCE)
    occ = occurrences.load(Tables(open_location(str(sheet))))
    deer = occurrences.find(occ, occ.rows[occ.rows.camera_id == "burst"].iloc[0]["occurrence_id"])
    keys = [DetectionKey(**d) for d in deer["detections"]]
    for key in keys[:2]:
        shown = occurrences.classify(occurrences.SetPlace(Tables(open_location(str(sheet)))), key, "fox", "bob")
    assert shown["determination"]["label"] == "deer"  # 2 x 1.0 fox against 3 x 0.9 deer
    shown = occurrences.classify(occurrences.SetPlace(Tables(open_location(str(sheet)))), keys[2], "fox", "bob")
    assert shown["determination"]["label"] == "fox" and shown["determination"]["how"] == MODEL
    assert len(DecisionsLog(open_location(str(sheet))).latest_classifications()) == 3
    with pytest.raises(NotFoundError, match="not in any occurrence"):
        occurrences.classify(
            occurrences.SetPlace(Tables(open_location(str(sheet)))),
            DetectionKey(uri="/nope", content_id="x", detection_index=0),
            "fox",
            "bob",
        )


def test_the_cli_links_the_fixture_archive_with_appearance_and_a_dry_run_previews_an_image(tmp_path, capsys):
    spec, archive, out, _ = two_version_tables(tmp_path)
    tables = tmp_path / "t"
    shutil.copytree(out, tables)
    first = sorted(r for r in spec.good if r.startswith("cam02/"))[0]
    code = main(["postprocess", "--tables", str(tables), "--model", "trapcam:1", "--filter", "track", "--config",
                 '{"max_gap_s": 100000}', "--image", str(archive / first), "--dry-run"])
    said = capsys.readouterr().out
    assert code == 0 and " -> occ-" in said and "dry run" in said
    code = main(["postprocess", "--tables", str(tables), "--model", "trapcam:1", "--filter", "track", "--config",
                 '{"max_gap_s": 100000}'])
    said = capsys.readouterr().out
    assert code == 0 and "occurrences " in said, said
    rows = Tables(open_location(str(tables))).read(OCCURRENCES, "trapcam", "1").to_pandas()
    # every camera's frames hold the same boxes at the same places: one occurrence per place and camera run
    assert 0 < len(rows) < Tables(open_location(str(tables))).read(DETECTIONS, "trapcam", "1").to_pandas()["kept"].sum()
    assert rows["frames"].max() >= 5


def test_appearance_comes_from_the_stored_snips_when_every_box_has_one(sheet, tmp_path):
    assert main(["crops", "--tables", str(sheet)]) == 0
    shutil.rmtree(sheet.parent / "archive")  # the frames are gone: only the snips can give the appearance
    report = postprocess(str(sheet), "track", {"appearance": "colour"})
    assert report.notes == [] and report.occurrences == 5


def test_postprocess_scoped_to_an_occurrence_rewrites_its_images_and_counts_changed_determinations(sheet, capsys):
    tracked = postprocess(str(sheet), "track", NO_APPEARANCE)
    occ = occurrences.load(Tables(open_location(str(sheet))))
    deer = occ.rows[occ.rows.camera_id == "burst"].iloc[0]
    images = {d["uri"] for d in deer["detections"]}
    with pytest.raises(ScopeError, match="no occurrence occ-nope"):
        postprocess(str(sheet), "score", {"min_score": 0.2}, occurrences=["occ-nope"], dry_run=True)
    same = postprocess(str(sheet), "score", {"min_score": 0.01}, occurrences=[deer["occurrence_id"]],
                           dry_run=True)
    assert same.in_scope == len(images) and same.scope["kind"] == "occurrence"
    assert same.determinations_changed == 0 and same.occurrences == 1
    # every box of the deer dropped: its determination is gone, and nothing else was touched
    gone = postprocess(str(sheet), "score", {"min_score": 0.999}, occurrences=[deer["occurrence_id"]],
                           filters_hash=tracked.filters_hash)
    assert gone.images == len(images) and gone.kept_after == 0
    assert gone.determinations_changed == 1
    assert set(Tables(open_location(str(sheet))).read(DETECTIONS, SHEET_MODEL, "1", ["uri", "filters_hash"]).to_pandas()
               .query("filters_hash == @gone.filters_hash")["uri"]) == images
    assert main(["postprocess", "--tables", str(sheet), "--filter", "score", "--config", '{"min_score": 0.5}',
                 "--occurrence", deer["occurrence_id"], "--filters-hash", tracked.filters_hash, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"occurrence {deer['occurrence_id']}: {len(images)} image(s)" in out and "determinations" in out


def test_determinations_changed_counts_renamed_gone_and_new_occurrences():
    from batch.postprocessing.effects import determinations_changed

    before = [{"occurrence_id": "a", "label": "moth", "detections": [k("u1"), k("u2")]},
              {"occurrence_id": "b", "label": "moth", "detections": [k("u3")]},
              {"occurrence_id": "c", "label": "fox", "detections": [k("u9")]}]
    after = [{"occurrence_id": "a2", "label": "moth", "detections": [k("u1"), k("u2")]},  # same name, new id
             {"occurrence_id": "n", "label": "beetle", "detections": [k("u4")]}]  # new
    assert determinations_changed(before, after, touched={"u1", "u2", "u3", "u4"}) == 2  # b gone, n new
    renamed = [{"occurrence_id": "a", "label": "beetle", "detections": [k("u1")]}]
    assert determinations_changed(before, renamed, touched={"u1", "u2"}) == 1
