"""The job kinds: one for each command of the registry (batch/commands.py) that runs as a job: its options model,
its fixed entry point, and the argv built from options.

A job's command line is never taken from a caller: it is built here from options the kind's own model has
validated (`argv`), checked by parsing it back with the command's real parser (`check_round_trip`), and
quoted for the job manager's shell with `shlex.join`, so no value can become part of a shell command.
The same parsers read the entry points of jobs submitted another way (`ray job submit -- trapline
reprocess ...`), so they are listed with their options too (`recognise`).
"""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from batch.commands import COMMANDS, Command
from batch.flags import FlagStyle, add_config_flag, add_json_flag, add_model_arguments, base_type, toggles
from batch.option_variants import unwrap, variants_of
from batch.options import location_fields
from ground.entry import add_verbose
from ground.errors import InvalidOptionsError
from ground.problems import describe, fields, problems

# Options a caller may not set over HTTP: the job runs on this cluster, and prints for its log.
REFUSED = {"address": "a job runs on the cluster of the service", "json_output": "not an option of the work",
           "progress_bars": "not an option of the work"}


@dataclass(frozen=True)
class JobKind:
    """One kind of job: `python <module> <flags from options>`, for one command of the registry."""

    spec: Command  # the command's entry in the registry

    @property
    def name(self) -> str:
        return self.spec.job_kind or self.spec.name

    @property
    def options(self) -> type[BaseModel]:
        """What a job must give (the command's job options, where stricter than its command line's)."""
        return self.spec.job_model

    @property
    def styles(self) -> dict[str, FlagStyle]:
        return dict(self.spec.styles)

    @property
    def module(self) -> tuple[str, ...]:
        """What follows `python`: ("-m", "batch.reprocess") or ("-m", "trapline.cli", NAME)."""
        return self.spec.module

    @property
    def tables(self) -> str:
        """The option naming the tables whose _runs/ holds the run's manifest."""
        return self.spec.tables

    def parser(self) -> argparse.ArgumentParser:
        """The command's own flags, generated from its options model as the CLI generates them."""
        p = argparse.ArgumentParser(prog=self.name, add_help=False, exit_on_error=False)
        add_model_arguments(p, self.options, self.styles)
        # What the command lines take besides the options (the reprocess model has its own --json)
        if "--json" not in p._option_string_actions:
            add_json_flag(p, default=argparse.SUPPRESS)
        add_verbose(p)
        if "--config" not in p._option_string_actions:  # reprocess: a file of options
            add_config_flag(p, dest="config_file")
        return p

    def validate(self, raw: Any) -> BaseModel:
        """The options as the command's model validates them (for a model with variants, the chosen variant's);
        InvalidOptionsError names every bad field."""
        if not isinstance(raw, dict):
            raise InvalidOptionsError(f"options must be a JSON object of {self.name} options, got "
                                      f"{type(raw).__name__}", fields=["options"])
        refused = sorted(set(raw) & set(REFUSED))
        if refused:
            raise InvalidOptionsError("; ".join(f"{k}: cannot be set over HTTP ({REFUSED[k]})" for k in refused),
                                      fields=refused)
        try:
            return unwrap(self.options.model_validate(raw))
        except ValidationError as exc:
            variants = variants_of(self.options)
            found = problems(exc, variants.key if variants else None)
            raise InvalidOptionsError(f"invalid {self.name} options: {describe(found, self.spec.flag)}",
                                      fields=fields(found)) from None

    @property
    def paths(self) -> tuple[str, ...]:
        """The fields that name a local path or an s3:// location: typed `Location` in the options model."""
        return location_fields(self.options)

    def argv(self, options: BaseModel) -> list[str]:
        """The flags that give `options` (those that differ from the defaults), each as one `--flag=value`
        word: a value starting with '-' cannot pass for a flag."""
        out: list[str] = []
        data = options.model_dump(mode="json", exclude_defaults=True)
        for name, value in data.items():
            info = type(options).model_fields[name]
            style = self.styles.get(name, FlagStyle())
            if style.positional:  # first, bare: a value that could pass for a flag is refused
                if not isinstance(value, str) or value.startswith("-"):
                    raise InvalidOptionsError(f"{name}: {value!r} is not a {name}", fields=[name])
                out.insert(0, value)
                continue
            if style.switches:
                out.append(style.switches[value][0])
                continue
            flag = (style.flags or ("--" + name.replace("_", "-"),))[0]
            kind = base_type(info.annotation)
            if toggles(info):
                out.append(flag if value else "--no-" + flag[2:])
            elif kind is bool:  # off by default: only `True` differs from it
                out.append(flag)
            elif value is None:
                raise AssertionError(f"{name}: None differs from the default and has no flag")
            elif style.repeatable:
                out += [f"{flag}={v}" for v in value]
            elif isinstance(value, dict):
                out.append(f"{flag}={json.dumps(value, separators=(',', ':'))}")
            elif isinstance(value, list) and name == "concurrency":
                out.append(f"{flag}={value[0]}-{value[1]}")
            elif isinstance(value, list):
                out.append(f"{flag}={','.join(map(str, value))}")
            else:
                out.append(f"{flag}={value}")
        return out

    def parse(self, argv: list[str]) -> BaseModel:
        """Options from a command line of this kind (ValueError when it is not one)."""
        try:  # parse_known_args: argparse would print unknown flags to stderr before refusing them
            ns, unknown = self.parser().parse_known_args(argv)
        except (argparse.ArgumentError, SystemExit) as exc:
            raise ValueError(f"not a {self.name} command line: {exc}") from None
        if unknown:
            raise ValueError(f"not a {self.name} command line: unknown {' '.join(unknown)}")
        given = {k: v for k, v in vars(ns).items() if k not in ("json_output", "verbose", "config_file")}
        return unwrap(self.options.model_validate(given))

    def command(self, python: str, options: BaseModel) -> list[str]:
        return [python, *self.module, *self.argv(options)]

    def check_round_trip(self, options: BaseModel) -> list[str]:
        """argv for `options`, parsed back by the command's parser to the same options (or AssertionError)."""
        argv = self.argv(options)
        back = self.parse(argv)
        if back.model_dump(mode="json") != options.model_dump(mode="json"):
            raise AssertionError(f"{self.name}: argv {argv!r} does not give back the options")
        return argv


