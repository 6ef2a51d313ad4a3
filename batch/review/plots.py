"""The report's charts as SVG files, drawn here: bars, lines and text.

Not matplotlib: with fontTools, kiwisolver, contourpy, cycler and pyparsing it was ~38 MB of the container image
(issue 55 asks for <= 1.0 GB) and 0.3-0.5 s of import, for three kinds of chart. No small, well-kept SVG chart library
is worth a dependency (pygal is barely maintained and ships JavaScript tooltips). An SVG file keeps the report a
folder that opens offline, and stays sharp when zoomed. Sizes are pixels; text widths are estimated (~0.6 em a
character), which is all the margins need. Every piece of text is escaped: camera, label and species names are data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

PLOT_DIR = "plots"
SCORE_BINS = np.linspace(0, 1, 41)
STATUS_COLORS = {"ok": "#2e7d32", "empty": "#9e9e9e", "failed": "#c62828"}
CYCLE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
FONT = 11
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # no XML 1.0 document may hold these, escaped or not


def _esc(value: object) -> str:
    return escape(_NOT_XML.sub("\ufffd", str(value)))


def _width(text: object, size: int = FONT) -> float:
    return 0.6 * size * len(str(text))


def _text(x: float, y: float, text: object, size: int = FONT, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>{_esc(text)}</text>'


def _rect(x: float, y: float, w: float, h: float, fill: str, cls: str, extra: str = "") -> str:
    """An SVG rect. Seven parameters: the element's own attributes, one to one."""
    return f'<rect class="{cls}" x="{x:.2f}" y="{y:.2f}" width="{w:.2f}" height="{h:.2f}" fill="{_esc(fill)}"{extra}/>'


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str = "#ddd", extra: str = "") -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}"{extra}/>'


