"""The report's charts as PNG files (matplotlib's object API: no pyplot, no global backend switch)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOT_DIR = "plots"
SCORE_BINS = np.linspace(0, 1, 41)
STATUS_COLORS = {"ok": "#2e7d32", "empty": "#9e9e9e", "failed": "#c62828"}


def _figure(**kwargs) -> Figure:
    # matplotlib is imported when a chart is drawn: it costs ~0.3-0.5 s, and every `trapline` command imported it
    # (the report's options are part of the CLI) where only `trapline report` draws.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, out_dir: Path, name: str) -> str:
    (out_dir / PLOT_DIR).mkdir(parents=True, exist_ok=True)
    rel = f"{PLOT_DIR}/{name}.png"
    fig.savefig(out_dir / rel, dpi=100, bbox_inches="tight")
    return rel


def stacked_bars(counts: pd.DataFrame, title: str, out_dir: Path, name: str,
                 colors: Mapping[str, str] | None = None, ylabel: str = "images") -> str:
    """Bars per index value, stacked by column (e.g. images per camera by status)."""
    fig = _figure(figsize=(max(4.0, min(12.0, 0.45 * len(counts) + 2)), 3.0))
    ax = fig.add_subplot()
    bottom = np.zeros(len(counts))
    x = np.arange(len(counts))
    for col in counts.columns:
        values = counts[col].to_numpy(dtype=float)
        ax.bar(x, values, bottom=bottom, label=str(col), color=(colors or {}).get(col))
        bottom += values
    ax.set_xticks(x, [str(i) for i in counts.index], rotation=45 if len(counts) > 6 else 0, ha="right"
                  if len(counts) > 6 else "center", fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_ylabel(ylabel)
    if len(counts.columns) > 1:
        ax.legend(fontsize=8, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, out_dir, name)


def horizontal_bars(counts: Mapping[str, int], title: str, out_dir: Path, name: str,
                    colors: Mapping[str, str] | None = None, xlabel: str = "images") -> str:
    """One horizontal bar per name, first at the top: long names (species) stay readable."""
    names = list(counts)
    fig = _figure(figsize=(5.0, max(2.0, 0.3 * len(names) + 1.0)))
    ax = fig.add_subplot()
    y = np.arange(len(names))[::-1]
    ax.barh(y, [counts[n] for n in names], color=[(colors or {}).get(n, "#1f77b4") for n in names])
    ax.set_yticks(y, names, fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, out_dir, name)


def score_counts(scores: Sequence[float]) -> np.ndarray:
    """How many scores fall in each of the histograms' bins (counts of two sets of scores add up)."""
    return np.histogram(scores, bins=SCORE_BINS)[0]


def score_histograms(counts: Mapping[str, np.ndarray], edges: Sequence[float], out_dir: Path,
                     colors: Mapping[str, str], name: str = "scores") -> str:
    """One histogram of kept scores per label (`score_counts`), with the score-band edges marked."""
    labels = list(counts) or ["(none)"]
    fig = _figure(figsize=(4.0 * min(len(labels), 3), 2.8 * ((len(labels) + 2) // 3)))
    for i, label in enumerate(labels):
        ax = fig.add_subplot((len(labels) + 2) // 3, min(len(labels), 3), i + 1)
        n = counts.get(label, np.zeros(len(SCORE_BINS) - 1, dtype=np.int64))
        ax.hist(SCORE_BINS[:-1], bins=SCORE_BINS, weights=n, color=colors.get(label, "#607d8b"), edgecolor="#00000030")
        for e in edges:
            ax.axvline(e, color="#333333", linestyle=":", linewidth=1)
        ax.set_title(f"{label}: {int(n.sum())} kept box(es)", fontsize=10)
        ax.set_xlabel("score", fontsize=8)
        ax.set_xlim(0, 1)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _save(fig, out_dir, name)
