"""Every command of the command registry (batch/commands.py) on the command line: the archive door's (`trapline
reprocess | export | ...`) and the groups (`tables`, `occurrences`, `deployments`, `jobs`, `models`), each built from
its entry there."""

from __future__ import annotations

import argparse
from functools import partial

from batch.commands import COMMANDS, GROUPS, Command
from batch.option_variants import fields_of
from batch.options import load_config_file, parse_options
from ground.ray_output import console


def register(sub: argparse._SubParsersAction) -> None:
    """One subcommand per registered command; "tables compact" is `compact` under a `tables` group."""
    groups: dict[str, argparse._SubParsersAction] = {}
    for command in COMMANDS.values():
        group, _, leaf = command.name.rpartition(" ")
        parent = sub
        if group:
            if group not in groups:
                help_text, description = GROUPS[group]
                leaves = [c.name.split()[-1] for c in COMMANDS.values() if c.name.startswith(group + " ")]
                p = sub.add_parser(group, help=help_text, description=description)
                groups[group] = p.add_subparsers(dest=f"{group}_command", metavar="{" + ",".join(leaves) + "}",
                                                 required=True)
            parent = groups[group]
        p = parent.add_parser(leaf, help=command.help, description=command.description,
                              **({"epilog": command.epilog,
                                  "formatter_class": argparse.RawDescriptionHelpFormatter} if command.epilog else {}))
        command.add_arguments(p)
        p.set_defaults(func=command.cli or partial(run_command, command),
                       **({"stop_exit": command.stop_exit} if command.stop_exit is not None else {}))


def options(command: Command, args: argparse.Namespace):
    """The command's options model from the flags given (the CLI's flags are generated from the same model), over
    the options of a `--config` file where the command takes one."""
    given = {k: v for k, v in vars(args).items() if k in fields_of(command.options)}
    if command.config_file and getattr(args, "config", None):
        given = {**load_config_file(args.config), **given}
    return parse_options(command.options, given, command.name, command.flag)


def run_command(command: Command, args: argparse.Namespace) -> int:
    """Run `command` with the options given, print its report (as JSON with --json), exit with its status."""
    report = command.run(options(command, args), _progress)
    print(command.to_json(report) if getattr(args, "json_output", False) else command.show(report))
    return command.exit_code(report)


def _progress(line: str) -> None:
    print(line, file=console(), flush=True)
