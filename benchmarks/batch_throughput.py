"""End-to-end archive reprocessing: images/s, peak memory, rerun time, and memory at 10x the images.

`python -m benchmarks.batch_throughput --model bench-yolov8n:1 --images 40 [--via serve,actors] [--concurrency 1]`

For each `--via` it runs `trapline reprocess` (the same command as `python -m batch.reprocess`)
on a generated archive of N images, reruns it over the finished output (everything should be
skipped), then runs it on a 10 x N archive into a fresh output. Ray (and for `--via serve` the
Serve app) is started once by this script, so Ray's start-up is not timed; listing and planning
are (a rerun is mostly those). The job's own figures (from its `--json` summary, which start
after planning) are recorded beside. Memory is the proportional set size of this process and
all its descendants (the raylet, Ray workers, Serve replicas), sampled every second.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_model import ensure_if_bench_model
from benchmarks.common import (
    DEFAULT_IMAGES,
    DEFAULT_MODEL,
    DEFAULT_ROOT,
    DEFAULT_STORE,
    MemorySampler,
    local_ray,
    parse_list,
    print_table,
    ratio,
    write_json,
)
from benchmarks.images import FULL_HD, ensure_images, make_archive, parse_size
from ground import ray_output
from model_store import ModelRef


class _Tee(io.TextIOBase):
    def __init__(self, *streams) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()


def reprocess_argv(archive: Path, out: Path, model: str, store: str, via: str, concurrency: int | None,
                   extra: list[str] | None = None) -> list[str]:
    argv = ["--archive", str(archive), "--out", str(out), "--model", model, "--store", str(store), "--via", via]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    return argv + list(extra or [])


def latest_manifest(out: Path) -> dict[str, Any] | None:
    runs = sorted((out / "_runs").glob("*.json")) if (out / "_runs").is_dir() else []
    return json.loads(runs[-1].read_text()) if runs else None


def parse_report(text: str) -> dict[str, Any]:
    """The job's `--json` summary (RunReport), or numbers scraped from its text summary."""
    start = text.find("{")
    if start >= 0:
        with contextlib.suppress(ValueError):
            return json.loads(text[start:])
    found: dict[str, Any] = {}
    for key, pattern in {"images_per_s": r"([\d.]+)\s*images/s", "wall_s": r"in ([\d.]+)s",
                         "found": r"found (\d+)", "processed": r"processed (\d+)"}.items():
        matches = re.findall(pattern, text)
        if matches:
            found[key] = float(matches[-1])
    return found


def run_job(argv: list[str], quiet: bool = True) -> dict[str, Any]:
    """Run `trapline reprocess` in this process (Ray already up): wall time, peak memory and the job's report.

    `wall_s` is measured here around the whole job (listing and planning included, Ray start-up
    not); `job_wall_s` and `job_images_per_s` are the job's own numbers, which start after planning.
    """
    entry = importlib.import_module("trapline.cli")  # what `python -m batch.reprocess` runs
    captured = io.StringIO()
    stream = captured if quiet else _Tee(captured, sys.stdout)
    with MemorySampler() as mem, contextlib.redirect_stdout(stream):
        t0 = time.perf_counter()
        code = entry.main(["reprocess", *argv, "--json"])
        wall = time.perf_counter() - t0
    report = parse_report(captured.getvalue())
    if not report:
        report = latest_manifest(Path(argv[argv.index("--out") + 1])) or {}
        report.update(report.get("counts") or {})
    if code not in (0, None):
        raise RuntimeError(f"trapline reprocess {' '.join(argv)} exited with {code}: {captured.getvalue()[-800:]}")
    processed = int(report.get("processed") or 0)
    return {"wall_s": round(wall, 3), "images_per_s": round(processed / wall, 3) if wall > 0 else None,
            "peak_mib": mem.peak_mib, "found": report.get("found"), "processed": processed,
            "already_done": report.get("already_done"), "status": report.get("status"),
            "job_wall_s": report.get("wall_s"), "job_images_per_s": report.get("images_per_s"),
            "job_steady_images_per_s": report.get("steady_images_per_s"), "timeline": report.get("timeline")}


