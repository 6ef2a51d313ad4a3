"""Result sets over an archive's life (issue 59): a redo against the first run, the nothing-new rerun after it, and
the purge of one of several sets with the readers' time before and after.

`python -m benchmarks.result_sets [--images 10000] [--purge-rows 100000] [--sets 5] [--work DIR] [--out FILE]`

Part one, real runs (whole `trapline reprocess` processes on the local Ray, `--via actors`, the null detector
`bench-null:1`, benchmarks/bench_model.py) over `--images` hard links of one small JPEG (benchmarks/planning.py's
archive): the first run, a nothing-new rerun, `--redo --reason bench`, and a nothing-new rerun after the redo;
wall seconds, images/s (steady: from the first committed part) and peak RSS from outside.

Part two, no model: `--sets` result sets of `--purge-rows` image rows each, written by the product's own writer
(`write_results`, parts of `--rows-per-part` rows, as planning.py seeds its tables): the filters' own set and
`--sets - 1` whole redos of it, each with its record, as `--redo` leaves them. Timed: `trapline tables sets`; the
readers' time (the set readers take, resolved, and its current image rows read: `Tables.current_images`, best of
three); a nothing-new `reprocess --dry-run` into the newest set; `tables purge --dry-run` and the purge of the oldest
set (whole processes), with the bytes reclaimed; then the readers' time and `tables sets` again.

Records the 1-minute load average around each step. Writes `--out` (JSON) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from batch.reprocess.job import run_metadata
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import plan_run
from benchmarks.bench_model import ensure_null_model
from benchmarks.common import DEFAULT_ROOT, DEFAULT_STORE, machine_info, markdown_table, timed_rss
from benchmarks.planning import build_archive, empty_results
from model_store import ModelStore
from model_store.core.provenance import provenance
from model_store.tables.commit import write_results
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.set_records import SetRecord, redo_hash, utcnow_text, write_record
from model_store.tables.table_set import resolve_table_set


def trapline(*args: str) -> dict[str, Any]:
    """One whole `trapline ...` process with --json: wall, peak RSS, load and its JSON output."""
    argv = [sys.executable, "-m", "trapline.cli", *args, "--json"]
    row = timed_rss(argv)
    return {"wall_s": row["wall_s"], "peak_rss_mib": row["peak_rss_mib"], "load": row["load"],
            "report": json.loads(row["stdout"]), "command": shlex.join(["trapline", *args])}


def runs(archive: Path, out: Path, store: str, ref: str) -> list[dict[str, Any]]:
    common = ["--archive", str(archive), "--out", str(out), "--model", ref, "--store", store, "--via", "actors"]
    rows = []
    for step, extra in (("first run", []), ("nothing new", []), ("redo", ["--redo", "--reason", "bench"]),
                        ("nothing new after the redo", [])):
        res = trapline("reprocess", *common, *extra)
        r = res.pop("report")
        rows.append({"step": step, "wall_s": res["wall_s"], "processed": r["processed"],
                     "already_done": r["already_done"], "images_per_s": r["images_per_s"],
                     "steady_images_per_s": r["steady_images_per_s"], "peak_rss_mib": res["peak_rss_mib"],
                     "load": res["load"], "set": r["filters_hash"], "command": res["command"]})
        print(f"{step}: {rows[-1]['wall_s']} s, {r['processed']} processed, {r['images_per_s']} images/s "
              f"(steady {r['steady_images_per_s']}), status {r['status']}, load {res['load']}", flush=True)
    return rows


def seed_sets(archive: Path, out: Path, store: str, ref: str, sets: int, rows_per_part: int) -> list[str]:
    """`sets` result sets of an `empty` row per file: the filters' own, then whole redos of it (with records)."""
    plan = plan_run(ReprocessOptions(archive=str(archive), out=str(out), model=ref, store=store))
    todo, mv, lineage = plan.selection.todo.table, plan.model, plan.result_hash
    hashes, previous = [], None
    for i in range(sets):
        set_hash = lineage if i == 0 else redo_hash(lineage)
        meta = run_metadata(plan)
        meta["filters"] = {**meta["filters"], "hash": set_hash}
        for start in range(0, todo.num_rows, rows_per_part):
            write_results(empty_results(todo.slice(start, rows_per_part)), out_url=str(out), model_name=mv.name,
                          model_version=mv.version, model_sha256=mv.config.weights.sha256, filters_hash=set_hash,
                          run_id=f"20261127T0{i}0000Z-{i:06x}", metadata=meta)
        if i:
            write_record(Tables(open_location(str(out))).storage, SetRecord(
                model_name=mv.name, model_version=mv.version, set_hash=set_hash, lineage=lineage, redo_of=previous,
                reason=f"bench redo {i}", provenance=provenance(), state="whole", whole_at=utcnow_text()))
        hashes.append(set_hash)
        previous = set_hash
        print(f"seeded set {i + 1}/{sets}: {set_hash}", flush=True)
    return hashes


