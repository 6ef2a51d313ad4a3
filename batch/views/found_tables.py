"""Tables under the jobs' roots that show their pictures without being configured: each with the archive its newest
reprocess read, as that run's manifest records it (`source`), so the tables' own record says where their pictures
are. The walk is the job forms' (batch/jobs/locations.py: bounded, symlinks not followed), cached for a few seconds
since every console page asks for the sources."""

from __future__ import annotations

import os
import re
import threading
import time

from batch.jobs.locations import locations
from batch.views.picture_files import Source
from ground.errors import ArchiveError
from model_store.tables.locations import open_location
from model_store.tables.manifest import read_manifests

TTL_S = 10.0  # a new reprocess's tables show within this
_cache: dict[tuple[str, ...], tuple[float, dict[str, Source]]] = {}
_lock = threading.Lock()


def found_sources(roots: list[str]) -> dict[str, Source]:
    """`{name: Source}` for every tables under `roots` whose reprocess runs name a local archive that is there."""
    key = tuple(roots)
    with _lock:
        hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < TTL_S:
        return hit[1]
    out: dict[str, Source] = {}
    for loc in locations(list(roots))["locations"]:
        if loc["kind"] != "tables":
            continue
        archive = archive_of(loc["path"])
        if archive is None:
            continue
        name = _name(loc["path"], roots, out)
        out[name] = Source(name, "found", loc["path"], archive)
    with _lock:
        _cache[key] = (time.monotonic(), out)
    return out


def archive_of(tables: str) -> str | None:
    """The local archive the newest reprocess into `tables` read, when it is still there."""
    try:
        runs = read_manifests(open_location(tables))
    except (OSError, ArchiveError):  # gone, or not a location trapline opens
        return None
    for m in reversed(runs):
        if m.kind != "reprocess" or not m.source:
            continue
        path = m.source.removeprefix("file://")
        return path if "://" not in path and os.path.isdir(path) else None
    return None


def _name(path: str, roots: list[str], taken: dict[str, Source]) -> str:
    """A source name (pictures_protocol's NAME) from the tables' path under its root: `out/detections` ->
    `out-detections`."""
    root = next((r for r in roots if path.startswith(r.rstrip(os.sep) + os.sep)), os.path.dirname(path))
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", os.path.relpath(path, root)).strip("-.") or "tables"
    base = ("t" + base if not base[0].isalnum() else base)[:60]
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name