def measure_via(via: str, archive_n: Path, archive_10n: Path, work: Path, model: str, store: str,
                concurrency: int | None, extra: list[str] | None = None, quiet: bool = True) -> dict[str, Any]:
    """First run, rerun and 10x run for one inference mode."""
    outs = {k: work / f"out-{via}-{k}" for k in ("n", "10n")}
    for out in outs.values():
        shutil.rmtree(out, ignore_errors=True)
    first = run_job(reprocess_argv(archive_n, outs["n"], model, store, via, concurrency, extra), quiet)
    rerun = run_job(reprocess_argv(archive_n, outs["n"], model, store, via, concurrency, extra), quiet)
    big = run_job(reprocess_argv(archive_10n, outs["10n"], model, store, via, concurrency, extra), quiet)
    return {
        # The headline rate is the 10 x N run's: with small N, Ray Data's start-up (seconds) dominates the first.
        "via": via, "first": first, "rerun": rerun, "ten_x": big,
        "images_per_s": big["images_per_s"], "images_per_s_n": first["images_per_s"],
        "rerun_ratio": ratio(rerun["wall_s"], first["wall_s"]),
        "memory_growth_10x": round(big["peak_mib"] / first["peak_mib"] - 1, 4) if first["peak_mib"] else None,
    }


def measure_batch(model: str, store: str, n_images: int, via: list[str], work: Path, concurrency: int | None = None,
                  size: tuple[int, int] = FULL_HD, num_cpus: int | None = None,
                  serve_overrides: dict[str, Any] | None = None, extra: list[str] | None = None,
                  quiet: bool = True, images_root: str | Path = DEFAULT_IMAGES) -> dict[str, Any]:
    """Build the archives and measure every inference mode in `via`.

    The Serve app runs only during the `--via serve` runs: its replicas hold Ray CPUs that the
    actor pool of `--via actors` would otherwise wait for.
    """
    from benchmarks.serve_load import serve_config, service

    images = ensure_images(min(n_images, 64), size, root=images_root)
    tag = f"{size[0]}x{size[1]}"
    archive_n = make_archive(images, work / f"archive-{tag}-{n_images}", n_images)
    archive_10n = make_archive(images, work / f"archive-{tag}-{10 * n_images}", 10 * n_images)
    results = []
    with local_ray(num_cpus):
        for v in via:
            app = service(None, serve_config(store, ModelRef.parse(model).name, **(serve_overrides or {}))) \
                if v == "serve" else contextlib.nullcontext()
            with app:
                results.append(measure_via(v, archive_n, archive_10n, work, model, store, concurrency, extra, quiet))
    return {"model": model, "images": n_images, "image_size": tag, "serve_settings": serve_overrides, "runs": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="NAME[:VERSION|@ALIAS]")
    parser.add_argument("--store", default=str(DEFAULT_STORE))
    parser.add_argument("--images", type=int, default=40, help="N: images in the archive (the 10x run uses 10 N)")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--via", default="serve,actors")
    parser.add_argument("--concurrency", type=int, default=None, help="passed to trapline reprocess")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    parser.add_argument("--max-batch-size", type=int, default=8, help="--via serve: the Serve app's batch size")
    parser.add_argument("--num-replicas", type=int, default=1, help="--via serve: replicas")
    parser.add_argument("--serve-cpus", type=float, default=0.75, help=(
        "--via serve: Ray CPUs per replica; leave room for the job's client actor, read and write tasks"))
    parser.add_argument("--serve-threads", type=int, default=None, help="--via serve: ONNX Runtime threads per replica")
    parser.add_argument("--work", default=str(DEFAULT_ROOT / "batch"), help="archives and outputs go here")
    parser.add_argument("--extra", default="", help="more trapline reprocess arguments, quoted")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the job's own output and Ray's (default: Ray's goes to its session's log directory)")
    parser.add_argument("--out", default=None, help="write the result JSON here")
    args = parser.parse_args(argv)
    with ray_output.mode(quiet=not args.verbose):
        ensure_if_bench_model(args.store, args.model)
        result = measure_batch(args.model, args.store, args.images, parse_list(args.via, str), Path(args.work),
                               args.concurrency, parse_size(args.size), args.num_cpus,
                               {"max_batch_size": args.max_batch_size, "num_replicas": args.num_replicas,
                                "num_cpus": args.serve_cpus, "onnx_threads": args.serve_threads},
                               args.extra.split() if args.extra else None, quiet=not args.verbose)
    print_table([{"via": r["via"], "images/s (N)": r["images_per_s_n"], "images/s (10 N)": r["images_per_s"],
                  "rerun_s": r["rerun"]["wall_s"], "rerun_ratio": r["rerun_ratio"], "peak_mib": r["first"]["peak_mib"],
                  "peak_mib_10x": r["ten_x"]["peak_mib"], "mem_growth_10x": r["memory_growth_10x"]}
                 for r in result["runs"]],
                ["via", "images/s (N)", "images/s (10 N)", "rerun_s", "rerun_ratio", "peak_mib", "peak_mib_10x",
                 "mem_growth_10x"])
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
