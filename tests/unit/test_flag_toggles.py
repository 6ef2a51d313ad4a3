"""A boolean option that is on by default can be turned off from the command line (issue 65): the generated flags
give it `--no-x` (argparse's BooleanOptionalAction), a job's argv says `--no-x` for it, and every such flag of every
command, walked from `trapline`'s parser, turns its option off. It used to be a `store_true` switch that could only
say what the default already said."""

from __future__ import annotations

import argparse

from pydantic import BaseModel, Field

from batch.command import Command
from batch.commands import COMMANDS
from batch.flags import add_model_arguments, toggles
from batch.jobs.kinds import JobKind
from batch.option_variants import fields_of
from trapline.cli import build_parser


class Options(BaseModel):
    previews: bool = Field(True, description="write the previews")
    crops: bool = Field(False, description="write the snips")
    bars: bool | None = Field(None, description="progress bars (default: when on a terminal)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(exit_on_error=False)
    add_model_arguments(p, Options)
    return p


def test_an_option_on_by_default_turns_off_with_its_no_flag():
    assert vars(parser().parse_args(["--no-previews"])) == {"previews": False}
    assert vars(parser().parse_args(["--previews", "--crops", "--no-bars"])) == {"previews": True, "crops": True,
                                                                                 "bars": False}
    assert vars(parser().parse_args([])) == {}  # not given: the model's default (or a --config file) decides
    assert "(default True)" in parser()._option_string_actions["--previews"].help
    assert "--no-crops" not in parser()._option_string_actions  # off by default: the switch alone


def test_a_job_turns_it_off_with_the_same_flag():
    kind = JobKind(Command("toggles", "", Options, run=lambda o, p: None, show=str))
    assert kind.check_round_trip(Options(previews=False, crops=True)) == ["--no-previews", "--crops"]
    assert kind.check_round_trip(Options(bars=True)) == ["--bars"]


def walk(p: argparse.ArgumentParser, name: str):
    """(command, its parser) for `p` and every subcommand under it."""
    yield name, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                yield from walk(subparser, f"{name} {sub}")


def test_every_flag_on_by_default_turns_its_option_off():
    """Every command's flags (`python -m batch.reprocess` is `trapline reprocess`): a flag whose help says
    `(default True)` is a `--x` / `--no-x` pair, and `--no-x` sets its option False."""
    parsers = list(walk(build_parser(), "trapline"))
    flags = [(command, action) for command, p in parsers for action in p._actions if action.option_strings]
    assert len(flags) > 300
    on = [(command, action) for command, action in flags if "(default True)" in (action.help or "")]
    for command, action in on:
        off = [o for o in action.option_strings if o.startswith("--no-")]
        assert isinstance(action, argparse.BooleanOptionalAction) and off, f"{command} {action.option_strings}"
        ns = argparse.Namespace()
        action(argparse.ArgumentParser(), ns, None, off[0])
        assert getattr(ns, action.dest) is False, f"{command} {off[0]}"
    switches = [a for _, a in flags if isinstance(a, argparse._StoreTrueAction | argparse.BooleanOptionalAction)]
    assert len(switches) > 50  # the walk reaches the switches


def test_every_commands_option_on_by_default_has_its_no_flag():
    """The same from the registry's side: each command's bool options that are not off by default, found in its
    options model, are pairs in its parser (a help text may say its default another way)."""
    commands = dict(walk(build_parser(), "trapline"))
    checked = 0
    for name, command in COMMANDS.items():
        sub = commands[f"trapline {name}"]
        for field, info in fields_of(command.options).items():
            if toggles(info):
                action = sub._option_string_actions[command.flag(field)]
                assert isinstance(action, argparse.BooleanOptionalAction), f"{name} {command.flag(field)}"
                checked += 1
    assert checked >= 1  # reprocess --progress-bars, at least

