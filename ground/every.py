"""A job that runs at most every N seconds, and at its first chance.

`time.monotonic()` counts from an unspecified point — on Linux, from boot — so "the last run was at 0.0" makes a job
wait until the machine has been up N seconds: on a freshly booted VM, pod or container host (where a service starts)
a 600 s check is skipped for its first ten minutes. `Every` keeps "never run" as None instead, so every periodic job
in the product is measured the same way (issue 81).
"""

from __future__ import annotations

import threading
import time

__all__ = ["Every"]


class Every:
    """At most every `seconds` on the monotonic clock; due at once when it never ran (or after `reset`).

    `take()` is the usual use: True (and the run counted from now) when the job is due. Thread-safe: of two threads
    asking at once, one is told to run."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.last: float | None = None  # monotonic time of the last run; None: never ran
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether the job should run now (it never ran, or its last run is `seconds` old)."""
        last = self.last
        return last is None or time.monotonic() - last >= self.seconds

    def done(self) -> None:
        """The job ran now: the next is due `seconds` from now."""
        self.last = time.monotonic()

    def take(self) -> bool:
        """True, and the run counted from now, when the job is due; False otherwise."""
        with self._lock:
            if not self.due():
                return False
            self.done()
            return True

    def reset(self) -> None:
        """Due at the next chance, however recent the last run."""
        self.last = None
