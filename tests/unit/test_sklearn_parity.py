"""trapline's two small pieces that stand in for scikit-learn (kept out of the container image) give scikit-learn's
answers: the isotonic calibration's knots (IsotonicRegression's X_thresholds_ / y_thresholds_) and the adjusted Rand
index (adjusted_rand_score). scikit-learn is a dev dependency for this: it is the reference, running."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import adjusted_rand_score

from batch.identify.evaluate import adjusted_rand_index
from model_store.core.identify.calibration import MIN_FIT_PAIRS, fit_calibration, isotonic_knots


def sklearn_knots(x, y) -> tuple[np.ndarray, np.ndarray]:
    model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(np.asarray(x, np.float64),
                                                                              np.asarray(y, np.float64))
    return model.X_thresholds_, model.y_thresholds_


def assert_same_knots(x, y) -> None:
    ours, theirs = isotonic_knots(np.asarray(x, np.float64), np.asarray(y, np.float64)), sklearn_knots(x, y)
    assert len(ours[0]) == len(theirs[0]), (ours, theirs)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=0, atol=0)  # scores are the inputs' own: exact
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12, atol=1e-12)


# Scores the identifiers give: inlier counts (integers, many ties) and cosines (floats, a few exact ties).
inliers = st.integers(0, 60).map(float)
cosines = st.floats(-1.0, 1.0, allow_nan=False, allow_subnormal=False)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(st.tuples(inliers, st.booleans()), min_size=1, max_size=120),
                 st.lists(st.tuples(st.one_of(cosines, st.sampled_from([0.25, 0.5, 0.75])), st.booleans()),
                          min_size=1, max_size=120)))
def test_isotonic_knots_are_sklearns(pairs):
    x, y = zip(*pairs, strict=True)
    assert_same_knots(x, y)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(inliers, st.floats(-0.5, 1.5)), min_size=1, max_size=60))
def test_isotonic_knots_clip_targets_outside_0_1_as_sklearn(pairs):
    x, y = zip(*pairs, strict=True)
    assert_same_knots(x, y)


@pytest.mark.parametrize("x, y", [
    ([3.0], [1.0]),                                   # one point
    ([3.0, 3.0, 3.0], [0.0, 1.0, 1.0]),               # one score, tied
    ([1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]),     # all matches
    ([1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]),     # all non-matches
    ([4.0, 3.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0]),     # against the order: one flat
    ([0.1, 0.1 + 1e-16, 0.1 + 2e-15, 0.2], [0.0, 1.0, 1.0, 0.0]),  # within float resolution: one score
    ([5.0, 1.0, 5.0, 1.0, 3.0], [1.0, 0.0, 0.0, 1.0, 1.0]),
])
def test_isotonic_knots_edge_cases_are_sklearns(x, y):
    assert_same_knots(x, y)


@pytest.mark.parametrize("x, y", [
    ([1.0, float("nan"), 3.0], [0.0, 1.0, 1.0]),
    ([1.0, float("inf"), 3.0], [0.0, 1.0, 1.0]),
    ([1.0, 2.0, 3.0], [0.0, float("nan"), 1.0]),
    ([1.0, 2.0, 3.0], [0.0, 1.0]),
    ([], []),
])
def test_isotonic_knots_refuse_what_sklearn_refuses(x, y):
    with pytest.raises(ValueError):
        sklearn_knots(x, y)
    with pytest.raises(ValueError, match="isotonic calibration needs as many finite labels as finite scores"):
        isotonic_knots(np.array(x, np.float64), np.array(y, np.float64))


def test_fit_calibration_carries_sklearns_knots():
    rng = np.random.default_rng(3)
    scores = np.round(np.concatenate([rng.normal(6, 3, 150), rng.normal(16, 5, 150)]).clip(0), 0)  # inlier-like
    same = [False] * 150 + [True] * 150
    fitted = fit_calibration(list(scores), same)
    xs, ps = sklearn_knots(scores, same)
    assert fitted.kind == "isotonic" and len(fitted.points) == len(xs) and len(scores) >= MIN_FIT_PAIRS
    np.testing.assert_allclose(np.array(fitted.points), np.column_stack([xs, ps]), rtol=0, atol=1e-12)


labellings = st.integers(0, 80).flatmap(lambda n: st.tuples(st.lists(st.integers(0, 6), min_size=n, max_size=n),
                                                            st.lists(st.integers(0, 9), min_size=n, max_size=n)))


@settings(max_examples=300, deadline=None)
@given(labellings)
def test_adjusted_rand_index_is_sklearns(pair):
    true, pred = pair
    assert adjusted_rand_index(true, pred) == pytest.approx(adjusted_rand_score(true, pred), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("true, pred", [
    ([], []),                                         # no items
    ([7], [3]),                                       # one item
    (["a", "a", "a"], ["x", "x", "x"]),               # one cluster each
    ([0, 1, 2, 3], ["p", "q", "r", "s"]),             # all singletons each
    ([0, 0, 0, 0], [0, 1, 2, 3]),                     # one cluster against singletons: 0
    ([0, 1, 2, 3], [0, 0, 0, 0]),
    ([0, 0, 1, 1], [1, 1, 0, 0]),                     # the same partition, other names: 1
    ([0, 0, 1, 1], [0, 1, 0, 1]),                     # worse than chance: -0.5
    (["deer-1", "deer-1", "deer-2"], ["ind-9", "ind-9", "ind-9"]),
])
def test_adjusted_rand_index_edge_cases_are_sklearns(true, pred):
    assert adjusted_rand_index(true, pred) == pytest.approx(adjusted_rand_score(true, pred), rel=1e-12, abs=1e-12)


def test_adjusted_rand_index_on_a_large_archive_is_sklearns():
    """Pair counts of ~10^11: in Python integers, as sklearn's; a float64 or int32 count would drift."""
    rng = np.random.default_rng(1)
    true = rng.integers(0, 300, 500_000)
    pred = np.where(rng.random(500_000) < 0.8, true, rng.integers(0, 300, 500_000))
    assert adjusted_rand_index(true, pred) == pytest.approx(adjusted_rand_score(true, pred), rel=1e-12)


def test_adjusted_rand_index_refuses_labellings_of_different_lengths():
    with pytest.raises(ValueError, match="same items"):
        adjusted_rand_index([0, 1, 2], [0, 1])
