"""The suite's time budget: the slowest test steps with their allowance in seconds (tests/budget.yaml), checked at
the end of every run.

A step is one test id's setup, call and teardown together (a module or session fixture's setup counts in the first
test that asks for it). A step that took more than its allowance by more than `OVER` (50 %) is named in the run's
summary, under "time budget"; the run does not fail for it: on a busy machine every step is slow, so the line says
the load average beside it. Registered by tests/conftest.py; with pytest-xdist the controller sees every worker's
reports, so the summary is whole.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import yaml

BUDGET = Path(__file__).with_name("budget.yaml")
OVER = 1.5  # a step is named when it took more than its allowance x OVER


def read_budget(path: Path = BUDGET) -> dict[str, float]:
    """{test id: allowance in seconds}; a wrong entry is a clear error, not a silently ignored line."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of test id to seconds")
    out = {}
    for test_id, seconds in data.items():
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
            raise ValueError(f"{path}: {test_id}: the allowance must be a positive number of seconds, not {seconds!r}")
        out[str(test_id)] = float(seconds)
    return out


def over_budget(took: dict[str, float], budget: dict[str, float], over: float = OVER) -> list[tuple[str, float, float]]:
    """(test id, seconds taken, allowance) for every budgeted step that took more than allowance x over, slowest
    first relative to its allowance."""
    late = [(test_id, took[test_id], allowance) for test_id, allowance in budget.items()
            if test_id in took and took[test_id] > allowance * over]
    return sorted(late, key=lambda row: row[1] / row[2], reverse=True)


class Budget:
    """The pytest plugin: sums each test id's phases, and names the steps over budget in the terminal summary."""

    def __init__(self, budget: dict[str, float]):
        self.budget = budget
        self.took: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report) -> None:
        self.took[report.nodeid] += report.duration

    def pytest_terminal_summary(self, terminalreporter) -> None:
        late = over_budget(self.took, self.budget)
        if not late:
            return
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        terminalreporter.section("time budget", sep="=")
        terminalreporter.write_line(
            f"{len(late)} step(s) over their allowance by more than {OVER - 1:.0%} (tests/budget.yaml; "
            f"load average {load:.1f} on {os.cpu_count()} cores: on a busy machine every step is slower)")
        for test_id, seconds, allowance in late:
            terminalreporter.write_line(f"OVER BUDGET {test_id}: {seconds:.1f} s, allowance {allowance:g} s")


def register(config) -> None:
    """Registers the plugin on the run (not on an xdist worker: the controller gets the workers' reports)."""
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(Budget(read_budget()), "trapline-budget")
