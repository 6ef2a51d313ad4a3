"""What every export format takes (the tables, the result set, the scope and where to write), the base of each
format's own options model: a format with options of its own derives from `FormatOptions` in a module of its own
(batch/export/camtrap_options.py), and its registry entry names that model (batch/export/registry.py)."""

from __future__ import annotations

from pydantic import Field

from batch.options import Location, ScopedOptions


class FormatOptions(ScopedOptions):
    """The options of an export in any format; each format's model fixes `format` to its name
    (batch/export/options.py)."""

    format: str = Field(..., description="the format's name (batch/export/registry.py)")
    out: Location = Field(..., description="the output file, or directory for a format that writes a package")