KINDS: dict[str, JobKind] = {k.name: k for k in (JobKind(c) for c in COMMANDS.values() if c.job)}
# `python -m MODULE ...` entry points that run one command (`python -m batch.reprocess`)
_MODULES = {k.module[1]: k for k in KINDS.values() if len(k.module) == 2}
# `trapline COMMAND ...`: the kind of each command (`models train` is the kind `train`)
_COMMANDS = {k.spec.name: k for k in KINDS.values()}


def recognise(entrypoint: str) -> tuple[JobKind, BaseModel | None] | None:
    """The kind (and options, when they parse) of a job's entry point, if it runs a trapline command:
    `python -m batch.reprocess ...`, `python -m trapline.cli KIND ...` or `trapline KIND ...`."""
    try:
        words = shlex.split(entrypoint)
    except ValueError:
        return None
    for i, word in enumerate(words):
        rest: list[str] | None = None
        if word == "-m" and i + 1 < len(words) and words[i + 1] in _MODULES:
            kind, rest = _MODULES[words[i + 1]], words[i + 2:]
        elif (word == "-m" and words[i + 1:i + 2] == ["trapline.cli"]) or word.rsplit("/", 1)[-1] == "trapline":
            j = i + 2 if word == "-m" else i + 1
            args = [w for w in words[j:] if not w.startswith("-")][:2]
            named = next((args[:n] for n in (2, 1) if " ".join(args[:n]) in _COMMANDS), None)
            if named is None:
                return None
            rest = words[j:]
            for w in named:
                rest.pop(rest.index(w))
            kind = _COMMANDS[" ".join(named)]
        if rest is not None:
            try:
                return kind, kind.parse(rest)
            except (ValueError, ValidationError):
                return kind, None
    return None
