"""The console's views read rows whose optional text columns are null (tables written before a column existed,
rows the listing knew no capture time for) and answer with nulls, not a validation error."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from batch.views.pictures_protocol import CameraTile
from model_store.tables import browse
from model_store.tables.commit import write_results
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import RESULT_SCHEMA


def test_cameras_page_answers_null_text_columns_as_null(tmp_path):
    rows = {"uri": [f"/a/cam1/{i}.jpg" for i in range(3)], "rel_path": [f"cam1/{i}.jpg" for i in range(3)],
            "content_id": ["c0", "c1", "c2"], "camera_id": ["cam1"] * 3,
            "capture_time": [dt.datetime(2026, 1, 1, 0, 0, i) for i in range(3)],
            "status": ["empty", "empty", "failed"], "error_reason": [None, None, "read_error"]}
    table = pa.table({f.name: pa.array(rows[f.name], f.type) if f.name in rows else pa.nulls(3, f.type)
                      for f in RESULT_SCHEMA}, schema=RESULT_SCHEMA)  # capture_time_source: null
    write_results(table, out_url=str(tmp_path), model_name="m", model_version="1", model_sha256="s",
                  filters_hash="f", run_id="r", metadata={})
    tables = Tables(open_location(str(tmp_path)))
    page = browse.cameras(tables, limit=10, offset=0)  # as batch/views/picture_queries.py composes the page
    latest = browse.latest_many(tables, [c["camera"] for c in page["cameras"]])
    [tile] = [CameraTile.model_validate({**c, "latest": latest.get(c["camera"])}) for c in page["cameras"]]
    assert tile.latest is not None and tile.latest.image.uri == "/a/cam1/2.jpg"
    assert tile.latest.image.capture_time_source is None
