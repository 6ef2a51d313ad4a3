"""`trapline tables check` over a partition: exact copies, images processed twice, orphaned rows, each counted with
examples, read a record batch at a time (model_store/tables/maintenance.py)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.parquet as pq

from model_store.tables import writer
from model_store.tables.commit import write_results
from model_store.tables.maintenance import check
from model_store.tables.schema import RESULT_SCHEMA


def write_run(out, uris: list[str], run_id: str) -> None:
    det = {"detection_index": 0, "label": "deer", "class_id": 0, "score": 0.8, "bbox_x": 0.1, "bbox_y": 0.1,
           "bbox_w": 0.2, "bbox_h": 0.2, "kept": True, "flags": []}
    rows = [{"uri": u, "rel_path": u, "content_id": f"c-{u}", "camera_id": "cam", "status": "ok",
             "capture_time": dt.datetime(2026, 5, 1), "width": 64, "height": 48, "detection_count": 1,
             "raw_detection_count": 1, "max_score": 0.8, "detections": [det]} for u in uris]
    write_results(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA), out_url=str(out), model_name="m",
                  model_version="1", model_sha256="0" * 64, filters_hash="f", run_id=run_id, metadata={})


def test_check_counts_images_processed_twice_and_rows_without_their_image(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 2)
    write_run(tmp_path, [f"/a/{i}.jpg" for i in range(5)], "20260501T000000Z-one")
    assert check(str(tmp_path)).clean
    write_run(tmp_path, ["/a/1.jpg", "/a/3.jpg", "/a/9.jpg"], "20260502T000000Z-two")  # two of them again
    found = check(str(tmp_path))
    assert found.processed_twice == 2 and found.exact_copies == 0 and found.orphan_rows == 0
    assert sorted(found.examples) == [f"m:1 /a/{i}.jpg processed by several runs" for i in (1, 3)]

    # a committed part's detections that name images its images file does not hold
    parts = tmp_path / "detections" / "model_name=m" / "model_version=1"
    first = sorted(parts.iterdir())[0]
    rows = pq.read_table(first)
    ghost = rows.set_column(rows.schema.get_field_index("uri"), rows.schema.field("uri"),
                            pa.array(["/ghost"] * rows.num_rows))
    pq.write_table(pa.concat_tables([rows, ghost]), first)
    found = check(str(tmp_path))
    assert found.orphan_rows == rows.num_rows and found.processed_twice == 2 and not found.clean
    assert any("rows without their image row: 5" in line for line in found.lines())
