"""The Cameras page's figures, read a record batch at a time: distinct files per camera whatever model processed
them, the newest capture time, cameras without an id as "unknown" (model_store/tables/browse.py)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from model_store.tables import browse, writer
from model_store.tables.commit import write_results
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import RESULT_SCHEMA


def write(out, model: str, version: str, rows: list[tuple[str | None, str, int | None]], run: str = "") -> None:
    table = pa.Table.from_pylist([
        {"uri": uri, "rel_path": uri, "content_id": f"c-{uri}", "camera_id": camera, "status": "empty",
         "capture_time": None if day is None else dt.datetime(2026, 5, day), "detections": []}
        for camera, uri, day in rows], schema=RESULT_SCHEMA)
    write_results(table, out_url=str(out), model_name=model, model_version=version, model_sha256="0" * 64,
                  filters_hash="f", run_id=f"20260501T000000Z-{model}{version}{run}", metadata={})


def test_cameras_count_distinct_files_across_models_and_take_the_newest_time(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 2)  # several record batches per part
    write(tmp_path, "det", "1", [("a", "/a/1", 1), ("a", "/a/2", 3), ("b", "/b/1", 2), (None, "/x/1", None),
                                 ("b", "/b/2", None)])
    write(tmp_path, "det", "2", [("a", "/a/1", 1), ("a", "/a/3", 9), (None, "/x/2", 4)])  # /a/1 again: one file
    write(tmp_path, "other", "1", [("b", "/b/1", 2), ("c", "/c/1", 5)])
    page = browse.cameras(Tables(open_location(str(tmp_path))), limit=10, offset=0)
    assert page["total"] == 4
    assert [(c["camera"], c["images"], c["newest_capture_time"]) for c in page["cameras"]] == [
        ("a", 3, dt.datetime(2026, 5, 9)), ("b", 2, dt.datetime(2026, 5, 2)), ("c", 1, dt.datetime(2026, 5, 5)),
        ("unknown", 2, dt.datetime(2026, 5, 4))]
    paged = browse.cameras(Tables(open_location(str(tmp_path))), limit=2, offset=1)
    assert [c["camera"] for c in paged["cameras"]] == ["b", "c"] and paged["total"] == 4
    assert browse.cameras(Tables(open_location(str(tmp_path / "none"))), limit=2, offset=0) == {
        "cameras": [], "total": 0, "limit": 2, "offset": 0}


def test_each_cameras_latest_is_its_newest_capture_preferring_the_models_rows(tmp_path):
    write(tmp_path, "det", "1", [("a", "/a/1", 1), ("a", "/a/2", 3), ("b", "/b/1", 2), ("b", "/b/2", None),
                                 ("d", "/d/1", None)])
    write(tmp_path, "det", "2", [("a", "/a/3", 9)])
    write(tmp_path, "other", "1", [("b", "/b/1", 2), ("a", "/a/0", 1)])
    tables = Tables(open_location(str(tmp_path)))

    def tiles(model=None):
        found = browse.latest_many(tables, ["a", "b", "d", "nosuch"], model)
        return {c: (t["image"]["uri"], t["image"]["model"]["name"], t["image"]["model"]["version"])
                for c, t in found.items()}

    assert tiles() == {"a": ("/a/3", "det", "2"), "b": ("/b/1", tiles()["b"][1], "1"), "d": ("/d/1", "det", "1")}
    # `other`'s rows where the camera has some, even when another model saw a newer capture
    assert tiles("other") == {"a": ("/a/0", "other", "1"), "b": ("/b/1", "other", "1"), "d": ("/d/1", "det", "1")}
    assert browse.latest_many(tables, []) == {} and browse.latest_many(tables, ["nosuch"]) == {}


def test_at_the_same_capture_time_the_newest_processing_wins_then_the_row_read_first(tmp_path):
    write(tmp_path, "det", "1", [("a", "/a/1", 3), ("a", "/a/2", 3), ("b", "/b/1", None)])
    tables = Tables(open_location(str(tmp_path)))
    assert browse.latest(tables, "a")["image"]["uri"] == "/a/1"  # a tie in one part: the row read first
    assert browse.latest(tables, "b")["image"]["uri"] == "/b/1"  # no capture time at all: still a tile
    write(tmp_path, "det", "1", [("a", "/a/2", 3)], run="b")  # processed again, later: it is the newest now
    assert browse.latest(tables, "a")["image"]["uri"] == "/a/2"
