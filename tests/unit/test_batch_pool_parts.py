"""The own pool's parts (`batch/reprocess/pool.py`): answers of any size, in any order, become parts of exactly
`rows_per_file` rows and a last one of what is left, every row once."""

from __future__ import annotations

import pyarrow as pa

from batch.reprocess.pool import _Parts


def test_answers_of_any_size_become_parts_of_exactly_rows_and_the_rest():
    parts, out = _Parts(5), []
    for start, size in ((0, 3), (3, 1), (4, 8), (12, 2), (14, 4)):  # 18 rows in answers of 3, 1, 8, 2, 4
        out += parts.add(pa.table({"i": list(range(start, start + size))}))
    last = parts.rest()
    assert [p.num_rows for p in out] == [5, 5, 5] and last is not None and last.num_rows == 3
    rows = [i for p in [*out, last] for i in p.column("i").to_pylist()]
    assert rows == list(range(18))


def test_nothing_left_over_makes_no_last_part():
    parts = _Parts(4)
    assert [p.num_rows for p in parts.add(pa.table({"i": list(range(8))}))] == [4, 4]
    assert parts.rest() is None
