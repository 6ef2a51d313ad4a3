"""The season's signals over one set of tables, kept up to date by what each commit adds: never a full scan per look.

What an operator running trapline unattended for months watches (a Prometheus scrape, `trapline health`): per camera
the last capture and the images and failed images committed; the runs by status and when the last one failed; the
individuals and the share of sightings assigned to one; the occurrences awaiting review; the clock checks that fail;
the bytes each table holds per model version.

Parts are written whole and never changed (tables/writer.py), so a refresh lists the partitions (names and sizes:
one listing per partition) and reads only the parts it has not read yet, three columns of each. A part that went away
(a compaction or a purge replaced it) makes the next refresh start over from the parts there are then: a rare full
read, and the figures are the tables' as they are after it. The run manifests are re-read while they run; the
identify tables (one run at a time, tables/identities.py) when their newest run changes; the clock checks, which need
every time of a camera, at most every `clock_every_s` and only when images were added.

A tables directory that cannot be listed (unmounted, deleted) leaves the last figures standing and says so: `up` is
False and `error` says why, and nothing raises.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pyarrow.compute as pc
import pyarrow.parquet as pq

from ground.every import Every
from ground.storage import Storage
from model_store.tables.archive import open_location
from model_store.tables.clock_check import check_clock
from model_store.tables.identities import latest_run, read_result
from model_store.tables.manifest import RunManifest
from model_store.tables.reader import Tables
from model_store.tables.schema import (
    CLASSIFICATIONS,
    DETECTIONS,
    IMAGES,
    INDIVIDUALS,
    OCCURRENCES,
    RUNS_DIR,
    SIGHTINGS,
    SNIPS,
)

TABLES = (IMAGES, DETECTIONS, CLASSIFICATIONS, SNIPS, OCCURRENCES)
IMAGE_COLUMNS = ["camera_id", "capture_time", "status", "processed_at", "filters_hash"]
OCCURRENCE_COLUMNS = ["link_confidence", "determined_by", "frames"]
FINAL = ("succeeded", "failed", "interrupted", "abandoned")
EPOCH = dt.datetime(1970, 1, 1)


@dataclass
class Camera:
    """One camera's figures: its newest capture (camera clock, seconds since the epoch as if UTC) and newest commit,
    and the image rows committed, failed ones apart."""

    last_capture_s: float | None = None
    last_processed_s: float | None = None
    images: int = 0
    failed: int = 0


@dataclass
class Signals:
    """A consistent copy of the figures (what a scrape renders and `trapline health` judges)."""

    tables: str
    up: bool = False
    error: str | None = None
    refreshed_at_s: float | None = None
    refresh_s: float = 0.0  # how long the last refresh took
    cameras: dict[str, Camera] = field(default_factory=dict)
    runs: Counter = field(default_factory=Counter)  # (kind, status) -> runs
    last_run_s: dict[tuple[str, str], float] = field(default_factory=dict)  # (kind, status) -> newest end
    running: list[dict] = field(default_factory=list)  # runs going on: run_id, kind, processed, failed, images_per_s
    individuals: int = 0
    new_individuals_last_day: int = 0  # first seen on the newest day any individual was first seen (camera clock)
    sightings: int = 0
    sightings_assigned: int = 0
    occurrences_to_review: int = 0
    clock_problems: Counter = field(default_factory=Counter)  # kind -> findings (hints left out)
    # (table, model, version, result set) -> bytes; the set is its filters_hash ("mixed": a compacted part of several)
    table_bytes: dict[tuple[str, str, str, str], int] = field(default_factory=dict)

    @property
    def assignment_rate(self) -> float | None:
        return self.sightings_assigned / self.sightings if self.sightings else None


def _seconds(value) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return (value - EPOCH).total_seconds()


class Season:
    """The figures of one tables location, refreshed incrementally (`refresh`) and read as a copy (`signals`).

    Lifecycle: one per tables location per process, kept (the views keep one per source); `refresh` is safe to
    call from several threads (one refresh at a time; the others return at once with the figures as they are)."""

    def __init__(self, tables: str, review_below: float = 1.0, clock_every_s: float = 600.0) -> None:
        self.url = tables
        self.created = time.monotonic()
        self.review_below = review_below
        self.clock_every_s = clock_every_s
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._parts: dict[str, int] = {}  # image and occurrence parts read -> their size
        self._set_of: dict[str, str] = {}  # part name -> the result set of its rows (from its images file)
        self._manifests: dict[str, RunManifest] = {}  # runs not finished: read again at each refresh
        # a finished run's manifest no longer changes: only what the figures need of it is kept (kind, status, end),
        # so a season of runs costs the watcher a small tuple each, not each run's whole manifest
        self._finished: dict[str, tuple[str, str, float | None]] = {}
        self._identify_run: str | None = None
        self._clock_checks = Every(self.clock_every_s)
        self._images_changed = True
        self._state = Signals(self.url)

    @property
    def refreshing(self) -> bool:
        """Whether a refresh (or the clock checks after it) is going on now."""
        return self._refreshing.locked()

    def recheck_clock(self) -> None:
        """Run the clock checks at the next refresh, however recent the last (a correction was just recorded)."""
        self._images_changed = True
        self._clock_checks.reset()

    def signals(self) -> Signals:
        """A copy of the figures as of the last refresh."""
        with self._lock:
            s = self._state
            return Signals(**{**s.__dict__, "cameras": {k: Camera(**vars(v)) for k, v in s.cameras.items()},
                              "runs": Counter(s.runs), "last_run_s": dict(s.last_run_s), "running": list(s.running),
                              "clock_problems": Counter(s.clock_problems), "table_bytes": dict(s.table_bytes)})

    def refresh(self) -> Signals:
        """Read what was committed since the last refresh; the figures after it (or as they are, when another
        thread is refreshing)."""
        if not self._refreshing.acquire(blocking=False):
            return self.signals()
        t0 = time.perf_counter()
        try:
            self._refresh()
            with self._lock:
                self._state.up, self._state.error = True, None
                self._state.refreshed_at_s, self._state.refresh_s = time.time(), time.perf_counter() - t0
            # after the figures are out: a first refresh shows them without waiting for the clock checks
            if self._images_changed and self._clock_checks.due():
                self._check_clock()
        except Exception as exc:  # noqa: BLE001 - a tables location gone or unreadable is a figure, not a failure
            with self._lock:
                self._state.up, self._state.error = False, f"{type(exc).__name__}: {exc}"
                self._state.refreshed_at_s, self._state.refresh_s = time.time(), time.perf_counter() - t0
        finally:
            self._refreshing.release()
        return self.signals()

    def _refresh(self) -> None:
        storage = open_location(self.url)
        if not storage.fs.isdir(storage.path()):
            raise FileNotFoundError(f"no tables at {self.url}")
        listed = self._list(storage)
        state = self._state
        if any(path not in listed for path in self._parts):  # compacted or purged: start over from what is there,
            self._parts, self._set_of = {}, {}  # into new figures, shown whole when done: a scrape meanwhile
            # sees the old ones
            state = Signals(self.url, **{k: getattr(self._state, k) for k in (
                "up", "error", "runs", "last_run_s", "running", "individuals", "new_individuals_last_day", "sightings",
                "sightings_assigned", "clock_problems")})
            self._images_changed = True
        new = sorted(p for p in listed if p not in self._parts and (f"/{IMAGES}/" in p or f"/{OCCURRENCES}/" in p))
        for path in new:
            self._read_part(storage, path, state)
            self._parts[path] = listed[path]
        with self._lock:
            state.table_bytes = self._bytes(storage, listed)
            self._state = state
        self._images_changed |= any(f"/{IMAGES}/" in p for p in new)
        self._runs(storage)
        self._identify(storage)

    def _list(self, storage) -> dict[str, int]:
        """Every committed part of the partitioned tables: path -> size."""
        out = {}
        for table in TABLES:
            base = storage.path(table)
            if not storage.fs.isdir(base):
                continue
            for name_dir in storage.fs.ls(base, detail=False):
                for version_dir in storage.fs.ls(name_dir, detail=False):
                    for info in storage.fs.ls(version_dir, detail=True):
                        leaf = info["name"].rsplit("/", 1)[-1]
                        if leaf.endswith(".parquet") and not leaf.startswith((".", "_")):
                            out[info["name"]] = int(info.get("size") or 0)
        return out

    def _bytes(self, storage, listed: dict[str, int]) -> dict[tuple[str, str, str, str], int]:
        """Bytes per table, model version and result set: a part's set is its images file's (the part's other
        files share its name)."""
        out: Counter = Counter()
        root = storage.path().rstrip("/") + "/"
        for path, size in listed.items():
            table, name_dir, version_dir, leaf = path[len(root):].split("/")[:4]
            out[(table, name_dir.split("=", 1)[-1], version_dir.split("=", 1)[-1],
                 self._set_of.get(f"{name_dir}/{version_dir}/{leaf}", "unknown"))] += size
        return dict(out)

    def _read_part(self, storage, path: str, state: Signals) -> None:
        with storage.fs.open(path, "rb") as f:
            if f"/{IMAGES}/" in path:
                t = pq.read_table(f, columns=IMAGE_COLUMNS)
                sets = pc.unique(t["filters_hash"]).to_pylist()
                self._set_of["/".join(path.rsplit("/", 3)[1:])] = sets[0] if len(sets) == 1 else "mixed"
            else:
                t = pq.read_table(f, columns=[c for c in OCCURRENCE_COLUMNS if c in pq.read_schema(f).names])
        if f"/{OCCURRENCES}/" in path:
            if "link_confidence" in t.column_names:
                unsure = pc.fill_null(pc.less(t["link_confidence"], self.review_below), False)
                if "determined_by" in t.column_names:
                    unsure = pc.and_(unsure, pc.invert(pc.fill_null(pc.equal(t["determined_by"], "human"), False)))
                if "frames" in t.column_names:
                    unsure = pc.and_(unsure, pc.fill_null(pc.greater(t["frames"], 1), False))
                with self._lock:
                    state.occurrences_to_review += pc.sum(unsure).as_py() or 0
            return
        cameras = pc.fill_null(t["camera_id"], "unknown")
        grouped = t.set_column(0, "camera_id", cameras).append_column(
            "failed", pc.cast(pc.fill_null(pc.equal(t["status"], "failed"), False), "int64")).group_by(
            "camera_id").aggregate([("failed", "count"), ("failed", "sum"), ("capture_time", "max"),
                                    ("processed_at", "max")])
        with self._lock:
            for row in grouped.to_pylist():
                cam = state.cameras.setdefault(row["camera_id"], Camera())
                cam.images += row["failed_count"]
                cam.failed += row["failed_sum"]
                for attr, key in (("last_capture_s", "capture_time_max"), ("last_processed_s", "processed_at_max")):
                    value = _seconds(row[key])
                    if value is not None and (getattr(cam, attr) is None or value > getattr(cam, attr)):
                        setattr(cam, attr, value)

    def _runs(self, storage) -> None:
        names = [n for n in storage.listdir(RUNS_DIR) if n.endswith(".json")]
        for name in names:
            if name in self._finished:
                continue
            try:
                m = RunManifest.model_validate_json(storage.read_bytes(RUNS_DIR, name))
            except (OSError, ValueError):
                continue
            if m.status in FINAL:
                self._manifests.pop(name, None)
                self._finished[name] = (m.kind, m.status, _seconds(m.ended_at or m.updated_at))
            else:
                self._manifests[name] = m
        running = []
        for m in self._manifests.values():
            if m.status == "running":
                c = m.counts
                elapsed = (_seconds(m.updated_at) or 0.0) - (_seconds(m.started_at) or 0.0)
                done = int(c.get("processed", 0))
                running.append({"run_id": m.run_id, "kind": m.kind, "processed": done,
                                "failed": int(c.get("failed", 0)), "to_process": int(c.get("to_process", 0)),
                                "images_per_s": done / elapsed if elapsed > 0 else 0.0})
        runs: Counter = Counter()
        last: dict[tuple[str, str], float] = {}
        for kind, status, when in [*self._finished.values(),
                                   *((m.kind, m.status, _seconds(m.ended_at or m.updated_at))
                                     for m in self._manifests.values())]:
            runs[(kind, status)] += 1
            if when is not None and when > last.get((kind, status), 0.0):
                last[(kind, status)] = when
        with self._lock:
            self._state.runs, self._state.last_run_s, self._state.running = runs, last, running

    def _identify(self, storage: Storage) -> None:
        run = latest_run(storage)
        if run is None or run == self._identify_run:
            return
        individuals = read_result(storage, INDIVIDUALS, run)
        sightings = read_result(storage, SIGHTINGS, run)
        assigned = int(sightings["individual_id"].notna().sum()) if "individual_id" in sightings else 0
        days = individuals["first_seen"].dropna().dt.date if len(individuals) else None
        newest = int((days == days.max()).sum()) if days is not None and len(days) else 0
        with self._lock:
            self._state.individuals, self._state.sightings = len(individuals), len(sightings)
            self._state.new_individuals_last_day = newest
            self._state.sightings_assigned = assigned
        self._identify_run = run

    def _check_clock(self) -> None:
        found = Counter(f.kind for f in check_clock(Tables(open_location(self.url))) if not f.hint)
        with self._lock:
            self._state.clock_problems = found
        self._clock_checks.done()  # after the checks: one that raised is tried again at the next refresh
        self._images_changed = False
