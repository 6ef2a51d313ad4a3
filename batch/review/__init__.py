"""Look at the results: a static HTML review report built from the detection tables (`trapline report`)."""

from batch.review.build import ReportOptions, ReportResult, build_report

__all__ = ["ReportOptions", "ReportResult", "build_report"]
