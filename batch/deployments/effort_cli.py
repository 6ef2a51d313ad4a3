"""`trapline deployments effort | history`: camera-days, trap rates, activity by hour, detection histories.

The species' detections are the confirmed occurrences of a tracked result set (`trapline postprocess --filter
track`), each at the corrected time of its first frame; the people's identifications are applied.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batch.deployments import defaults as eff
from trapline.base.errors import BatchError


@dataclass
class Observed:
    """What the effort figures are computed from: the time book, the placed pictures, the species' detections."""

    book: Any
    pictures: Any  # pd.DataFrame
    detections: Any  # pd.DataFrame: deployment_id, label, capture_time (UTC), capture_time_local


def observed(tables: str, model: str | None = None, filters_hash: str | None = None,
             store: str | None = None) -> Observed:
    """The deployments, the pictures of a tracked result set and its confirmed occurrences, all with corrected times."""
    import pandas as pd  # late (with the next two): the parser is built for every trapline command

    from batch.postprocessing import occurrences  # late, as above
    from model_store.tables.clock import TimeBook  # late, as above

    book = TimeBook.load(tables)
    if not book.deployments:
        raise BatchError(f"no deployments recorded beside {tables}: `trapline deployments import FILE --tables "
                         f"{tables}` first")
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


def report_figures(tables: str, tset: Any, store: str | None = None) -> dict[str, Any] | None:
    """The report's effort section: camera-days, trap rates and activity of a tracked set, with the default
    settings; None without deployments or occurrences."""
    from model_store.tables.clock import TimeBook  # late: pandas only when asked

    if "track" not in [s.get("name") for s in tset.filter_specs] or not TimeBook.load(tables).deployments:
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


def add_effort_commands(command: Callable[..., argparse.ArgumentParser]) -> None:
    """Add `effort` and `history` to `trapline deployments` (`command(name, help, func)` makes one)."""
    def common(c: argparse.ArgumentParser) -> None:
        c.add_argument("--model", help="NAME or NAME:VERSION when the tables hold several")
        c.add_argument("--filters-hash", help="the tracked result set (default: the newest)")
        c.add_argument("--store", help="the model store (for NAME@ALIAS)")
        c.add_argument("--gap-days", type=float, default=eff.GAP_DAYS,
                       help=f"a stretch this long without any picture is not effort (default {eff.GAP_DAYS:g})")
        c.add_argument("--independence-min", type=float, default=eff.INDEPENDENCE_MIN,
                       help="minutes between two detections of a species at a deployment for both to count "
                            f"(default {eff.INDEPENDENCE_MIN:g})")

    c = command("effort", "camera-days per deployment, trap rates per species, activity by local hour", _cmd_effort)
    common(c)
    c = command("history", "a species' detection history: deployments x occasions, as CSV", _cmd_history)
    common(c)
    c.add_argument("--species", required=True, help="the determined label")
    c.add_argument("--occasion-days", type=int, default=eff.OCCASION_DAYS,
                   help=f"days per occasion (default {eff.OCCASION_DAYS})")
    c.add_argument("--output", help="write the CSV here (default: print it)")


def _effort():
    from batch.deployments import effort  # late: pandas is not loaded for every command's parser

    return effort


def _cmd_effort(args: argparse.Namespace) -> int:
    eff = _effort()
    obs = observed(args.tables, args.model, args.filters_hash, args.store)
    effort = eff.efforts(obs.book, obs.pictures, args.gap_days)
    rates = eff.trap_rates(obs.book, effort, obs.detections, args.independence_min)
    hours = eff.activity(obs.detections, args.independence_min)
    if args.json_output:
        print(json.dumps({"camera_days": {k: round(e.camera_days, 4) for k, e in effort.items()},
                          "trap_rates": rates.to_dict("records"),
                          "activity": {s: row.to_dict() for s, row in hours.iterrows()}}, indent=2, default=str))
        return 0
    print("camera-days per deployment:")
    for k, e in effort.items():
        print(f"  {k:<16} {e.camera_days:8.2f}")
    print(f"\ntrap rates (independent detections per 100 camera-days, {args.independence_min:g} min apart):")
    print(rates.to_string(index=False) if not rates.empty else "  (no confirmed occurrences)")
    print("\nactivity by local hour (independent detections):")
    print(hours.to_string() if not hours.empty else "  (none)")
    return 0


def _cmd_history(args: argparse.Namespace) -> int:
    eff = _effort()
    obs = observed(args.tables, args.model, args.filters_hash, args.store)
    effort = eff.efforts(obs.book, obs.pictures, args.gap_days)
    matrix = eff.detection_history(obs.book, effort, obs.detections, args.species, args.occasion_days)
    text = matrix.to_csv(na_rep="NA")
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {args.output}: {len(matrix)} deployment(s) x {matrix.shape[1]} occasion(s) of "
              f"{args.occasion_days} day(s) for {args.species}")
    else:
        print(text, end="")
    return 0
