"""The scale benchmark's figures against archive size, as one PNG (issue 34: "a plot of cost against archive size").

`python -m benchmarks.scale_plot RESULT.json [RESULT.json ...] --out benchmarks/results/scale_cost.png`

Reads rows written by `python -m benchmarks.scale` (later files win for the same step and size) and draws two
panels on log-log axes: the full run's milliseconds per image processed and each table tool's milliseconds per
image row, and each step's peak RSS. A flat line is a cost that does not grow with the archive; a step killed at
the memory cap is drawn at the cap with an x.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

STEPS = ("full run", "nothing new", "tables check", "tables compact", "events", "export camtrap-dp", "report",
         "GET /v1/pictures/cameras")


def load_rows(paths: list[Path]) -> dict[str, dict[int, dict[str, Any]]]:
    """step -> images -> row, the later file's row where two give the same step and size."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for path in paths:
        for row in json.loads(path.read_text())["rows"]:
            if row["step"] in STEPS:
                out.setdefault(row["step"], {})[int(row["images"])] = row
    return out


def _rss(row: dict[str, Any]) -> tuple[float, bool]:
    """(peak RSS in MiB, killed at the cap): a killed row reads "> 6144"."""
    value = row["peak_rss_mib"]
    if isinstance(value, str):
        return float(value.lstrip("> ")), True
    return float(value), bool(row.get("over_cap"))


def plot(rows: dict[str, dict[int, dict[str, Any]]], out: Path) -> Path:
    fig = Figure(figsize=(11, 4.2))
    cost, memory = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for step in STEPS:
        by_size = rows.get(step)
        if not by_size:
            continue
        sizes = sorted(by_size)
        per_image = [1000 * by_size[n]["wall_s"] / max(by_size[n].get("processed") or n, 1) for n in sizes]
        line = cost.plot(sizes, per_image, marker="o", label=step)[0]
        rss = [_rss(by_size[n]) for n in sizes]
        memory.plot(sizes, [r for r, _ in rss], marker="o", color=line.get_color(), label=step)
        killed = [(n, r) for n, (r, over) in zip(sizes, rss, strict=True) if over]
        if killed:
            memory.scatter(*zip(*killed, strict=True), marker="x", s=90, color=line.get_color())
    for ax, title, unit in ((cost, "Cost per image", "ms per image (log)"), (memory, "Peak RSS", "MiB (log)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("images in the archive / tables (log)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    memory.legend(fontsize=7, loc="upper left")
    FigureCanvasAgg(fig)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.scale_plot", description=__doc__.splitlines()[0])
    p.add_argument("results", nargs="+", type=Path, help="JSON files written by benchmarks.scale, oldest first")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/scale_cost.png"))
    args = p.parse_args(argv)
    print(f"written: {plot(load_rows(args.results), args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
