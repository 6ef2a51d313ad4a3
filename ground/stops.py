"""How a command stops on a signal: SIGTERM (systemd, `docker stop`, Kubernetes, `ray job stop`) and SIGINT (Ctrl-C).

`handled()` holds both signals from the first line of `trapline`'s main to its last:

- while the command line is parsed, a signal is held, and acted on once the command starts (`arm`);
- then the first one raises `Stopped` in the main thread: a KeyboardInterrupt, so every clean-up written for Ctrl-C
  (a local Ray's partial start, Serve's drain, a run's manifest and lease) runs for SIGTERM too;
- a later one while that stop runs is ignored: the stop is bounded, and an exception raised in the middle of Ray's
  shutdown would leave its processes behind (SIGKILL still ends everything at once);
- SIGINT that the caller ignores (a background job of a non-interactive shell) stays ignored.

Ray's start (`ray.init`) puts its own SIGTERM handler in place (`sys.exit`, in the middle of whatever runs, after
which Ray's teardown aborted the process: exit 134); `ray_start` keeps ours through it.

How a stop ends is the command's: `trapline serve` and `trapline antenna work` exit 0 (a stop is how they end), the
others 128 + the signal, as a shell reports a command a signal ended: 130 for Ctrl-C, 143 for SIGTERM
(ground/entry.py).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(KeyboardInterrupt):
    """The command was stopped by `signum` (SIGTERM or SIGINT)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal.Signals(signum).name)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _State:
    armed = False  # the command runs: a signal raises at once
    pending: int | None = None  # a signal that came while the command line was parsed
    stopping = False  # a stop is under way: later signals are ignored


_state = _State()


def _on_signal(signum: int, _frame: Any) -> None:
    if _state.stopping:
        return
    if not _state.armed:
        _state.pending = signum
        return
    _state.stopping = True
    raise Stopped(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """SIGTERM and SIGINT stop the command as described above while the block runs; the handlers it found are put
    back after (a command run inside another program, e.g. a test, leaves that program's handling as it was)."""
    if not _main_thread():
        yield
        return
    before = {s: signal.getsignal(s) for s in SIGNALS}
    for s in SIGNALS:
        if before[s] is not signal.SIG_IGN:
            signal.signal(s, _on_signal)
    _state.armed, _state.pending, _state.stopping = False, None, False
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)
        _state.armed, _state.pending, _state.stopping = False, None, False


def arm() -> None:
    """The command starts: a signal held while the command line was parsed stops it now, the next ones at once."""
    _state.armed = True
    if _state.pending is not None and not _state.stopping:
        _state.stopping = True
        raise Stopped(_state.pending)


def stopping() -> bool:
    """Whether a stop is under way (a signal came)."""
    return _state.stopping


@contextlib.contextmanager
def ray_start() -> Iterator[None]:
    """Keep this process's SIGTERM handler through `ray.init`.

    ray.init sets its own, twice (the driver's `sys.exit(signum)` and, for a local Ray, the head node's, which kills
    Ray's processes and calls `sys.exit(1)`), through `ray._private.utils.set_sigterm_handler` (a private API: there
    is no switch for it), which is made to do nothing while ray.init runs. Ray's C++ core worker also installs a
    failure-signal handler for SIGTERM, which prints a stack trace ("*** SIGTERM received ...") before it calls the
    Python one: ours is put in place again after, so SIGTERM reaches it directly (the crash handlers stay Ray's)."""
    if not _main_thread():
        yield
        return
    from ray._private import utils  # late: Ray's private module, only when Ray starts here

    ours, theirs = signal.getsignal(signal.SIGTERM), utils.set_sigterm_handler
    utils.set_sigterm_handler = lambda handler: None
    try:
        yield
    finally:
        utils.set_sigterm_handler = theirs
        if ours is not None:
            signal.signal(signal.SIGTERM, ours)
