"""The archive job's plumbing against its ceiling: `trapline reprocess` with the null model, bracketed by ceilings.

`python -m benchmarks.archive_plumbing [--images 1200] [--repeats 2] [--seconds 10] [--executor data|pool] [--out FILE]`

The null model (`bench-null:1`, no inference cost: what a fast accelerator leaves) makes the job's rate its
plumbing's: reading, decoding, letterboxing, Ray Data, the part writer. Its ceiling is the same decode +
letterbox + null model in plain processes, one per CPU (benchmarks.doors.plumbing_ceiling). Each repeat measures
the ceiling, the job (`--via actors`, decoding in the actors, one actor per CPU; as `benchmarks.doors`' batch
section runs it) and the ceiling again, so the job is divided by ceilings taken on either side of it on the
same machine; the load average (`uptime`) is recorded beside each. Since wall-clock rates on a busy machine
move with everyone else's work, each is also given as CPU ms an image: the job's of this process tree
(machine_load; Ray's processes and the job's start-up included), the ceiling's of its pool (start-up included), and
`cpu_ceiling_vs_job` divides the ceiling's by the job's: the share of the job's CPU that is the ceiling's work.
Where the job's start-up goes comes from its own
report (RunReport.timeline): `plan_s` listing and done-check, `ray_s` Ray, Ray Data's helper actors and the model
check, `first_part_s` the plan's start to its first committed part, `tail_s` its last part to the end. This is the
archive section of `benchmarks.doors` alone (1-2 minutes rather than 30), for changes to the job's plumbing.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_model import ensure_null_model
from benchmarks.common import DEFAULT_ROOT, DEFAULT_STORE, local_ray, machine_info, print_table, ratio, write_json
from benchmarks.doors import plumbing_ceiling
from benchmarks.doors_jobs import batch_run
from benchmarks.images import FULL_HD, ensure_images, load_bytes, make_archive
from benchmarks.machine_load import LoadWindow, loadavg


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_ms_per_image(load: dict[str, Any], elapsed_s: float, images: float) -> float | None:
    """CPU ms an image of this process tree (Ray's processes included) over a span: on a loaded machine the
    wall-clock rates above move with everyone else's work, the CPU an image costs much less."""
    if load.get("benchmark_cpus") is None or not images:
        return None
    return round(load["benchmark_cpus"] * elapsed_s * 1000 / images, 2)


def startup(timeline: dict[str, float]) -> dict[str, float | None]:
    """The job's own timeline (RunReport.timeline) as the spans the start-up is made of: listing and done-check
    (`plan_s`), Ray, Ray Data's helpers and the model check (`ray_s`), the plan's start to its first committed part
    (`first_part_s`), and the tail from the last part to the end (`tail_s`)."""
    def span(a: str, b: str) -> float | None:
        return round(timeline[b] - timeline.get(a, 0.0), 2) if b in timeline and (a in timeline or a == "") else None

    return {"plan_s": span("", "planned"), "ray_s": span("planned", "ray_ready"),
            "first_part_s": span("plan_started", "first_part"), "tail_s": span("last_part", "finished")}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from model_store import ModelStore

    cpus = len(os.sched_getaffinity(0))
    store = ModelStore(args.store)
    ref = ensure_null_model(store)
    images = ensure_images(64, FULL_HD, root=Path(args.work) / "images")
    payloads = load_bytes(images)
    work = Path(args.work)
    archive = make_archive(images, work / f"doors-{args.images}", args.images)
    rows = []

    def ceiling() -> tuple[float, float | None, float | None]:
        # its CPU: the pool's processes, reaped by this one when the pool closes (their start-up included)
        load, cpu0 = loadavg(), _children_cpu_s()
        rate = plumbing_ceiling(store.root, ref, payloads, cpus, args.seconds)["images_per_s"]
        return rate, load, round((_children_cpu_s() - cpu0) * 1000 / (rate * args.seconds), 2)

    with local_ray(cpus):
        time.sleep(3.0)  # Ray's idle workers start: not the job's time
        before = ceiling()
        for i in range(args.repeats):
            # followed: the job's actors have exited (killed with the run) before the window closes
            load, window, t0 = loadavg(), LoadWindow(follow_s=0.25).start(), time.perf_counter()
            job = batch_run(archive, work, store.root, ref, "actors", "actors", cpus, args.executor)
            job_cpu = cpu_ms_per_image(window.stop(), time.perf_counter() - t0, job["images"])
            after = ceiling()
            mean = (before[0] + after[0]) / 2
            cpu_ceiling = [c for c in (before[2], after[2]) if c]
            rows.append({"repeat": i + 1, "ceiling_before": before[0], "ceiling_after": after[0],
                         "job_images_per_s": job["images_per_s"], "job_steady": job["steady_images_per_s"],
                         "start_s": job["start_s"], "whole_vs_ceiling": ratio(job["images_per_s"], mean),
                         "steady_vs_ceiling": ratio(job["steady_images_per_s"], mean),
                         "ceiling_cpu_ms": round(sum(cpu_ceiling) / len(cpu_ceiling), 2) if cpu_ceiling else None,
                         "job_cpu_ms": job_cpu,
                         "cpu_ceiling_vs_job": ratio(sum(cpu_ceiling) / len(cpu_ceiling), job_cpu)
                         if cpu_ceiling and job_cpu else None,
                         "load_at_start": load, "load_after": after[1], **startup(job["timeline"])})
            print(rows[-1], flush=True)
            before = after
    return {"machine": machine_info(), "cpus": cpus, "images": args.images, "model": ref, "executor": args.executor,
            "rows": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=1200, help="archive size (1080p JPEGs, 64 distinct)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seconds", type=float, default=10.0, help="each ceiling run")
    p.add_argument("--executor", choices=["data", "pool"], default="pool",
                   help="the job's --executor: its Ray Data plan, or its own pool of inference actors")
    p.add_argument("--store", default=str(DEFAULT_STORE))
    p.add_argument("--work", default=str(DEFAULT_ROOT))
    p.add_argument("--out", default=str(DEFAULT_ROOT / "archive_plumbing.json"))
    args = p.parse_args(argv)
    res = run(args)
    write_json(Path(args.out), res)
    print_table(res["rows"], ["repeat", "ceiling_before", "job_images_per_s", "job_steady", "ceiling_after",
                              "whole_vs_ceiling", "steady_vs_ceiling", "ceiling_cpu_ms", "job_cpu_ms",
                              "cpu_ceiling_vs_job", "start_s", "plan_s", "ray_s", "first_part_s", "tail_s",
                              "load_at_start", "load_after"])
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
