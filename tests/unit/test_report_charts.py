"""The report's SVG charts, read back as XML: one bar per category at a height proportional to its count, the
names as given (escaped on the way in), 40 score bins per label, and a valid chart of nothing."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from batch.review import plots

SVG = "{http://www.w3.org/2000/svg}"


def read(out, rel: str) -> ET.Element:
    assert rel.startswith("plots/") and rel.endswith(".svg")
    root = ET.parse(out / rel).getroot()  # parses: well-formed XML
    assert root.tag == f"{SVG}svg" and float(root.get("width")) > 0 and float(root.get("height")) > 0
    return root


def rects(node: ET.Element, cls: str) -> list[dict[str, float | str]]:
    return [{k: (float(v) if k in ("x", "y", "width", "height") else v) for k, v in r.attrib.items()}
            for r in node.iter(f"{SVG}rect") if r.get("class") == cls]


def texts(node: ET.Element) -> list[str]:
    return [t.text or "" for t in node.iter(f"{SVG}text")]


def test_stacked_bars_one_bar_per_camera_its_parts_proportional_to_the_counts(tmp_path):
    counts = pd.DataFrame({"empty": [1, 0, 4], "failed": [0, 2, 1], "ok": [30, 7, 0]},
                          index=["cam01", "cam02", "cam03"])
    svg = read(tmp_path, plots.stacked_bars(counts, "Images per camera, by outcome", tmp_path, "per_camera",
                                            plots.STATUS_COLORS))
    bars = rects(svg, "bar")
    by_x = defaultdict(list)
    for b in bars:
        by_x[b["x"]].append(b)
    assert len(by_x) == 3 and len(bars) == int((counts.to_numpy() > 0).sum())  # a part per non-zero count
    per_image = bars[0]["height"] / counts.to_numpy()[counts.to_numpy() > 0][0]
    for (x, parts), (camera, row) in zip(sorted(by_x.items()), counts.iterrows(), strict=True):
        assert sum(p["height"] for p in parts) == pytest.approx(row.sum() * per_image, abs=0.02)
        assert sorted(p["fill"] for p in parts) == sorted(plots.STATUS_COLORS[s] for s in row[row > 0].index)
        top = min(p["y"] for p in parts)  # stacked: each part starts where the one below it ends
        assert max(p["y"] + p["height"] for p in parts) == pytest.approx(top + row.sum() * per_image, abs=0.05)
    shown = texts(svg)
    assert {"cam01", "cam02", "cam03", "images", "Images per camera, by outcome"} <= set(shown)
    assert [r["fill"] for r in rects(svg, "key")] == [plots.STATUS_COLORS[s] for s in counts.columns]  # the legend
    assert {"empty", "failed", "ok"} <= set(shown)
    ticks = [int(t.replace(",", "")) for t in shown if t.replace(",", "").isdigit()]
    assert ticks[0] == 0 and ticks[-1] >= 31 and len(set(np.diff(ticks))) == 1  # 0, 10, 20, 30, 40


def test_many_or_long_names_are_written_slanted(tmp_path):
    def slanted(index) -> bool:
        svg = read(tmp_path, plots.stacked_bars(pd.DataFrame({"images": range(1, len(index) + 1)}, index=index), "t",
                                                tmp_path, "x"))
        return any("rotate(-45" in (t.get("transform") or "") for t in svg.iter(f"{SVG}text"))
    assert not slanted(["a", "b", "c"])
    assert slanted([f"cam{i:02d}" for i in range(12)])
    assert slanted(["the north gate by the old oak", "the south gate"])


def test_names_are_escaped_and_read_back_as_given(tmp_path):
    hostile = ['<script>alert("x")</script>', "Tom & Jerry's", "]]><!--", "tab\there"]
    svg = read(tmp_path, plots.stacked_bars(pd.DataFrame({"a&b": [1, 2, 3, 4], "<c>": [1, 1, 1, 1]}, index=hostile),
                                            "<title>", tmp_path, "per_camera"))
    assert set(hostile) | {"a&b", "<c>", "<title>"} <= set(texts(svg))
    assert not list(svg.iter(f"{SVG}script"))
    svg = read(tmp_path, plots.horizontal_bars({n: 3 for n in hostile} | {"bell\x07": 1}, "Species", tmp_path, "sp"))
    assert set(hostile) | {"bell\ufffd"} <= set(texts(svg))  # a control character no XML may hold: replaced


def test_horizontal_bars_first_name_on_top_lengths_proportional(tmp_path):
    counts = {"Odocoileus virginianus (white-tailed deer)": 40, "Vulpes vulpes": 3, "Meles meles": 17}
    svg = read(tmp_path, plots.horizontal_bars(counts, "Images with a classified box, per species", tmp_path,
                                               "per_species", {"Vulpes vulpes": "#ff0000"}))
    bars = rects(svg, "bar")
    assert [b["y"] for b in bars] == sorted(b["y"] for b in bars) and len(bars) == 3
    per_image = bars[0]["width"] / 40
    assert [b["width"] for b in bars] == pytest.approx([n * per_image for n in counts.values()], abs=0.02)
    assert [b["fill"] for b in bars] == [plots.CYCLE[0], "#ff0000", plots.CYCLE[0]]
    names = [t for t in svg.iter(f"{SVG}text") if t.text in counts]
    assert len(names) == 3 and all(float(t.get("x")) > 0 for t in names)  # the margin fits the longest name


def test_score_histograms_40_bins_per_label_and_the_band_edges_dotted(tmp_path):
    rng = np.random.default_rng(0)
    scores = {"deer": rng.uniform(0.1, 1, 300), "fox": np.array([0.55, 0.56, 0.99]), "<b>": np.array([0.3])}
    counts = {label: plots.score_counts(s) for label, s in scores.items()}
    svg = read(tmp_path, plots.score_histograms(counts, [0.2, 0.5], tmp_path, {"deer": "#123456"}))
    panels = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "panel"]
    assert len(panels) == 3
    for panel, (label, n) in zip(panels, counts.items(), strict=True):
        bins = rects(panel, "bin")
        assert len(bins) == len(plots.SCORE_BINS) - 1 == 40
        assert [b["x"] for b in bins] == sorted(b["x"] for b in bins)
        per_box = max(b["height"] for b in bins) / n.max()
        assert [b["height"] for b in bins] == pytest.approx(list(n * per_box), abs=0.02)
        assert f"{label}: {len(scores[label])} kept box(es)" in texts(panel)
        dotted = [ln for ln in panel.iter(f"{SVG}line") if ln.get("stroke-dasharray")]
        left, right = bins[0]["x"], bins[-1]["x"] + bins[-1]["width"]
        assert [(float(ln.get("x1")) - left) / (right - left) for ln in dotted] == pytest.approx([0.2, 0.5], abs=1e-3)
    assert {b["fill"] for b in rects(panels[0], "bin")} == {"#123456"}


@pytest.mark.parametrize("chart", ["stacked", "stacked-zero", "horizontal", "histograms", "histogram-zero"])
def test_nothing_to_count_still_makes_a_valid_chart(chart, tmp_path):
    rel = {
        "stacked": lambda: plots.stacked_bars(pd.DataFrame({"images": []}), "t", tmp_path, "a"),
        "stacked-zero": lambda: plots.stacked_bars(pd.DataFrame({"ok": [0, 0]}, index=["c1", "c2"]), "t", tmp_path,
                                                   "b"),
        "horizontal": lambda: plots.horizontal_bars({}, "t", tmp_path, "c"),
        "histograms": lambda: plots.score_histograms({}, [0.5], tmp_path, {}),
        "histogram-zero": lambda: plots.score_histograms({"deer": plots.score_counts([])}, [], tmp_path, {}),
    }[chart]()
    svg = read(tmp_path, rel)
    assert all(b["height"] == 0 for b in rects(svg, "bar") + rects(svg, "bin"))
    assert not re.search(r'"-?(nan|inf)"', (tmp_path / rel).read_text())  # no 0/0 in any coordinate
    assert {"0", "1"} <= set(texts(svg))  # an axis from 0 to 1


def test_count_ticks_step_by_1_2_or_5_times_a_power_of_ten_and_cover_the_top():
    for top in [*range(0, 300), 999, 1000, 1001, 12_345, 2_000_000]:
        ticks = plots.nice_ticks(top)
        step = ticks[1] - ticks[0]
        assert ticks[0] == 0 and ticks[-1] >= top and ticks[-2] < max(top, 1) and 2 <= len(ticks) <= 7
        assert np.diff(ticks).tolist() == [step] * (len(ticks) - 1)
        assert step / 10 ** math.floor(math.log10(step)) in (1, 2, 5)
