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
from batch.season_signals import Check, thresholds
from model_store.tables.season import Season, Signals


@dataclass
class HealthReport:
    tables: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.checks)


def judge(s: Signals, t: HealthThresholds, now_s: float | None = None) -> HealthReport:
    """Each check of `s` against `t`: one per season signal that has a threshold (batch/season_signals.py)."""
    now_s = time.time() if now_s is None else now_s
    return HealthReport(s.tables, [th.of(s, t, now_s) for th in thresholds()])


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
