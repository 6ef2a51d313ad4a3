"""What a reprocess run tells while it runs and when it ends: a progress line every interval, the manifest's
heartbeat (its counts, which `GET /v1/jobs/{id}` reads), and the manifest's close-out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from batch.reprocess.plan import Plan
from batch.reprocess.progress import Progress
from batch.reprocess.summary import RunReport, apply_progress, report_counts
from model_store.tables.manifest import RunManifest, write_manifest

# The manifest is rewritten at most this often while parts land: `GET /v1/jobs/{id}` reads progress from it.
MANIFEST_EVERY_S = 2.0


def close_manifest(manifest: RunManifest | None, plan: Plan, report: RunReport, t0: float, status: str,
                   error: str | None) -> None:
    """The run's end in its manifest (status, error, counts, wall time); the report says it when the destination
    itself cannot be written."""
    report.wall_s = round(time.perf_counter() - t0, 3)
    report.timeline["finished"] = report.wall_s
    if manifest is None:
        return
    manifest.finish(status, error)  # type: ignore[arg-type]
    manifest.counts = report_counts(report)
    manifest.wall_s, manifest.images_per_s = report.wall_s, report.images_per_s
    try:
        write_manifest(plan.tables.storage, manifest)
    except OSError:
        pass  # the destination itself failed; the report still says what happened


class Reporter:
    """Progress lines every `interval` seconds and the manifest's counts at most every MANIFEST_EVERY_S (and at the
    first part), then `on_part`: the stop and lease checks, which may end the run."""

    def __init__(self, interval: float, log: Callable[[str], None], plan: Plan, manifest: RunManifest,
                 report: RunReport, on_part: Callable[[Progress], Any] | None) -> None:
        self.interval, self.log, self.plan, self.manifest, self.report = interval, log, plan, manifest, report
        self.on_part = on_part
        self.last_line = self.last_manifest = time.perf_counter()

    def __call__(self, progress: Progress) -> None:
        apply_progress(self.report, progress)
        now = time.perf_counter()
        if now - self.last_line >= self.interval or progress.counts["images"] >= progress.total:
            self.log(progress.line())
            self.last_line = now
        if now - self.last_manifest >= MANIFEST_EVERY_S or progress.parts == 1:
            self.manifest.counts = report_counts(self.report)
            self.manifest.images_per_s = self.report.images_per_s
            self.manifest.touch()
            write_manifest(self.plan.tables.storage, self.manifest)
            self.last_manifest = now
        if self.on_part is not None:
            self.on_part(progress)
