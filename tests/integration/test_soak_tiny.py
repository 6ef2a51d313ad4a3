"""benchmarks/soak.py end to end, tiny: capacity, a few seconds of soak with memory samples, a spike, recovery.

Structure and bookkeeping are checked, not timings (the shared 2-CPU test cluster is noisy).
"""

from __future__ import annotations

import json

import pytest

from benchmarks import soak

pytestmark = pytest.mark.ray


def test_soak_writes_trend_spike_and_recovery(ray_cluster, local_store, tmp_path):
    local_store.promote("fixture:1")
    out = tmp_path / "soak"
    # Seconds, not minutes: 3.6 s of soak in two 1.8 s windows (a third cannot start: the loop stops 0.5 s before
    # the end), 1.5 s each of warm-up, capacity and spike; recovery in 5 s windows (a third of --recovery-s) for
    # at most 15 s: the first clean window ends it (3 s windows for 9 s missed it once at load 4, every window's
    # p50 just over twice the soak's). Every phase still runs and is checked below. At 0.6 of the capacity, not the
    # soak's default 0.8: a 1.5 s closed-loop capacity run on a shared 2-core box can land on a lucky moment, and at
    # 0.8 of that the recovery windows overflowed the 32-request queue in a fresh-clone CI run (11 and 88 errors);
    # this test checks that every phase runs and is reported, the real soak (RELIABILITY.md) holds 0.8.
    argv = ["--start", "--model", "fixture", "--store", local_store.root, "--size", "160x120", "--count", "4",
            "--minutes", "0.06", "--window-s", "1.8", "--capacity-s", "1.5", "--capacity-concurrency", "4",
            "--spike-s", "1.5", "--recovery-s", "15", "--memory-interval-s", "0.5",
            "--num-replicas", "1", "--num-cpus", "0.5", "--max-queued-requests", "32", "--load", "0.6",
            "--people", "2", "--people-change-s", "1", "--out", str(out)]
    assert soak.main(argv) == 0
    data = json.loads((out / "soak.json").read_text())
    assert data["capacity"]["images_per_s"] > 0
    # the season's mode (issue 87): every request carried a person's token while the registry changed under the
    # replicas (an error below would show a replica that refused it); `--record` is the hour's soak's
    assert data["door"] == {**data["door"], "path": "/v1/detect", "personal_token": True}
    assert data["door"]["people_added"] >= 3
    s = data["soak"]
    assert s["requests"] > 0 and s["requests"] == sum(w["requests"] for w in s["windows"]) and len(s["windows"]) == 2
    assert s["errors"] == 0, s["windows"]  # the soak's rate is held without an error
    # each window's p99 beside the machine's load in it: the load average and the CPU of other programs
    for w in s["windows"]:
        assert w["p99_ms"] > 0 and w["load1"] is not None and isinstance(w["busy"], bool)
        assert w["benchmark_cpus"] > 0 and w["others_cpus"] >= 0  # the service and its load generator ran
    assert s["p99_ms_worst_window"] == max(w["p99_ms"] for w in s["windows"])
    assert s["windows_over_p99_target"] == sum(w["p99_ms"] > s["p99_target_ms"] for w in s["windows"])
    mem = s["memory"]
    assert mem["samples"] >= 3 and isinstance(mem["slope_mib_per_min"], float)
    assert mem["min_mib"] > 100  # the whole service's tree (Ray, proxy, replicas), not this process alone
    # ... and each of its processes by title, so a rise is put on the one that makes it (issue 87)
    titles = {p["title"] for p in mem["processes"]}
    assert {"ray::ProxyActor", "ray::ServeController", "raylet"} <= titles, titles
    assert any(t.startswith("ray::ServeReplica:") for t in titles) and any(t.startswith("driver (") for t in titles)
    assert all(p["start_mib"] > 0 and p["end_mib"] > 0 for p in mem["processes"])
    sp = data["spike"]
    assert sp["requests"] == sp["ok"] + sp["rejected_503_retry_after"] + sp["other_errors"] > 0
    # The server answers overload with 503 + Retry-After and nothing else. With the constant fixture
    # model the spike is hundreds of requests/s from a Python client on the same 2 cores, so the
    # client itself may time out; those are load-generator limits, not server answers (the real
    # soak in RELIABILITY.md, at tens of requests/s, counts 0 of them).
    server_errors = {k: v for k, v in sp["outcomes"].items()
                     if k not in ("200", "503_retry_after") and not k.startswith("client_")}
    assert server_errors == {}, sp["outcomes"]
    assert sp["rejected_503_retry_after"] > 0, sp["outcomes"]  # back-pressure engaged
    rec = data["recovery"]
    # Recovered: a window without errors whose p50 is back under the bar, or over it only while other programs
    # took the CPU and the service spent no more CPU per answer than in the soak (soak.recover): a fresh-clone CI
    # run once held the rate with 0 errors for 15 s at 2.5-3 x the soak's p50, and a one-core busy loop beside the
    # test does that to the windows with or without a spike before them. Each window says which it was.
    for w in rec["windows"]:
        assert w["others_cpus"] is not None and isinstance(w["waited_for_cpu"], bool), w
    assert rec["recovered"], rec
    assert rec["latency_judged"] == (rec["windows"][-1]["p50_ms"] <= rec["latency_ok_below_ms"])
