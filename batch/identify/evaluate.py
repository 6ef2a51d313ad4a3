"""`trapline identify evaluate --tables T --truth CSV`: how well the newest identify run agrees with known
individuals, so a user with labelled sightings can judge an identifier before promoting it.

The CSV names each labelled sighting by `uri` or `rel_path` (plus `detection_index` when an image holds more
than one animal) and gives its `individual`. Figures: top-1 (a sighting's nearest other sighting is the same
individual, over sightings whose individual was seen more than once), the adjusted Rand index of the
clustering, and the number of individuals found against the true number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ground.errors import NotFoundError, UserError
from model_store.tables.identities import SIGHTINGS, read_result
from model_store.tables.locations import open_location


def adjusted_rand_index(labels_true, labels_pred) -> float:
    """The adjusted Rand index of two labellings of the same items (1.0: the same partition; ~0: chance).

    Written here rather than imported, so scikit-learn stays out of the container image for one formula. It is
    scikit-learn's `adjusted_rand_score` (sklearn/metrics/cluster/_supervised.py) over pair counts, in Python
    integers so large archives do not overflow, with its special case: no pair on which the labellings disagree
    (no items, one item, or the same partition) is 1.0. tests/unit/test_sklearn_parity.py checks it against
    scikit-learn's."""
    _, true_idx = np.unique(np.asarray(labels_true), return_inverse=True)
    _, pred_idx = np.unique(np.asarray(labels_pred), return_inverse=True)
    if true_idx.shape != pred_idx.shape or true_idx.ndim != 1:
        raise ValueError(f"two labellings of the same items needed, got shapes {true_idx.shape} and {pred_idx.shape}")

    def pairs(idx: np.ndarray) -> int:  # pairs of items in the same group, summed over the groups
        return sum(c * (c - 1) // 2 for c in np.bincount(idx).tolist())

    n = len(true_idx)
    both = pairs(true_idx * (int(pred_idx.max(initial=0)) + 1) + pred_idx)  # the contingency table's cells
    same_true, same_pred = pairs(true_idx), pairs(pred_idx)
    tp, fn, fp = both, same_true - both, same_pred - both  # pairs together in both / only in truth / only predicted
    tn = n * (n - 1) // 2 - tp - fn - fp
    if fn == 0 and fp == 0:
        return 1.0
    return 2.0 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn))


def evaluate(tables_url: str, truth_csv: str) -> dict:
    try:
        truth = pd.read_csv(truth_csv)
    except FileNotFoundError:
        raise NotFoundError(f"truth file not found: {truth_csv}") from None
    on = "uri" if "uri" in truth.columns else "rel_path" if "rel_path" in truth.columns else None
    if on is None or "individual" not in truth.columns:
        raise UserError(f"{truth_csv} needs a uri or rel_path column and an individual column "
                        f"(it has {', '.join(truth.columns)})")
    sightings = read_result(open_location(tables_url), SIGHTINGS)
    if sightings.empty:
        raise UserError(f"no identify run in {tables_url} (run `trapline identify` first)")
    keys = [on] + (["detection_index"] if "detection_index" in truth.columns else [])
    truth = truth[keys + ["individual"]].astype({"individual": str})
    rows = sightings.merge(truth, on=keys, how="inner")
    if rows.empty:
        raise UserError(f"no sighting in {tables_url} matches a row of {truth_csv} by {', '.join(keys)}")
    ided = rows.dropna(subset=["individual_id"])
    by_key = {(r.uri, r.content_id, r.detection_index): r.individual for r in rows.itertuples()}
    seen = rows["individual"].value_counts()
    hits = [by_key.get((r.nearest_uri, r.nearest_content_id, r.nearest_detection_index)) == r.individual
            for r in ided.itertuples() if seen[r.individual] > 1]
    return {"sightings": len(rows), "unidentifiable": int((rows["decision"] == "unidentifiable").sum()),
            "top1": sum(hits) / len(hits) if hits else None,
            "ari": adjusted_rand_index(ided["individual"], ided["individual_id"]) if len(ided) else None,
            "individuals_found": int(ided["individual_id"].nunique()), "individuals_true": int(rows["individual"]
                                                                                             .nunique())}
