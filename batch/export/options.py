"""The options of `trapline export`: the CLI's flags are generated from this model, and a job's options are
validated against it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from batch.export.registry import EXPORTERS, FORMATS
from batch.flags import FlagStyle
from batch.options import SET_FLAGS, Location, ScopedOptions

Format = Literal[FORMATS]  # the registered exporters (batch/export/registry.py)


class _CommonExportOptions(ScopedOptions):
    format: Format = Field(..., description="; ".join(f"{name}: {e.description}" for name, e in EXPORTERS.items()))
    out: Location = Field(..., description="output file (megadetector, coco) or directory (camtrap-dp)")


# What every export takes, with the options each registered format declares (`ExportFormat.options`, registry.py):
# a format's option is one field in its own file, and becomes a flag, a job's JSON Schema and a form input here.
ExportOptions = type("ExportOptions", (*(e.options for e in EXPORTERS.values() if e.options), _CommonExportOptions),
                     {"__module__": __name__, "__qualname__": "ExportOptions",
                      "__doc__": "The options of `trapline export` (and of a job of kind export)."})


EXPORT_FLAGS = {**SET_FLAGS, "deployments": FlagStyle(metavar="FILE.csv|FILE.json"),
                "package_meta": FlagStyle(metavar="META.yaml")}
