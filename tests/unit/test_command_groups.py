"""Every command group is built from the registry's command objects (batch/commands.py): `tables`, `occurrences`,
`deployments`, `jobs` and `models` get their flags, help and checks from their options models, like the archive
commands, and nothing else registers them (issue 54: one command idiom)."""

from __future__ import annotations

import argparse

import pytest

from batch.commands import COMMANDS, GROUPS
from trapline.cli import SUBCOMMANDS, build_parser, main


def leaves(parser: argparse.ArgumentParser, path: list[str]) -> dict[str, argparse.ArgumentParser]:
    for word in path:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_each_group_is_exactly_its_registered_commands_and_each_flag_is_an_option():
    parser = build_parser()
    for group in GROUPS:
        registered = {c.name.split()[-1]: c for c in COMMANDS.values() if c.name.startswith(group + " ")}
        shown = leaves(parser, [group])
        assert set(shown) == set(registered), group
        for leaf, command in registered.items():
            if command.arguments is not None:
                continue  # `jobs submit KIND`: each kind's own options (checked in test_jobs_kinds.py)
            extras = {"help", "json_output", "verbose"} | ({"config"} if command.config_file else set())
            dests = {a.dest for a in shown[leaf]._actions} - extras
            assert dests == set(command.options.model_fields), f"{group} {leaf}"
    # only the registry and `trapline serve` register their own parsers
    assert {m for m, _ in SUBCOMMANDS} == {"batch.cli", "trapline.service"}


def test_positionals_and_renamed_flags_reach_the_options_model(tmp_path, capsys):
    tables = str(tmp_path / "t")
    assert main(["deployments", "revoke", "dec-nope", "--tables", tables]) == 2  # through the model, then refused
    assert "dec-nope" in capsys.readouterr().err
    assert main(["deployments", "correct-clock", "--tables", tables, "--camera", "c1", "--from",
                 "2026-01-01T00:00:00"]) == 2
    err = capsys.readouterr().err
    assert "--until" in err and "required" in err.lower()  # the missing option named by its flag
    with pytest.raises(SystemExit):
        main(["occurrences", "merge", "--tables", tables])  # OCC and OTHER are positional and required
    from batch.cli import options

    for argv in (["abc123"], ["--set", "abc123"]):  # a set by its flag or alone (FlagStyle.also_positional)
        given = build_parser().parse_args(["tables", "purge", *argv, "--tables", tables])
        assert options(COMMANDS["tables purge"], given).result_set == "abc123"
    assert "the result set (as --set)" in leaves(build_parser(), ["tables"])["purge"].format_help()


def test_models_flags_reach_their_options_model(tmp_path, capsys):
    """`trapline models ...`: a positional, a repeatable flag and a retired flag (hidden, refused saying why)."""
    from batch.cli import options

    parser = build_parser()
    args = parser.parse_args(["models", "publish", "w.onnx", "--name", "n", "--version", "1", "--taxonomy", "t.txt",
                              "--taxa-list", "eu=eu.csv", "--taxa-list", "de=de.csv"])
    o = options(COMMANDS["models publish"], args)
    assert (o.weights, o.name, o.taxa_list, o.store) == ("w.onnx", "n", ["eu=eu.csv", "de=de.csv"], None)
    assert "--min-match" not in leaves(parser, ["models"])["quantize"].format_help()
    assert main(["models", "quantize", "x:1", "--calibrate", str(tmp_path), "--version", "2", "--min-match", "0.5",
                 "--store", str(tmp_path)]) == 2
    assert "--min-match was replaced by --min-recall and --min-precision" in capsys.readouterr().err
    assert main(["models", "list", "--json", "--store", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().out.strip() == "[]"


def test_every_group_runner_resolves():
    """The groups' runners are named late (`later`), in the registry or beside their options; each name loads."""
    import importlib

    targets = {c.run.target for c in COMMANDS.values() if hasattr(c.run, "target")}
    assert {f"model_store.store.cli:{n}" for n in ("list_models", "publish", "quantize", "verify")} <= targets
    for target in sorted(targets):
        module, _, name = target.partition(":")
        assert callable(getattr(importlib.import_module(module), name)), target
