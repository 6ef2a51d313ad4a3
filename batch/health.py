"""`trapline health`: the daily check of a season's tables, each signal against its threshold, for cron to mail.

The signals are model_store/tables/season.py's (what a Prometheus scrape shows as gauges): cameras that went
silent, the failed-image share, the newest archive job and how long ago one succeeded, the assignment rate of
re-identification, new individuals on the newest day (too many: the threshold is off), occurrences awaiting review,
failing clock checks, and the bytes the tables hold. Each check passes, fails, or is skipped with the reason (no
sightings yet: no assignment rate). The thresholds come from the options (flags, or `--config FILE` as YAML), the
same names in the service's `GET /v1/season/health?tables=...`. The command exits 1 when a check fails.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field

from batch.health_options import HealthOptions, HealthThresholds
from model_store.tables.season import Season, Signals

DAY_S = 86_400.0


@dataclass
class Check:
    name: str
    status: str  # ok | failed | skipped
    value: str
    threshold: str
    detail: str = ""


@dataclass
class HealthReport:
    tables: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.checks)


def _check(name: str, failed: bool, value: str, threshold: str, detail: str = "") -> Check:
    return Check(name, "failed" if failed else "ok", value, threshold, detail)


def judge(s: Signals, t: HealthThresholds, now_s: float | None = None) -> HealthReport:
    """Each check of `s` against `t`."""
    now_s = time.time() if now_s is None else now_s
    out = HealthReport(s.tables)
    add = out.checks.append
    add(_check("tables readable", not s.up, "yes" if s.up else "no", "readable", s.error or ""))
    silent = sorted(c for c, cam in s.cameras.items()
                    if cam.last_capture_s is not None and now_s - cam.last_capture_s > t.silent_days * DAY_S)
    add(_check("cameras silent", bool(silent), f"{len(silent)} of {len(s.cameras)}",
               f"newest capture within {t.silent_days:g} days", ", ".join(silent[:10])))
    images = sum(c.images for c in s.cameras.values())
    failed = sum(c.failed for c in s.cameras.values())
    if images:
        add(_check("failed images", failed / images > t.max_failed_share, f"{failed} of {images} "
                   f"({failed / images:.1%})", f"<= {t.max_failed_share:.0%}"))
    else:
        add(Check("failed images", "skipped", "no images", f"<= {t.max_failed_share:.0%}"))
    jobs = {st: n for (kind, st), n in s.runs.items() if kind == "reprocess"}
    last_ok = s.last_run_s.get(("reprocess", "succeeded"))
    last_failed = s.last_run_s.get(("reprocess", "failed"))
    if not jobs:
        add(Check("archive jobs", "skipped", "no runs", f"one succeeded within {t.max_days_since_job:g} days"))
    else:
        newest_failed = last_failed is not None and (last_ok is None or last_failed > last_ok)
        stale = last_ok is None or now_s - last_ok > t.max_days_since_job * DAY_S
        since = "never" if last_ok is None else f"{(now_s - last_ok) / DAY_S:.1f} days ago"
        add(_check("archive jobs", newest_failed or stale, f"last succeeded {since}",
                   f"one succeeded within {t.max_days_since_job:g} days, newest not failed",
                   "the newest job failed" if newest_failed else ""))
    rate = s.assignment_rate
    if rate is None:
        add(Check("assignment rate", "skipped", "no sightings", f">= {t.min_assignment_rate:.0%}"))
    else:
        add(_check("assignment rate", rate < t.min_assignment_rate, f"{rate:.1%} of {s.sightings}",
                   f">= {t.min_assignment_rate:.0%}"))
    add(_check("new individuals", s.new_individuals_last_day > t.max_new_individuals_per_day,
               f"{s.new_individuals_last_day} on the newest day", f"<= {t.max_new_individuals_per_day}"))
    add(_check("awaiting review", s.occurrences_to_review > t.max_to_review, str(s.occurrences_to_review),
               f"<= {t.max_to_review}"))
    clock = sum(s.clock_problems.values())
    add(_check("clock checks", clock > t.max_clock_problems, str(clock), f"<= {t.max_clock_problems}",
               ", ".join(f"{k} {n}" for k, n in sorted(s.clock_problems.items()))))
    gb = sum(s.table_bytes.values()) / 1e9
    if t.max_table_gb is None:
        add(Check("tables size", "skipped", f"{gb:.2f} GB", "not set (max_table_gb)"))
    else:
        add(_check("tables size", gb > t.max_table_gb, f"{gb:.2f} GB", f"<= {t.max_table_gb:g} GB"))
    return out


def run_health(options: HealthOptions, progress=None) -> HealthReport:
    """The checks of `options.tables` now (one refresh: everything read once)."""
    return judge(Season(options.tables).refresh(), options.thresholds())


def health_text(report: HealthReport) -> str:
    """The checks as a table a person reads (what cron mails)."""
    rows = [("check", "status", "value", "threshold")] + [(c.name, c.status.upper() if c.status == "failed"
                                                           else c.status, c.value, c.threshold)
                                                          for c in report.checks]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows]
    lines += [f"  {c.name}: {c.detail}" for c in report.checks if c.detail]
    failed = [c.name for c in report.checks if c.status == "failed"]
    lines.append(f"{report.tables}: " + (f"{len(failed)} check(s) failed: {', '.join(failed)}" if failed
                                         else "healthy"))
    return "\n".join(lines)


def health_json(report: HealthReport) -> str:
    return json.dumps({"tables": report.tables, "ok": report.ok,
                       "checks": [dataclasses.asdict(c) for c in report.checks]}, indent=2)
