"""The side-by-side report: model ceiling, naive loop, trapline online and trapline batch, in one run.

`python -m benchmarks.report [--quick] [--model bench-yolov8n:1] [--out DIR]`  (`make bench` = `--quick`)

Everything runs on this machine with the same generated 1920x1080 JPEGs and the same model, in
this order: the raw ceiling and the naive loop (nothing else running), then one local Ray for
the online service (HTTP, saturation, light load and a short soak at 80 % of saturation, each window's p99
beside the machine's load) and the batch job (`--via actors` and
`--via serve`). Absolute numbers on a shared machine are noisy; the ratios are the claims:
trapline / ceiling and trapline / naive. A section that fails is recorded as an error and the
rest still runs. Writes report.json and report.md to `--out`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.bench_model import ensure_if_bench_model
from benchmarks.common import (
    DEFAULT_MODEL,
    DEFAULT_ROOT,
    DEFAULT_STORE,
    local_ray,
    machine_info,
    markdown_table,
    parse_list,
    print_table,
    ratio,
    write_json,
)
from benchmarks.images import ensure_images, parse_size
from model_store import ModelRef, ModelStore

LIGHT_LOAD_FRACTION = 0.1  # of the measured saturation throughput
TARGETS = {"online_vs_ceiling": 0.85, "batch_vs_ceiling": 0.9, "light_p50_over_batch1_ms": 15.0,
           "rerun_ratio": 0.05, "memory_growth_10x": 0.15, "soak_p99_ms": 1000.0}
SOAK_LOAD = 0.8  # the short soak's rate, a fraction of the measured saturation throughput (as benchmarks.soak)
PROFILES = {  # quick: `make bench`, <= 5 minutes on 2 cores; tiny: the end-to-end test (no timing value)
    "tiny": {"images": 3, "batch_sizes": "1,2", "procs": "1", "ceiling_s": 0.3, "naive_s": 0.5, "load_s": 1.5,
             "light_s": 1.5, "batch_images": 4,
             "soak_s": 2.0, "soak_window_s": 1.0},
    "quick": {"images": 16, "batch_sizes": "1,4", "procs": "1,2,all", "ceiling_s": 2.0, "naive_s": 8.0, "load_s": 8.0,
              "light_s": 10.0, "batch_images": 12, "soak_s": 60.0, "soak_window_s": 15.0},
    "full": {"images": 64, "batch_sizes": "1,2,4,8,16", "procs": "1,2,all", "ceiling_s": 5.0, "naive_s": 20.0,
             "load_s": 20.0, "light_s": 20.0, "batch_images": 100, "soak_s": 120.0, "soak_window_s": 30.0},
}


def _section(results: dict[str, Any], name: str, fn, *args, **kwargs) -> Any:
    t0 = time.perf_counter()
    print(f"== {name}", flush=True)
    try:
        results[name] = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - one failed section must not lose the others
        results[name] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
        print(f"   {name} failed: {results[name]['error']}", flush=True)
    results.setdefault("section_seconds", {})[name] = round(time.perf_counter() - t0, 1)
    return results[name]


def serve_settings(ceiling: dict[str, Any], cpus: int, args: argparse.Namespace) -> dict[str, Any]:
    """The online deployment: the ceiling's best procs x threads as replicas x ONNX threads, unless given."""
    best = ceiling.get("best") or {"procs": 1, "threads": cpus}
    replicas = args.serve_replicas or best["procs"]
    threads = args.serve_threads or best["threads"]
    # Ray CPUs are booking units; ORT threads are set apart. Leave 1.25 of them free: 0.25 for the
    # ingress and 1.0 for a `--via serve` batch job's client actor, read and write tasks, which
    # would otherwise wait forever for CPUs the replicas hold.
    num_cpus = args.serve_cpus or round(max(0.25, (cpus - 1.25) / replicas), 3)
    return {"max_batch_size": args.max_batch_size, "batch_wait_timeout_s": args.batch_wait_timeout_s,
            "num_replicas": replicas, "num_cpus": num_cpus, "onnx_threads": threads}


def measure_online(store: str, model: str, payloads: list[bytes], settings: dict[str, Any], load_s: float,
                   light_s: float, batch1_ms: float | None, soak_s: float = 0.0,
                   soak_window_s: float = 30.0) -> dict[str, Any]:
    """Saturation (closed loop), light load (open loop at a tenth of it) and, with `soak_s`, a short soak at
    80 % of it in windows, each window's p99 beside the machine's load (benchmarks.soak.soak_windows), so a
    regression of the tail shows in `make bench`."""
    from benchmarks.serve_load import Door, run_load, serve_config, service
    from benchmarks.soak import soak_windows

    name = ModelRef.parse(model).name
    with service(None, serve_config(store, name, **settings)) as url:
        clients = max(4, 2 * settings["num_replicas"] * settings["max_batch_size"])
        sat = run_load(url, name, payloads, "closed", clients, load_s, warmup_s=min(2.0, load_s))
        rate = round(max(0.5, LIGHT_LOAD_FRACTION * (sat["throughput_rps"] or 5.0)), 2)
        light = run_load(url, name, payloads, "open", rate, light_s, warmup_s=0)
        soak = None
        if soak_s > 0 and sat["throughput_rps"]:
            soak = soak_windows(url, Door(name), payloads, SOAK_LOAD * sat["throughput_rps"], minutes=soak_s / 60,
                                window_s=soak_window_s, p99_target_ms=TARGETS["soak_p99_ms"],
                                capacity=sat["throughput_rps"], replicas=settings["num_replicas"],
                                log=lambda m: print(f"   {m.strip()}", flush=True))
    p50 = light["latency"]["p50_ms"]
    return {"settings": settings, "saturation": sat, "light": light, "soak": soak,
            "images_per_s": sat["throughput_rps"], "light_rate_rps": rate, "light_p50_ms": p50,
            "batch1_p50_ms": batch1_ms,
            "light_p50_over_batch1_ms": round(p50 - batch1_ms, 3) if p50 is not None and batch1_ms else None}


