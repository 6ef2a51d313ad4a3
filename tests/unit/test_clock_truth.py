"""Deployments and clocks against known truth (benchmarks/clock_archive.py), through real tables on disk: a moved
camera, a clock 1 h 03 min fast, a reset to 2000-01-01, a camera left on winter time. After the corrections every
picture's time is exact and events, trap rates and nights equal those of the archive with right clocks; `check`
finds each planted problem and nothing on the clean archive (model_store/tables/clock.py, clock_check.py)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest

from batch.deployments import effort as eff
from batch.deployments import records
from batch.deployments.observed import observed
from batch.postprocessing import occurrences
from batch.postprocessing.events import group_events, period_of
from benchmarks import clock_archive as truth
from ground.errors import BatchError, DecisionError
from model_store.tables.clock import TimeBook
from model_store.tables.clock_check import check_clock
from model_store.tables.commit import write_results
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import RESULT_SCHEMA
from tests.fixtures.postprocess import postprocess

NOW = dt.datetime(2026, 11, 26)


def write_archive(out, frame: pd.DataFrame) -> None:
    """The archive's pictures as one committed part of the images/detections tables."""
    rows = []
    for r in frame.itertuples(index=False):
        det = [] if r.label is None or pd.isna(r.label) else [{
            "detection_index": 0, "label": r.label, "class_id": truth.LABELS.index(r.label), "score": 0.9,
            "bbox_x": 0.1, "bbox_y": 0.1, "bbox_w": 0.2, "bbox_h": 0.2, "kept": True, "flags": []}]
        rows.append({"uri": r.uri, "rel_path": r.rel_path, "content_id": r.content_id, "camera_id": r.camera_id,
                     "capture_time": r.capture_time.to_pydatetime(), "capture_time_source": "exif",
                     "status": r.status, "width": 64, "height": 48, "detection_count": len(det),
                     "raw_detection_count": len(det), "max_score": 0.9 if det else None, "detections": det})
    write_results(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA), out_url=str(out), model_name="m",
                  model_version="1", model_sha256="0" * 64, filters_hash="f", run_id="20260601T000000Z-abcdef",
                  metadata={"model": {"name": "m", "version": "1", "labels": list(truth.LABELS)},
                            "filters": {"hash": "f", "specs": []}})


def placed(out) -> pd.DataFrame:
    return Tables(open_location(str(out))).current_images("m", "1", "f")


def kinds(findings) -> set[tuple[str, str]]:
    return {(f.kind, f.camera_id) for f in findings}


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    broken, clean = tmp_path_factory.mktemp("broken"), tmp_path_factory.mktemp("clean")
    for out, frame in ((broken, truth.archive()), (clean, truth.archive(broken=False))):
        write_archive(out, frame)
        records.import_deployments(str(out), truth.deployment_rows(), "field team")
    return broken, clean


