"""What camera-days, trap rates, activity by hour and detection histories are computed from (`trapline deployments
effort | history`, the deployments view, the report's effort section).

The species' detections are the confirmed occurrences of a tracked result set (`trapline postprocess --filter
track`), each at the corrected time of its first frame; the people's identifications are applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ground.errors import NotFoundError
from model_store.tables.reader import Tables


@dataclass
class Observed:
    """What the effort figures are computed from: the time book, the placed pictures, the species' detections."""

    book: Any
    pictures: Any  # pd.DataFrame
    detections: Any  # pd.DataFrame: deployment_id, label, capture_time (UTC), capture_time_local


def observed(tables: Tables, model: str | None = None, filters_hash: str | None = None,
             store: str | None = None) -> Observed:
    """The deployments, the pictures of a tracked result set and its confirmed occurrences, all with corrected times."""
    import pandas as pd  # late (with the next two): the parser is built for every trapline command

    from batch.postprocessing import occurrences  # late, as above
    from model_store.tables.clock import TimeBook  # late, as above

    book = TimeBook.load(tables.storage)
    if not book.deployments:
        # Not found (404), not a bad parameter: the Deployments page shows it as its empty state, saying what to run.
        raise NotFoundError(f"no deployments recorded beside {tables.url}: `trapline deployments import FILE --tables "
                            f"{tables.url}` first", kind="no_deployments")
    occ = occurrences.load(tables, model, filters_hash, store)
    images = occ.images
    rows = occ.rows
    if not rows.empty and "confirmed" in rows:
        rows = rows[rows["confirmed"].fillna(False).astype(bool)]
    placed = images.set_index("uri")
    first = rows["uri"] if not rows.empty else pd.Series([], dtype=object)
    detections = pd.DataFrame({
        "deployment_id": placed["deployment_id"].reindex(first).to_numpy() if len(first) else [],
        "label": rows["label"].to_numpy() if len(first) else [],
        "capture_time": placed["capture_time"].reindex(first).to_numpy() if len(first) else [],
        "capture_time_local": placed["capture_time_local"].reindex(first).to_numpy() if len(first) else []})
    return Observed(book, images, detections)


def report_figures(tables: Tables, tset: Any, store: str | None = None) -> dict[str, Any] | None:
    """The report's effort section: camera-days, trap rates and activity of a tracked set, with the default
    settings; None without deployments or occurrences."""
    from model_store.tables.clock import TimeBook  # late: pandas only when asked

    if "track" not in [s.get("name") for s in tset.filter_specs] or not TimeBook.load(tables.storage).deployments:
        return None
    eff = _effort()
    obs = observed(tables, f"{tset.model_name}:{tset.model_version}", tset.filters_hash, store)
    effort = eff.efforts(obs.book, obs.pictures)
    rates = eff.trap_rates(obs.book, effort, obs.detections)
    hours = eff.activity(obs.detections)
    return {"gap_days": eff.GAP_DAYS, "independence_min": eff.INDEPENDENCE_MIN,
            "camera_days": [{"deployment": k, "camera_days": round(e.camera_days, 2)} for k, e in effort.items()],
            "trap_rates": rates.to_dict("records"), "hours": list(hours.columns),
            "activity": [{"species": s, "counts": [int(v) for v in row]} for s, row in hours.iterrows()]}


def _effort():
    from batch.deployments import effort  # late: pandas is not loaded for every command's parser

    return effort