def run_report(args: argparse.Namespace) -> dict[str, Any]:
    prof = PROFILES[args.profile]
    cpus = len(os.sched_getaffinity(0))
    work = Path(args.work)
    store = ModelStore(args.store)
    ensure_if_bench_model(store, args.model, variants=[""])
    size = parse_size(args.size)
    paths = ensure_images(args.images or prof["images"], size, root=work / "images")
    payloads = [p.read_bytes() for p in paths]
    res: dict[str, Any] = {"started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                           "profile": args.profile, "model": args.model, "store": args.store,
                           "images": {"count": len(paths), "size": args.size, "dir": str(paths[0].parent),
                                      "mean_mb": round(sum(len(p) for p in payloads) / len(payloads) / 1e6, 3)},
                           "machine": machine_info(), "targets": TARGETS}
    from benchmarks.model_ceiling import measure_ceiling
    from benchmarks.naive import run_naive

    # "all": one single-thread session per CPU, often the best a CPU can do.
    procs = sorted({cpus if p == "all" else int(p) for p in parse_list(prof["procs"], str)} & set(range(1, cpus + 1)))
    ceiling = _section(res, "ceiling", measure_ceiling, args.model, args.store, parse_list(prof["batch_sizes"]),
                       sorted({1, cpus}), procs, prof["ceiling_s"])
    _section(res, "naive", run_naive, paths, args.model, args.store, None, prof["naive_s"])
    skip = set(parse_list(args.skip, str))
    if {"online", "batch"} <= skip:
        res["summary"] = summarise(res)
        return res
    import ray

    with local_ray(num_cpus=cpus):
        # Size the replicas by the Ray CPUs actually there (a test cluster may have fewer than the machine).
        ray_cpus = int(ray.cluster_resources().get("CPU", cpus))
        settings = serve_settings(ceiling, ray_cpus, args)
        batch1 = (ceiling.get("batch1_p50_ms_by_threads") or {}).get(settings["onnx_threads"])
        if "online" not in skip:
            _section(res, "online", measure_online, args.store, args.model, payloads, settings, prof["load_s"],
                     prof["light_s"], batch1, prof["soak_s"], prof["soak_window_s"])
        if "batch" not in skip:
            from benchmarks.batch_throughput import measure_batch

            extra = ["--concurrency", str(args.batch_concurrency)] if args.batch_concurrency else None
            _section(res, "batch", measure_batch, args.model, args.store, args.batch_images or prof["batch_images"],
                     parse_list(args.via, str), work / "batch", None, size, cpus,
                     {k: settings[k] for k in ("max_batch_size", "num_replicas", "num_cpus", "onnx_threads")}, extra,
                     images_root=work / "images")
    res["summary"] = summarise(res)
    return res


def summarise(res: dict[str, Any]) -> dict[str, Any]:
    """The table rows (images/s and the two ratios) and the target checks."""
    ceiling = (res.get("ceiling") or {}).get("ceiling_images_per_s")
    naive = (res.get("naive") or {}).get("images_per_s")
    online = res.get("online") or {}
    rows = [{"path": "model ceiling (raw inference, best setting)", "images_per_s": ceiling},
            {"path": "naive loop (decode + predict, 1 at a time)", "images_per_s": naive},
            {"path": "trapline online (HTTP, saturation)", "images_per_s": online.get("images_per_s"),
             "target": f">= {TARGETS['online_vs_ceiling']} x ceiling"}]
    batch_runs = (res.get("batch") or {}).get("runs", [])
    for run in batch_runs:
        rows.append({"path": f"trapline batch --via {run['via']}", "images_per_s": run["images_per_s"],
                     "target": f">= {TARGETS['batch_vs_ceiling']} x ceiling"})
    for row in rows:
        row["vs_ceiling"] = ratio(row["images_per_s"], ceiling)
        row["vs_naive"] = ratio(row["images_per_s"], naive)
    checks = [_check("online throughput / ceiling", ratio(online.get("images_per_s"), ceiling),
                     TARGETS["online_vs_ceiling"], ">="),
              _check("online p50 at light load - batch-1 latency (ms)", online.get("light_p50_over_batch1_ms"),
                     TARGETS["light_p50_over_batch1_ms"], "<=")]
    if soak := online.get("soak"):
        checks.append(_check(f"online soak at {SOAK_LOAD:g} x saturation: worst window's p99 (ms)",
                             soak["p99_ms_worst_window"], TARGETS["soak_p99_ms"], "<="))
    for run in batch_runs:
        checks += [_check(f"batch --via {run['via']} / ceiling", ratio(run["images_per_s"], ceiling),
                          TARGETS["batch_vs_ceiling"], ">="),
                   _check(f"batch --via {run['via']} rerun / first run", run["rerun_ratio"], TARGETS["rerun_ratio"],
                          "<="),
                   _check(f"batch --via {run['via']} peak memory growth at 10x images", run["memory_growth_10x"],
                          TARGETS["memory_growth_10x"], "<")]
    return {"rows": rows, "checks": checks}


