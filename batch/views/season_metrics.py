"""The season's signals (model_store/tables/season.py) as Prometheus metrics, one source of tables per `source` label.

Rendered from the figures each source's watcher keeps (`Watch`: refreshed every `REFRESH_S` on a thread of its
own), so a scrape renders and never reads the tables. Names and meanings: docs/guide/monitoring.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily

from model_store.tables.season import Season, Signals

REFRESH_S = 30.0  # a commit shows in the gauges within this (Prometheus scrapes every 15-60 s)
FIRST_WAIT_S = 5.0  # the first scrape after start waits this long for the first figures, then answers anyway


class Watch:
    """Keeps one `Season` per tables location up to date on a daemon thread (started on first use)."""

    def __init__(self, refresh_s: float = REFRESH_S) -> None:
        self.refresh_s = refresh_s
        self._seasons: dict[str, Season] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def season(self, tables: str) -> Season:
        with self._lock:
            season = self._seasons.get(tables)
            if season is None:
                season = self._seasons[tables] = Season(tables)
                self._wake.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="season-watch", daemon=True)
                self._thread.start()
        return season

    def signals(self, sources: dict[str, str]) -> dict[str, Signals]:
        """name -> the figures of each source's tables (waiting up to FIRST_WAIT_S for those never refreshed)."""
        seasons = {name: self.season(tables) for name, tables in sources.items()}
        out = {}
        for name, season in seasons.items():
            s = season.signals()
            # only a season just made waits (its first figures); later scrapes answer with what there is
            while s.refreshed_at_s is None and time.monotonic() < season.created + FIRST_WAIT_S:
                time.sleep(0.05)
                s = season.signals()
            out[name] = s
        return out

    def _loop(self) -> None:
        while True:
            with self._lock:
                seasons = list(self._seasons.values())
            for season in seasons:
                season.refresh()
            self._wake.wait(self.refresh_s)
            self._wake.clear()


class _Collector:
    def __init__(self, signals: dict[str, Signals], now_s: float) -> None:
        self.signals, self.now_s = signals, now_s

    def collect(self) -> Iterable[GaugeMetricFamily]:
        def family(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"trapline_season_{name}", doc, labels=["source", *labels])

        up = family("up", "1 when the source's tables were read at the last refresh, else 0.", [])
        age = family("refresh_age_seconds", "Seconds since the figures were last refreshed.", [])
        took = family("refresh_duration_seconds", "How long the last refresh took.", [])
        capture = family("camera_last_capture_timestamp_seconds",
                         "The camera's newest capture time (its clock, read as UTC), seconds since the epoch.",
                         ["camera"])
        committed = family("camera_last_processed_timestamp_seconds", "When the camera's newest image row was "
                           "committed, seconds since the epoch.", ["camera"])
        images = family("camera_images", "Image rows committed for the camera (every model version and set).",
                        ["camera"])
        failed = family("camera_failed_images", "Failed image rows committed for the camera.", ["camera"])
        runs = family("runs", "Runs recorded in the tables' manifests, by kind and status.", ["kind", "status"])
        last_run = family("run_last_end_timestamp_seconds", "The newest end (or update) of a run of this kind and "
                          "status, seconds since the epoch.", ["kind", "status"])
        running = family("running_run_images", "A running run's images so far, by what became of them.",
                         ["kind", "run_id", "counted"])
        rate = family("running_run_images_per_second", "A running run's images per second since it started.",
                      ["kind", "run_id"])
        individuals = family("individuals", "Individuals of the newest identify run.", [])
        new = family("new_individuals_last_day", "Individuals first seen on the newest day any was.", [])
        assigned = family("assignment_rate", "Share of sightings assigned to an individual (absent: none yet).", [])
        review = family("occurrences_to_review", "Occurrences awaiting a person's review (an unsure link, not "
                        "determined by a person).", [])
        clock = family("clock_problems", "Failing clock checks (trapline tables check), by kind.", ["kind"])
        size = family("table_bytes", "Bytes of the table's committed parts, per model version and result set "
                      "(its filters_hash; `mixed`: a compacted part of several).", ["table", "model", "version", "set"])
        for src, s in self.signals.items():
            up.add_metric([src], 1.0 if s.up else 0.0)
            if s.refreshed_at_s is not None:
                age.add_metric([src], max(0.0, self.now_s - s.refreshed_at_s))
                took.add_metric([src], s.refresh_s)
            for cam, c in s.cameras.items():
                if c.last_capture_s is not None:
                    capture.add_metric([src, cam], c.last_capture_s)
                if c.last_processed_s is not None:
                    committed.add_metric([src, cam], c.last_processed_s)
                images.add_metric([src, cam], c.images)
                failed.add_metric([src, cam], c.failed)
            for (kind, status), n in s.runs.items():
                runs.add_metric([src, kind, status], n)
            for (kind, status), when in s.last_run_s.items():
                last_run.add_metric([src, kind, status], when)
            for r in s.running:
                for counted in ("processed", "failed", "to_process"):
                    running.add_metric([src, r["kind"], r["run_id"], counted], r[counted])
                rate.add_metric([src, r["kind"], r["run_id"]], r["images_per_s"])
            individuals.add_metric([src], s.individuals)
            new.add_metric([src], s.new_individuals_last_day)
            if s.assignment_rate is not None:
                assigned.add_metric([src], s.assignment_rate)
            review.add_metric([src], s.occurrences_to_review)
            for kind, n in s.clock_problems.items():
                clock.add_metric([src, kind], n)
            for (table, model, version, result_set), n in s.table_bytes.items():
                size.add_metric([src, table, model, version, result_set], n)
        yield from (up, age, took, capture, committed, images, failed, runs, last_run, running, rate, individuals,
                    new, assigned, review, clock, size)


def render(signals: dict[str, Signals], now_s: float | None = None) -> bytes:
    """The Prometheus text exposition (format 0.0.4) of the figures of every source. Written here from the metric
    families: prometheus_client's `generate_latest` took 3.3 ms of a 3.6 ms scrape at 100 cameras (its registry
    walk and per-sample formatting), this a tenth of that; tests/unit/test_season.py parses it with
    prometheus_client's own parser."""
    out = []
    for fam in _Collector(signals, time.time() if now_s is None else now_s).collect():
        out.append(f"# HELP {fam.name} {_escape(fam.documentation, help_text=True)}\n# TYPE {fam.name} gauge\n")
        for sample in fam.samples:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sample.labels.items())
            out.append(f"{sample.name}{{{labels}}} {_number(sample.value)}\n")
    return "".join(out).encode()


def _escape(text: str, help_text: bool = False) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text if help_text else text.replace('"', '\\"')


def _number(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
