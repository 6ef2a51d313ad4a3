"""How detection-table rows become export fields: boxes clipped to the image, ISO times with an
offset, a classification's taxon. Shared by every export format (batch/export/formats.py, batch/export/camtrap.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from model_store.tables.schema import UTC_TIME_SOURCES


def clip_box(x: float, y: float, w: float, h: float) -> tuple[float, float, float, float]:
    """A normalised [x, y, w, h] box clipped to the image (every format requires boxes inside it)."""
    x0, y0 = min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)
    x1, y1 = min(max(x + w, 0.0), 1.0), min(max(y + h, 0.0), 1.0)
    return x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0)


def box_of(d: Any) -> tuple[float, float, float, float]:
    """A detection row's normalised box, clipped."""
    return clip_box(float(d.bbox_x), float(d.bbox_y), float(d.bbox_w), float(d.bbox_h))


def iso_time(ts: Any, offset: str) -> str:
    """A timestamp as ISO 8601 with `offset` (a tz-aware one in UTC, `Z`); "" for a missing one."""
    if ts is None or pd.isna(ts):
        return ""
    ts = pd.Timestamp(ts)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
        offset = "Z"
    return ts.strftime("%Y-%m-%dT%H:%M:%S") + offset


def iso_times(values: pd.Series, offsets: str | Sequence[str]) -> list[str]:
    """`iso_time` over a whole column at once, in Arrow: a media row each for a million images cost the export
    ~15 s of Python as one `pd.Timestamp` a row. `offsets`: one for all, or one a row."""
    arr = pa.array(values, from_pandas=True)
    if not pa.types.is_timestamp(arr.type):
        arr = pa.array(pd.to_datetime(values), from_pandas=True)
    if arr.type.tz is not None:
        arr, offsets = arr.cast(pa.timestamp(arr.type.unit, "UTC")), "Z"
    # whole seconds, floored as strftime's %S would (Arrow's %S prints the fraction of a sub-second unit)
    seconds = pc.floor_temporal(arr, unit="second").cast(pa.timestamp("s", arr.type.tz))
    text = pc.strftime(seconds, format="%Y-%m-%dT%H:%M:%S")
    tail = offsets if isinstance(offsets, str) else pa.array(offsets, pa.string())
    return pc.fill_null(pc.binary_join_element_wise(text, tail, ""), "").to_pylist()


def capture_offset(source: Any, offset: str) -> str:
    """The UTC offset of a capture time: `offset` (--timezone) for the camera's clock (path, EXIF, an upload's
    captured_at), `Z` for the times recorded in UTC (a file's mtime, an upload's time of receipt)."""
    return "Z" if source in UTC_TIME_SOURCES else offset


def scientific_name(row: dict) -> str:
    """Camtrap DP scientificName of a classification: its taxon (the taxonomy path's end), else its label."""
    path = row.get("taxon_path")
    path = [] if path is None else list(path)  # a numpy array when read through pandas
    return path[-1] if path else row["label"]
