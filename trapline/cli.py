"""The `trapline` command. Each door registers its own subcommands; this file only wires them."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# (module, function) pairs that add subcommands; a module that is missing (an optional part
# not installed) is skipped so the rest of the CLI still works.
SUBCOMMANDS = [
    ("model_store.cli", "register"),
    ("serve.cli", "register"),
    ("batch.cli", "register"),
]


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trapline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name, func in SUBCOMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        getattr(module, func)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from model_store import (
        ChecksumError,
        ConfigError,
        FilterConfigError,
        ImageDecodeError,
        InvalidRefError,
        ModelLoadError,
        StoreError,
    )

    expected = (UserError, StoreError, ConfigError, InvalidRefError, FilterConfigError, ChecksumError,
                ModelLoadError, ImageDecodeError, FileNotFoundError, PermissionError)
    try:
        return int(args.func(args) or 0)
    except expected as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
