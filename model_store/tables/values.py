"""Where a table's rows become Python values: `records`. A missing value is None there, whatever the column's type.

pandas 3 reads a missing string as NaN (its `str` dtype) and an integer column with a null as floats, so a row taken
from a DataFrame by `to_dict` or `itertuples` hands NaN to whatever typed model or JSON answer comes next (the
Cameras page's 500 on a classification with no rank, issue 71). Arrow's own conversion keeps nulls as None, lists as
lists and timestamps as datetimes, so rows go through it: a DataFrame is taken back to Arrow first (pandas' NaN and
NaT read as nulls there)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pyarrow as pa


def records(rows: pa.Table | pd.DataFrame) -> list[dict[str, Any]]:
    """`rows` as one dict per row, a missing value as None in every column."""
    if isinstance(rows, pd.DataFrame):
        rows = pa.Table.from_pandas(rows, preserve_index=False)
    return rows.to_pylist()