def test_the_broken_archive_is_found_out_then_put_right_by_decisions(archives):
    broken, clean = archives
    frame = truth.archive().set_index("uri")
    found = check_clock(Tables(open_location(str(broken))))
    assert kinds(found) == {("outside", "cam02"), ("setup", "cam02"), ("outside", "cam03"), ("impossible", "cam03"),
                            ("jump", "cam03"), ("pickup", "cam04")}
    assert next(f for f in found if f.kind == "setup").detail == "first picture 1 h 03 min after the start"
    assert check_clock(Tables(open_location(str(clean)))) == []

    ids = [records.correct_clock(str(broken), who="ana", **c)["decision_id"] for c in truth.corrections()]
    images = placed(broken).set_index("uri").loc[frame.index]
    error = (images["capture_time"] - frame["true_utc"]).dt.total_seconds().abs()
    assert error.max() == 0  # 0 s on every picture, the DST change and the reset included
    assert (images["deployment_id"] == frame["true_deployment"]).all()  # the moved camera: two places
    assert (images["capture_time_recorded"] == frame["capture_time"]).all()  # what the camera said is kept
    assert check_clock(Tables(open_location(str(broken)))) == []

    # events, trap rates and nights equal those of the archive with right clocks
    fixed, right = placed(broken), placed(clean)
    cols = ["camera_id", "start", "end", "images", "period"]
    events = group_events(fixed, pd.DataFrame())
    assert events[cols].equals(group_events(right, pd.DataFrame())[cols])
    local_of = dict(zip(fixed["uri"], fixed["capture_time_local"], strict=True))
    local_periods = [period_of(local_of[u[0]]) for u in events["uris"]]
    assert events["period"].tolist() == local_periods  # nights on the deployment's local clock, not UTC's
    assert sum(p != period_of(t) for p, t in zip(local_periods, events["start"], strict=True)) > 10
    assert (fixed.set_index("uri")["capture_time_local"] == right.set_index("uri")["capture_time_local"]).all()

    # occurrences (the tracker over the corrected times) and trap rates from them
    def occurrences_and_rates(out):
        postprocess(str(out), "track", {})
        obs = observed(Tables(open_location(str(out))))
        occ = occurrences.load(Tables(open_location(str(out)))).rows
        keys = ["occurrence_id", "camera_id", "first_time", "last_time", "frames", "label", "confirmed"]
        effort = eff.efforts(obs.book, obs.pictures)
        return (set(occ[keys].itertuples(index=False)), eff.trap_rates(obs.book, effort, obs.detections),
                eff.detection_history(obs.book, effort, obs.detections, "deer"), eff.activity(obs.detections))

    fixed_figures, right_figures = occurrences_and_rates(broken), occurrences_and_rates(clean)
    assert fixed_figures[0] == right_figures[0] and len(right_figures[0]) > 400  # occurrences
    assert right_figures[1]["detections"].sum() > 300
    for fixed_table, right_table in zip(fixed_figures[1:], right_figures[1:], strict=True):  # rates, history, hours
        pd.testing.assert_frame_equal(fixed_table, right_table)

    # a later decision undoes one: cam02 is 1 h 03 min off again, the others stay right
    records.revoke(str(broken), ids[0], who="ana", comment="wrong camera")
    again = placed(broken).set_index("uri").loc[frame.index]
    off = (again["capture_time"] - frame["true_utc"]).dt.total_seconds()
    cam02 = frame["camera_id"] == "cam02"
    assert set(off[cam02 & again["deployment_id"].notna()]) == {truth.FAST_S} and (off[~cam02] == 0).all()
    assert set(again.loc[cam02 & again["deployment_id"].isna(), "deployment_problem"]) == {"none"}  # the pickup
    records.correct_clock(str(broken), who="ana", **truth.corrections()[0])


def test_a_camera_moved_without_its_second_deployment_is_reported_not_guessed(tmp_path):
    write_archive(tmp_path, truth.archive(broken=False))
    records.import_deployments(str(tmp_path), truth.deployment_rows(), "field team")
    records.import_deployments(str(tmp_path), [], "field team", removed=["cam01-b"])
    images = placed(tmp_path)
    later = images[images["rel_path"].str.startswith("cam01/") & images["deployment_id"].isna()]
    assert len(later) > 50 and set(later["deployment_problem"]) == {"none"}
    assert ("outside", "cam01") in kinds(check_clock(Tables(open_location(str(tmp_path)))))
    with pytest.raises(BatchError, match="overlap"):
        records.import_deployments(str(tmp_path), [{**truth.deployment_rows()[1], "deploymentID": "x",
                                                    "deploymentStart": "2026-04-01T00:00:00"}], "field team")
    with pytest.raises(BatchError, match="unknown time zone 'Mars/Olympus'"):
        records.import_deployments(str(tmp_path), [{**truth.deployment_rows()[0], "timezone": "Mars/Olympus"}], "x")


