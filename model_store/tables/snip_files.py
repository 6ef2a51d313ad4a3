"""Snip files: the JPEG crop of each kept detection, written beside the tables under a deterministic name
(a rerun overwrites), and the full-resolution image they are cut from, read again from the archive."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from model_store.core.crops import SnipSet, big_enough, crop_region, snip_jpeg, snip_path
from model_store.core.imaging import decode_image
from model_store.core.records import Detection
from model_store.tables.archive import cached_location


def write_snips(storage, rgb, ranked: Sequence[tuple[Detection, bool]], row: dict,
                snips: SnipSet) -> list[dict[str, Any]]:
    """Write the JPEG snip of each kept detection of one image (its `row`, its `ranked` detections) into `snips`'
    folder (deterministic names: a rerun overwrites); returns snip rows."""
    out = []
    h, w = rgb.shape[:2]
    options = snips.options
    for j, (det, kept) in enumerate(ranked):
        if not kept or not big_enough(det.box_px, options.min_side_px):
            continue
        parts = snip_path(row.get("rel_path"), row["uri"], row["content_id"], snips, j)
        storage.write_atomic(snip_jpeg(rgb, det.box_px, options, det.mask), *parts)
        x0, y0, x1, y1 = crop_region(det.box_px, w, h, options.padding, options.square)
        out.append({"detection_index": j, "crop_uri": storage.url(*parts), "crop_width": x1 - x0,
                    "crop_height": y1 - y0})
    return out


def read_image(uri: str, size_bytes: int | None, archive_url: str, max_pixels: int):
    """The full-resolution RGB image of a file the read stage saw (ImageDecodeError / OSError when it changed)."""
    fs = cached_location(archive_url).fs
    data = fs.cat_file(uri)
    if size_bytes is not None and size_bytes >= 0 and len(data) != size_bytes:
        raise OSError(f"{uri} changed during the run ({len(data)} bytes, listed with {size_bytes})")
    return decode_image(data, max_pixels)
