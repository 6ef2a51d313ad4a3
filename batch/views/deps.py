"""What the views over a set of tables share: which tables a request reads (confined to the jobs' allowed roots) and
its time parameters."""

from __future__ import annotations

import datetime as dt

from fastapi import Query, Request

from batch.jobs.deps import control_of
from model_store.tables.scope import parse_when
from serve.deps import service_of
from trapline.base.errors import InvalidParameterError

TABLES = Query(None, description="the tables (default: the recorder's tables of the serve config)")


def tables_of(request: Request, tables: str | None) -> str:
    """The tables a route reads: `tables` (under the jobs' allowed roots) or, by default, the recorder's."""
    if tables is not None:
        return control_of(request).paths.check("tables", tables)
    record = service_of(request).config.record
    if record is None:
        raise InvalidParameterError("name the tables: the service records no uploads whose tables would be the "
                                    "default", field="tables")
    return record.tables


def when_param(field: str, value: str | None, end_of_day: bool = False) -> dt.datetime | None:
    """A date or date-time query parameter; a bad one is a 422 naming `field`."""
    try:
        return parse_when(value, end_of_day)
    except ValueError as exc:
        raise InvalidParameterError(f"{field}: {exc}", field=field) from None