def readers_s(out: Path, ref: str) -> tuple[float, str, int]:
    """Best of three: the set readers take, resolved, and its current image rows read."""
    best, chosen, rows = float("inf"), "", 0
    for _ in range(3):
        t0 = time.perf_counter()
        tables = Tables(open_location(str(out)))
        tset = resolve_table_set(tables, ref)
        rows = len(tables.current_images(tset.model_name, tset.model_version, tset.filters_hash))
        best, chosen = min(best, time.perf_counter() - t0), tset.filters_hash
    return round(best, 3), chosen, rows


def purge_steps(archive: Path, out: Path, store: str, ref: str, hashes: list[str]) -> list[dict[str, Any]]:
    rows = []

    def add(step: str, wall: float, load: float | None = None, **more: Any) -> None:
        rows.append({"step": step, "wall_s": wall, "load": load, **more})
        print(f"{step}: {wall} s {more}", flush=True)

    res = trapline("tables", "sets", "--tables", str(out), "--store", store)
    add("tables sets (before)", res["wall_s"], res["load"], sets=len(res["report"]),
        bytes=sum(s["bytes"] for s in res["report"]))
    wall, chosen, n = readers_s(out, ref)
    add("readers (before)", wall, os.getloadavg()[0], set=chosen, images=n)
    res = trapline("reprocess", "--archive", str(archive), "--out", str(out), "--model", ref, "--store", store,
                   "--dry-run")
    add("reprocess --dry-run (nothing new, into the newest redo)", res["wall_s"], res["load"],
        to_process=res["report"]["to_process"], set=res["report"]["filters_hash"])
    victim = hashes[0]
    res = trapline("tables", "purge", victim, "--tables", str(out), "--store", store, "--dry-run")
    add("tables purge --dry-run", res["wall_s"], res["load"], bytes=res["report"]["bytes_reclaimed"],
        files=res["report"]["files"])
    res = trapline("tables", "purge", victim, "--tables", str(out), "--store", store)
    add("tables purge", res["wall_s"], res["load"], bytes=res["report"]["bytes_reclaimed"],
        files=res["report"]["files"], images=res["report"]["images"])
    wall, chosen, n = readers_s(out, ref)
    add("readers (after)", wall, os.getloadavg()[0], set=chosen, images=n)
    res = trapline("tables", "sets", "--tables", str(out), "--store", store)
    add("tables sets (after)", res["wall_s"], res["load"], sets=len(res["report"]),
        bytes=sum(s["bytes"] for s in res["report"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.result_sets", description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=10_000, help="files of the real runs (0: skip them)")
    p.add_argument("--purge-rows", type=int, default=100_000, help="image rows of each seeded set (0: skip)")
    p.add_argument("--sets", type=int, default=5)
    p.add_argument("--rows-per-part", type=int, default=1000)
    p.add_argument("--cameras", type=int, default=100)
    p.add_argument("--store", default=str(DEFAULT_STORE))
    p.add_argument("--work", default=str(DEFAULT_ROOT / "result-sets"))
    p.add_argument("--out", default=str(DEFAULT_ROOT / "result-sets.json"))
    args = p.parse_args(argv)
    work = Path(args.work)
    ref = ensure_null_model(ModelStore(args.store))
    result: dict[str, Any] = {"machine": machine_info(), "command": shlex.join(
        ["python", "-m", "benchmarks.result_sets", *(argv or sys.argv[1:])])}
    if args.images:
        archive = build_archive(work / f"archive-{args.images}", args.images, args.cameras)
        out = work / f"runs-{args.images}"
        shutil.rmtree(out, ignore_errors=True)
        result["runs"] = runs(archive, out, args.store, ref)
        print(markdown_table(result["runs"], ["step", "wall_s", "processed", "already_done", "images_per_s",
                                              "steady_images_per_s", "peak_rss_mib", "load"]))
    if args.purge_rows:
        archive = build_archive(work / f"archive-{args.purge_rows}", args.purge_rows, args.cameras)
        out = work / f"sets-{args.purge_rows}"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        hashes = seed_sets(archive, out, args.store, ref, args.sets, args.rows_per_part)
        print(f"seeded {args.sets} sets in {time.perf_counter() - t0:.0f} s", flush=True)
        result["purge"] = purge_steps(archive, out, args.store, ref, hashes)
        print(markdown_table(result["purge"], ["step", "wall_s", "bytes", "files", "images", "to_process", "load"]))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
