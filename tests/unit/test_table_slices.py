"""Table tools read an archive a slice of whole cameras at a time (model_store/tables/slices.py)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from model_store.tables.cameras import DEFAULT_CAMERA_ID
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.slices import CameraCounts, CameraSlice, camera_slices


def counts_of(rows: dict[str | None, int]) -> CameraCounts:
    """Each camera's rows, every uri its own (a folder per camera)."""
    counts = CameraCounts()
    for camera, n in rows.items():
        counts.add(pa.array([camera] * n, pa.string()), pa.array([f"{camera}/{i}" for i in range(n)]))
    return counts


def test_cameras_are_packed_in_id_order_and_never_cut():
    counts = counts_of({"c": 30, "a": 40, "b": 25, "big": 500, DEFAULT_CAMERA_ID: 2, None: 2, "": 1})
    assert counts.rows[DEFAULT_CAMERA_ID] == 5  # rows without a camera id are the default camera's
    slices = camera_slices(counts, max_images=70)
    assert [s.cameras for s in slices] == [("a", "b"), ("big",), ("c", DEFAULT_CAMERA_ID)]
    assert [s.images for s in slices] == [65, 500, 35]
    assert sum(s.images for s in slices) == sum(counts.rows.values())
    assert camera_slices(CameraCounts()) == []
    with pytest.raises(ValueError, match="at least 1"):
        camera_slices(counts, max_images=0)


def test_cameras_that_share_an_image_are_never_in_two_slices():
    """A path pattern changed between runs: the same images have rows under the old id and the new one (and some
    had none). Only a slice holding every id of an image can tell which of its rows is current."""
    counts = counts_of({"a": 3, "z": 2})
    counts.add(pa.array(["old-b", "old-b", None]), pa.array(["b/1", "b/2", "b/3"]))
    counts.add(pa.array(["cam-b", "cam-b", "cam-b"]), pa.array(["b/1", "b/2", "b/3"]))
    assert counts.groups() == [["a"], ["cam-b", "old-b", DEFAULT_CAMERA_ID], ["z"]]
    slices = camera_slices(counts, max_images=1)
    assert [s.cameras for s in slices] == [("a",), ("cam-b", "old-b", DEFAULT_CAMERA_ID), ("z",)]
    assert [s.images for s in slices] == [3, 6, 2]
    # two table sets (a report's --compare): an image under one camera in one set and another in the other
    other = CameraCounts()
    other.add(pa.array(["z2"]), pa.array(["a/0"]))
    assert (counts + other).groups() == [["a", "z2"], ["cam-b", "old-b", DEFAULT_CAMERA_ID], ["z"]]
    assert (counts + other).rows["a"] == 3 and counts.groups()[0] == ["a"]  # the sum leaves its terms alone


def test_the_default_cameras_slice_takes_the_rows_without_a_camera_id():
    rows = pa.table({"camera_id": ["a", None, "", DEFAULT_CAMERA_ID, "b"], "n": [0, 1, 2, 3, 4],
                     "capture_time": pa.array([0, 1, 2, 3, 4], pa.timestamp("s"))})
    take = ds.dataset(rows).to_table

    assert take(filter=CameraSlice(("a",), 1).expression())["n"].to_pylist() == [0]
    assert take(filter=CameraSlice((DEFAULT_CAMERA_ID, "b"), 4).expression())["n"].to_pylist() == [1, 2, 3, 4]
    within = ds.field("capture_time") >= pa.scalar(2, pa.timestamp("s"))
    assert take(filter=CameraSlice((DEFAULT_CAMERA_ID,), 3).expression(within))["n"].to_pylist() == [2, 3]


def test_a_slice_tells_its_cameras_rows_from_others_in_a_frame_column():
    part = CameraSlice(("a", DEFAULT_CAMERA_ID), 3)
    assert part.holds(["a", "b", None, float("nan"), "", DEFAULT_CAMERA_ID]).tolist() == \
        [True, False, True, True, True, True]
    assert part.holds([]).tolist() == []


def test_events_count_an_image_once_when_its_camera_id_changed_between_runs(tmp_path):
    """The same six images processed twice by one model version: first with no camera ids (no path pattern), then
    with a path pattern that names two cameras. Whatever the slices, each image's current row is its newest."""
    import datetime as dt
    import time

    from batch.postprocessing.events import read_events, run_events
    from batch.postprocessing.options import EventsOptions
    from model_store.tables.commit import write_results
    from model_store.tables.schema import RESULT_SCHEMA

    def run(cameras: list[str | None], run_id: str) -> None:
        det = {"detection_index": 0, "label": "deer", "class_id": 0, "score": 0.8, "bbox_x": 0.1, "bbox_y": 0.1,
               "bbox_w": 0.2, "bbox_h": 0.2, "kept": True, "flags": []}
        rows = [{"uri": f"/a/{'xy'[i // 3]}/{i}.jpg", "rel_path": f"{'xy'[i // 3]}/{i}.jpg", "content_id": f"c{i}",
                 "camera_id": camera, "capture_time": dt.datetime(2026, 5, 1, 6, 0, 10 * i), "status": "ok",
                 "width": 64, "height": 48, "detection_count": 1, "raw_detection_count": 1, "max_score": 0.8,
                 "detections": [det]} for i, camera in enumerate(cameras)]
        write_results(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA), out_url=str(tmp_path), model_name="m",
                      model_version="1", model_sha256="0" * 64, filters_hash="f", run_id=run_id,
                      metadata={"model": {"labels": ["deer"]}})

    run([None] * 6, "20260501T000000Z-before")
    time.sleep(0.01)  # the second run's rows are newer
    run(["cam-x"] * 3 + ["cam-y"] * 3, "20260502T000000Z-after")

    whole = run_events(EventsOptions(tables=str(tmp_path), gap_s=60, model="m:1"))
    whole_events = read_events(Tables(open_location(str(tmp_path))), "m", "1", "f", 60).reset_index(drop=True)
    sliced = run_events(EventsOptions(tables=str(tmp_path), gap_s=60, model="m:1"), slice_images=1)
    sliced_events = read_events(Tables(open_location(str(tmp_path))), "m", "1", "f", 60).reset_index(drop=True)
    assert whole.images == sliced.images == 6  # not 12: the rows without a camera id are older
    assert sorted(whole_events["camera_id"]) == ["cam-x", "cam-y"]
    assert whole_events.astype(str).equals(sliced_events.astype(str))