def test_clock_decisions_are_checked_before_they_are_kept(tmp_path):
    with pytest.raises(DecisionError, match="needs an offset"):
        records.correct_clock(str(tmp_path), camera_id="cam01", recorded_from="2026-01-01T00:00:00",
                              recorded_until="2026-02-01T00:00:00")
    with pytest.raises(DecisionError, match="before recorded_from"):
        records.correct_clock(str(tmp_path), camera_id="cam01", recorded_from="2026-02-01T00:00:00",
                              recorded_until="2026-01-01T00:00:00", offset_s=5)
    with pytest.raises(DecisionError, match="no clock decision"):
        records.revoke(str(tmp_path), "nope")
    assert records.parse_offset("+1h03m") == 3780 and records.parse_offset("-30s") == -30
    with pytest.raises(BatchError, match="not a clock offset"):
        records.parse_offset("soon")


def test_detection_history_equals_the_one_worked_out_by_hand():
    rows = [{"deploymentID": "A", "cameraID": "a", "latitude": 0, "longitude": 0, "timezone": "Europe/Amsterdam",
             "deploymentStart": "2026-03-01T10:00:00", "deploymentEnd": "2026-03-07T12:00:00"},
            {"deploymentID": "B", "cameraID": "b", "latitude": 0, "longitude": 0, "timezone": "Europe/Amsterdam",
             "deploymentStart": "2026-03-03T10:00:00", "deploymentEnd": "2026-03-05T10:00:00"}]
    from model_store.tables.deployment_fields import validate_rows
    from model_store.tables.deployments import record_of

    book = TimeBook([record_of(d, "UTC") for d in validate_rows(rows, "t").values()])
    dets = pd.DataFrame({"deployment_id": ["A", "B", "B"], "label": ["deer", "deer", "fox"],
                         "capture_time": pd.to_datetime(["2026-03-02 21:30", "2026-03-04 01:00", "2026-03-05 01:00"]),
                         "capture_time_local": pd.to_datetime(["2026-03-02 22:30", "2026-03-04 02:00",
                                                               "2026-03-05 02:00"])})
    effort = eff.efforts(book, pd.DataFrame({"deployment_id": [], "capture_time": []}), gap_days=10)
    # occasions of two local days from 1 March: o1 1-2, o2 3-4, o3 5-6, o4 7-8
    by_hand = pd.DataFrame({"o1": [1, pd.NA], "o2": [0, 1], "o3": [0, 0], "o4": [0, pd.NA]},
                           index=pd.Index(["A", "B"], name="deploymentID"), dtype="Int64")
    got = eff.detection_history(book, effort, dets, "deer", occasion_days=2)
    pd.testing.assert_frame_equal(got, by_hand)
    assert got.to_csv(na_rep="NA").splitlines()[2] == "B,NA,1,0,NA"
    assert effort["A"].camera_days == pytest.approx(6 + 2 / 24)
    # a stretch longer than gap_days without pictures is not effort
    pics = pd.DataFrame({"deployment_id": ["A"], "capture_time": pd.to_datetime(["2026-03-02 09:00"])})
    assert eff.efforts(book, pics, gap_days=2)["A"].camera_days == pytest.approx(1)


def test_camtrap_dp_export_takes_deployments_and_corrected_times_from_the_records(archives, tmp_path):
    import csv

    from batch.export.options import ExportOptions
    from batch.export.run import run_export

    broken, clean = archives
    ids = [records.correct_clock(str(broken), who="ana", **c)["decision_id"] for c in truth.corrections()]
    records.mark_timestamp_issues(str(broken), "cam03-a", who="ana", comment="reset: fixed, but say so")

    def package(tables, out):
        run_export(ExportOptions(tables=str(tables), format="camtrap-dp", out=str(out)))
        return {name: list(csv.DictReader(open(out / f"{name}.csv"))) for name in ("deployments", "media")}

    got, want = package(broken, tmp_path / "fixed"), package(clean, tmp_path / "right")
    by_id = {d["deploymentID"]: d for d in got["deployments"]}
    assert sorted(by_id) == ["cam01-a", "cam01-b", "cam02-a", "cam03-a", "cam04-a"]
    assert by_id["cam01-b"]["locationName"] == "south" and by_id["cam01-b"]["cameraID"] == "cam01"
    assert by_id["cam01-a"]["deploymentStart"] == "2026-03-01T10:00:00+01:00"
    assert by_id["cam01-b"]["deploymentEnd"] == "2026-05-31T12:00:00+02:00"  # summer time
    assert by_id["cam03-a"]["timestampIssues"] == "true" and by_id["cam02-a"]["timestampIssues"] == ""
    media = {(m["filePath"], m["deploymentID"], m["timestamp"]) for m in got["media"]}
    assert media == {(m["filePath"], m["deploymentID"], m["timestamp"]) for m in want["media"]}
    assert any(t.endswith("+02:00") for _, _, t in media) and any(t.endswith("+01:00") for _, _, t in media)
    for decision_id in ids:
        records.revoke(str(broken), decision_id, who="ana")


