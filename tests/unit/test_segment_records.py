"""A segmentation model's masks as records: the tables' mask column, snips cut to the mask, the COCO export.

No model here: records are built with known masks (the decoding is tested in test_masks.py and against
Ultralytics in test_parity_segment.py)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from ground.storage import Storage
from model_store.core.crops import CropOptions, snip_jpeg
from model_store.core.masks import MaskWindow, from_rle, to_rle
from model_store.core.records import Detection, FiltersApplied, ImageDetections, MaskRLE, ModelInfo
from model_store.tables.codec import ranked_from_rows, result_fields
from model_store.tables.commit import write_results
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, DETECTIONS_SCHEMA, IMAGES_SCHEMA, RESULT_SCHEMA
from model_store.tables.writer import write_part

W, H = 64, 48


def _disc() -> MaskRLE:
    yy, xx = np.mgrid[0:20, 0:20]
    return MaskRLE.model_validate(to_rle(MaskWindow(10, 20, (yy - 10) ** 2 + (xx - 10) ** 2 < 64), H, W))


def _record(mask: MaskRLE | None) -> ImageDetections:
    det = Detection(label="animal", class_id=0, score=0.9, bbox=(20 / W, 10 / H, 20 / W, 20 / H),
                    box_px=(20.0, 10.0, 40.0, 30.0), mask=mask)
    return ImageDetections(model=ModelInfo(name="seg", version="1", sha256="0" * 64), width=W, height=H,
                           detections=[det], filters=FiltersApplied(names=[], hash="f" * 16, configs=[]))


def _row(uri: str, record: ImageDetections) -> dict:
    return {"uri": uri, "rel_path": uri.rsplit("/", 1)[-1], "content_id": "size=1", "size_bytes": 1,
            "camera_id": "cam", "capture_time": None, "capture_time_source": "mtime", **result_fields(record)}


def test_the_mask_column_holds_the_rle_and_is_null_for_boxes_and_in_older_tables(tmp_path):
    mask = _disc()
    batch = pa.Table.from_pylist([_row("/a/seg.jpg", _record(mask)), _row("/a/box.jpg", _record(None))],
                                 schema=RESULT_SCHEMA)
    out = str(tmp_path / "tables")
    write_results(batch, out_url=out, model_name="seg", model_version="1", model_sha256="0" * 64,
                  filters_hash="f" * 16, run_id="20261126T120000Z-abcdef", metadata={})
    # a part written before the column existed
    old = pa.schema([f for f in DETECTIONS_SCHEMA if f.name != "mask"])
    row = {"uri": "/a/old.jpg", "content_id": "size=1", "detection_index": 0, "label": "animal", "class_id": 0,
           "score": 0.5, "bbox_x": 0.1, "bbox_y": 0.1, "bbox_w": 0.2, "bbox_h": 0.2, "kept": True, "flags": [],
           "filters_hash": "f" * 16, "run_id": "20261126T110000Z-abcdef"}
    image = {"uri": "/a/old.jpg", "content_id": "size=1", "status": "ok", "filters_hash": "f" * 16,
             "run_id": "20261126T110000Z-abcdef"}
    write_part(Storage(out), "seg", "1", "part-20261126T110000Z-abcdef-0.parquet",
               pa.Table.from_pylist([image], schema=IMAGES_SCHEMA), pa.Table.from_pylist([row], schema=old), {})
    rows = {r["uri"]: r for r in Tables(open_location(out)).read(DETECTIONS, "seg", "1").to_pylist()}
    assert rows["/a/seg.jpg"]["mask"] == {"size": [H, W], "counts": mask.counts}
    assert rows["/a/box.jpg"]["mask"] is None and rows["/a/old.jpg"]["mask"] is None
    [(det, kept)] = ranked_from_rows([rows["/a/seg.jpg"]], W, H)
    assert kept and det.mask == mask  # tables re-read into records keep the mask (re-filter, snips, exports)


def test_a_blank_background_snip_shows_the_mask_only():
    rgb = np.full((H, W, 3), 200, np.uint8)
    mask = _disc()
    plain = CropOptions()
    blank = CropOptions(background="blank")
    assert blank.hash != plain.hash
    assert plain.hash == CropOptions.model_validate({"padding": 0.0}).hash  # the field's default keeps old hashes
    box = (20.0, 10.0, 40.0, 30.0)
    kept = np.asarray(Image.open(io.BytesIO(snip_jpeg(rgb, box, blank, mask))).convert("L"), np.int32)
    inside = from_rle(mask.model_dump())[10:30, 20:40]
    assert kept.shape == inside.shape
    assert kept[inside].mean() > 190 and kept[~inside].mean() < 40  # JPEG blurs the edge a little
    # box-only detections and the default option: the box as it is
    for opts, m in ((blank, None), (plain, mask)):
        whole = np.asarray(Image.open(io.BytesIO(snip_jpeg(rgb, box, opts, m))).convert("L"), np.int32)
        assert whole.min() > 190


def test_coco_export_writes_segmentation_for_masked_detections():
    pd = pytest.importorskip("pandas")
    from batch.export.formats import coco

    mask = _disc()
    images = pd.DataFrame([{"uri": "/a/seg.jpg", "rel_path": "seg.jpg", "status": "ok", "width": W, "height": H}])
    dets = pd.DataFrame([{**r, "uri": "/a/seg.jpg", "content_id": "size=1"} for r in
                         result_fields(_record(mask))["detections"]])

    class TSet:
        model_name, model_version, filters_hash, classifiers, labels = "seg", "1", "f" * 16, [], ["animal"]
        metadata = {"model": {"labels": ["animal"]}}

    try:
        results, _ = coco(images, dets, TSet())
    except AttributeError as exc:  # the export's TableSet has more to it than this stand-in
        pytest.skip(f"stand-in table set lacks {exc}")
    assert results[0]["segmentation"] == {"size": [H, W], "counts": mask.counts}


def test_the_report_thumbnail_draws_the_mask_outline():
    from batch.review.thumbs import DrawBox, draw_boxes, mask_key

    mask = _disc()
    plain = Image.new("RGB", (W * 2, H * 2), "black")
    outlined = plain.copy()
    box = (20 / W, 10 / H, 20 / W, 20 / H)
    draw_boxes(plain, [DrawBox(*box, "", "#ff0000")])
    draw_boxes(outlined, [DrawBox(*box, "", "#ff0000", mask=mask_key(mask.model_dump()))])
    extra = (np.asarray(outlined)[..., 0] > 128) & ~(np.asarray(plain)[..., 0] > 128)
    ys, xs = np.nonzero(extra)
    assert len(ys) > 20  # the circle's outline, inside the box, at twice the mask's resolution
    assert ((xs / 2 - 30) ** 2 + (ys / 2 - 20) ** 2).max() < 11 ** 2
    assert mask_key(None) is None and mask_key(float("nan")) is None


def test_the_console_gets_the_mask_as_normalised_polygons():
    from model_store.tables.browse import _outline

    [ring] = _outline(_disc().model_dump())
    xs, ys = np.array([p[0] for p in ring]) * W, np.array([p[1] for p in ring]) * H
    assert len(ring) >= 6 and ((xs - 30) ** 2 + (ys - 20) ** 2).max() < 9.5 ** 2  # the disc of radius 8 at (30, 20)
    assert _outline(None) is None
