"""`trapline identify evaluate --tables T --truth CSV`: how well the newest identify run agrees with known
individuals, so a user with labelled sightings can judge an identifier before promoting it.

The CSV names each labelled sighting by `uri` or `rel_path` (plus `detection_index` when an image holds more
than one animal) and gives its `individual`. Figures: top-1 (a sighting's nearest other sighting is the same
individual, over sightings whose individual was seen more than once), the adjusted Rand index of the
clustering, and the number of individuals found against the true number.
"""

from __future__ import annotations

import pandas as pd

from model_store.tables.identities import SIGHTINGS, read_result
from trapline.base.errors import NotFoundError, UserError


def evaluate(tables_url: str, truth_csv: str) -> dict:
    from sklearn.metrics import adjusted_rand_score  # imported here: only evaluate needs it

    try:
        truth = pd.read_csv(truth_csv)
    except FileNotFoundError:
        raise NotFoundError(f"truth file not found: {truth_csv}") from None
    on = "uri" if "uri" in truth.columns else "rel_path" if "rel_path" in truth.columns else None
    if on is None or "individual" not in truth.columns:
        raise UserError(f"{truth_csv} needs a uri or rel_path column and an individual column "
                        f"(it has {', '.join(truth.columns)})")
    sightings = read_result(tables_url, SIGHTINGS)
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
            "ari": float(adjusted_rand_score(ided["individual"], ided["individual_id"])) if len(ided) else None,
            "individuals_found": int(ided["individual_id"].nunique()), "individuals_true": int(rows["individual"]
                                                                                             .nunique())}
