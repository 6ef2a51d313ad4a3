"""The content digest's cost (issue 68, deliverable 4): at each image's first read, and confirming a moved archive.

`python -m benchmarks.archive_digests [--images 10000] [--work DIR] [--out FILE]`

1. First read: for one synthetic 1080p camera-trap JPEG (benchmarks/images.py), the sha256 the read stage now
   takes of the bytes it read, against what a reprocess does with the same bytes anyway: decode + letterbox
   (`Detector.prepare_bytes`) and one forward pass of `bench-yolov8n:1` (YOLOv8n's compute, 1 thread). Medians.
2. A moved archive: `--images` files under 100 camera folders (one 640x480 camera-trap JPEG, each file its own
   bytes: a serial number after the JPEG's end, which decoders ignore), done by a first run (an `empty` row per
   file with the digest the read stage records, written by the product's `write_results`, as
   benchmarks/planning.py seeds its tables); the archive copied as `cp -r` does (no times kept); then the plan of
   a rerun over the copy (`plan_run`: listing, done-check, the confirming pass): its wall time, the files and
   bytes it read, and the images left to infer (0). Then the same plan again (the digest book learnt the copy:
   nothing read) and the unmoved archive's rerun plan for reference. The copy was just written: its bytes are in
   the page cache, as an archive being read from a local disk a second time would be; a bucket's latency is not in
   these figures.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import shutil
import statistics
import time
from pathlib import Path

import cv2
import pyarrow as pa

from batch.reprocess.job import run_metadata
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import plan_run
from benchmarks.bench_model import ensure_bench_models, ensure_null_model
from benchmarks.common import DEFAULT_ROOT, DEFAULT_STORE, machine_info, markdown_table, write_json
from benchmarks.images import camera_trap_frame
from benchmarks.planning import empty_results
from model_store import ModelStore
from model_store.core.imaging import DEFAULT_MAX_PIXELS
from model_store.tables.commit import write_results
from model_store.tables.digests import content_digest, record_book


def _median_ms(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1e3, 3)


def first_read(store: ModelStore, repeats: int) -> dict:
    """Per image: sha256, decode + letterbox, and a forward pass of bench-yolov8n:1 (1 thread), in ms."""
    ref = ensure_bench_models(store, [""], verbose=False)[0]
    detector = store.load_detector(ref, threads=1)
    ok, jpeg = cv2.imencode(".jpg", camera_trap_frame(0, (1920, 1080)), [cv2.IMWRITE_JPEG_QUALITY, 90])
    data = jpeg.tobytes()
    prepared, meta = detector.prepare_bytes(data, DEFAULT_MAX_PIXELS)
    detector.run_prepared([prepared], [meta])  # warm
    digest = _median_ms(lambda: content_digest(data), repeats)
    decode = _median_ms(lambda: detector.prepare_bytes(data, DEFAULT_MAX_PIXELS), repeats)
    infer = _median_ms(lambda: detector.run_prepared([prepared], [meta]), max(5, repeats // 10))
    return {"jpeg_kib": round(len(data) / 1024, 1), "digest_ms": digest, "decode_letterbox_ms": decode,
            "infer_ms": infer, "digest_share_of_decode": round(digest / decode, 4),
            "digest_share_of_image": round(digest / (digest + decode + infer), 4)}


def build_archive(root: Path, count: int, cameras: int = 100) -> int:
    """`count` files of one 640x480 JPEG, each its own bytes; returns the bytes written."""
    shutil.rmtree(root, ignore_errors=True)
    ok, jpeg = cv2.imencode(".jpg", camera_trap_frame(1, (640, 480)), [cv2.IMWRITE_JPEG_QUALITY, 90])
    base = jpeg.tobytes()
    total = 0
    for c in range(cameras):
        (root / f"cam{c:03d}").mkdir(parents=True)
    for i in range(count):
        data = base + f"{i:08d}".encode()  # after the JPEG's EOI marker: decoders ignore it, the digest does not
        (root / f"cam{i % cameras:03d}" / f"IMG_{i:07d}.jpg").write_bytes(data)
        total += len(data)
    return total


def seed_first_run(archive: Path, out: Path, store: str, ref: str) -> int:
    """An `empty` row per file with the digest the read stage records, as a first run leaves them."""
    plan = plan_run(ReprocessOptions(archive=str(archive), out=str(out), model=ref, store=store))
    todo, mv = plan.selection.todo.table, plan.model
    rows = empty_results(todo)
    digests = [hashlib.sha256(Path(u).read_bytes()).hexdigest() for u in todo["uri"].to_pylist()]
    rows = rows.set_column(rows.schema.get_field_index("content_digest"), "content_digest",
                           pa.array(digests, pa.string()))
    write_results(rows, out_url=str(out), model_name=mv.name, model_version=mv.version,
                  model_sha256=mv.config.weights.sha256, filters_hash=plan.result_hash, run_id="seeded",
                  metadata=run_metadata(plan))
    return todo.num_rows


def timed_plan(archive: Path, out: Path, store: str, ref: str, keep_book: bool = False) -> dict:
    t0 = time.perf_counter()
    plan = plan_run(ReprocessOptions(archive=str(archive), out=str(out), model=ref, store=store))
    wall = time.perf_counter() - t0
    c = plan.confirmation
    if keep_book:  # what the run does before its first part
        record_book(plan.tables.storage, c.learnt)
    return {"plan_s": round(wall, 2), "found": plan.selection.found, "to_infer": len(plan.selection.todo),
            "confirmed": c.confirmed, "files_read": c.files_read, "mib_read": round(c.bytes_read / 2**20, 1),
            "read_mib_per_s": round(c.bytes_read / 2**20 / wall, 1) if c.bytes_read else None}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.archive_digests", description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--store", default=str(DEFAULT_STORE))
    p.add_argument("--work", default=str(DEFAULT_ROOT / "archive-digests"))
    p.add_argument("--out", default=str(DEFAULT_ROOT / "archive_digests.json"))
    args = p.parse_args(argv)
    store = ModelStore(args.store)
    read = first_read(store, args.repeats)
    print(markdown_table([read], list(read)), flush=True)

    work = Path(args.work)
    ref = ensure_null_model(store)
    archive, copy, tables = work / "archive", work / "copied", work / "tables"
    written = build_archive(archive, args.images)
    shutil.rmtree(tables, ignore_errors=True)
    seed_first_run(archive, tables, args.store, ref)
    shutil.rmtree(copy, ignore_errors=True)
    t0 = time.perf_counter()
    shutil.copytree(archive, copy, copy_function=shutil.copyfile)  # as `cp -r`: no times kept
    copy_s = round(time.perf_counter() - t0, 2)
    rows = [{"plan": "rerun, not moved", **timed_plan(archive, tables, args.store, ref)},
            {"plan": "cp -r copy, first rerun", **timed_plan(copy, tables, args.store, ref, keep_book=True)},
            {"plan": "cp -r copy, next rerun (book)", **timed_plan(copy, tables, args.store, ref)}]
    print(f"{args.images} files, {written / 2**20:.0f} MiB; the copy took {copy_s} s", flush=True)
    print(markdown_table(rows, list(rows[0])), flush=True)
    write_json(args.out, {"machine": machine_info(), "first_read": read, "images": args.images,
                          "archive_mib": round(written / 2**20, 1), "copy_s": copy_s, "plans": rows,
                          "command": shlex.join(["python", "-m", "benchmarks.archive_digests",
                                                 *(argv if argv is not None else [])])})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
