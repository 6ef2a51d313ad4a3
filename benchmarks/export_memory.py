"""Export peak memory against archive size, per format (issue 59, deliverable 7: exports stream).

`python -m benchmarks.export_memory [--counts 10000,100000] [--formats megadetector,coco,camtrap-dp]
[--detections 2] [--cameras 100] [--work DIR] [--out FILE]`

The archive is `benchmarks.planning`'s (one small JPEG hard-linked COUNT times into `--cameras` camera folders);
its tables are **seeded** through the job's own writer (`write_results`), as a finished run of the null model
would leave them, but with `--detections` kept boxes on every image (labels alternating, scores spread), so that
each format has rows to write: what is measured is the export, not the run. Each export is one whole
`trapline export --format F` process timed from outside (wall seconds, its own peak RSS from /proc's VmHWM, the
1-minute load around it); a process passing `--cap-mib` is killed and marked *not bounded*. Prints one row per
(count, format) and each format's peak against its peak at the smallest count (the target: at 100,000 images
at most 1.5x the 10,000-image peak; a 1,000,000-image MegaDetector export under 1 GiB).
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from batch.reprocess.job import run_metadata
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import plan_run
from benchmarks.bench_model import ensure_null_model
from benchmarks.common import DEFAULT_ROOT, DEFAULT_STORE, machine_info, markdown_table, timed_rss, write_json
from benchmarks.planning import build_archive
from model_store import ModelStore
from model_store.tables.commit import write_results
from model_store.tables.schema import RESULT_SCHEMA

FORMATS = ("megadetector", "coco", "camtrap-dp")
ROWS_PER_PART = 10_000  # a real run's parts, compacted (row groups of 10,000 rows)
SEED_LABELS = ("animal", "person")


def seed_with_detections(archive: Path, out: Path, store: str, ref: str, per_image: int) -> int:
    """Every file of the archive as an `ok` result row with `per_image` kept detections, written by the job's own
    writer into `out` (as a finished run of `ref` would leave it)."""
    plan = plan_run(ReprocessOptions(archive=str(archive), out=str(out), model=ref, store=store))
    todo, mv = plan.selection.todo.table, plan.model
    det_type = RESULT_SCHEMA.field("detections").type
    rng = np.random.default_rng(0)
    for start in range(0, todo.num_rows, ROWS_PER_PART):
        part = todo.slice(start, ROWS_PER_PART)
        n = part.num_rows
        scores = rng.uniform(0.2, 0.99, (n, per_image))
        dets = [[{"detection_index": k, "label": SEED_LABELS[k % 2], "class_id": k % 2, "score": float(scores[i, k]),
                  "bbox_x": 0.1 + 0.05 * k, "bbox_y": 0.2, "bbox_w": 0.3, "bbox_h": 0.25, "kept": True, "flags": []}
                 for k in range(per_image)] for i in range(n)]
        columns = {
            **{k: part[k] for k in ("uri", "rel_path", "content_id", "size_bytes", "camera_id",
                                    "capture_time_source")},
            "capture_time": part["capture_time_us"].cast(pa.timestamp("us")),
            "width": pa.array([64] * n, pa.int32()), "height": pa.array([48] * n, pa.int32()),
            "status": pa.array(["ok" if per_image else "empty"] * n),
            "detection_count": pa.array([per_image] * n, pa.int32()),
            "raw_detection_count": pa.array([per_image] * n, pa.int32()),
            "detections": pa.array(dets, det_type),
        }
        table = pa.table({f.name: columns.get(f.name, pa.nulls(n, f.type)) for f in RESULT_SCHEMA},
                         schema=RESULT_SCHEMA)
        write_results(table, out_url=str(out), model_name=mv.name, model_version=mv.version,
                      model_sha256=mv.config.weights.sha256, filters_hash=plan.result_hash, run_id="seeded",
                      metadata=run_metadata(plan))
    return todo.num_rows


def export_argv(fmt: str, tables: Path, out: Path, ref: str, store: str) -> list[str]:
    extra = ["--allow-missing-deployments"] if fmt == "camtrap-dp" else []
    return [sys.executable, "-m", "trapline.cli", "export", "--tables", str(tables), "--model", ref, "--store",
            store, "--format", fmt, "--out", str(out), *extra]


def measure(count: int, args: argparse.Namespace, ref: str) -> list[dict[str, Any]]:
    work = Path(args.work)
    archive = build_archive(work / f"archive-{count}", count, args.cameras)
    tables = work / f"tables-{count}-d{args.detections}"
    if not (tables / ".seeded").exists():
        shutil.rmtree(tables, ignore_errors=True)
        t0 = time.perf_counter()
        seeded = seed_with_detections(archive, tables, args.store, ref, args.detections)
        (tables / ".seeded").touch()
        print(f"{count} images: {seeded} rows seeded in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for fmt in args.formats.split(","):
        out = work / f"export-{count}-{fmt}" / ("package" if fmt == "camtrap-dp" else "out.json")
        shutil.rmtree(out.parent, ignore_errors=True)
        argv = export_argv(fmt, tables, out, ref, args.store)
        res = timed_rss(argv, cap_mib=args.cap_mib)
        row = {"images": count, "format": fmt, "detections": count * args.detections, "wall_s": res["wall_s"],
               "peak_rss_mib": res["peak_rss_mib"], "load": res["load"], "command": shlex.join(argv[1:]),
               **({"over_cap": True} if res.get("over_cap") else {})}
        written = sum(p.stat().st_size for p in out.parent.rglob("*") if p.is_file()) if out.parent.exists() else 0
        row["bytes_written"] = written
        rows.append(row)
        print(f"{count} images, {fmt}: {row['wall_s']} s, peak RSS {row['peak_rss_mib']} MiB, "
              f"{written / 2**20:.0f} MiB written (load {row['load']})", flush=True)
        shutil.rmtree(out.parent, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.export_memory", description=__doc__.splitlines()[0])
    p.add_argument("--counts", default="10000,100000")
    p.add_argument("--formats", default=",".join(FORMATS))
    p.add_argument("--detections", type=int, default=2, help="kept detections seeded on every image")
    p.add_argument("--cameras", type=int, default=100)
    p.add_argument("--store", default=str(DEFAULT_STORE))
    p.add_argument("--work", default=str(DEFAULT_ROOT / "export-memory"))
    p.add_argument("--out", default=str(DEFAULT_ROOT / "export-memory.json"))
    p.add_argument("--cap-mib", type=float, default=6144, help="kill an export whose RSS passes this")
    args = p.parse_args(argv)
    ref = ensure_null_model(ModelStore(args.store))
    rows: list[dict[str, Any]] = []
    for count in (int(c) for c in args.counts.split(",") if c):
        rows += measure(count, args, ref)
    smallest = min(r["images"] for r in rows)
    base = {r["format"]: r["peak_rss_mib"] for r in rows if r["images"] == smallest}
    for r in rows:
        if isinstance(r["peak_rss_mib"], float) and isinstance(base.get(r["format"]), float):
            r[f"peak_vs_{smallest}"] = round(r["peak_rss_mib"] / base[r["format"]], 2)
    print(markdown_table(rows, ["images", "format", "wall_s", "peak_rss_mib", f"peak_vs_{smallest}", "load"]))
    write_json(args.out, {"machine": machine_info(), "rows": rows})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
