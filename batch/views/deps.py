"""What the views over a set of tables share: which tables a request reads (confined to the jobs' allowed roots) and
its time parameters."""

from __future__ import annotations

import datetime as dt

from fastapi import Query, Request

from batch.jobs.deps import control_of
from batch.postprocessing.occurrences import SetPlace
from batch.views.picture_queries import sources
from ground.errors import InvalidParameterError
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.scope import parse_when
from serve.deps import in_thread, service_of

TABLES = Query(None, description="the tables (default: the recorder's tables of the serve config, else the first "
                                  "tables the pictures views show: GET /v1/pictures/sources)")


async def tables_of(request: Request, tables: str | None) -> str:
    """The tables a route reads: `tables` (under the jobs' allowed roots) or, by default, the pictures views' own (the
    recorder's, else the first source: batch/views/picture_queries.py), so every page of the console opens on the
    same tables, the ones `trapline reprocess` wrote beside a service that records nothing included."""
    if tables is not None:
        return control_of(request).paths.check("tables", tables)
    config = service_of(request).config
    if config.record is not None:
        return config.record.tables
    found = await in_thread(sources, config)  # a walk of the jobs' roots (cached a few seconds): off the event loop
    if not found:
        raise InvalidParameterError("name the tables: the service records no uploads and found no tables under its "
                                    "jobs' roots whose tables would be the default", field="tables")
    return next(iter(found.values())).tables


async def opened_tables(request: Request, tables: str | None) -> Tables:
    """The tables a route reads (found as `tables_of` finds them), opened: what the route hands down."""
    return Tables(open_location(await tables_of(request, tables)))


async def set_place(request: Request, tables: str | None = TABLES, model: str | None = None,
                    filters_hash: str | None = None) -> SetPlace:
    """The result set a view reads, from its `tables`, `model` and `filters_hash` query parameters (the tables found
    or defaulted as `tables_of` does, the store the service's): a route takes it whole as a dependency."""
    return SetPlace(await opened_tables(request, tables), model, filters_hash, service_of(request).config.store)


def when_param(field: str, value: str | None, end_of_day: bool = False) -> dt.datetime | None:
    """A date or date-time query parameter; a bad one is a 422 naming `field`."""
    try:
        return parse_when(value, end_of_day)
    except ValueError as exc:
        raise InvalidParameterError(f"{field}: {exc}", field=field) from None