def test_exif_offset_is_honoured_and_a_utc_time_is_placed_as_utc():
    import io

    from PIL import Image

    from model_store.tables.archive import exif_capture
    from model_store.tables.clock import apply_clock
    from model_store.tables.decisions import CorrectClock, make
    from model_store.tables.deployment_fields import validate_rows
    from model_store.tables.deployments import record_of

    exif = Image.Exif()
    exif.get_ifd(0x8769).update({0x9003: "2026:03:29 03:30:00", 0x9011: "+02:00"})  # just after the spring change
    buf = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buf, "JPEG", exif=exif.tobytes())
    assert exif_capture(buf.getvalue()) == (dt.datetime(2026, 3, 29, 1, 30), "exif_utc")
    assert exif_capture(buf.getvalue()[:0]) is None

    book = TimeBook([record_of(d, "UTC") for d in validate_rows(truth.deployment_rows()[:1], "t").values()],
                    [make(CorrectClock, "ana", camera_id="cam01", recorded_from="2026-03-01T00:00:00",
                          recorded_until="2026-04-01T00:00:00", offset_s=600)])
    images = pd.DataFrame({"uri": ["u1", "u2"], "camera_id": ["cam01", "cam01"],
                           "capture_time": pd.to_datetime(["2026-03-29 01:30", "2026-03-29 03:30"]),
                           "capture_time_source": ["exif_utc", "exif"]})
    out = apply_clock(images, book)
    # the UTC one is not the camera clock's: the correction leaves it alone, its local time is summer time
    assert out["capture_time"].tolist() == [pd.Timestamp("2026-03-29 01:30"), pd.Timestamp("2026-03-29 01:20")]
    assert out["capture_time_local"].tolist() == [pd.Timestamp("2026-03-29 03:30"), pd.Timestamp("2026-03-29 03:20")]
    assert pd.isna(out["clock_correction"].iloc[0]) and out["deployment_id"].tolist() == ["cam01-a"] * 2
    arrow = images.astype({"camera_id": pd.ArrowDtype(pa.string()), "capture_time_source": "string[pyarrow]"})
    assert apply_clock(arrow, book)["capture_time"].equals(out["capture_time"])  # columns read from Parquet


