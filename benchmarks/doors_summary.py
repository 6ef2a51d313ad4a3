"""One row per claim of benchmarks/doors.py: measured, the reference it is divided by, the ratio and the target."""

from __future__ import annotations

from typing import Any

from benchmarks.common import ratio

REAL, NULL = "bench-yolov8n:1", "bench-null:1"


def door_rows(add, section: dict[str, Any], door: str, batch1_ms: float | None) -> None:
    """One HTTP door's overload and light-load rows (`door`: "" through Serve's proxy, ", direct ingress")."""
    for key, who in (("overload", "retry after 50 ms"), ("overload_retry_after", "honour Retry-After")):
        if key in section:
            o = section[key]
            add(f"HTTP null overload{door}, {o['concurrency']} clients that {who} (req/s)", o["rps"], "saturation",
                o["saturation_rps"], f">= ~1 (503s: {o['refused_share']:.0%}, p50 {o['refused_p50_ms']} ms)")
    if "light_real" in section:
        add(f"HTTP real{door}, light load p50 (ms)", section["light_real"]["p50_ms"], "batch-1 model latency",
            batch1_ms, "<= +10 ms")
    if "one_at_a_time_real" in section:
        one = section["one_at_a_time_real"]
        add(f"HTTP real{door}, one request at a time p50 (ms)", one["total"], "batch-1 model latency", batch1_ms,
            f"decode {one['decode']}, letterbox {one['preprocess']}, inference {one['inference']}, "
            f"postprocess {one['postprocess']}, hop {one['hop']}")


def summarise(res: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per claim: measured, the reference it is divided by, the ratio and the issue's target."""
    rows: list[dict[str, Any]] = []
    ceil = res.get("ceilings", {})

    def add(what: str, value: Any, against: str, ref: Any, target: str) -> None:
        rows.append({"claim": what, "measured": value, "against": against, "reference": ref,
                     "ratio": ratio(value, ref) if isinstance(value, int | float) else None, "target": target})

    # Archives are long: the targets are read on the steady rate (first part to last); the whole job's rate,
    # Ray Data's and the actors' start-up included, is the second row of each, with the start-up in seconds.
    runs = {(r["model"], r["via"], r["decode"]): r for r in res.get("batch", [])}

    def steady(key: tuple[str, str, str]) -> float | None:
        run = runs.get(key) or {}
        return run.get("steady_images_per_s") or run.get("images_per_s")

    def job(key: tuple[str, str, str]) -> float | None:
        return (runs.get(key) or {}).get("images_per_s")

    def start(key: tuple[str, str, str]) -> str:
        return f"whole job; start-up {(runs.get(key) or {}).get('start_s')} s"

    if runs:
        ceilings = ((NULL, ceil.get("plumbing_images_per_s"), "plumbing ceiling", ">= 0.8"),
                    (REAL, ceil.get("model_images_per_s"), "model ceiling", ">= 0.85"))
        for model, ceiling, ceiling_name, target in ceilings:
            kind = "null" if model == NULL else "real"
            for decode, where in (("actors", "decode in actors"), ("tasks", "decode in read tasks")):
                key = (model, "actors", decode)
                add(f"batch {kind}, {where}, steady", steady(key), ceiling_name, ceiling,
                    target if decode == "actors" else "-")
                add(f"batch {kind}, {where}, whole job", job(key), ceiling_name, ceiling, start(key))
            served, pool = (model, "serve", "actors"), (model, "actors", "actors")
            add(f"batch {kind} --via serve, steady", steady(served), f"batch {kind} via actors", steady(pool),
                ">= 0.9" if model == REAL else "-")
            add(f"batch {kind} --via serve, whole job", job(served), f"batch {kind} via actors", job(pool),
                start(served))
    http = res.get("http", {})
    for t, m in zip(http.get("trapline", []), http.get("minimal", []), strict=False):
        add(f"HTTP null, {t['concurrency']} clients (req/s)", t["rps"], "minimal Ray Serve app", m["rps"], ">= 1.2")
    door_rows(add, http, "", ceil.get("batch1_p50_ms"))
    light = res.get("light", {})
    if light:  # against the batch-1 passes paired with its requests (the same load), else its own bracket
        one = light.get("one_at_a_time_real", {})
        bracket = [v for v in (light.get("batch1_p50_ms_before"), light.get("batch1_p50_ms_after")) if v]
        batch1 = one.get("between") or (round(sum(bracket) / len(bracket), 1) if bracket else None)
        door_rows(add, light, " (light section)", batch1)
        if "over_between" in one:
            add("  one request at a time minus its paired batch-1 pass, p50 (ms)", one["over_between"], "-", None,
                "<= +10 ms")
    direct = res.get("direct", {})
    for t, m, md, tp in zip(direct.get("trapline", []), direct.get("minimal", []), direct.get("minimal_direct", []),
                            direct.get("trapline_proxy", []), strict=False):
        c = t["concurrency"]
        add(f"HTTP null, direct ingress, {c} clients (req/s)", t["rps"], "minimal Ray Serve app", m["rps"], ">= 1.2")
        add(f"  the same against the minimal app on its own direct port, {c} clients", t["rps"],
            "minimal app, direct", md["rps"], "-")
        add(f"  trapline through the proxy in the same Ray, {c} clients", tp["rps"], "minimal Ray Serve app",
            m["rps"], "-")
    door_rows(add, direct, ", direct ingress", ceil.get("batch1_p50_ms"))
    pr = res.get("priority")
    if pr:
        add("online p50 during a --via serve backfill (ms)", pr["during_backfill"]["p50_ms"], "idle p50",
            pr["idle"]["p50_ms"], "<= 1.5")
        plain = pr.get("without_preemption")
        if plain:
            add("  the same, preempt_bulk: false (ms)", plain["during_backfill"]["p50_ms"], "idle p50",
                plain["idle"]["p50_ms"], "-")
            add("  backfill time with preemption (s)", pr["backfill_s"], "without", plain["backfill_s"],
                f"cost; {pr['bulk_preempted']} bulk batches stopped, {pr['batches']} run")
    peer = res.get("peer")
    if peer:  # Ultralytics is timed after loading the model and a warm-up image: trapline's steady rate is the peer
        names = {"1": "fp32", "int8": "int8", "int8-reduced": "int8 + reduced decode"}
        for version, target in (("1", "-"), ("int8", ">= 2"), ("int8-reduced", ">= 2")):
            run = peer.get(f"trapline_{version}")
            if run is None:
                continue
            what = f"Ultralytics export, trapline reprocess {names[version]} rect"
            agree = (peer.get("agreement") or {}).get(version)
            if agree:  # the price of the fast path, next to its speed
                target += (f"; boxes as fp32 exact: {agree['matched']}/{agree['reference_boxes']}, "
                           f"{agree['extra']} extra")
            add(what + ", steady", run["steady_images_per_s"], "Ultralytics predict", peer["ultralytics"], target)
            add(what + ", whole job", run["images_per_s"], "Ultralytics predict", peer["ultralytics"],
                f"whole job; start-up {run['start_s']} s")
    return rows
