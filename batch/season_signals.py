"""The season's signals, each declared once (`SIGNALS`): its gauge on GET /metrics (name, help, labels, and the samples
it takes from the figures), and when `trapline health` checks it, its `Threshold`: the check, its option (the flag,
the `--config` key and the query parameter of GET /v1/season/health: name, default, bounds, help), which way is bad,
and the alert rules of deploy/prometheus/rules.yml that watch it (each with its runbook section in
docs/guide/monitoring.md, the anchor the alert's name in lower case).

What follows from it: the metric families (batch/views/season_metrics.py), the thresholds' model and so the flags
(batch/health_options.py), the checks and their order (batch/health.py). tests/unit/test_season_signals.py finds each
signal's alerts and runbooks and holds the monitoring guide's table of metrics and list of thresholds to it. Adding
one: docs/extending.md, "A season signal".

No table code here (the command line builds `trapline health`'s flags from it without pyarrow): the figures are
model_store/tables/season.py's `Signals`, read by the `samples` and `judge` functions below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from model_store.tables.season import Signals

DAY_S = 86_400.0
Samples = Iterable[tuple[tuple[str, ...], float]]  # (the labels' values beside `source`, the value)


@dataclass
class Check:
    """One check's outcome in `trapline health`'s report."""

    name: str
    status: str  # ok | failed | skipped
    value: str
    threshold: str
    detail: str = ""


@dataclass(frozen=True)
class Alert:
    """An alert rule of deploy/prometheus/rules.yml over the signal's gauge; `at_default`: its bound is the
    threshold's default (the test finds it in the rule's expression), so the two are edited together."""

    name: str
    at_default: bool = False

    @property
    def runbook(self) -> str:
        """Its runbook's anchor in docs/guide/monitoring.md."""
        return self.name.lower()


@dataclass(frozen=True)
class Threshold:
    """A check of `trapline health` over the signal. `option` (None: a check with nothing to set) is a field of
    `HealthThresholds` with `default`, `kind` and the bounds; `bad` says which side of the limit fails."""

    check: str
    judge: Callable[[Threshold, Signals, float | None, float], Check]
    option: str | None = None
    default: float | None = None
    help: str = ""
    bad: Literal["above", "below"] = "above"
    kind: type = float
    gt: float | None = None
    ge: float | None = None
    le: float | None = None

    def of(self, s: Signals, limits, now_s: float) -> Check:
        """The check of the figures `s` against this threshold's limit in `limits` (a `HealthThresholds`)."""
        return self.judge(self, s, None if self.option is None else getattr(limits, self.option), now_s)

    def bounds(self) -> dict[str, float]:
        return {k: v for k, v in (("gt", self.gt), ("ge", self.ge), ("le", self.le)) if v is not None}

    def failed(self, value: float, limit: float) -> bool:
        return value > limit if self.bad == "above" else value < limit

    def within(self, limit: str) -> str:
        """The limit as the report shows it: `<= 5%` (above is bad), `>= 70%` (below is bad)."""
        return f"{'<=' if self.bad == 'above' else '>='} {limit}"

    def outcome(self, failed: bool, value: str, threshold: str, detail: str = "") -> Check:
        return Check(self.check, "failed" if failed else "ok", value, threshold, detail)

    def skipped(self, value: str, threshold: str) -> Check:
        return Check(self.check, "skipped", value, threshold)


@dataclass(frozen=True)
class Signal:
    """One gauge, `trapline_season_NAME{source, *labels}`, its samples from a source's figures (and the time now)."""

    name: str
    help: str
    samples: Callable[[Signals, float], Samples]
    labels: tuple[str, ...] = ()
    threshold: Threshold | None = None
    alerts: tuple[Alert, ...] = ()

    @property
    def metric(self) -> str:
        return f"trapline_season_{self.name}"


def _readable(t: Threshold, s: Signals, limit, now_s: float) -> Check:
    return t.outcome(not s.up, "yes" if s.up else "no", "readable", s.error or "")


def _silent(t: Threshold, s: Signals, days: float, now_s: float) -> Check:
    silent = sorted(c for c, cam in s.cameras.items()
                    if cam.last_capture_s is not None and now_s - cam.last_capture_s > days * DAY_S)
    return t.outcome(bool(silent), f"{len(silent)} of {len(s.cameras)}", f"newest capture within {days:g} days",
                     ", ".join(silent[:10]))


