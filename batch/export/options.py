"""The options of `trapline export` (and of a job of kind export): one model per format, its registry entry's
(batch/export/registry.py) with `format` fixed to its name, joined by a discriminated union on `format`. An option
the chosen format does not have is refused where the options enter (exit 2 on the CLI, 422 over HTTP), and the
console's form shows the chosen format's options only (batch/option_variants.py); the CLI's flags are every
format's options, generated from this model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal, Union

from pydantic import Field, RootModel, create_model

from batch.export.common_options import FormatOptions
from batch.export.registry import EXPORTERS, ExportFormat
from batch.flags import FlagStyle
from batch.options import SET_FLAGS


def format_variant(spec: ExportFormat) -> type[FormatOptions]:
    """The options of `--format NAME`: its registry entry's model with `format` fixed to NAME."""
    title = "".join(w.capitalize() for w in spec.name.replace("-", " ").split()) + "ExportOptions"
    return create_model(title, __base__=spec.options, __module__=__name__,
                        __doc__=f"`trapline export --format {spec.name}`: {spec.description}",
                        format=(Literal[spec.name], Field(description=spec.description)))


def union_of(formats: Mapping[str, ExportFormat]) -> type[RootModel]:
    """The options of an export in one of `formats`: the chosen format's, picked by `format`."""
    choice = Annotated[Union[tuple(format_variant(f) for f in formats.values())],  # noqa: UP007 - from the registry
                       Field(discriminator="format",
                             description="; ".join(f"{name}: {f.description}" for name, f in formats.items()))]
    return type("ExportOptions", (RootModel[choice],), {  # type: ignore[valid-type]
        "__module__": __name__, "__doc__": "The options of `trapline export` (and of a job of kind export): those "
                                           "of the chosen format. `ExportOptions(format=..., ...)` validates; "
                                           "`.root` is the format's own options."})


ExportOptions = union_of(EXPORTERS)

EXPORT_FLAGS = {**SET_FLAGS, "deployments": FlagStyle(metavar="FILE.csv|FILE.json"),
                "package_meta": FlagStyle(metavar="META.yaml")}
