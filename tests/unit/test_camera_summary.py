"""model_store/tables/camera_summary.py: the Cameras page's figures in one Arrow aggregation, kept while the images
table's files are the same and recomputed when a part lands or goes."""

from __future__ import annotations

import datetime as dt
import os

from model_store.tables import browse, camera_summary
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from tests.unit.test_browse_cameras import write


def figures(tables: Tables) -> list[tuple]:
    return [(c["camera"], c["images"], c["newest_capture_time"])
            for c in browse.cameras(tables, limit=100, offset=0)["cameras"]]


def test_the_summary_is_kept_while_the_files_are_the_same_and_a_new_part_recomputes_it(tmp_path):
    write(tmp_path, "det", "1", [("a", "/a/1", 1), ("b", "/b/1", 2)])
    tables = Tables(open_location(str(tmp_path)))
    first = camera_summary.camera_summary(tables)
    assert (
        camera_summary.camera_summary(Tables(open_location(str(tmp_path)))) is first
    )  # a new Tables, the same files: reused
    assert figures(tables) == [("a", 1, dt.datetime(2026, 5, 1)), ("b", 1, dt.datetime(2026, 5, 2))]

    write(tmp_path, "det", "2", [("a", "/a/1", 1), ("a", "/a/2", 7), ("c", "/c/1", None)])  # a new part
    assert camera_summary.camera_summary(tables) is not first
    assert figures(tables) == [("a", 2, dt.datetime(2026, 5, 7)), ("b", 1, dt.datetime(2026, 5, 2)), ("c", 1, None)]

    for part in (tmp_path / "images" / "model_name=det" / "model_version=2").iterdir():  # and a part removed
        os.remove(part)
    assert figures(tables) == [("a", 1, dt.datetime(2026, 5, 1)), ("b", 1, dt.datetime(2026, 5, 2))]


def test_the_state_names_every_file_with_its_size_and_an_empty_location_has_none(tmp_path):
    assert camera_summary.files_state(Tables(open_location(str(tmp_path / "none")))) == ()
    assert camera_summary.camera_summary(Tables(open_location(str(tmp_path / "none")))).num_rows == 0
    write(tmp_path, "det", "1", [("a", "/a/1", 1)])
    state = camera_summary.files_state(Tables(open_location(str(tmp_path))))
    assert [os.path.basename(name) for name, _, _ in state] == sorted(
        os.listdir(tmp_path / "images" / "model_name=det" / "model_version=1"))
    assert all(size > 0 for _, size, _ in state)
