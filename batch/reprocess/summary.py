"""The run summary: what a reprocessing run found and did, and how it is printed."""

from __future__ import annotations

from dataclasses import dataclass, field

from batch.reprocess.progress import Progress
from model_store.tables.schema import DETECTIONS, IMAGES

COUNT_FIELDS = ("found", "selected", "already_done", "to_process", "held_back", "processed", "ok", "empty",
                "failed", "detections", "raw_detections", "parts", "orphans_removed", "identified",
                "agrees_with_people", "clips_found", "clips", "clips_failed", "frames_sampled", "clips_redone",
                "confirmed_by_digest", "digest_files_read", "digest_bytes_read", "digest_differ")


@dataclass
class RunReport:
    """What a run found and did; printed as the summary and recorded in the manifest."""

    run_id: str | None
    status: str  # dry-run | succeeded | failed | interrupted
    model: str
    filters_hash: str
    archive: str
    out: str
    tables: list[str] = field(default_factory=lambda: [IMAGES, DETECTIONS])  # the tables under `out` it writes
    found: int = 0
    selected: int = 0
    already_done: int = 0
    to_process: int = 0
    held_back: int = 0
    processed: int = 0
    ok: int = 0
    empty: int = 0
    failed: int = 0
    detections: int = 0
    raw_detections: int = 0
    parts: int = 0
    images_per_s: float = 0.0  # while images flowed (processing_s), not counting listing and start-up
    steady_images_per_s: float = 0.0  # from the first committed part to the last (Progress.steady_rate)
    wall_s: float = 0.0  # the whole run, listing and start-up included
    processing_s: float = 0.0
    estimate_s: float | None = None
    estimate_basis: str | None = None
    path_pattern_unmatched: int = 0
    ignored_files: int = 0
    ignored_kinds: dict[str, int] = field(default_factory=dict)  # why they were left out: ".txt": 3, hidden...
    clips_found: int = 0  # of `found`, the video clips (the rest are images)
    # The roots this archive had when earlier rows were made (it moved, or is mounted elsewhere): done-checked too
    moved_from: list[str] = field(default_factory=list)
    # Files whose mtime or ETag differ from a done row of the same path and size (a copy, a move to a bucket): read
    # and confirmed by their sha256 (tables/digests.py), never inferred; `digest_differ` did not match: processed
    confirmed_by_digest: int = 0
    digest_files_read: int = 0
    digest_bytes_read: int = 0
    digest_differ: int = 0
    result_set: str | None = None  # a redo: what it redoes (or resumes), or why --redo-if-core-older-than made none
    clips_redone: int = 0  # of `to_process`, the clips done before with other sampling, tracking or counting
    clips: int = 0  # of `processed`, the clips; their failed ones, and the frames sampled from them
    clips_failed: int = 0
    frames_sampled: int = 0
    orphans_removed: int = 0
    manifest: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    # People's identifications of occurrences in these tables (the decisions log) on images this version processed,
    # and how many its own boxes agree with: a person still decides; the summary says where the model differs.
    identified: int = 0
    agrees_with_people: int = 0
    # Where the run's time went, in seconds from its start: `planned` (lease, listing, done-check), `ray_ready` (the
    # model checked, Ray up, the plan sized), `plan_started`, `first_part` and `last_part` (committed), `finished`.
    timeline: dict[str, float] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        return self.already_done


def apply_progress(report: RunReport, progress: Progress) -> None:
    c = progress.counts
    report.processed, report.ok, report.empty, report.failed = c["images"], c["ok"], c["empty"], c["failed"]
    report.detections, report.raw_detections, report.parts = c["detections"], c["raw_detections"], progress.parts
    report.clips, report.clips_failed, report.frames_sampled = c["clips"], c["clips_failed"], c["frames_sampled"]
    report.processing_s = round(progress.elapsed, 3)
    report.images_per_s = round(progress.rate, 3)
    report.steady_images_per_s = round(progress.steady_rate, 3)


