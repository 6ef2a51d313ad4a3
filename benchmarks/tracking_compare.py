"""Another version of the tracker against this one on the held-out kinds of night (seed 48): count error, merges
and splits per 100 animals per kind (benchmarks.tracking_tune.link_errors), as a markdown table.

`flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.tracking_compare OTHER/tracking.py`, e.g. the
tracking.py of a checkout before issue 48 (`git show e3fee60:model_store/core/filters/tracking.py > /tmp/t.py`).
Each version runs with its own default TrackConfig.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np

from benchmarks.tracking_metrics import count_errors, max_per_frame
from benchmarks.tracking_nights import REPORT_SEED, load_kinds
from benchmarks.tracking_tune import link_errors
from model_store.core.filters import tracking as now


def run(mod, seqs: list[dict]) -> dict[str, dict[str, float]]:
    config, out = mod.TrackConfig(), []
    for s in seqs:
        ids = mod.link_camera(s["times_s"], s["frame_ids"], s["boxes"], config, appearance=s["appearance"],
                              scores=s["scores"])
        confirmed = mod.confirmed_tracks(ids, config, s["scores"])
        out.append(np.where(confirmed[ids], ids, -1))
    return link_errors(seqs, out)


def main(argv: list[str]) -> int:
    spec = importlib.util.spec_from_file_location("other_tracking", argv[1])
    other = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = other  # pydantic resolves the config's annotations through its module
    spec.loader.exec_module(other)
    seqs = load_kinds(REPORT_SEED, 3, 40)
    before, after = run(other, seqs), run(now, seqs)
    print("| kind | max-per-frame | other: count error / merges / splits per 100 | this |")
    for kind in before:
        pick = [s for s in seqs if s["kind"] == kind]
        mpf = 100 * count_errors([max_per_frame(s) for s in pick], [s["n_animals"] for s in pick]).mean()
        cell = lambda x: (f"{x['count_error_mean_pct']:.1f} % / {x['merges_per_100']:.1f} / "  # noqa: E731
                          f"{x['splits_per_100']:.1f}")
        print(f"| {kind} | {mpf:.1f} % | {cell(before[kind])} | {cell(after[kind])} |")
    means = [np.mean([x["count_error_mean_pct"] for x in r.values()]) for r in (before, after)]
    print(f"| mean over kinds | | {means[0]:.1f} % | {means[1]:.1f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
