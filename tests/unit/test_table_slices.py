"""Table tools read an archive a slice of whole cameras at a time (model_store/tables/slices.py)."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from model_store.tables.cameras import DEFAULT_CAMERA_ID
from model_store.tables.slices import CameraSlice, camera_slices


def test_cameras_are_packed_in_id_order_and_never_cut():
    counts = Counter({"c": 30, "a": 40, "b": 25, "big": 500, DEFAULT_CAMERA_ID: 5})
    slices = camera_slices(counts, max_images=70)
    assert [s.cameras for s in slices] == [("a", "b"), ("big",), ("c", DEFAULT_CAMERA_ID)]
    assert [s.images for s in slices] == [65, 500, 35]
    assert sum(s.images for s in slices) == sum(counts.values())
    assert camera_slices(Counter()) == []
    with pytest.raises(ValueError, match="at least 1"):
        camera_slices(counts, max_images=0)


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
