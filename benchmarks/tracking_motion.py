"""The tracker's motion model, measured: the running-mean velocity (an alpha-beta filter, TrackConfig's
`motion="alpha-beta"`) against a constant-velocity Kalman filter per track (`motion="kalman"`), on the fit seed
(7, with ten fly-off nights: benchmarks.tracking_tune's objective) over a grid of its two noises, and the best of
them on the held-out seed 48, per kind (count error, merges and splits per 100 animals).

`flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.tracking_motion`
"""

from __future__ import annotations

import sys

import numpy as np

from benchmarks.tracking_nights import FIT_SEED, REPORT_SEED, load_kinds
from benchmarks.tracking_tune import fly_off_nights, objective


def main() -> int:
    fit = [s for s in load_kinds(FIT_SEED, 2, 30) if s["kind"] != "fly-off-and-back"] + fly_off_nights(FIT_SEED, 10)
    report = load_kinds(REPORT_SEED, 3, 40)
    settings = [{}] + [{"motion": "kalman", "kalman_q": q, "kalman_r": r}
                       for q in (0.03, 0.1, 0.3) for r in (0.03, 0.1, 0.3)]
    fitted = []
    for setting in settings:
        value, s = objective(fit, setting)
        fitted.append((value, setting))
        print(f"seed {FIT_SEED}: objective {value:.2f}, mean count error "
              f"{np.mean([k['count_error_mean_pct'] for k in s.values()]):.2f} %, crawlers "
              f"{s['crawlers']['count_error_mean_pct']:.2f} %, herd {s['herd']['count_error_mean_pct']:.2f} % "
              f"{setting or 'alpha-beta'}", flush=True)
    best = min(fitted[1:], key=lambda x: x[0])[1]
    for setting in ({}, best):
        value, s = objective(report, setting)
        print(f"seed {REPORT_SEED}: objective {value:.2f} {setting or 'alpha-beta'}")
        for kind, k in s.items():
            print(f"  {kind:16s} {k['count_error_mean_pct']:6.2f} %  merges {k['merges_per_100']:5.1f}  "
                  f"splits {k['splits_per_100']:5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
