"""`trapline deployments import | list | correct-clock | timestamp-issues | revoke | effort | history`: the runners
and printers of the registry's `deployments` commands (batch/commands.py; their options: options.py).

Where and when each camera stood, and corrections of its clock, kept beside the tables (the deployments table and
the decisions log): every later read, run and export applies them.
"""

from __future__ import annotations

from typing import Any

from batch.deployments import effort as eff
from batch.deployments import records
from batch.deployments.observed import observed
from batch.deployments.options import (
    CorrectClockOptions,
    EffortOptions,
    HistoryOptions,
    ImportOptions,
    ListOptions,
    RevokeOptions,
    TimestampIssuesOptions,
)
from ground.printed import Printed
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables


def import_deployments(o: ImportOptions, progress: Any = None) -> Printed:
    out = records.import_deployments(o.tables, o.file, o.who, o.comment, o.timezone, o.remove or [])
    return Printed(out, f"recorded {len(out['deployments'])} deployment(s) ({', '.join(out['deployments'])})"
                   + (f", removed {', '.join(out['removed'])}" if out["removed"] else "")
                   + f" as import {out['import_id']}")


def list_deployments(o: ListOptions, progress: Any = None) -> Printed:
    out = records.list_deployments(o.tables)
    lines = [f"{'deployment':<14} {'camera':<10} {'location':<14} {'start (UTC)':<20} {'end (UTC)':<20} "
             f"{'zone':<18} {'pictures':>8}"]
    for d in out["deployments"]:
        lines.append(f"{d['deploymentID']:<14} {d['cameraID']:<10} {(d['locationName'] or ''):<14} "
                     f"{d['start_utc'][:19]:<20} {d['end_utc'][:19]:<20} {d['timezone']:<18} {d['pictures']:>8}"
                     + ("  timestampIssues" if d["timestampIssues"] else ""))
    for c in out["clock_corrections"]:
        what = " ".join(x for x in (f"offset {c['offset_s']:+g} s" if c["offset_s"] else "",
                                    f"zone {c['zone']}" if c["zone"] else "") if x)
        lines.append(f"clock {c['decision_id']}: {c['camera_id']} {c['recorded_from']} .. {c['recorded_until']} "
                     f"{what} (by {c['who']})")
    if out["pictures_without_deployment"]:
        lines.append(f"{out['pictures_without_deployment']} picture(s) in no deployment or in two: "
                     "`trapline tables check` lists them")
    return Printed(out, "\n".join(lines))


def correct_clock(o: CorrectClockOptions, progress: Any = None) -> Printed:
    out = records.correct_clock(o.tables, o.who, o.comment, camera_id=o.camera, recorded_from=o.recorded_from,
                                recorded_until=o.recorded_until, offset_s=records.parse_offset(o.offset), zone=o.zone)
    return Printed(out, f"recorded clock correction {out['decision_id']} for camera {o.camera}: every later read, "
                        "run and export applies it")


def timestamp_issues(o: TimestampIssuesOptions, progress: Any = None) -> Printed:
    out = records.mark_timestamp_issues(o.tables, o.deployment, not o.clear, o.who, o.comment)
    return Printed(out, f"deployment {o.deployment}: timestampIssues {'cleared' if o.clear else 'set'} "
                        f"({out['decision_id']})")


def revoke(o: RevokeOptions, progress: Any = None) -> Printed:
    out = records.revoke(o.tables, o.decision_id, o.who, o.comment)
    return Printed(out, f"revoked {o.decision_id} ({out['decision_id']})")


def effort(o: EffortOptions, progress: Any = None) -> Printed:
    obs = observed(Tables(open_location(o.tables)), o.model, o.filters_hash, o.store)
    effort = eff.efforts(obs.book, obs.pictures, o.gap_days)
    rates = eff.trap_rates(obs.book, effort, obs.detections, o.independence_min)
    hours = eff.activity(obs.detections, o.independence_min)
    data = {"camera_days": {k: round(e.camera_days, 4) for k, e in effort.items()},
            "trap_rates": rates.to_dict("records"), "activity": {s: row.to_dict() for s, row in hours.iterrows()}}
    lines = ["camera-days per deployment:", *(f"  {k:<16} {e.camera_days:8.2f}" for k, e in effort.items()),
             f"\ntrap rates (independent detections per 100 camera-days, {o.independence_min:g} min apart):",
             rates.to_string(index=False) if not rates.empty else "  (no confirmed occurrences)",
             "\nactivity by local hour (independent detections):",
             hours.to_string() if not hours.empty else "  (none)"]
    return Printed(data, "\n".join(lines))


def history(o: HistoryOptions, progress: Any = None) -> Printed:
    obs = observed(Tables(open_location(o.tables)), o.model, o.filters_hash, o.store)
    effort = eff.efforts(obs.book, obs.pictures, o.gap_days)
    matrix = eff.detection_history(obs.book, effort, obs.detections, o.species, o.occasion_days)
    text = matrix.to_csv(na_rep="NA")
    data = {"species": o.species, "occasion_days": o.occasion_days, "output": o.output, "csv": text}
    if o.output:
        with open(o.output, "w", encoding="utf-8") as f:
            f.write(text)
        return Printed(data, f"wrote {o.output}: {len(matrix)} deployment(s) x {matrix.shape[1]} occasion(s) of "
                             f"{o.occasion_days} day(s) for {o.species}")
    return Printed(data, text.rstrip("\n"))
