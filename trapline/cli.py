"""Run object detectors over camera-trap images: publish versioned models, serve them over HTTP,
and reprocess whole image archives into detection tables you can export."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from ground import stops
from ground.entry import add_verbose, run_command

# (module, function) pairs that add subcommands; a module that is missing (an optional part
# not installed) is skipped so the rest of the CLI still works.
SUBCOMMANDS = [
    ("trapline.service", "register"),  # `trapline serve`: the whole service (serve/ with batch/jobs/)
    ("batch.cli", "register"),  # every command of the registry (batch/commands.py): archive, tables, occurrences,
    # deployments, jobs, models
]

# One example per command group and for `trapline serve`, shown at the end of its --help; the registry's commands
# carry theirs in their entry (batch/commands.py `Command.example`).
EXAMPLES = {
    "models": "trapline models list",
    "serve": "trapline serve --store ./models --model megadetector --port 8000",
    "occurrences": "trapline occurrences review --tables ./detections --below 0.5   (then: trapline occurrences "
                   "split occ-1a2b3c4d5e6f7a8b --frame 6 --tables ./detections)",
    "deployments": "trapline deployments import deployments.csv --tables ./detections --timezone Europe/Amsterdam",
    "tables": "trapline tables compact --tables ./detections   (or: trapline tables check --tables ./detections)",
}

OVERVIEW_EPILOG = """\
a first session:
  trapline models publish best.onnx --name my-md --version 1   # Ultralytics/YOLOv5 export: no config
  trapline models promote my-md:1                   # alias production -> version 1
  trapline serve --model my-md                      # HTTP on 127.0.0.1:8000 until Ctrl-C
  trapline reprocess --archive ./photos --out ./detections --model my-md
  trapline report --tables ./detections --out ./report      # look at it: open report/index.html
  trapline export --tables ./detections --format megadetector --out detections.json

Run `trapline COMMAND --help` for a command's options. Ray's own messages go to a log file
named in the output; -v shows them instead."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trapline", description=__doc__, epilog=OVERVIEW_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_verbose(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name, func in SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        getattr(module, func)(sub)
    _finish_help(sub, "")
    return parser


def _finish_help(sub: argparse._SubParsersAction, prefix: str) -> None:
    """Give every command its one-line purpose as description, an example, and -v."""
    purposes = {action.dest: action.help for action in sub._choices_actions}
    for name, parser in sub.choices.items():
        path = f"{prefix}{name}"
        if parser.description is None:
            parser.description = purposes.get(name)
        if path in EXAMPLES and not parser.epilog:
            parser.epilog = f"example:\n  {EXAMPLES[path]}"
            parser.formatter_class = argparse.RawDescriptionHelpFormatter
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for child in nested:
            _finish_help(child, f"{path} ")
        if not nested:
            add_verbose(parser)  # `trapline reprocess -v` works as `trapline -v reprocess`


def main(argv: Sequence[str] | None = None) -> int:
    with stops.handled():  # SIGTERM and SIGINT from here to the end (ground/stops.py)
        return run_command(build_parser().parse_args(argv))


if __name__ == "__main__":
    # Through the imported module, so `python -m trapline.cli` and the console script share one
    # module object (and one parser) with the doors that import from it.
    from trapline.cli import main as trapline_main

    sys.exit(trapline_main())