def _check(name: str, value: float | None, target: float, op: str) -> dict[str, Any]:
    ok = None if value is None else {">=": value >= target, "<=": value <= target, "<": value < target}[op]
    return {"check": name, "value": value, "target": f"{op} {target}", "ok": ok}


def render_markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    s = res["summary"]
    lines = [f"# trapline benchmark report ({res['profile']}, {res['started_at']})", "",
             f"Machine: {m.get('cpu_model', '?')}, {m.get('cpus_usable')} usable CPUs, {m.get('memory_gib')} GiB, "
             f"GPUs: {', '.join(m.get('gpus', [])) or 'none'}; onnxruntime {m.get('onnxruntime')}.",
             f"Model `{res['model']}`; {res['images']['count']} generated JPEGs at {res['images']['size']} "
             f"(mean {res['images']['mean_mb']} MB).", "",
             markdown_table(s["rows"], ["path", "images_per_s", "vs_ceiling", "vs_naive", "target"]),
             markdown_table(s["checks"], ["check", "value", "target", "ok"])]
    online = res.get("online") or {}
    if "settings" in online:
        lines.append(f"Online settings: {online['settings']}; light load {online['light_rate_rps']} req/s, "
                     f"p50 {online['light_p50_ms']} ms vs batch-1 model p50 {online['batch1_p50_ms']} ms; "
                     f"batches formed at saturation: {(online['saturation'].get('server_batches') or {})}.")
    if soak := online.get("soak"):
        lines += ["", f"Soak at {soak['offered_rps']} req/s ({SOAK_LOAD:g} x saturation), {soak['window_s']:g}-s "
                      f"windows, each beside the machine's load (others = CPUs other programs took, of "
                      f"{soak['cpus']}) and its queueing floor (the p99 of the same arrivals through an ideal server "
                      "of the measured capacity); a window over the target while others were busy says the machine, "
                      "one whose floor is over it says the arrivals' bursts, not trapline:", "",
                  markdown_table(soak["windows"], ["window", "requests", "errors", "p50_ms", "p99_ms",
                                                   "floor_p99_ms", "load1", "others_cpus", "busy"])]
    errors = {k: v["error"] for k, v in res.items() if isinstance(v, dict) and "error" in v}
    if errors:
        lines += ["", "Sections that failed:", *[f"- {k}: {v}" for k, v in errors.items()]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="= --profile quick (make bench; <= 5 min on 2 cores)")
    parser.add_argument("--profile", choices=sorted(PROFILES), default=None, help="run lengths (default full)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--store", default=str(DEFAULT_STORE))
    parser.add_argument("--images", type=int, default=None, help="distinct generated images")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--skip", default="", help="comma list of sections to skip: online, batch")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--batch-wait-timeout-s", type=float, default=0.01)
    parser.add_argument("--serve-replicas", type=int, default=None, help="default: the ceiling's best procs")
    parser.add_argument("--serve-cpus", type=float, default=None, help="CPUs per replica (default: shared evenly)")
    parser.add_argument("--serve-threads", type=int, default=None, help="default: the ceiling's best threads")
    parser.add_argument("--batch-images", type=int, default=None, help="N of the batch archive (10x run: 10 N)")
    parser.add_argument("--batch-concurrency", type=int, default=None)
    parser.add_argument("--via", default="actors,serve")
    parser.add_argument("--work", default=str(DEFAULT_ROOT), help="generated images and batch archives go here")
    parser.add_argument("--out", default=None, help="default: bench-results/report-<profile>")
    args = parser.parse_args(argv)
    args.profile = args.profile or ("quick" if args.quick else "full")
    args.out = args.out or str(DEFAULT_ROOT / f"report-{args.profile}")
    t0 = time.perf_counter()
    res = run_report(args)
    res["total_seconds"] = round(time.perf_counter() - t0, 1)
    out = Path(args.out)
    write_json(out / "report.json", res)
    (out / "report.md").write_text(render_markdown(res))
    print()
    print_table(res["summary"]["rows"], ["path", "images_per_s", "vs_ceiling", "vs_naive", "target"])
    print()
    print_table(res["summary"]["checks"], ["check", "value", "target", "ok"])
    print(f"\n{res['total_seconds']} s; wrote {out / 'report.json'} and {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
