"""PNG plots of sweep results: throughput vs batch size, latency percentiles vs load."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SETTING_KEYS = ("num_replicas", "num_cpus", "onnx_threads", "num_gpus", "batch_wait_timeout_s")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def setting_label(row: dict[str, Any], keys: Sequence[str] = SETTING_KEYS) -> str:
    short = {"num_replicas": "rep", "num_cpus": "cpu", "onnx_threads": "thr", "num_gpus": "gpu",
             "batch_wait_timeout_s": "wait",
             "max_batch_size": "mbs"}
    return " ".join(f"{short.get(k, k)}={row[k]}" for k in keys if k in row and not (k == "num_gpus" and not row[k]))


def throughput_vs_batch_size(saturation_rows: list[dict[str, Any]], path: str | Path,
                             ceiling: float | None = None) -> Path:
    """One line per setting (replicas, CPUs, GPUs, wait): saturation images/s against max_batch_size."""
    plt = _pyplot()
    lines: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in saturation_rows:
        lines[setting_label(r)].append((r["max_batch_size"], r["throughput_rps"] or 0.0))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, points in sorted(lines.items()):
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o", label=label)
    if ceiling:
        ax.axhline(ceiling, color="black", linestyle="--", linewidth=1, label=f"model ceiling {ceiling:.1f}/s")
        ax.axhline(0.85 * ceiling, color="grey", linestyle=":", linewidth=1, label="0.85 x ceiling")
    ax.set_xscale("log", base=2)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("max_batch_size")
    ax.set_ylabel("images/s at saturation (HTTP)")
    ax.set_title("Online throughput vs batch size")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, plt, path)


def latency_vs_load(load_rows: list[dict[str, Any]], path: str | Path, max_settings: int = 6) -> Path:
    """p50 / p95 / p99 latency against the offered load (open loop), one line per setting."""
    plt = _pyplot()
    keys = (*SETTING_KEYS, "max_batch_size")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in load_rows:
        groups[setting_label(r, keys)].append(r)
    best = sorted(groups, key=lambda k: -max(r["throughput_rps"] or 0 for r in groups[k]))[:max_settings]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, pct in zip(axes, ("p50_ms", "p95_ms", "p99_ms"), strict=True):
        for label in best:
            pts = sorted((r["offered_rps"], r[pct]) for r in groups[label] if r.get(pct) is not None)
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o", label=label)
        ax.set_title(pct.replace("_ms", ""))
        ax.set_xlabel("offered load (requests/s, open loop)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("latency (ms)")
    axes[0].set_yscale("log")
    axes[-1].legend(fontsize=7)
    fig.suptitle("Latency percentiles vs load")
    return _save(fig, plt, path)


def _save(fig, plt, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
