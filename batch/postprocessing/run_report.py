"""What a postprocess run counts and says: its report, the progress line and manifest heartbeat while it runs
(`Ticker`), and the summary printed at its end."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from batch.postprocessing.tracks import TRACK
from model_store.tables.manifest import RunManifest, write_manifest
from model_store.tables.reader import Tables

COUNT_FIELDS = ("in_scope", "images", "skipped", "detections_checked", "flagged", "kept_before", "kept_after",
                "images_changed", "determinations_changed", "became_empty", "became_nonempty", "detections_linked",
                "occurrences",
                "frames_per_occurrence", "disagreements")


@dataclass
class PostprocessReport:
    run_id: str | None
    model: str
    source_filters_hash: str
    filters_hash: str
    filters: list[dict]
    dry_run: bool = False
    scope: dict[str, Any] = field(default_factory=dict)
    in_scope: int = 0  # images of the source set in the scope
    images: int = 0  # images re-filtered (failed ones included, carried over)
    skipped: int = 0  # already present in the new filter set
    detections_checked: int = 0
    flagged: int = 0  # detections the named filter fired on
    kept_before: int = 0
    kept_after: int = 0
    images_changed: int = 0  # kept set differs from the source filter set
    # occurrences whose determination differs after the run: renamed, gone or new (batch/postprocessing/effects.py)
    determinations_changed: int = 0
    became_empty: int = 0
    became_nonempty: int = 0
    relabelled: int = 0  # classifications whose label the new set changes (classifier filters)
    # With the track filter: kept detections linked, occurrences made (over the scope's cameras), and those a
    # person determined where the model's vote now names another label.
    detections_linked: int = 0
    occurrences: int = 0
    frames_per_occurrence: float = 0.0
    disagreements: int = 0
    wall_s: float = 0.0
    manifest: str | None = None
    tables: list[str] = field(default_factory=list)  # the tables it wrote parts of, in the source tables
    notes: list[str] = field(default_factory=list)
    # One image's preview (`--image` with `--dry-run`): each detection before and after the new filter set.
    changes: list[dict[str, Any]] = field(default_factory=list)


def report_counts(report: PostprocessReport) -> dict[str, int | float]:
    return {k: getattr(report, k) for k in COUNT_FIELDS}


class Ticker:
    """Prints a progress line and refreshes the manifest's counts (its heartbeat) every `interval` seconds."""

    def __init__(self, report: PostprocessReport, manifest: RunManifest | None, tables: Tables,
                 log: Callable[[str], None], interval: float) -> None:
        self.report, self.manifest, self.tables, self.log, self.interval = report, manifest, tables, log, interval
        self.start = self.last = time.monotonic()
        self.done = 0
        self.parts = 0

    def tick(self) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        r = self.report
        rate = self.done / max(now - self.start, 1e-9)
        self.log(f"{self.done}/{r.in_scope} image(s) ({100 * self.done / max(r.in_scope, 1):.0f}%), "
                 f"{r.images_changed} changed, {self.parts} part(s) written, {rate:.0f} images/s")
        if self.manifest is not None:
            self.manifest.counts = report_counts(r)
            self.manifest.touch()
            write_manifest(self.tables.storage, self.manifest)


def format_report(r: PostprocessReport) -> str:
    head = "dry run: nothing was written" if r.dry_run else f"postprocess run {r.run_id} succeeded in {r.wall_s:.1f}s"
    lines = [head,
             f"model     {r.model}  filters {r.source_filters_hash} -> {r.filters_hash}",
             f"scope     {r.scope.get('description', 'whole table')}: {r.in_scope} image(s)",
             f"images    {r.images} re-filtered, {r.skipped} already in the new set, {r.images_changed} changed "
             f"outcome ({r.became_empty} became empty, {r.became_nonempty} became non-empty)",
             *([f"determinations {r.determinations_changed} occurrence(s) named differently, gone or new"]
               if r.occurrences or r.determinations_changed else []),
             f"detections {r.detections_checked} checked, {r.flagged} flagged by the filter, "
             f"kept {r.kept_before} -> {r.kept_after}"]
    if r.occurrences or TRACK in [f["name"] for f in r.filters]:
        lines.append(f"occurrences {r.occurrences} from {r.detections_linked} linked detection(s), "
                     f"{r.frames_per_occurrence} frame(s) per occurrence; {r.disagreements} where the model's vote "
                     "disagrees with a person's identification")
    if r.tables:
        lines.append(f"tables    wrote {{{','.join(r.tables)}}}")
    lines += [f"note      {n}" for n in r.notes]
    for c in r.changes:  # one image's preview: each detection's fate
        species = "; ".join(f"{x['classifier']}: {x['from']} -> {x['to']}" for x in c["relabelled"])
        lines.append(f"  #{c['detection_index']} {c['label']} {c['score']:.3f}: {c['change']}"
                     + (f" [{', '.join(c['flags'])}]" if c["flags"] else "") + (f" ({species})" if species else "")
                     + (f" -> {c['occurrence_id']}" if c.get("occurrence_id") else ""))
    if r.manifest:
        lines.append(f"manifest  {r.manifest}")
    return "\n".join(lines)
