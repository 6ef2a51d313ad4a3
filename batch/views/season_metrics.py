"""The season's signals (model_store/tables/season.py) as Prometheus metrics, one source of tables per `source` label.

Rendered from the figures each source's watcher keeps (`Watch`: refreshed every `REFRESH_S` on a thread of its
own), so a scrape renders and never reads the tables. The families are the signals declared in
batch/season_signals.py; their meanings: docs/guide/monitoring.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily

from batch.season_signals import SIGNALS
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
        """One family per season signal (batch/season_signals.py), a sample per source and labels."""
        for signal in SIGNALS:
            family = GaugeMetricFamily(signal.metric, signal.help, labels=["source", *signal.labels])
            for src, s in self.signals.items():
                for labels, value in signal.samples(s, self.now_s):
                    family.add_metric([src, *labels], value)
            yield family


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
