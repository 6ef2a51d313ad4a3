"""One command of the registry (batch/commands.py): its name, help, options model, runner, printers and job rules,
and `later`, which names a runner without importing it. Apart from the registry so the groups that keep their
entries beside their options (batch/models_commands.py) build them without importing the registry that lists them.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from batch.flags import FlagStyle, add_config_flag, add_json_flag, add_model_arguments, flag_of
from batch.option_variants import fields_of

Progress = Callable[[str], None]


def later(target: str) -> Callable[..., Any]:
    """The function `module:name`, imported when first called. The registry holds each command's options models
    (its flags, help and checks) but not the work: that imports pandas, Ray or the report's plots, which a
    `trapline` command line (`--help`, `models`, `jobs`) never needs (tests/unit/test_cli_startup.py)."""
    module, _, name = target.partition(":")

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__qualname__ = call.__name__ = target
    call.target = target  # type: ignore[attr-defined]  # what tests/unit/test_cli_startup.py resolves
    return call


def _as_json(report: Any) -> str:
    return json.dumps(dataclasses.asdict(report), indent=2, default=str)


@dataclass(frozen=True)
class Command:
    """One archive command (see the module docstring). `run(options, progress)` does the work and returns a report;
    `show(report)` is it for people, `to_json(report)` for `--json`, `exit_code(report)` the command's status."""

    name: str  # "export"; a word before a space groups commands: "tables compact"
    help: str
    options: type[BaseModel]
    run: Callable[[Any, Progress], Any]
    show: Callable[[Any], str]
    description: str | None = None
    example: str | None = None  # shown at the end of its --help (the top-level commands' are in trapline/cli.py)
    examples: tuple[str, ...] = ()  # where one example is not enough: shown as `examples:` instead
    styles: Mapping[str, FlagStyle] = field(default_factory=dict)  # flags that read better another way
    to_json: Callable[[Any], str] = _as_json
    exit_code: Callable[[Any], int] = lambda report: 0
    stop_exit: int | None = None  # a stop by SIGTERM or Ctrl-C is how it ends: `stopped`, this code (else 128 + signal)
    # -- as a job (`POST /v1/jobs`, `ray job submit`) -------------------------------------------------------------
    job: bool = True  # False: a command line only
    job_kind: str | None = None  # its kind over HTTP and in `jobs submit`, when not its name (models train: train)
    job_options: type[BaseModel] | None = None  # what a job must give, where stricter than the command line
    entry: tuple[str, ...] = ()  # what follows `python` in the job's entry point (default: -m trapline.cli NAME)
    tables: str = "tables"  # the option naming the tables whose _runs/ holds the run's manifest
    resumes: bool = False  # a stop ends the run at its next part, and a rerun resumes (the console says Resume)
    writing: Callable[[Mapping[str, Any]], bool] = lambda progress: progress.get("run_status") == "running"
    # the options checked against the store and the tables (a model's input size, labels, classifiers), reading only:
    # `jobs submit` runs it before submitting (batch/jobs/control.py `prepare`), the runner itself before it writes
    check: Callable[[Any], None] | None = None
    pins_source: bool = False  # a job that names no source filter set gets the newest pinned when submitted
    # options a job fixes when it is submitted, from what its other options name (train: the tables its record goes
    # to, from the crops' manifest): {field: value}, checked as a caller's value would be
    fill: Callable[[Any], dict[str, Any]] | None = None
    main_options: tuple[str, ...] = ()  # shown first in the console's form (besides the required ones)
    # -- a command line with more than its options (a --config file, a positional action) ---------------------
    config_file: bool = False  # `--config FILE`: a YAML/JSON file of these options, flags override it
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    cli: Callable[[argparse.Namespace], int] | None = None  # replaces the run-and-print of `run` and `show`

    @property
    def epilog(self) -> str | None:
        """The end of its --help: its example(s)."""
        if self.examples:
            return "examples:\n" + "\n".join(f"  {e}" for e in self.examples)
        return f"example:\n  {self.example}" if self.example else None

    @property
    def job_model(self) -> type[BaseModel]:
        return self.job_options or self.options

    @property
    def module(self) -> tuple[str, ...]:
        return self.entry or ("-m", "trapline.cli", *self.name.split())

    def flag(self, name: str) -> str:
        """The option `name` as the command line names it (`progress_interval_s` -> `--progress-interval`)."""
        return flag_of(self.styles)(name)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The command's flags: its options model's, then `--json` (unless an option) and its own extras."""
        if self.config_file:
            add_config_flag(parser)
        add_model_arguments(parser, self.options, dict(self.styles))
        if "json_output" not in fields_of(self.options):
            add_json_flag(parser)
        if self.arguments is not None:
            self.arguments(parser)


def printed(r: Any) -> str:
    """A `Printed` result for people (ground/printed.py)."""
    return r.text


