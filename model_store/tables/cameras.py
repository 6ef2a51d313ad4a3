"""Camera ids: one stated default for images that have none.

A file directly under the archive root (and a `--path-pattern` without a `camera` group that
leaves nothing to fall back on) has no camera. Such images get `DEFAULT_CAMERA_ID`, in the
tables the listing writes and in every reader (events, exports, report), so an id is never a
pandas NaN or None turned into the text "nan" / "None".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

DEFAULT_CAMERA_ID = "unknown"


def camera_or_default(value: Any) -> str:
    """A camera id as text; `DEFAULT_CAMERA_ID` for None, NaN or ""."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return DEFAULT_CAMERA_ID
    text = str(value)
    return text if text else DEFAULT_CAMERA_ID


def fill_camera_ids(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its `camera_id` column filled with the default where missing (tables written before it)."""
    if "camera_id" not in frame.columns or frame.empty:
        return frame
    return frame.assign(camera_id=[camera_or_default(v) for v in frame["camera_id"]])


def camera_codes(cameras: pa.Array, codes: dict[str, int]) -> np.ndarray:
    """Each row's camera as an integer code, the same for a camera in every batch: `codes` (id -> code) grows with the
    cameras first seen here. Nulls must be filled first (each caller has its own rule for a missing id)."""
    encoded = cameras.dictionary_encode()
    recode = np.array([codes.setdefault(c, len(codes)) for c in encoded.dictionary.to_pylist()], np.int64)
    return recode[np.asarray(encoded.indices, dtype=np.int64)]
