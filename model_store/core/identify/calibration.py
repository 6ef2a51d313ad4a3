"""Raw match scores -> P(same individual), so one threshold means the same for every identifier backend.

Before anyone has confirmed a pair, a logistic curve with a default per backend is used (RANSAC inliers:
a handful are chance, ~10 is a likely match; cosine: 0.6). Once people have confirmed and rejected pairs,
`fit_calibration` fits scikit-learn's IsotonicRegression to them (a monotone curve, no shape assumed) and
the identifier's next version carries its knots in config.json.
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


def fit_calibration(scores: list[float], same: list[bool], current: Calibration | None = None) -> Calibration:
    """An isotonic curve fitted to labelled pairs (raw score, same individual?); too few pairs, or only
    matches or only non-matches, keep `current` (or the default)."""
    from sklearn.isotonic import IsotonicRegression  # imported here: only a fit needs scikit-learn

    current = current or Calibration()
    y = np.asarray(same, np.float64)
    if len(scores) < MIN_FIT_PAIRS or y.min() == y.max():
        return current
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(np.asarray(scores, np.float64), y)
    knots = [(float(a), float(b)) for a, b in zip(model.X_thresholds_, model.y_thresholds_, strict=True)]
    if len(knots) < 2:
        return current
    return Calibration(kind="isotonic", points=knots, fitted_pairs=len(scores))
