"""Quiet output: while trapline's commands run Ray, Ray's own console output goes to a file.

The `trapline` command and `make demo` call `set_quiet(True)` unless `-v` was given. Then a
Ray session started by `ground.ray_runtime.ensure_ray` writes everything Ray prints on
stderr to `<session>/logs/trapline_driver_<pid>.err`, one line names that directory, and the
user sees only what trapline itself prints through `console()`. Library callers (tests,
benchmarks, notebooks) keep Ray's usual console output: nothing changes unless asked for.

Why file descriptor 2 and not only Ray's logging settings: the driver's C++ core worker
writes its ERROR lines straight to fd 2 while the job runs (e.g. `core_worker.cc ... has
constructor arguments in the object store` when Ray Data creates its actors), and the only
switch for that, RAY_BACKEND_LOG_LEVEL, would also drop them from every Ray log file. Ray's
Python loggers (the "ray", "ray.data" and "ray.serve" console handlers, configured at import
time) write to `sys.stderr`, which stays the object on fd 2. So fd 2 belongs to Ray for the
session, and trapline writes to a duplicate of the terminal's stderr instead. One more path
bypasses both: the driver prints the error messages Ray publishes to it (e.g. `(raylet) Task
ServeController.graceful_shutdown failed` at every Serve shutdown) on *stdout*, where
trapline's summaries and `--json` go; those prints are switched off for the session.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

_quiet = False
_chosen: bool | None = None  # the quiet-or-verbose of the `mode` this process is in (None: in none)
_session: _Redirect | None = None


def set_quiet(quiet: bool) -> None:
    """Quiet (the CLI default) or verbose (`-v`: Ray's output on the console as Ray prints it)."""
    global _quiet
    _quiet = quiet


def is_quiet() -> bool:
    return _quiet


@contextlib.contextmanager
def mode(quiet: bool) -> Iterator[Callable[[], None]]:
    """Quiet or verbose for one command (the CLI, the demo, a benchmark); the mode before it comes back at the end,
    and fd 2 too if Ray's output went to a file. Yields the `release` to call before a last line on stderr.

    A caller in this process that already sends Ray's output to its file (a benchmark running `batch.reprocess.job`
    in its own Ray session) keeps it: the nested command neither changes the mode nor gives fd 2 back.
    """
    global _chosen
    if capturing():
        yield lambda: None
        return
    previous, previous_choice = _quiet, _chosen
    set_quiet(quiet)
    _chosen = quiet
    try:
        yield release
    finally:
        release()
        set_quiet(previous)
        _chosen = previous_choice


def chosen() -> bool | None:
    """Quiet (True) or verbose (False) as the command this process runs chose it (`mode`); None outside one."""
    return _chosen


def capturing() -> bool:
    """Whether Ray's output is being sent to a file now (by this command or by a caller in this process)."""
    return _session is not None


def console() -> TextIO:
    """Where trapline's own progress and error lines go: the terminal's stderr, also during a quiet session."""
    return _session.console if _session is not None else sys.stderr


class _Redirect:
    """fd 2 pointed at a file (a temporary one until Ray's session directory exists), the terminal kept aside."""

    def __init__(self) -> None:
        sys.stderr.flush()
        self.saved_fd = os.dup(2)
        self.console = open(os.dup(self.saved_fd), "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None),
                            errors="backslashreplace")
        self.early = tempfile.TemporaryFile()
        self.path: Path | None = None
        os.dup2(self.early.fileno(), 2)

    def move_to(self, path: Path) -> None:
        """Continue in `path`, with what Ray printed before the session existed at its top."""
        sys.stderr.flush()
        with open(path, "ab") as target:
            if not self.early.closed:  # a second Ray session in this process just moves on to its own file
                self.early.seek(0)
                shutil.copyfileobj(self.early, target)
            os.dup2(target.fileno(), 2)
        self.early.close()
        self.path = path

    def restore(self) -> None:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self.saved_fd, 2)
        os.close(self.saved_fd)
        self.console.close()
        if not self.early.closed:
            self.early.close()


def capture_start() -> None:
    """Send fd 2 to a temporary file until `capture_attach` names the session's log directory."""
    global _session
    if _quiet and _session is None:
        _session = _Redirect()


def capture_attach(logs_dir: str | None) -> None:
    """Move the capture into Ray's log directory and name it once on the console."""
    if _session is None or logs_dir is None:
        return
    _session.move_to(Path(logs_dir) / f"trapline_driver_{os.getpid()}.err")
    _driver_prints(enabled=False)
    print(f"Ray logs: {logs_dir}  (-v shows them here)", file=_session.console, flush=True)


def release() -> None:
    """Give fd 2 back to the terminal (after ray.shutdown, so its shutdown messages stay in the file)."""
    global _session
    if _session is not None:
        session, _session = _session, None
        _driver_prints(enabled=True)
        session.restore()


def _driver_prints(enabled: bool) -> None:
    """Ray's switch for the worker, raylet and error lines its driver prints (private: the one rpdb uses)."""
    worker = sys.modules.get("ray._private.worker")
    if worker is not None and hasattr(worker, "_worker_logs_enabled"):
        worker._worker_logs_enabled = enabled
