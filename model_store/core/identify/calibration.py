"""Raw match scores -> P(same individual), so one threshold means the same for every identifier backend.

Before anyone has confirmed a pair, a logistic curve with a default per backend is used (RANSAC inliers:
a handful are chance, ~10 is a likely match; cosine: 0.6). Once people have confirmed and rejected pairs,
`fit_calibration` fits an isotonic regression to them (a monotone curve, no shape assumed) and the identifier's
next version carries its knots in config.json.
"""

from __future__ import annotations

import numpy as np

from model_store.core.config.identifier import Calibration

# (center, scale) of the default logistic curve per backend, until pairs are fitted.
DEFAULT_LOGISTIC = {"keypoints": (10.0, 2.5), "onnx-embedding": (0.6, 0.08)}
MIN_FIT_PAIRS = 20  # fewer labelled pairs (or only one kind) keep the default: a curve through 3 points lies


def p_same(scores: np.ndarray | list[float], calibration: Calibration, backend: str) -> np.ndarray:
    """P(same individual) for each raw score."""
    x = np.asarray(scores, np.float64)
    if calibration.kind == "isotonic":
        knots = np.asarray(calibration.points, np.float64)
        return np.interp(x, knots[:, 0], knots[:, 1])
    center0, scale0 = DEFAULT_LOGISTIC[backend]
    center = calibration.center if calibration.center is not None else center0
    scale = calibration.scale if calibration.scale is not None else scale0
    return 1.0 / (1.0 + np.exp(-(x - center) / scale))


def isotonic_knots(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The knots of the isotonic fit of y on x, y clipped to 0..1: what scikit-learn's
    `IsotonicRegression(y_min=0, y_max=1).fit(x, y)` keeps as `X_thresholds_`, `y_thresholds_`.

    Written here rather than imported, so scikit-learn (~35 MB with joblib and threadpoolctl) stays out of the
    container image: scipy, already a runtime dependency, carries the pool-adjacent-violators step, and the rest is
    scikit-learn's own few lines around it (sklearn/isotonic.py `_build_y`, `_make_unique`), step for step.
    tests/unit/test_sklearn_parity.py checks the knots against scikit-learn's."""
    from scipy.optimize import isotonic_regression  # imported here: only a fit needs it

    if not len(x) or x.shape != y.shape or not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError(f"isotonic calibration needs as many finite labels as finite scores, at least one "
                         f"(got {x.shape} scores, {y.shape} labels)")
    order = np.lexsort((y, x))
    x, y = x[order], y[order]
    # Tied scores become one point: their mean label, weighted by how many. As scikit-learn, a score within float64
    # resolution (1e-15) of its group's first score joins that group.
    eps = np.finfo(np.float64).resolution
    group = np.empty(len(x), np.intp)
    start, g = x[0], 0
    for i, xi in enumerate(x):
        if xi - start >= eps:
            start, g = xi, g + 1
        group[i] = g
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    weights = np.bincount(group).astype(np.float64)
    ux, uy = x[starts], np.bincount(group, weights=y) / weights
    fit = np.clip(isotonic_regression(uy, weights=weights, increasing=True).x, 0.0, 1.0)
    # Keep the ends and every point whose p differs from a neighbour's: the rest lie on a flat the interpolation
    # draws anyway.
    keep = np.ones(len(fit), bool)
    keep[1:-1] = (fit[1:-1] != fit[:-2]) | (fit[1:-1] != fit[2:])
    return ux[keep], fit[keep]


def fit_calibration(scores: list[float], same: list[bool], current: Calibration | None = None) -> Calibration:
    """An isotonic curve fitted to labelled pairs (raw score, same individual?); too few pairs, or only
    matches or only non-matches, keep `current` (or the default)."""
    current = current or Calibration()
    y = np.asarray(same, np.float64)
    if len(scores) < MIN_FIT_PAIRS or y.min() == y.max():
        return current
    xs, ps = isotonic_knots(np.asarray(scores, np.float64), y)
    knots = [(float(a), float(b)) for a, b in zip(xs, ps, strict=True)]
    if len(knots) < 2:
        return current
    return Calibration(kind="isotonic", points=knots, fitted_pairs=len(scores))
