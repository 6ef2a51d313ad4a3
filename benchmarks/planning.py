"""Planning a run over a large archive: `trapline reprocess --dry-run` at 100,000 and 1,000,000 files (issue 34).

`python -m benchmarks.planning [--counts 100000,1000000] [--cameras 100] [--work DIR] [--out FILE]`

The archive is one small JPEG hard-linked COUNT times into `--cameras` camera folders (each link is a file of
its own to the listing: its own path, so its own key; building a million takes a minute and no space). The
model is the null detector (`bench-null:1`, benchmarks/bench_model.py). Each count is timed twice, each a whole
`trapline reprocess --archive A --out O --model bench-null:1 --dry-run` process from outside (wall seconds and
the process's peak RSS from `wait4`), against:

- `empty`: tables with nothing in them (the first run's plan: list everything, all of it to do);
- `done`: tables that already hold a row for every file (a rerun with nothing new: list, look every file up
  by key); then the same rerun for real (no --dry-run: its lease, manifest and orphan sweep too). The rows
  are written once by the product's own writer (`write_results`, fenced off) as `empty`
  results of that model version and filter set, not by running the model a million times: what planning
  reads of them (the key and status columns) is the same.

The archives and the seeded tables are kept under `--work` and reused (`--prepare-only` makes them, timing
nothing, so that they can be built niced while another benchmark holds the machine).
Records the 1-minute load average around each process. Writes `--out` (JSON) and prints a table.
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

import cv2
import numpy as np
import pyarrow as pa

from batch.reprocess.job import run_metadata
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import plan_run
from benchmarks.bench_model import ensure_null_model
from benchmarks.common import DEFAULT_ROOT, DEFAULT_STORE, machine_info, markdown_table, timed_rss
from model_store import ModelStore
from model_store.tables.commit import write_results
from model_store.tables.schema import RESULT_SCHEMA

ROWS_PER_PART = 100_000
LINKS_PER_SOURCE = 60_000  # rows of each seeded part (a real run writes parts of --rows-per-file)


def build_archive(root: Path, count: int, cameras: int) -> Path:
    """`count` hard links of one small JPEG under root/camNNN/IMG_NNNNNNN.jpg (kept when already complete)."""
    done = root / f".complete-{count}-{cameras}"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    ok, jpeg = cv2.imencode(".jpg", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    for c in range(cameras):
        (root / f"cam{c:03d}").mkdir()
    for i in range(count):
        if i % LINKS_PER_SOURCE == 0:  # ext4 allows 65,000 links to one inode: a fresh copy every 60,000
            source = root.parent / f"{root.name}-source-{i // LINKS_PER_SOURCE}.jpg"
            source.write_bytes(jpeg.tobytes())
        os.link(source, root / f"cam{i % cameras:03d}" / f"IMG_{i:07d}.jpg")
    done.touch()
    return root


def empty_results(part: pa.Table) -> pa.Table:
    """An `empty` result (no detection) for every listing entry of `part`, as the detector stage would give it."""
    n = part.num_rows
    columns = {
        **{k: part[k] for k in ("uri", "rel_path", "content_id", "size_bytes", "camera_id", "capture_time_source")},
        "capture_time": part["capture_time_us"].cast(pa.timestamp("us")),
        "width": pa.array([64] * n, pa.int32()), "height": pa.array([48] * n, pa.int32()),
        "status": pa.array(["empty"] * n), "detection_count": pa.array([0] * n, pa.int32()),
        "raw_detection_count": pa.array([0] * n, pa.int32()),
        "detections": pa.array([[]] * n, RESULT_SCHEMA.field("detections").type),
    }
    return pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in RESULT_SCHEMA}, schema=RESULT_SCHEMA)


def seed_done(archive: Path, out: Path, store: str, ref: str, rows_per_part: int = ROWS_PER_PART) -> int:
    """Write an `empty` result row for every file of the archive into `out`, as a finished run would have."""
    plan = plan_run(ReprocessOptions(archive=str(archive), out=str(out), model=ref, store=store))
    todo, mv = plan.selection.todo.table, plan.model
    for start in range(0, todo.num_rows, rows_per_part):
        write_results(empty_results(todo.slice(start, rows_per_part)), out_url=str(out), model_name=mv.name,
                      model_version=mv.version, model_sha256=mv.config.weights.sha256,
                      filters_hash=plan.result_hash, run_id="seeded", metadata=run_metadata(plan))
    return todo.num_rows


def timed_dry_run(archive: Path, out: Path, store: str, ref: str, dry_run: bool = True) -> dict[str, Any]:
    """One whole `trapline reprocess [--dry-run]` process: wall seconds, peak RSS (MiB) and its report."""
    argv = [sys.executable, "-m", "trapline.cli", "reprocess", "--archive", str(archive), "--out", str(out),
            "--model", ref, "--store", store, *(["--dry-run"] if dry_run else []), "--json"]
    row = timed_rss(argv)  # its own VmHWM: wait4's ru_maxrss would start at this runner's peak
    output = row["stdout"]
    report = json.loads(output)
    return {"wall_s": row["wall_s"], "peak_rss_mib": row["peak_rss_mib"],
            "found": report["found"], "to_process": report["to_process"], "already_done": report["already_done"],
            "load": row["load"], "command": shlex.join(argv[1:])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.planning", description=__doc__.splitlines()[0])
    p.add_argument("--counts", default="100000,1000000")
    p.add_argument("--cameras", type=int, default=100)
    p.add_argument("--store", default=str(DEFAULT_STORE))
    p.add_argument("--work", default=str(DEFAULT_ROOT / "planning"))
    p.add_argument("--out", default=str(DEFAULT_ROOT / "planning.json"))
    p.add_argument("--prepare-only", action="store_true",
                   help="build the archives and seed the done tables (kept for later runs), time nothing")
    args = p.parse_args(argv)
    work = Path(args.work)
    ref = ensure_null_model(ModelStore(args.store))
    rows = []
    for count in (int(c) for c in args.counts.split(",") if c):
        t0 = time.perf_counter()
        archive = build_archive(work / f"archive-{count}", count, args.cameras)
        print(f"{count} files: archive ready in {time.perf_counter() - t0:.0f} s", flush=True)
        empty, done = work / f"tables-empty-{count}", work / f"tables-done-{count}"
        shutil.rmtree(empty, ignore_errors=True)
        if not (done / ".seeded").exists():
            shutil.rmtree(done, ignore_errors=True)
            seeded = seed_done(archive, done, args.store, ref)
            (done / ".seeded").touch()
            print(f"{count} files: {seeded} rows seeded", flush=True)
        if args.prepare_only:
            continue
        for kind, out, dry in (("empty", empty, True), ("done", done, True), ("done, real run", done, False)):
            res = timed_dry_run(archive, out, args.store, ref, dry)
            rows.append({"files": count, "tables": kind, **res})
            print(f"{count} files, {kind} tables: {res['wall_s']} s, peak RSS {res['peak_rss_mib']} MiB, "
                  f"{res['to_process']} to process (load {res['load']})", flush=True)
    result = {"machine": machine_info(), "command": shlex.join(["python", "-m", "benchmarks.planning",
                                                                *(argv or sys.argv[1:])]), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown_table(rows, ["files", "tables", "wall_s", "peak_rss_mib", "to_process", "already_done", "load"]))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
