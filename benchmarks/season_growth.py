"""What a season adds that an hour's soak does not, grown 100×: the memory a running service keeps must not follow it
(issue 87, item 3).

    python -m benchmarks.season_growth [--scale 100] [--out bench-results/season_growth.json]

A service that runs all season holds, per process, what it read of things that only grow: the tables (one part per
recorder flush or run), the runs' manifests (`_runs/`), the people's decisions log, the digest book (files confirmed
by content), and the people registry's `last_used/` files (one per replica start). Each is written here at a base size
and at `--scale` times it, in a fresh directory, and the long-lived reader the service keeps is built over it and
refreshed as the service does:

- the season watcher (`model_store/tables/season.py` `Season`, the one behind /metrics and the season health): parts,
  manifests and decisions grown together; its retained memory after two refreshes, and the gauges it renders
  (series on /metrics: they follow cameras, models and sets, not rows);
- the people view (`serve/people.py` `PeopleView`, each replica's): `last_used/` files grown;
- the digest book read by a plan (`tables/digests.py` `read_book`) for a fixed 100 files, the book grown.

Memory is Python's own (tracemalloc: bytes still allocated after `gc.collect()` with the reader alive, the peak of one
refresh apart), so the figure is the reader's, not the process's. A reader "does not follow" when its retained bytes
at `--scale`× stay under 10× (a tenth of the growth) of the base's plus 1 MiB; per-item bytes are printed either way.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import json
import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import machine_info, write_json
from benchmarks.season_metrics import rows
from model_store.tables.archive import open_location
from model_store.tables.commit import write_results
from model_store.tables.decisions import DecisionsLog, DetectionKey, RejectDetection, make
from model_store.tables.digests import read_book, record_book
from model_store.tables.manifest import RunManifest, new_run_id, write_manifest
from model_store.tables.season import Season
from serve.people import LAST_USED_DIR, PeopleRegistry, PeopleView

BASE = {"parts": 20, "runs": 20, "decisions": 50, "last_used_files": 5, "book_rows": 1000}
MIB = 2**20


@contextlib.contextmanager
def traced() -> Iterator[dict[str, int]]:
    """Bytes allocated by the block and still held at its end (after a collection), and its peak."""
    out: dict[str, int] = {}
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield out
    finally:
        gc.collect()
        now, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out["retained"], out["peak"] = now - base, peak - base


def grow_tables(root: Path, n: dict[str, int]) -> str:
    """`parts` parts of 200 image rows on 10 cameras, `runs` finished manifests, `decisions` decisions."""
    out = str(root / "tables")
    for i in range(n["parts"]):
        write_results(rows(i * 200, 200, 10), out_url=out, model_name="bench", model_version="1",
                      model_sha256="0" * 64, filters_hash="f" * 16, run_id=f"seed{i:08d}", metadata={})
    storage = open_location(out)
    start = dt.datetime(2026, 4, 1, tzinfo=dt.timezone.utc)
    for i in range(n["runs"]):
        m = RunManifest.start(new_run_id(start + dt.timedelta(hours=i)), "record", out=out,
                              arguments={"note": "x" * 200}, counts={"processed": 200, "failed": 2})
        m.status, m.ended_at = "succeeded", m.updated_at
        write_manifest(storage, m)
    log = DecisionsLog(storage)
    for i in range(n["decisions"]):
        key = DetectionKey(uri=f"/archive/{i}.jpg", content_id="size=1", detection_index=0)
        log.append(make(RejectDetection, "bench", None, detection=key, model="bench:1", filters_hash="f" * 16))
    return out



def measure_season(root: Path, n: dict[str, int]) -> dict[str, Any]:
    tables = grow_tables(root, n)
    with traced() as mem:
        season = Season(tables, clock_every_s=1e9)  # the clock checks: a read per interval, no state kept
        season.refresh()
        season.refresh()  # the second, with nothing new: what stays between refreshes
    signals = season.signals()
    series = len(signals.cameras) * 4 + len(signals.table_bytes) + len(signals.runs)
    return {"retained_bytes": mem["retained"], "peak_bytes": mem["peak"], "gauge_series": series,
            "images": sum(c.images for c in signals.cameras.values()), "up": signals.up, "error": signals.error}


def measure_people(root: Path, n: dict[str, int]) -> dict[str, Any]:
    location = str(root / "_people")
    PeopleRegistry(location).add("ann", "reviewer")
    storage = open_location(location)
    storage.makedirs(LAST_USED_DIR)
    for i in range(n["last_used_files"]):
        storage.write_atomic(json.dumps({"ann": "2026-06-01T00:00:00+00:00"}).encode(), LAST_USED_DIR,
                             f"replica{i:06d}.json")
    with traced() as mem:
        view = PeopleView(location, refresh_s=3600)
        for _ in range(3):
            view.refresh()
    view.close()
    return {"retained_bytes": mem["retained"], "peak_bytes": mem["peak"]}


def measure_book(root: Path, n: dict[str, int]) -> dict[str, Any]:
    storage = open_location(str(root / "book-tables"))
    storage.makedirs()
    for start in range(0, n["book_rows"], 1000):  # a part per run that confirmed files, as the runs add them
        record_book(storage, [(f"/archive/{i}.jpg", "size=1", f"{i:064x}") for i in range(start, start + 1000)])
    asked = [f"/archive/{i}.jpg" for i in range(100)]
    with traced() as mem:
        found = read_book(storage, asked)
    return {"retained_bytes": mem["retained"], "peak_bytes": mem["peak"], "found": len(found)}


# each reader, how it is measured and the stores whose growth it is judged against
READERS = {"season watcher (parts, manifests, decisions)": (measure_season, ("parts", "runs", "decisions")),
           "people view (last_used files)": (measure_people, ("last_used_files",)),
           "digest book (100 files asked)": (measure_book, ("book_rows",))}


def follows(base: int, grown: int, scale: int) -> bool:
    """Whether retained memory follows the growth: over a tenth of it (and over 1 MiB more than the base)."""
    return grown > base * max(1.0, scale / 10) + MIB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=100, help="how many times the base each store grows")
    parser.add_argument("--out", default=None, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    grown = {k: v * args.scale for k, v in BASE.items()}
    result: dict[str, Any] = {"machine": machine_info(), "base": BASE, "scale": args.scale, "readers": {}}
    failed = []
    for name, (measure, stores) in READERS.items():
        with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
            small, large = measure(Path(a), BASE), measure(Path(b), grown)
        grew = follows(small["retained_bytes"], large["retained_bytes"], args.scale)
        items = sum(grown[k] - BASE[k] for k in stores)
        per_item = (large["retained_bytes"] - small["retained_bytes"]) / items
        result["readers"][name] = {"base": small, "grown": large, "follows": grew,
                                   "retained_bytes_per_added_item": round(per_item, 1)}
        print(f"{name}: retained {small['retained_bytes'] / 1024:.1f} KiB -> {large['retained_bytes'] / 1024:.1f} KiB "
              f"at {args.scale}x (peak of a refresh {small['peak_bytes'] / MIB:.1f} -> "
              f"{large['peak_bytes'] / MIB:.1f} MiB), {per_item:+.0f} B kept per added {'/'.join(stores)} item"
              f"{'  FOLLOWS the growth' if grew else ''}")
        for key in ("gauge_series", "images"):
            if key in small:
                print(f"  {key}: {small[key]} -> {large[key]}")
        failed += [name] if grew else []
    if args.out:
        write_json(Path(args.out), result)
    print("memory follows the season in: " + ", ".join(failed) if failed else
          f"no reader's memory follows the season ({args.scale}x every store)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
