"""A run's plan: the pinned model and classifiers, the validated filters, the archive listing and what
of it this run processes. Planning only reads (store, archive, tables); nothing is written."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pyarrow as pa

from batch.reprocess.classify import resolve_stage
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.redo import Target, choose_target
from batch.reprocess.selection import Selection, Window, select
from batch.reprocess.summary import RunReport
from ground.errors import OptionsError
from ground.storage import Storage
from model_store import FilterSet, ModelStore, ModelVersion
from model_store.core.clip_settings import ClipSettings
from model_store.core.pipeline import result_hash
from model_store.core.tiling import TilingConfig, resolve_tiling
from model_store.tables.archive import PathPattern, open_location, uri_of
from model_store.tables.digests import Confirmation, confirmer
from model_store.tables.done import relative_key
from model_store.tables.journal import pending_keys
from model_store.tables.listing import Listing, apply_known_times, as_table, list_archive, resolve_capture_times
from model_store.tables.reader import Tables
from model_store.tables.roots import moved_roots
from model_store.tables.schema import CLASSIFICATIONS, DETECTIONS, IMAGES, SNIPS, UPLOAD_TIME_SOURCES


@dataclass(frozen=True)
class RunPlaces:
    """What one run reads and writes, opened once at its door (`run_reprocess`, `check_options`) and handed down:
    the archive, the output tables and the model store. Nothing below opens them again (issue 83)."""

    archive: Storage
    out: Tables
    store: ModelStore

    @classmethod
    def open(cls, options: ReprocessOptions) -> RunPlaces:
        return cls(open_location(options.archive), Tables(open_location(options.out)), ModelStore(options.store))


@dataclass
class Plan:
    """A run's resolved inputs: pinned model, validated filters, the listing and what to process."""

    options: ReprocessOptions
    places: RunPlaces
    model: ModelVersion
    filters: FilterSet
    listing: Listing
    selection: Selection
    routes: list = dataclasses.field(default_factory=list)  # pinned classifier routes (--classify)
    result_hash: str = ""  # the skip key's set: filters hash, or filters + every classifier version (+ tiling)
    clips: ClipSettings = ClipSettings()  # how clips are sampled, tracked and counted: with the set, what a clip's done
    moved_from: list[str] = dataclasses.field(default_factory=list)  # this archive's earlier roots (tables/roots.py)
    target: Target | None = None  # the result set the run writes: the current one, or a redo's (redo.py)
    # files of the same path and size as done rows whose digest showed them done (a copy, a move): tables/digests.py
    confirmation: Confirmation = dataclasses.field(default_factory=Confirmation)
    tiling: TilingConfig | None = None  # the run's tiled inference (the model's, with --tiling over it)

    @property
    def tiling_settings(self) -> dict | None:
        """What the rows were tiled with (`TilingConfig.describe`), as the parts' metadata and the set's hash say."""
        return self.tiling.describe(self.model.config.input_size) if self.tiling is not None else None

    @property
    def run_config(self):
        """The model's config as this run runs it: its tiling the run's (what the actors and clients are given)."""
        return self.model.config.model_copy(update={"tiling": self.tiling})

    def __post_init__(self) -> None:
        self.result_hash = self.result_hash or self.filters.hash

    @property
    def tables(self) -> Tables:
        """The output tables the run writes (opened once, with the archive and the store: `places`)."""
        return self.places.out

    def tables_written(self) -> list[str]:
        """The tables the run writes: images and detections, and its crop/classify stage's own."""
        stage = [CLASSIFICATIONS] if self.routes else []
        return [IMAGES, DETECTIONS, *stage, *([SNIPS] if self.options.crops else [])]

    def report(self, run_id: str | None, status: str) -> RunReport:
        s = self.selection
        return RunReport(
            run_id=run_id, status=status, model=f"{self.model.name}:{self.model.version}",
            filters_hash=self.result_hash, archive=self.places.archive.url(), out=self.tables.url,
            tables=self.tables_written(),
            found=s.found, selected=s.selected, already_done=s.already_done, to_process=len(s.todo),
            held_back=s.held_back, path_pattern_unmatched=self.listing.unmatched, ignored_files=self.listing.ignored,
            ignored_kinds=self.listing.ignored_kinds, clips_found=self.listing.clips, clips_redone=s.clips_redone,
            moved_from=list(self.moved_from), result_set=self.target.note if self.target else None,
            confirmed_by_digest=self.confirmation.confirmed, digest_files_read=self.confirmation.files_read,
            digest_bytes_read=self.confirmation.bytes_read, digest_differ=self.confirmation.differ,
        )


