"""Look at the results: a static HTML review report built from the detection tables (`trapline report`).

The names below load on first use (PEP 562): `batch.review.options`, which the command line imports, comes
without the builder (pandas, the plots, the page template)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the same names, for type checkers and for the import contracts (lint-imports) to see
    from batch.review.build import ReportOptions, ReportResult, build_report

__all__ = ["ReportOptions", "ReportResult", "build_report"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module 'batch.review' has no attribute {name!r}")
    value = getattr(importlib.import_module("batch.review.build"), name)
    globals()[name] = value
    return value
