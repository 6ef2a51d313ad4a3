"""Command-line flags generated from a pydantic options model, so help text and defaults cannot drift.

Every field becomes `--field-name` (underscores to dashes) with the field's description as help and
its default appended from the model itself. Flags that are not given stay unset (argparse.SUPPRESS),
so the model's defaults and a `--config` file apply. A few fields read better under another flag
name or as a switch; `FlagStyle` entries say so, beside the model they belong to. A model with variants
(batch/option_variants.py) gets every variant's flags, each one's help naming the variants that take it. A bool
field off by default is a switch (`--crops`); one on by default, or unset, is a pair (`--progress-bars` /
`--no-progress-bars`), so that it can be turned off.
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from batch.option_variants import fields_of, variants_of
from ground.problems import as_flag


@dataclass(frozen=True)
class FlagStyle:
    """How one field appears on the command line (all optional)."""

    flags: tuple[str, ...] = ()          # e.g. ("--json",) instead of --json-output
    metavar: str | None = None
    default_text: str | None = None      # for defaults computed at run time ("automatic")
    # Literal value -> (its own flag, help): e.g. select=all as --all, select=latest-per-camera as --latest-per-camera
    switches: dict[str, tuple[str, str]] = field(default_factory=dict)
    repeatable: bool = False             # a list field given as the flag once per item
    positional: bool = False             # given without a flag (`trapline deployments revoke DECISION_ID`)
    also_positional: bool = False        # given either way: `trapline tables purge SET` = `... --set SET`
    hidden: bool = False                 # a retired flag, kept only to say what replaced it: not in --help


def flag_of(styles: typing.Mapping[str, FlagStyle]) -> typing.Callable[[str], str]:
    """How a command line with these styles names an option (`progress_interval_s` -> `--progress-interval`; a
    positional by its metavar), for the errors that quote it."""
    def flag(name: str) -> str:
        style = styles.get(name, FlagStyle())
        if style.positional:
            return style.metavar or name.upper()
        return (style.flags or (as_flag(name),))[0]
    return flag


def base_type(annotation: Any) -> Any:
    """The annotation without `| None`."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def toggles(info: Any) -> bool:
    """Whether a bool field is a `--x` / `--no-x` pair: unless it is off by default (then `--x` alone turns it on), so
    an option that is on by default (or unset: the config decides) can be turned off."""
    return base_type(info.annotation) is bool and info.default is not False


def _default_text(info, style: FlagStyle) -> str | None:
    if style.default_text is not None:
        return style.default_text
    default = info.default
    if default is PydanticUndefined:
        return None if info.default_factory is None else ",".join(map(str, info.default_factory()))
    if default is None or default is False:
        return None
    return str(default)


def add_model_arguments(parser: argparse.ArgumentParser, model: type[BaseModel],
                        styles: dict[str, FlagStyle] | None = None, skip: tuple[str, ...] = ()) -> None:
    """Add one flag per field of `model` (see the module docstring)."""
    styles = styles or {}
    suppress = argparse.SUPPRESS
    variants = variants_of(model)
    for name, info in fields_of(model).items():
        if name in skip:
            continue
        style = styles.get(name, FlagStyle())
        flags = list(style.flags) or ["--" + name.replace("_", "-")]
        help_text = (info.description or name.replace("_", " ")).replace("%", "%%")
        having = variants.having(name) if variants else []
        if variants and len(having) < len(variants.models):  # the others refuse it
            help_text = f"[--{variants.key.replace('_', '-')} {', '.join(having)}] {help_text}"
        shown = _default_text(info, style)
        required = info.is_required()
        if required:
            help_text += " (required)"
        elif shown is not None:
            help_text += f" (default {shown})"
        kind = base_type(info.annotation)
        if style.hidden:
            help_text = suppress
        if style.positional:
            many = typing.get_origin(kind) is list
            parser.add_argument(name, metavar=style.metavar or name.upper(), help=help_text,
                                nargs=("+" if required else "*") if many else (None if required else "?"),
                                default=suppress, **({"type": kind} if kind in (int, float) else {}))
            continue
        if style.switches:
            group = parser.add_mutually_exclusive_group()
            for value, (flag, text) in style.switches.items():
                label = text + (" (default)" if value == shown else "")
                group.add_argument(flag, dest=name, action="store_const", const=value, default=suppress, help=label)
            continue
        kw: dict[str, Any] = {"dest": name, "default": suppress, "help": help_text}
        if toggles(info):
            kw["action"] = argparse.BooleanOptionalAction
        elif kind is bool:
            kw["action"] = "store_true"
        elif style.repeatable:
            kw.update(action="append", metavar=style.metavar or name.upper())
        else:
            if typing.get_origin(kind) is Literal:
                kw["choices"] = list(typing.get_args(kind))
            elif kind in (int, float):
                kw["type"] = kind
            kw["metavar"] = style.metavar or (None if "choices" in kw else name.upper())
        parser.add_argument(*flags, **kw)
        if style.also_positional:  # the same option once more without its flag
            parser.add_argument(name, nargs="?", default=suppress, metavar=kw.get("metavar") or name.upper(),
                                help=f"the {name.replace('_', ' ')} (as {flags[0]})")


# -- the flags a command line has besides its options model: declared here once ------------------------------------

def add_config_flag(parser: argparse.ArgumentParser, dest: str = "config") -> None:
    """`--config FILE`: a YAML/JSON file of the command's options, which its flags override; unset unless given."""
    parser.add_argument("--config", dest=dest, default=argparse.SUPPRESS,
                        help="YAML/JSON file with these options (flags override it)")


def add_json_flag(parser: argparse.ArgumentParser, what: str = "the result", default: Any = False) -> None:
    """`--json`: print `what` as JSON (how a result is printed: not an option of the work, so not in its model)."""
    parser.add_argument("--json", action="store_true", dest="json_output", default=default,
                        help=f"print {what} as JSON")