def _failed_share(t: Threshold, s: Signals, share: float, now_s: float) -> Check:
    images = sum(c.images for c in s.cameras.values())
    failed = sum(c.failed for c in s.cameras.values())
    if not images:
        return t.skipped("no images", t.within(f"{share:.0%}"))
    return t.outcome(t.failed(failed / images, share), f"{failed} of {images} ({failed / images:.1%})",
                     t.within(f"{share:.0%}"))


def _archive_jobs(t: Threshold, s: Signals, days: float, now_s: float) -> Check:
    within = f"one succeeded within {days:g} days"
    if not any(kind == "reprocess" for kind, _ in s.runs):
        return t.skipped("no runs", within)
    last_ok = s.last_run_s.get(("reprocess", "succeeded"))
    last_failed = s.last_run_s.get(("reprocess", "failed"))
    newest_failed = last_failed is not None and (last_ok is None or last_failed > last_ok)
    stale = last_ok is None or now_s - last_ok > days * DAY_S
    since = "never" if last_ok is None else f"{(now_s - last_ok) / DAY_S:.1f} days ago"
    return t.outcome(newest_failed or stale, f"last succeeded {since}", f"{within}, newest not failed",
                     "the newest job failed" if newest_failed else "")


def _assignment(t: Threshold, s: Signals, rate: float, now_s: float) -> Check:
    if s.assignment_rate is None:
        return t.skipped("no sightings", t.within(f"{rate:.0%}"))
    return t.outcome(t.failed(s.assignment_rate, rate), f"{s.assignment_rate:.1%} of {s.sightings}",
                     t.within(f"{rate:.0%}"))


def _count(value: Callable[[Signals], int], shown: str = "{}", detail: Callable[[Signals], str] = lambda s: ""):
    """A check of one count against its limit: `shown` formats the count."""
    def judge(t: Threshold, s: Signals, limit: int, now_s: float) -> Check:
        return t.outcome(t.failed(value(s), limit), shown.format(value(s)), t.within(str(limit)), detail(s))
    return judge


def _size(t: Threshold, s: Signals, gb: float | None, now_s: float) -> Check:
    held = sum(s.table_bytes.values()) / 1e9
    if gb is None:
        return t.skipped(f"{held:.2f} GB", f"not set ({t.option})")
    return t.outcome(t.failed(held, gb), f"{held:.2f} GB", t.within(f"{gb:g} GB"))


def _one(value: float | None) -> list[tuple[tuple[str, ...], float]]:
    return [] if value is None else [((), value)]


def _clock(s: Signals) -> int:
    return sum(s.clock_problems.values())


