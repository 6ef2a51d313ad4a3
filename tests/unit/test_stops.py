"""ground/stops.py with real signals sent to this process: a signal held while the command line is parsed stops
the command when it starts, the first one later stops it at once, a second one is ignored while the stop runs, and
the exit code and last line are the command's (ground/entry.py). The commands themselves, stopped in each phase
as subprocesses: tests/e2e/test_serve_stops_clean.py."""

from __future__ import annotations

import argparse
import os
import signal
import time

import pytest

from ground import stops
from ground.entry import run_command


def _deliver(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.01)  # the handler runs at the next bytecode of the main thread


def test_a_signal_while_the_command_line_is_parsed_stops_the_command_when_it_starts():
    with stops.handled():
        _deliver(signal.SIGTERM)  # parsing: held
        with pytest.raises(stops.Stopped) as stopped:
            stops.arm()
        assert stopped.value.signum == signal.SIGTERM and stopped.value.exit_code == 143
        assert isinstance(stopped.value, KeyboardInterrupt)  # every Ctrl-C clean-up runs for SIGTERM too


def test_the_first_signal_stops_at_once_and_a_second_is_ignored_while_the_stop_runs():
    before = signal.getsignal(signal.SIGTERM)
    with stops.handled():
        stops.arm()
        with pytest.raises(stops.Stopped) as stopped:
            _deliver(signal.SIGINT)
        assert stopped.value.exit_code == 130 and stops.stopping()
        _deliver(signal.SIGTERM)  # while the stop runs: nothing raised
        _deliver(signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert not stops.stopping()


def test_sigint_the_caller_ignores_stays_ignored():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stops.handled():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _stopped_by(signum: int):
    def command(args: argparse.Namespace) -> int:
        _deliver(signum)
        raise AssertionError("not stopped")

    return command


@pytest.mark.parametrize(("signum", "stop_exit", "code", "last"), [
    (signal.SIGINT, None, 130, "interrupted"), (signal.SIGTERM, None, 143, "terminated"),
    (signal.SIGTERM, 0, 0, "stopped"), (signal.SIGINT, 0, 0, "stopped")])
def test_the_exit_code_and_last_line_of_a_stop_are_the_commands(capsys, signum, stop_exit, code, last):
    args = argparse.Namespace(func=_stopped_by(signum), **({"stop_exit": stop_exit} if stop_exit is not None else {}))
    with stops.handled():
        assert run_command(args) == code
    assert capsys.readouterr().err.splitlines()[-1] == last
