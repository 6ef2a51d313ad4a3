"""The options most commands share are declared once (issue 65): every registry command's `tables` is
`TablesLocation` and its `store` is `StoreRoot` (batch/options.py), so they read the same in every `--help` and
the store's default is said by ground/env.py alone; `--config`, `--json` and `-v` beside a command's options
come from one declaration each (batch/flags.py, ground/entry.py)."""

from __future__ import annotations

import typing

from batch.commands import COMMANDS
from batch.jobs.kinds import KINDS
from batch.option_variants import fields_of
from batch.options import StoreRoot, TablesLocation, location_fields
from ground.env import MODEL_STORE, STORE_HELP
from tests.unit.test_flag_toggles import walk
from trapline.cli import build_parser


def _description(annotated) -> str:
    return typing.get_args(annotated)[-1].description  # the Field, last of the metadata


def test_every_commands_tables_and_store_are_the_shared_fields():
    shared = {"tables": _description(TablesLocation), "store": _description(StoreRoot)}
    seen = dict.fromkeys(shared, 0)
    for name, command in COMMANDS.items():
        fields = fields_of(command.options)
        for field, description in shared.items():
            if field in fields:
                assert fields[field].description == description, f"{name}: its own `{field}`"
                assert field in location_fields(command.options), f"{name}: `{field}` is not a Location"
                seen[field] += 1
    assert seen["tables"] >= 20 and seen["store"] >= 15, seen
    assert f"${MODEL_STORE.name} or {MODEL_STORE.default}" in STORE_HELP


def test_the_flags_beside_the_options_mean_the_same_everywhere():
    """`--config FILE` (of the commands that merge a file of their options, and of `trapline jobs submit KIND`),
    `--json` and `-v`, on every command line and each job kind's parser: one declaration each, so one help."""
    parsers = dict(walk(build_parser(), "trapline"))
    parsers |= {f"job kind {kind.name}": kind.parser() for kind in KINDS.values()}
    files = {parsers[f"trapline {name}"]._option_string_actions["--config"].help
             for name, command in COMMANDS.items() if command.config_file}
    helps: dict[str, set[str]] = {"-v": set(), "--json": set()}
    for p in parsers.values():
        for flag, seen in helps.items():
            action = p._option_string_actions.get(flag)
            if action is not None and action.dest in ("verbose", "json_output"):
                seen.add(action.help)
        if (action := p._option_string_actions.get("--config")) is not None and action.dest == "config_file":
            files.add(action.help)
    assert files == {"YAML/JSON file with these options (flags override it)"}, files
    assert len(helps["-v"]) == 1, helps["-v"]
    assert helps["--json"] and all(h.startswith("print ") and h.endswith(" as JSON") for h in helps["--json"])
