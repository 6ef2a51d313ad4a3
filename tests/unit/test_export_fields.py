"""The export's times formatted a column at once agree with the row-at-a-time formatting they replace."""

import pandas as pd
import pytest

from batch.export.fields import iso_time, iso_times

CAMERA_CLOCK = pd.Series(pd.to_datetime(
    ["2024-05-01 12:34:56.789", None, "1969-12-31 23:59:59.5", "2030-01-01 00:00:00"], format="ISO8601"))


def test_camera_clock_times_take_each_rows_offset_and_drop_the_fraction():
    offsets = ["+02:00", "Z", "-05:00", ""]
    assert iso_times(CAMERA_CLOCK, offsets) == ["2024-05-01T12:34:56+02:00", "", "1969-12-31T23:59:59-05:00",
                                                "2030-01-01T00:00:00"]
    assert iso_times(CAMERA_CLOCK, offsets) == [iso_time(t, o) for t, o in zip(CAMERA_CLOCK, offsets, strict=True)]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_times_with_a_zone_are_written_in_utc_whatever_offset_is_asked(zone):
    aware = CAMERA_CLOCK.dt.tz_localize("UTC").dt.tz_convert(zone)
    assert iso_times(aware, "+01:00") == ["2024-05-01T12:34:56Z", "", "1969-12-31T23:59:59Z", "2030-01-01T00:00:00Z"]
    assert iso_times(aware, "+01:00") == [iso_time(t, "+01:00") for t in aware]


def test_a_column_with_no_time_at_all():
    assert iso_times(pd.Series([None, None], dtype=object), "Z") == ["", ""]
    assert iso_times(pd.Series([], dtype="datetime64[us]"), "Z") == []