def apply_timeline(report: RunReport, progress: Progress, t0: float) -> None:
    """The plan's milestones in `report.timeline`, as seconds from the run's start (`t0`, a perf_counter)."""
    began = progress.started - t0
    report.timeline["plan_started"] = round(began, 3)
    if progress.first_part is not None:
        report.timeline["first_part"] = round(began + progress.first_part[0], 3)
        report.timeline["last_part"] = round(began + progress.last_part_s, 3)


def report_counts(report: RunReport) -> dict[str, int | float]:
    return {k: getattr(report, k) for k in COUNT_FIELDS}


def format_report(report: RunReport) -> str:
    """The human summary printed at the end of a run (or of a dry run)."""
    r = report
    lines = []
    if r.status == "dry-run":
        lines.append("dry run: nothing was written")
    else:
        lines.append(f"run {r.run_id} {r.status} in {r.wall_s:.1f}s")
    lines.append(f"model     {r.model}  filters {r.filters_hash}")
    lines.append(f"archive   {r.archive}: found {r.found - r.clips_found} image(s)"
                 + (f", {r.clips_found} clip(s)" if r.clips_found else "")
                 + (f", {r.ignored_files} other file(s) ignored ({_ignored(r.ignored_kinds)})" if r.ignored_files
                    else ""))
    lines.append(f"selection {r.selected} selected, {r.already_done} already done (skipped), {r.to_process} to process"
                 + (f" ({r.clips_redone} clip(s) redone for new clip settings: sampling, tracking or counting)"
                    if r.clips_redone else "")
                 + (f", {r.held_back} left for later by --limit" if r.held_back else ""))
    if r.result_set:
        lines.append(f"set       {r.result_set}")
    if r.moved_from:
        lines.append(f"moved     the same archive (by relative path and content) was processed at "
                     f"{', '.join(p.rstrip('/') for p in r.moved_from)}: what was done there counts as done")
    if r.confirmed_by_digest or r.digest_differ:
        lines.append(f"digest    {r.confirmed_by_digest} file(s) with new times or ETags confirmed done by content "
                     f"({r.digest_files_read} read, {r.digest_bytes_read / 1e6:.1f} MB, none inferred)"
                     + (f"; {r.digest_differ} of the same path and size hold other bytes: processed again"
                        if r.digest_differ else ""))
    if r.path_pattern_unmatched:
        lines.append(f"warning   {r.path_pattern_unmatched} file(s) did not match --path-pattern")
    if r.status == "dry-run":
        if r.estimate_s is not None:
            lines.append(f"estimate  ~{r.estimate_s:.0f}s ({r.estimate_basis})")
        else:
            lines.append(f"estimate  {r.estimate_basis or 'unknown'}")
    else:
        lines.append(f"processed {r.processed}: ok {r.ok}, empty {r.empty}, failed {r.failed}; "
                     f"detections {r.detections} kept ({r.raw_detections} raw); {r.images_per_s:.1f} images/s"
                     + (f" ({r.steady_images_per_s:.1f} after the first part)" if r.parts >= 2 else ""))
        if r.clips:
            lines.append(f"clips     {r.clips} of them clips ({r.clips_failed} failed): {r.frames_sampled} sampled "
                         f"frame(s) through the detector; images {r.processed - r.clips} "
                         f"({r.failed - r.clips_failed} failed)")
        lines.append(f"tables    {r.out}/{{{','.join(r.tables)}}}")
        if r.identified:
            lines.append(f"people    agrees with {r.agrees_with_people} of {r.identified} occurrence(s) people "
                         f"identified; {r.identified - r.agrees_with_people} disagree (their labels still decide)")
        if r.manifest:
            lines.append(f"manifest  {r.manifest}")
    if r.error:
        lines.append(f"error     {r.error}; rerun the same command to resume")
    return "\n".join(lines)


def _ignored(kinds: dict[str, int]) -> str:
    """".txt 2, hidden or system 1; --extensions adds a kind": what was left out and how to take it in."""
    listed = ", ".join(f"{kind} {n}" for kind, n in kinds.items())
    return listed + ("; --extensions adds a kind" if any(k.startswith(".") for k in kinds) else "")
