"""Which tables the console's pictures come from (the sources a service knows, and any tables under the jobs' roots
picked by `?tables=`), and a page of cameras of one. The reads are the tables' own (model_store/tables/browse.py);
blocking I/O: the routes run these on a thread."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from batch.views.found_tables import archive_of, found_sources
from batch.views.picture_files import Source
from ground.errors import NotFoundError
from model_store.tables import browse
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables


def sources(config: Any) -> dict[str, Source]:
    """Every source of pictures the service knows: the recording's, each backfill's, `jobs.pictures`, then the tables
    found under the jobs' roots with the archive their own runs record (batch/views/found_tables.py): after
    `trapline reprocess` and `trapline serve` in one folder the console shows those pictures unconfigured."""
    out: dict[str, Source] = {}
    if config.record is not None:
        out["recording"] = Source("recording", "recording", config.record.tables, config.record.archive)
    cwd = config.jobs.working_dir or os.getcwd()
    for m in config.models:
        if m.on_promote is not None:
            r = m.on_promote.reprocess
            out[f"{m.name}-backfill"] = Source(f"{m.name}-backfill", "backfill", _abs(cwd, r["out"]),
                                               _abs(cwd, r["archive"]))
    for p in config.jobs.pictures:
        out[p.name] = Source(p.name, "configured", p.tables, p.archive)
    known = {os.path.realpath(s.tables) for s in out.values() if "://" not in s.tables}
    for name, source in found_sources(config.jobs.roots).items():
        if os.path.realpath(source.tables) not in known and name not in out:
            out[name] = source
    return out


def _abs(cwd: str, location: str) -> str:
    return location if "://" in location else os.path.realpath(os.path.join(cwd, location))


def pictures_of(config: Any, tables: str | None, confine: Callable[[str, str], str]) -> Source:
    """The tables a pictures route reads, picked as every view picks them (`?tables=`), with the archive their
    pictures come from: a known source's (the recording's, a backfill's, `jobs.pictures`) when `tables` is one of
    theirs, else tables under the jobs' roots (`confine`: the path policy, a 4xx naming `tables` outside them) with the
    archive their own newest reprocess recorded (found_tables.py; none recorded: rows shown, pictures not served).
    No `tables`: the first known source (the recording's when there is one, as the other views' default)."""
    found = sources(config)
    if tables is None:
        if not found:
            raise NotFoundError("no pictures are configured on this service and no tables were found under its jobs' "
                                "roots: run `trapline reprocess` into a folder under them, record uploads (`record:`), "
                                "or name tables and their archive in `jobs.pictures` of the serve config",
                                kind="no_sources")
        return next(iter(found.values()))
    for s in found.values():
        if tables == s.tables or ("://" not in tables and "://" not in s.tables
                                  and os.path.realpath(tables) == os.path.realpath(s.tables)):
            return s
    path = confine("tables", tables)
    return Source(os.path.basename(path.rstrip("/")) or "tables", "found", path, archive_of(path) or "")


# -- cameras -----------------------------------------------------------------------------------------------------
def cameras(source: Source, limit: int, offset: int, model: str | None) -> dict[str, Any]:
    """A page of cameras (by id) with counts and, for each, its newest capture with its kept boxes and snips."""
    tables = Tables(open_location(source.tables))
    page = browse.cameras(tables, limit, offset)
    tiles = browse.latest_many(tables, [c["camera"] for c in page["cameras"]], model)
    page["cameras"] = [{**c, "latest": tiles.get(c["camera"])} for c in page["cameras"]]
    return page


