"""The suite's time budget (tests/budget.py): the steps over their allowance by more than half named in the run's
summary, without failing the run; every entry of tests/budget.yaml names a test that exists."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.budget import BUDGET, Budget, over_budget, read_budget

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[2]


def test_over_budget_names_only_steps_over_their_allowance_by_more_than_half():
    budget = {"a": 10.0, "b": 10.0, "c": 10.0, "d": 4.0}
    took = {"a": 15.0, "b": 15.1, "c": 40.0, "e": 100.0}  # a: exactly +50 %; d did not run; e has no allowance
    assert over_budget(took, budget) == [("c", 40.0, 10.0), ("b", 15.1, 10.0)]


@pytest.mark.parametrize("text, error", [
    ("- a list", "a mapping of test id to seconds"),
    ("tests/x.py::test_a: -3", "tests/x.py::test_a: the allowance must be a positive number of seconds, not -3"),
    ("tests/x.py::test_a: soon", "not 'soon'"),
    ("tests/x.py::test_a: true", "not True"),
])
def test_a_wrong_budget_entry_is_a_clear_error(tmp_path, text, error):
    path = tmp_path / "budget.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(error)):
        read_budget(path)


def test_the_run_summary_names_a_step_over_budget_setup_included_and_passes(pytester):
    """A module fixture's setup counts in its first test's step: 0.2 s of setup plus 0.2 s of call against an
    allowance of 0.2 s (named from 0.3 s) is named; a step within its allowance and one without any are not."""
    pytester.makeconftest(textwrap.dedent("""
        from tests.budget import Budget

        def pytest_configure(config):
            config.pluginmanager.register(Budget({
                "test_slow.py::test_slow": 0.2,
                "test_slow.py::test_quick": 30,
            }), "trapline-budget")
    """))
    pytester.makepyfile(test_slow=textwrap.dedent("""
        import time
        import pytest

        @pytest.fixture(scope="module")
        def slow_setup():
            time.sleep(0.2)

        def test_slow(slow_setup):
            time.sleep(0.2)

        def test_quick(slow_setup):
            pass

        def test_unbudgeted(slow_setup):
            time.sleep(0.4)
    """))
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*= time budget =*", "1 step(s) over their allowance by more than 50%*",
                                 "OVER BUDGET test_slow.py::test_slow: *s, allowance 0.2 s"])
    out = result.stdout.str()
    assert "test_quick" not in out.split("time budget")[1] and "test_unbudgeted" not in out.split("time budget")[1]
    took = float(re.search(r"test_slow: ([0-9.]+) s", out).group(1))
    assert took >= 0.4  # setup and call


def test_a_run_within_budget_prints_no_budget_section():
    class Reporter:
        lines: list[str] = []

        def section(self, title, sep="="):
            self.lines.append(title)

        def write_line(self, line):
            self.lines.append(line)

    plugin, reporter = Budget({"t.py::test_ok": 60}), Reporter()
    for phase in (1.0, 30.0, 2.0):  # setup, call, teardown: 33 s of 60
        plugin.pytest_runtest_logreport(SimpleNamespace(nodeid="t.py::test_ok", duration=phase))
    plugin.pytest_runtest_logreport(SimpleNamespace(nodeid="t.py::test_other", duration=500.0))
    plugin.pytest_terminal_summary(reporter)
    assert reporter.lines == []
    plugin.pytest_runtest_logreport(SimpleNamespace(nodeid="t.py::test_ok", duration=58.0))  # 91 s: over 90
    plugin.pytest_terminal_summary(reporter)
    assert reporter.lines[0] == "time budget"
    assert reporter.lines[-1] == "OVER BUDGET t.py::test_ok: 91.0 s, allowance 60 s"


def test_every_budget_entry_names_a_test_that_exists():
    """A renamed or moved test must take its allowance along (a stale entry would check nothing)."""
    budget = read_budget(BUDGET)
    assert budget
    for test_id in budget:
        path, _, name = test_id.partition("::")
        assert (REPO / path).is_file(), test_id
        function = name.split("[")[0]
        assert re.search(rf"^(async )?def {re.escape(function)}\(", (REPO / path).read_text(), re.M), test_id