@dataclass(frozen=True)
class Resolved:
    """The options a run checks against its model, resolved: filters, classify routes, tiling, clip settings."""

    filters: FilterSet
    routes: list
    tiling: TilingConfig | None
    clips: ClipSettings


def resolve_options(options: ReprocessOptions, mv: ModelVersion, store: ModelStore) -> Resolved:
    """Every option checked against the model version (and the classifiers it names): a typed error for a filter,
    route, tiling or clip setting the run cannot use. Reads only: `run_reprocess` calls it before the run's lease,
    so a refused option leaves the output as it was."""
    filters = mv.config.default_filters().with_overrides(options.filters)
    filters.require_per_image()
    filters.check_labels(mv.config.labels)  # every filter config is validated before anything runs
    routes = []
    if options.classify:  # pinned here, once: the run records (and its skip key covers) these versions
        routes = resolve_stage(store, options.classify, mv.config.labels, filters)
    tiling = resolve_tiling(mv.config.tiling, options.tiling, mv.config.input_size, mv.config.task)
    if tiling is not None and options.decode == "tasks":  # read tasks hand on one letterboxed input per row
        raise OptionsError("--tiling needs --decode actors (the default): a tiled image is many inputs, cut where "
                           "it is run")
    # A clip is done only with this run's clip settings: one done with others is redone (tables/done.py).
    return Resolved(filters, routes, tiling, options.clip_settings(mv.config))


def check_options(options: ReprocessOptions) -> None:
    """`resolve_options` against the version `--model` names: what `jobs submit reprocess` checks first."""
    store = ModelStore(options.store)
    resolve_options(options, store.get(options.model), store)


def plan_run(options: ReprocessOptions, places: RunPlaces | None = None, model: ModelVersion | None = None,
             resolved: Resolved | None = None) -> Plan:
    """Resolve model (unless given already resolved) and options (likewise), list the archive and choose what to
    process, in the places the door opened (opened here when called alone: a test, a benchmark). Reads only."""
    places = places or RunPlaces.open(options)
    mv = model or places.store.get(options.model)
    r = resolved or resolve_options(options, mv, places.store)
    filters, routes, tiling, clips = r.filters, r.routes, r.tiling, r.clips
    lineage = result_hash(filters, routes, tiling.describe(mv.config.input_size) if tiling else None)
    archive, tables = places.archive, places.out
    # The set this run writes and checks done against: the current one, or a redo's new (or resumed) one.
    target = choose_target(tables, mv.name, mv.version, lineage, options)
    result = target.set_hash
    pattern = PathPattern(options.path_pattern, options.time_format) if options.path_pattern else None
    listing = list_archive(archive, options.extensions, pattern)
    entries = listing.entries
    if options.needs_capture_times:
        entries = resolve_capture_times(archive, entries, tables.known_capture_times())
    else:  # the actors read EXIF / mtime themselves; what only the online door knew is carried over here
        entries = apply_known_times(entries, tables.known_capture_times(UPLOAD_TIME_SOURCES))
    # What is done, as keys relative to this archive (only its images can match, and a key a third of a URI long
    # keeps a million-image rerun's plan small); uploads a running service recorded and will commit at its next
    # flush count as done too.
    prefix = uri_of(archive, archive.root.rstrip("/")) + "/"
    pending = [(uri[len(prefix):], cid) for uri, cid in pending_keys(tables.storage, mv.name, mv.version, result)
               if uri.startswith(prefix)]
    done_here = tables.done_under(mv.name, mv.version, result, prefix, options.retry_failed, clips.hash)
    # The same archive processed at another root before (moved, remounted): its done images are done here too.
    moved = moved_roots(tables, mv.name, mv.version, result, as_table(entries), prefix, done_here.keys)
    if moved:
        done_here = tables.done_under(mv.name, mv.version, result, [prefix, *moved], options.retry_failed,
                                      clips.hash)
    done = pa.chunked_array([*done_here.keys.chunks,
                             relative_key(pa.array([k[0] for k in pending], pa.string()),
                                          pa.array([k[1] for k in pending], pa.string()))], pa.string())
    # What the keys leave to do but a done row of the same path and size may be (mtimes or ETags lost in a copy or
    # a move): read and confirmed by digest, never inferred twice.
    confirm, confirmation = confirmer(tables, mv.name, mv.version, result, options.retry_failed)
    window = Window(since=options.since, until=options.until, latest=options.latest_per_camera, limit=options.limit)
    selection = select(entries, done, window, redo=done_here.redo, confirm=confirm)
    return Plan(options, places, mv, filters, listing, selection, routes, result, clips, moved, target, confirmation,
                tiling)
