"""Precision, recall, F1 and the confusion table of a model's labels against people's, each rate with its Wilson 95 %
interval and its evidence (k of n): pure arithmetic over pairs (people's label, the model's label), where `NONE` on
the people's side is "not an animal" (a rejected detection, a detection in an image marked empty) and on the model's
side "no box" (a box people added). batch/postprocessing/accuracy.py builds the pairs from the decisions log.

Detection (is it an animal, whatever its label): a pair with both sides labelled is a true positive (a confirmed
detection, or a relabelled one), people's NONE a false positive, the model's NONE a false negative. Per label L:
precision = (both L) / (model L), recall = (both L) / (people L), as scikit-learn's `precision_recall_fscore_support`
over the labels without NONE (a relabelled detection is a false positive of the model's label and a false negative
of the person's). tests/unit/test_accuracy.py checks both against scikit-learn on the same pairs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from statistics import NormalDist
from typing import Any

NONE = "(none)"  # people: not an animal; the model: no box
CONFIDENCE = 0.95
# The Wilson score interval, written here: statsmodels (`proportion_confint(method="wilson")`, the usual reference)
# is not a dependency of the product, and the interval is three lines; tests/unit/test_accuracy.py checks it against
# published values (Wilson 1927; Newcombe 1998, Table I) and against statsmodels' on the same decisions (a dev
# dependency).
_Z = NormalDist().inv_cdf(1 - (1 - CONFIDENCE) / 2)


def wilson(k: int, n: int, z: float = _Z) -> tuple[float, float] | None:
    """The Wilson score interval of k successes in n trials (None without trials)."""
    if n <= 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(k: int, n: int) -> dict[str, Any]:
    """A rate with its interval and evidence: {"value", "low", "high", "k", "n"} (value and bounds None if n is 0)."""
    ci = wilson(k, n)
    return {"value": round(k / n, 6) if n else None, "low": round(ci[0], 6) if ci else None,
            "high": round(ci[1], 6) if ci else None, "k": k, "n": n}


def f1(tp: int, fp: int, fn: int) -> float | None:
    """2TP / (2TP + FP + FN): the harmonic mean of precision and recall. Not a share of trials, so no Wilson
    interval of its own: its evidence is the precision's and the recall's."""
    d = 2 * tp + fp + fn
    return round(2 * tp / d, 6) if d else None


def detection_scores(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Animal or not, whatever the label: TP, FP, FN, precision, recall, F1, and how often a true positive's label
    is the person's (label agreement)."""
    tp = sum(t != NONE and s != NONE for t, s in pairs)
    fp = sum(t == NONE for t, _ in pairs)
    fn = sum(s == NONE for _, s in pairs)
    agreed = sum(t == s != NONE for t, s in pairs)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": rate(tp, tp + fp), "recall": rate(tp, tp + fn),
            "f1": f1(tp, fp, fn), "label_agreement": rate(agreed, tp)}


def label_scores(pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Per label (people's or the model's, NONE left out): people's count, the model's, precision, recall, F1."""
    truth = Counter(t for t, _ in pairs)
    said = Counter(s for _, s in pairs)
    both = Counter(t for t, s in pairs if t == s)
    out = []
    for label in sorted((set(truth) | set(said)) - {NONE}):
        tp = both[label]
        out.append({"label": label, "people": truth[label], "model": said[label], "tp": tp,
                    "precision": rate(tp, said[label]), "recall": rate(tp, truth[label]),
                    "f1": f1(tp, said[label] - tp, truth[label] - tp)})
    return out


def confusion(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """People's label (rows) against the model's (columns), NONE last on both; each cell with its share of the row
    (Wilson interval): how often the model calls people's L each label."""
    pairs = list(pairs)
    labels = sorted({x for p in pairs for x in p} - {NONE}) + [NONE]
    counts = Counter(pairs)
    rows = []
    for t in labels:
        total = sum(counts[(t, s)] for s in labels)
        if total:
            rows.append({"people": t, "n": total, "model": {s: rate(counts[(t, s)], total) for s in labels
                                                            if counts[(t, s)]}})
    return {"labels": labels, "counts": [[counts[(t, s)] for s in labels] for t in labels], "rows": rows}


def scores(pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """Everything above for one body of evidence."""
    return {"detection": detection_scores(pairs), "per_label": label_scores(pairs), "confusion": confusion(pairs)}


def shown(r: dict[str, Any]) -> str:
    """"0.93 (0.89-0.96, 198/212)", or "- (0/0)"."""
    if r["value"] is None:
        return f"- ({r['k']}/{r['n']})"
    return f"{r['value']:.2f} ({r['low']:.2f}-{r['high']:.2f}, {r['k']}/{r['n']})"