SIGNALS: tuple[Signal, ...] = (
    Signal("up", "1 when the source's tables were read at the last refresh, else 0.",
           lambda s, now: _one(1.0 if s.up else 0.0),
           threshold=Threshold("tables readable", _readable), alerts=(Alert("TraplineTablesUnreadable"),)),
    Signal("refresh_age_seconds", "Seconds since the figures were last refreshed.",
           lambda s, now: _one(None if s.refreshed_at_s is None else max(0.0, now - s.refreshed_at_s))),
    Signal("refresh_duration_seconds", "How long the last refresh took.",
           lambda s, now: _one(None if s.refreshed_at_s is None else s.refresh_s)),
    Signal("camera_last_capture_timestamp_seconds",
           "The camera's newest capture time (its clock, read as UTC), seconds since the epoch.",
           lambda s, now: (((k,), c.last_capture_s) for k, c in s.cameras.items() if c.last_capture_s is not None),
           ("camera",), Threshold("cameras silent", _silent, "silent_days", 3.0, gt=0,
                                  help="a camera whose newest capture is older than this is silent"),
           (Alert("TraplineCameraSilent", at_default=True),)),
    Signal("camera_last_processed_timestamp_seconds",
           "When the camera's newest image row was committed, seconds since the epoch.",
           lambda s, now: (((k,), c.last_processed_s) for k, c in s.cameras.items() if c.last_processed_s is not None),
           ("camera",)),
    Signal("camera_images", "Image rows committed for the camera (every model version and set).",
           lambda s, now: (((k,), c.images) for k, c in s.cameras.items()), ("camera",)),
    Signal("camera_failed_images", "Failed image rows committed for the camera.",
           lambda s, now: (((k,), c.failed) for k, c in s.cameras.items()), ("camera",),
           Threshold("failed images", _failed_share, "max_failed_share", 0.05, ge=0, le=1,
                     help="most failed images per image committed"),
           (Alert("TraplineFailedImagesJumped"),)),  # the alert: a jump over 6 hours, not the season's share
    Signal("runs", "Runs recorded in the tables' manifests, by kind and status.",
           lambda s, now: s.runs.items(), ("kind", "status")),
    Signal("run_last_end_timestamp_seconds",
           "The newest end (or update) of a run of this kind and status, seconds since the epoch.",
           lambda s, now: s.last_run_s.items(), ("kind", "status"),
           Threshold("archive jobs", _archive_jobs, "max_days_since_job", 8.0, gt=0,
                     help="most days since an archive job last succeeded (a weekly cron: 8)"),
           (Alert("TraplineArchiveJobFailed"), Alert("TraplineNoRecentArchiveJob", at_default=True))),
    Signal("running_run_images", "A running run's images so far, by what became of them.",
           lambda s, now: (((r["kind"], r["run_id"], counted), r[counted]) for r in s.running
                           for counted in ("processed", "failed", "to_process")), ("kind", "run_id", "counted")),
    Signal("running_run_images_per_second", "A running run's images per second since it started.",
           lambda s, now: (((r["kind"], r["run_id"]), r["images_per_s"]) for r in s.running), ("kind", "run_id")),
    Signal("individuals", "Individuals of the newest identify run.", lambda s, now: _one(s.individuals)),
    Signal("assignment_rate", "Share of sightings assigned to an individual (absent: none yet).",
           lambda s, now: _one(s.assignment_rate),
           threshold=Threshold("assignment rate", _assignment, "min_assignment_rate", 0.70, bad="below", ge=0, le=1,
                               help="fewest sightings assigned to an individual"),
           alerts=(Alert("TraplineAssignmentRateLow", at_default=True),)),
    Signal("new_individuals_last_day", "Individuals first seen on the newest day any was.",
           lambda s, now: _one(s.new_individuals_last_day),
           threshold=Threshold("new individuals", _count(lambda s: s.new_individuals_last_day, "{} on the newest day"),
                               "max_new_individuals_per_day", 20, kind=int, ge=0,
                               help="most individuals first seen on the newest day (more: the re-identification "
                                    "threshold)"),
           alerts=(Alert("TraplineManyNewIndividuals", at_default=True),)),
    Signal("occurrences_to_review", "Occurrences awaiting a person's review (an unsure link, not determined by a "
           "person).", lambda s, now: _one(s.occurrences_to_review),
           threshold=Threshold("awaiting review", _count(lambda s: s.occurrences_to_review), "max_to_review", 500,
                               kind=int, ge=0, help="most occurrences awaiting a person's review"),
           alerts=(Alert("TraplineReviewBacklog", at_default=True),)),
    Signal("clock_problems", "Failing clock checks (trapline tables check), by kind.",
           lambda s, now: (((kind,), n) for kind, n in s.clock_problems.items()), ("kind",),
           Threshold("clock checks", _count(_clock, detail=lambda s: ", ".join(
               f"{k} {n}" for k, n in sorted(s.clock_problems.items()))), "max_clock_problems", 0, kind=int, ge=0,
                     help="most failing clock checks (trapline tables check)"),
           (Alert("TraplineClockProblems", at_default=True),)),
    Signal("table_bytes", "Bytes of the table's committed parts, per model version and result set (its filters_hash; "
           "`mixed`: a compacted part of several).", lambda s, now: s.table_bytes.items(),
           ("table", "model", "version", "set"),
           Threshold("tables size", _size, "max_table_gb", None, gt=0,
                     help="most GB the tables may hold (none: not checked)"),
           (Alert("TraplineTablesLarge"),)),  # the alert's bound is its own (500 GB): health checks none by default
)


def thresholds() -> tuple[Threshold, ...]:
    """The checks of `trapline health`, in the order it reports them."""
    return tuple(s.threshold for s in SIGNALS if s.threshold is not None)