def nice_ticks(top: float, most: int = 6) -> list[int]:
    """0 up to the first tick >= top in steps of 1, 2 or 5 times a power of ten (whole counts; an empty chart: 0, 1)."""
    top = max(float(top), 1.0)
    raw = top / (most - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = max(1, int(next(m * power for m in (1, 2, 5, 10) if m * power >= raw)))
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def _count_axis(ticks: list[int], x0: float, y0: float, w: float, h: float, horizontal: bool = False) -> list[str]:
    """The count axis of the plot area (x0, y0, w, h): gridlines and tick labels, counted up from the bottom (or
    rightwards from the left when horizontal), and the baseline."""
    parts = []
    for t in ticks:
        if horizontal:
            x = x0 + w * t / ticks[-1]
            parts += [_line(x, y0, x, y0 + h), _text(x, y0 + h + 13, f"{t:,}", 10)]
        else:
            y = y0 + h - h * t / ticks[-1]
            parts += [_line(x0, y, x0 + w, y), _text(x0 - 4, y + 3.5, f"{t:,}", 10, "end")]
    parts.append(_line(x0, y0, x0, y0 + h, "#333") if horizontal else _line(x0, y0 + h, x0 + w, y0 + h, "#333"))
    return parts


def _svg(width: float, height: float, title: str, parts: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" fill="#222">'
            f'<title>{_esc(title)}</title><rect width="100%" height="100%" fill="#fff"/>{"".join(parts)}</svg>\n')


def _save(svg: str, out_dir: Path, name: str) -> str:
    (out_dir / PLOT_DIR).mkdir(parents=True, exist_ok=True)
    rel = f"{PLOT_DIR}/{name}.svg"
    (out_dir / rel).write_text(svg, encoding="utf-8")
    return rel


def stacked_bars(counts: pd.DataFrame, title: str, out_dir: Path, name: str,
                 colors: Mapping[str, str] | None = None, ylabel: str = "images") -> str:
    """Bars per index value, stacked by column (e.g. images per camera by status), with a legend when stacked."""
    names = [str(i) for i in counts.index]
    values = counts.fillna(0).to_numpy(dtype=float).reshape(len(names), len(counts.columns))
    columns = [str(c) for c in counts.columns]
    fill = {c: (colors or {}).get(c) or CYCLE[k % len(CYCLE)] for k, c in enumerate(columns)}
    ticks = nice_ticks(values.sum(axis=1).max(initial=0))
    w, h = max(280.0, min(1000.0, 36.0 * len(names))), 200.0
    slot = w / max(len(names), 1)
    longest = max((_width(n, 10) for n in names), default=0.0)
    rotated = len(names) > 6 or longest > slot - 4  # side by side, the names would run into each other
    left, top = 30 + _width(f"{ticks[-1]:,}", 10), 28.0
    bottom = 14 + (longest * 0.71 + 6 if rotated else 14) + 18
    legend = (max(_width(c) for c in columns) + 34) if len(columns) > 1 else 10.0
    parts = [_text((left + w / 2), 17, title, 13), *_count_axis(ticks, left, top, w, h),
             _text(12, top + h / 2, ylabel, extra=f' transform="rotate(-90 12 {top + h / 2:.1f})"')]
    for i, label in enumerate(names):
        x, base = left + slot * i, 0.0
        for c, v in zip(columns, values[i], strict=True):
            if v > 0:
                parts.append(_rect(x + 0.1 * slot, top + h - h * (base + v) / ticks[-1], 0.8 * slot, h * v / ticks[-1],
                                   fill[c], "bar"))
            base += v
        cx, ty = x + slot / 2, top + h + 14
        parts.append(_text(cx, ty, label, 10, "end", f' transform="rotate(-45 {cx:.1f} {ty:.1f})"') if rotated
                     else _text(cx, ty, label, 10))
    for k, c in enumerate(columns if len(columns) > 1 else []):
        y = top + 4 + 16 * k
        parts += [_rect(left + w + 14, y, 10, 10, fill[c], "key"), _text(left + w + 28, y + 9, c, anchor="start")]
    return _save(_svg(left + w + legend, top + h + bottom, title, parts), out_dir, name)


def horizontal_bars(counts: Mapping[str, int], title: str, out_dir: Path, name: str,
                    colors: Mapping[str, str] | None = None, xlabel: str = "images") -> str:
    """One horizontal bar per name, first at the top, its count at its end: long names (species) stay readable."""
    names = list(counts)
    ticks = nice_ticks(max((counts[n] for n in names), default=0))
    row, w = 22.0, 320.0
    left, top = 12 + max((_width(n) for n in names), default=0.0), 28.0
    h = row * max(len(names), 1)
    parts = [_text(left + w / 2, 17, title, 13), *_count_axis(ticks, left, top, w, h, horizontal=True),
             _text(left + w / 2, top + h + 30, xlabel)]
    for i, n in enumerate(names):
        y, length = top + row * i, w * counts[n] / ticks[-1]
        parts += [_rect(left, y + 0.15 * row, length, 0.7 * row, (colors or {}).get(n, CYCLE[0]), "bar"),
                  _text(left - 6, y + row / 2 + 4, n, anchor="end"),
                  _text(left + length + 4, y + row / 2 + 4, f"{counts[n]:,}", 10, "start")]
    return _save(_svg(left + w + 50, top + h + 40, title, parts), out_dir, name)


def score_counts(scores: Sequence[float]) -> np.ndarray:
    """How many scores fall in each of the histograms' bins (counts of two sets of scores add up)."""
    return np.histogram(scores, bins=SCORE_BINS)[0]


def score_histograms(counts: Mapping[str, np.ndarray], edges: Sequence[float], out_dir: Path,
                     colors: Mapping[str, str], name: str = "scores") -> str:
    """One histogram of kept scores per label (`score_counts`), three panels a row, the score-band edges dotted."""
    labels = list(counts) or ["(none)"]
    pw, ph, left, top, w, h = 300.0, 200.0, 44.0, 26.0, 240.0, 130.0  # a panel, and its plot area inside it
    parts = []
    for i, label in enumerate(labels):
        n = np.asarray(counts.get(label, np.zeros(len(SCORE_BINS) - 1, dtype=np.int64)))
        ticks, bin_w = nice_ticks(n.max(initial=0)), w / (len(SCORE_BINS) - 1)
        panel = [_text(left + w / 2, 16, f"{label}: {int(n.sum())} kept box(es)", 12),
                 *_count_axis(ticks, left, top, w, h), _text(left + w / 2, top + h + 30, "score", 10)]
        panel += [_rect(left + bin_w * b, top + h - h * v / ticks[-1], bin_w, h * v / ticks[-1],
                        colors.get(label, "#607d8b"), "bin", ' stroke="#000" stroke-opacity="0.19"')
                  for b, v in enumerate(n)]
        panel += [_text(left + w * s / 5, top + h + 13, f"{s / 5:.1f}", 10) for s in range(6)]
        panel += [_line(left + w * e, top, left + w * e, top + h, "#333", ' stroke-dasharray="2 2"') for e in edges]
        parts.append(f'<g class="panel" transform="translate({pw * (i % 3):.0f} {ph * (i // 3):.0f})">'
                     f'{"".join(panel)}</g>')
    return _save(_svg(pw * min(len(labels), 3), ph * ((len(labels) + 2) // 3), "Scores of the kept boxes", parts),
                 out_dir, name)
