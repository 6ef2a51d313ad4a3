"""The archives and tables under the roots a job may use, for the console's job forms to pick from (a path picked,
not typed blind), each tables with the model versions it holds (a table set picked, not typed). A bounded walk: two
levels under each root, at most `MAX_LOCATIONS` entries, hidden and partition directories skipped, symlinks not
followed (a job's paths are checked again on submit, batch/jobs/paths.py).

The walk goes on below an archive: a project folder holds its photos beside its tables (`./samples` and
`./out/detections` under the working directory a service starts in), and the console finds tables by this walk
(batch/views/found_tables.py). Only tables end it: nothing below `images/`'s parent is a location of its own.
"""

from __future__ import annotations

import os
from typing import Any

from model_store.tables.archive import DEFAULT_EXTENSIONS as PICTURE_EXT  # what a reprocess would read
from model_store.tables.decisions import DECISIONS_DIR
from model_store.tables.deployments import DEPLOYMENTS_DIR
from model_store.tables.journal import ONLINE_DIR
from model_store.tables.lease import LEASES_DIR
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import IMAGES, RUNS_DIR

MAX_LOCATIONS = 300
DEPTH = 2
_SAMPLE = 200  # entries looked at in a directory to count its pictures
# What only trapline writes beside `images/`: a run's manifest, a lease, the online journal, people's decisions. A
# directory with `images/` and none of these (nor a model's partition in `images/`) is a website's or a benchmark's.
_TABLES_MARKS = (RUNS_DIR, LEASES_DIR, ONLINE_DIR, DECISIONS_DIR, DEPLOYMENTS_DIR)


def locations(roots: list[str]) -> dict[str, Any]:
    """Every directory under `roots` (to DEPTH levels) that is tables (trapline's `images/`: `_is_tables`) or an
    archive (pictures in it or one level down), and the roots themselves; below an archive too, since tables may lie
    beside its pictures."""
    out: list[dict[str, Any]] = []
    truncated = False
    for root in roots:
        if not os.path.isdir(root):
            continue
        todo = [(root, 0)]
        while todo:
            path, depth = todo.pop(0)
            if len(out) >= MAX_LOCATIONS:
                truncated = True
                break
            kind, pictures, children = _look(path)
            if kind != "directory" or depth == 0:
                out.append({"path": path, "kind": kind, "images": pictures,
                            "models": _models(path) if kind == "tables" else None})
            if kind != "tables" and depth < DEPTH:
                todo += [(c, depth + 1) for c in children]
    return {"roots": list(roots), "locations": out, "truncated": truncated}


def _look(path: str) -> tuple[str, int | None, list[str]]:
    try:
        entries = sorted(os.scandir(path), key=lambda e: e.name)[:_SAMPLE]
    except OSError:
        return "directory", None, []
    dirs = [e for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith((".", "_"))
            and "=" not in e.name]
    if any(d.name == IMAGES for d in dirs) and _is_tables(path, {e.name for e in entries}):
        return "tables", None, []
    pictures = sum(1 for e in entries if e.is_file() and os.path.splitext(e.name)[1].lower() in PICTURE_EXT)
    for d in dirs[:20]:
        try:
            pictures += sum(1 for e in os.scandir(d.path) if os.path.splitext(e.name)[1].lower() in PICTURE_EXT)
        except OSError:
            continue
    return ("archive" if pictures else "directory"), pictures or None, [d.path for d in dirs]


def _is_tables(path: str, names: set[str]) -> bool:
    """Whether a directory holding `images/` is trapline tables: a model's partition in `images/`, or a mark of
    trapline's beside it (tables a run started and has not committed to yet)."""
    if names & set(_TABLES_MARKS):
        return True
    try:
        return any(e.name.startswith("model_name=") and e.is_dir(follow_symlinks=False)
                   for e in os.scandir(os.path.join(path, IMAGES)))
    except OSError:
        return False


def _models(path: str) -> list[str]:
    """The model versions (NAME:VERSION) the tables hold for readers (`Tables.versions`: a listing, and a count of
    the sets' rows only for a version with retired or purged sets)."""
    try:
        return [f"{name}:{version}" for name, version in Tables(open_location(path)).versions()]
    except OSError:
        return []