def test_the_cli_records_deployments_and_corrections_and_tables_check_reports_clocks(tmp_path, capsys):
    from trapline.cli import main

    tables = tmp_path / "t"
    write_archive(tables, truth.archive())
    (tmp_path / "deployments.csv").write_text(pd.DataFrame(truth.deployment_rows()).drop(columns="timezone")
                                              .to_csv(index=False))
    assert main(["deployments", "import", str(tmp_path / "deployments.csv"), "--tables", str(tables),
                 "--timezone", "Europe/Amsterdam", "--who", "field team"]) == 0
    assert "recorded 5 deployment(s)" in capsys.readouterr().out
    assert main(["tables", "check", "--tables", str(tables)]) == 1
    out = capsys.readouterr().out
    assert "clock problems: 4" in out and "clock hints: 2" in out
    assert "setup      cam02 (cam02-a): first picture 1 h 03 min after the start" in out
    for c in truth.corrections():
        flags = ["--offset", str(c["offset_s"])] if "offset_s" in c else ["--zone", c["zone"]]
        assert main(["deployments", "correct-clock", "--tables", str(tables), "--camera", c["camera_id"],
                     "--from", c["recorded_from"].isoformat(), "--until", c["recorded_until"].isoformat(), *flags,
                     "--who", "ana", "--comment", c["comment"]]) == 0
    assert main(["tables", "check", "--tables", str(tables)]) == 0
    capsys.readouterr()
    assert main(["deployments", "list", "--tables", str(tables)]) == 0
    listed = capsys.readouterr().out
    assert "cam01-b        cam01      south" in listed and "clock " in listed and "Etc/GMT-1" in listed
    assert main(["deployments", "import", str(tmp_path / "nope.csv"), "--tables", str(tables)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_file_order_is_judged_only_where_the_name_is_the_cameras_counter():
    """A camera's files named by its counter going back in time is a reset; recorded uploads, named by their
    content (serve/recording/uploads.py), arrive in any order and say nothing of the camera's clock."""
    from model_store.tables.clock_check import find_clock_problems

    times = pd.to_datetime(["2026-04-01 10:00", "2026-04-01 08:00", "2026-04-01 11:00"])

    def rows(names, source="exif"):
        return pd.DataFrame({"uri": [f"/a/{n}" for n in names], "rel_path": names, "camera_id": "c1",
                             "capture_time": times, "capture_time_source": source})

    counted = find_clock_problems(rows(["c1/IMG_0001.JPG", "c1/IMG_0002.JPG", "c1/IMG_0003.JPG"]), TimeBook())
    assert [f.kind for f in counted] == ["jump"] and counted[0].first_uri == "/a/c1/IMG_0002.JPG"
    hashed = [f"c1/2026/04/01/{h * 24}.jpg" for h in "abc"]
    assert find_clock_problems(rows(hashed), TimeBook()) == []
    assert find_clock_problems(rows(["c1/IMG_0001.JPG", "c1/IMG_0002.JPG", "c1/IMG_0003.JPG"], "mtime"),
                               TimeBook()) == []


def test_a_camera_that_names_files_by_its_clock_is_not_read_in_name_order():
    """`IMG_20000101_000500.jpg` (a reset) sorts before `IMG_20240602_213010.jpg`: the names are the clock's order,
    not the shutter's, so there is no jump to report; the reset's default date is the impossible side, never the
    good picture, and after the correction the check is clean."""
    from model_store.tables.clock_check import find_clock_problems

    names = ["c1/IMG_20000101_000500.jpg", "c1/IMG_20000101_001500.jpg", "c1/IMG_20240602_213010.jpg",
             "c1/IMG_20240602_220000.jpg", "c1/IMG_20240603_010000.jpg"]
    times = pd.to_datetime(["2000-01-01 00:05", "2000-01-01 00:15", "2024-06-02 21:30", "2024-06-02 22:00",
                            "2024-06-03 01:00"])
    rows = pd.DataFrame({"uri": [f"/a/{n}" for n in names], "rel_path": names, "camera_id": "c1",
                         "capture_time": times, "capture_time_source": "path"})
    found = find_clock_problems(rows, TimeBook(), now=NOW)
    assert [(f.kind, f.pictures, f.first_uri) for f in found] == [("impossible", 2, "/a/c1/IMG_20000101_000500.jpg")]
    fixed = rows.assign(capture_time=pd.to_datetime(["2024-06-02 20:05", "2024-06-02 20:15", "2024-06-02 21:30",
                                                     "2024-06-02 22:00", "2024-06-03 01:00"]))
    assert find_clock_problems(fixed, TimeBook(), now=NOW) == []


def test_a_jump_names_the_file_whose_time_is_apart_from_the_cameras_other_pictures():
    """A counter-named camera reset mid-deployment: going forward the counter meets the default date (the suspect,
    named), and where the reset is the first file, the good picture after it is not the one named."""
    from model_store.tables.clock_check import find_clock_problems

    def rows(times):
        names = [f"c1/IMG_{i:04d}.JPG" for i in range(1, len(times) + 1)]
        return pd.DataFrame({"uri": [f"/a/{n}" for n in names], "rel_path": names, "camera_id": "c1",
                             "capture_time": pd.to_datetime(times), "capture_time_source": "exif"})

    late = find_clock_problems(rows(["2024-06-02 21:00", "2024-06-02 22:00", "2000-01-01 00:05",
                                     "2000-01-01 01:05"]), TimeBook(), now=NOW)
    assert {(f.kind, f.first_uri) for f in late} == {("jump", "/a/c1/IMG_0003.JPG"),
                                                     ("impossible", "/a/c1/IMG_0003.JPG")}
    first = find_clock_problems(rows(["2000-01-01 00:05", "2024-06-02 21:00", "2024-06-02 22:00",
                                      "2024-06-02 23:00"]), TimeBook(), now=NOW)
    assert {(f.kind, f.first_uri) for f in first} == {("jump", "/a/c1/IMG_0001.JPG"),
                                                      ("impossible", "/a/c1/IMG_0001.JPG")}


def test_a_deployment_that_starts_on_new_years_day_is_no_reset():
    from model_store.tables.clock_check import find_clock_problems

    times = pd.date_range("2023-01-01 00:30", "2025-06-01", periods=400)
    names = [f"c1/IMG_{i:04d}.JPG" for i in range(len(times))]
    rows = pd.DataFrame({"uri": names, "rel_path": names, "camera_id": "c1", "capture_time": times,
                         "capture_time_source": "exif"})
    assert find_clock_problems(rows, TimeBook(), now=NOW) == []
def test_time_named_files_are_not_a_counter_and_the_reset_side_is_the_suspect():
    """Issue 59: files named by their time sort by the clock, right or wrong: after a reset (IMG_20000101_000500
    beside IMG_20240602_213010) the name order is no counter and there is no jump to report, only the impossible
    time, named; after the correction the check is clean. With a counter, a jump ahead out of a reset's default date
    names the reset side, not the good picture after it."""
    from model_store.tables.clock_check import find_clock_problems
    from model_store.tables.decisions import CorrectClock, make

    def rows(names, times):
        return pd.DataFrame({"uri": [f"/a/c1/{n}" for n in names], "rel_path": [f"c1/{n}" for n in names],
                             "camera_id": "c1", "capture_time": pd.to_datetime(times), "capture_time_source": "exif"})

    reset_at, truly = dt.datetime(2000, 1, 1, 0, 5), dt.datetime(2024, 6, 2, 10, 5)
    named = rows(["IMG_20000101_000500.jpg", "IMG_20240601_100000.jpg", "IMG_20240602_213010.jpg"],
                 [reset_at, "2024-06-01 10:00", "2024-06-02 21:30:10"])
    found = find_clock_problems(named, TimeBook(), now=NOW)
    assert [(f.kind, f.first_uri) for f in found] == [("impossible", "/a/c1/IMG_20000101_000500.jpg")]
    fix = make(CorrectClock, "ana", camera_id="c1", recorded_from=dt.datetime(2000, 1, 1),
               recorded_until=dt.datetime(2000, 1, 2), offset_s=(reset_at - truly).total_seconds())
    assert find_clock_problems(named, TimeBook(corrections=[fix]), now=NOW) == []

    counted = rows(["IMG_0001.JPG", "IMG_0002.JPG", "IMG_0003.JPG"],
                   ["2024-06-01 10:00", reset_at, "2024-06-02 21:30"])  # reset between 1 and 2, clock set at 3
    jumps = [f for f in find_clock_problems(counted, TimeBook(), now=NOW) if f.kind == "jump"]
    assert [f.first_uri for f in jumps] == ["/a/c1/IMG_0002.JPG", "/a/c1/IMG_0002.JPG"]  # both sides: the reset
    assert "the earlier side's time (2000-01-01 00:05:00) lies apart" in jumps[1].detail
    assert find_clock_problems(counted, TimeBook(corrections=[fix]), now=NOW) == []
