"""How every entry point runs a command: Ray's own output quiet unless -v, an error a user can act on
printed as `error: ...` (exit 2), a stop by a signal as `interrupted` (Ctrl-C, exit 130) or `terminated` (SIGTERM,
exit 143) unless the command ends a stop itself (`trapline serve`, `trapline antenna work`: exit 0;
ground/stops.py).

Used by `trapline` (trapline/cli.py), which `python -m batch.reprocess` (what `ray job submit` runs) also is; a
job kind's parser takes `-v` from here too (batch/jobs/kinds.py).
"""

from __future__ import annotations

import argparse
import sys

from ground import ray_output, stops
from ground.errors import TraplineError


def add_verbose(parser: argparse.ArgumentParser) -> None:
    # No default: the flag is in the namespace only when given, so code that turns a command's
    # namespace into its options (batch/cli.py `options`) never sees it.
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show Ray's own log lines on the console (default: they go to a log file)")


def run_command(args: argparse.Namespace) -> int:
    """Run `args.func(args)` (set by the parser) and turn what a user can act on into a line and an exit code."""
    verbose = vars(args).pop("verbose", False)  # popped: commands see only their own options
    stop_exit = vars(args).pop("stop_exit", None)  # a command whose normal end is a stop (serve, antenna work)
    # Every error a user can act on derives from TraplineError (ground/errors.py); OS errors on
    # files the user named are theirs to fix too.
    expected = (TraplineError, FileNotFoundError, PermissionError)
    with ray_output.mode(quiet=not verbose) as release:  # a joined cluster is left at exit, after our last line
        try:
            stops.arm()  # a signal that came while the command line was parsed stops it here
            return int(args.func(args) or 0)
        except expected as exc:
            release()
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (stops.Stopped)
            release()
            if stop_exit is not None:  # stopped before it could end the stop itself (starting, say)
                print("stopped", file=sys.stderr)
                return stop_exit
            code = exc.exit_code if isinstance(exc, stops.Stopped) else 130
            print("interrupted" if code == 130 else "terminated", file=sys.stderr)
            return code
