"""Time you can trust: each picture's deployment, its corrected time in UTC and in the deployment's local zone.

The images table keeps what the camera said (`capture_time`, naive, and where it came from); nothing here rewrites
it. On every read the deployments table (model_store/tables/deployments.py) and the clock decisions of the
decisions log (`correct_clock`, `timestamp_issues`, `revoke`) are applied, whole columns at once:

1. a camera-clock time (path, EXIF without an offset, an upload's captured_at) covered by a clock correction of its
   camera loses the correction's offset (the latest correction covering it wins);
2. the picture's deployment is the one of its camera whose period holds the time: for a camera-clock time the period
   in the deployment's local time, for a UTC time (EXIF with OffsetTimeOriginal, mtime, receipt) in UTC. No
   deployment, or two, is reported in `deployment_problem` ("none", "overlap"), never guessed;
3. the local time is read in the correction's zone, else the deployment's (daylight saving by the zone database, an
   hour that happens twice read as its first pass), and turned to UTC; the local time shown is the deployment's.

A picture in none of its camera's deployments is read in their zone when they share one; a camera without any keeps
its camera-clock time, read as UTC as before deployments existed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from ground.storage import Storage
from model_store.tables.decisions import DECISIONS_DIR, CorrectClock, DecisionsLog, MarkTimestampIssues
from model_store.tables.deployments import DEPLOYMENTS_DIR, DeploymentRecord, DeploymentsTable
from model_store.tables.locations import opened
from model_store.tables.schema import UTC_TIME_SOURCES

NAT = np.iinfo(np.int64).min  # numpy's NaT as int64
NO_DEPLOYMENT, OVERLAP = "none", "overlap"
MAX_CACHED = 16  # tables locations whose book is kept
_books: dict[str, tuple[tuple, TimeBook]] = {}  # tables url -> (the names of the files read, the book they made)
_lock = threading.Lock()


@dataclass
class TimeBook:
    """What a reader needs to place pictures in time: the deployments and the clock decisions in force."""

    deployments: list[DeploymentRecord] = field(default_factory=list)
    corrections: list[CorrectClock] = field(default_factory=list)
    issues: dict[str, bool] = field(default_factory=dict)  # deployment id -> marked with timestampIssues

    @classmethod
    def load(cls, storage: Storage) -> TimeBook:
        """The deployments and clock decisions beside the tables at `storage`. Their files are created once and never
        rewritten, so the same names mean the same book: it is read again only when a file came or went (every
        read of the tables calls this; an export calls it per slice)."""
        opened(storage, "TimeBook.load")
        names = tuple(tuple(sorted(storage.listdir(d))) if storage.exists(d) else () for d in (DEPLOYMENTS_DIR,
                                                                                             DECISIONS_DIR))
        key = storage.url()
        with _lock:
            cached = _books.get(key)
        if cached is not None and cached[0] == names:
            return cached[1]
        book = cls._read(storage)
        with _lock:
            if len(_books) >= MAX_CACHED and key not in _books:
                _books.pop(next(iter(_books)))
            _books[key] = (names, book)
        return book

    @classmethod
    def _read(cls, storage: Storage) -> TimeBook:
        book = cls(DeploymentsTable(storage).records())
        for d in DecisionsLog(storage).time_decisions():
            if isinstance(d, CorrectClock):
                book.corrections.append(d)
            elif isinstance(d, MarkTimestampIssues):
                book.issues[d.deployment_id] = d.issues
        return book

    @property
    def empty(self) -> bool:
        return not (self.deployments or self.corrections)

    def cameras(self) -> set[str]:
        return {d.camera_id for d in self.deployments} | {c.camera_id for c in self.corrections}


@dataclass
class Resolved:
    """Per picture: UTC and local time (int64 microseconds, NAT unknown), and as integer codes (-1: none) its
    deployment (into the book's deployments), the zone shown (into `zones`; -1 UTC), the correction applied (into the
    book's corrections) and the problem (into PROBLEMS)."""

    utc_us: np.ndarray
    local_us: np.ndarray
    dep_index: np.ndarray
    zone_index: np.ndarray
    corr_index: np.ndarray
    problem_index: np.ndarray
    zones: list[str]

    def categorical(self, codes: np.ndarray, categories: list[str]) -> pd.Categorical:
        """A column from codes at no cost per row (strings would be built and checked one by one)."""
        return pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object))


PROBLEMS = [NO_DEPLOYMENT, OVERLAP]


def _codes(values) -> tuple[np.ndarray, list]:
    """Integer codes and the distinct values (None among them when present) of a string column, through Arrow."""
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):  # a pandas column backed by Arrow comes as one
        arr = arr.combine_chunks()
    if pa.types.is_null(arr.type):
        arr = arr.cast(pa.string())
    enc = arr.dictionary_encode()
    uniques = enc.dictionary.to_pylist()
    codes = np.asarray(enc.indices.fill_null(len(uniques)), dtype=np.int64)
    return codes, [*uniques, None]


def _us(when) -> int:
    return int(pd.Timestamp(when).value) // 1000  # .value is nanoseconds since the epoch (UTC when aware)


def resolve(book: TimeBook, camera: np.ndarray, recorded_us: np.ndarray, source: np.ndarray) -> Resolved:
    """Place each picture (its camera id, recorded time as int64 us with NAT unknown, time source) in time."""
    n = len(recorded_us)
    recorded_us = np.asarray(recorded_us, np.int64)
    known = recorded_us != NAT
    src_codes, src_values = _codes(source)
    is_utc = np.isin(src_codes, [i for i, s in enumerate(src_values) if s in UTC_TIME_SOURCES])
    local = np.where(is_utc, NAT, recorded_us)  # camera-clock rows: corrected below
    utc = np.where(is_utc, recorded_us, NAT)
    dep_index = np.full(n, -1, np.int64)
    problem = np.full(n, -1, np.int8)
    corr_index = np.full(n, -1, np.int64)
    zone_of_row = np.full(n, -1, np.int64)  # index into zones; -1: the deployment's
    zones: list[str] = list(dict.fromkeys(d.zone for d in book.deployments))
    fallback = np.full(n, -1, np.int64)  # a row in none of its camera's deployments: their zone, if they share one
    cam_codes, cam_values = _codes(camera)
    # a stable sort of small integers: numpy's radix sort, linear, where the int64 one is a merge sort
    order = np.argsort(cam_codes.astype(np.int16) if len(cam_values) < 2 ** 15 else cam_codes, kind="stable")
    bounds = np.searchsorted(cam_codes[order], np.arange(len(cam_values) + 1))
    by_camera_deps: dict[str, list[int]] = {}
    for k, d in enumerate(book.deployments):
        by_camera_deps.setdefault(d.camera_id, []).append(k)
    by_camera_corr: dict[str, list[int]] = {}
    for k, c in enumerate(book.corrections):
        by_camera_corr.setdefault(c.camera_id, []).append(k)
    offsets = np.array([round(c.offset_s * 1_000_000) for c in book.corrections] or [0], np.int64)
    for code, cam in enumerate(cam_values):
        idx = order[bounds[code]:bounds[code + 1]]
        t, u, ok = recorded_us[idx], is_utc[idx], known[idx]
        for k in by_camera_corr.get(cam, ()):  # oldest first: a later correction covering a row wins
            c = book.corrections[k]
            m = ok & ~u & (t >= _us(c.recorded_from)) & (t <= _us(c.recorded_until))
            corr_index[idx[m]] = k
            if c.zone is not None and c.zone not in zones:
                zones.append(c.zone)
            zone_of_row[idx[m]] = -1 if c.zone is None else zones.index(c.zone)
        ci = corr_index[idx]
        lt = np.where(ok & ~u, t - np.where(ci >= 0, offsets[np.maximum(ci, 0)], 0), local[idx])
        local[idx] = lt
        hits = np.zeros(len(idx), np.int64)
        for k in by_camera_deps.get(cam, ()):
            d = book.deployments[k]
            lo, hi = _us(d.local(d.start_utc)), _us(d.local(d.end_utc))
            m = ok & np.where(u, (t >= _us(d.start_utc)) & (t <= _us(d.end_utc)), (lt >= lo) & (lt <= hi))
            hits += m
            dep_index[idx[m]] = k
        cam_zones = {book.deployments[k].zone for k in by_camera_deps.get(cam, ())}
        if len(cam_zones) == 1:
            fallback[idx[hits == 0]] = zones.index(cam_zones.pop())
        p = np.full(len(idx), -1, np.int8)
        p[ok & (hits == 0)] = PROBLEMS.index(NO_DEPLOYMENT)
        p[hits > 1] = PROBLEMS.index(OVERLAP)
        problem[idx] = p
        dep_index[idx[hits > 1]] = -1
    # the zone a row's local time is read in (the correction's, else the deployment's, else UTC) and the zone it is
    # shown in (the deployment's, else the one it was read in)
    dep_zone_idx = np.array([zones.index(d.zone) for d in book.deployments] or [0], np.int64)
    shown_idx = np.where(dep_index >= 0, dep_zone_idx[np.maximum(dep_index, 0)], fallback)
    read_idx = np.where(zone_of_row >= 0, zone_of_row, shown_idx)
    clock_rows = ~is_utc & known
    for zi in np.unique(read_idx[clock_rows]):
        rows = np.flatnonzero(clock_rows & (read_idx == zi))
        if zi >= 0 and zones[zi] != "UTC":
            naive = pd.DatetimeIndex(local[rows].astype("datetime64[us]"))
            aware = naive.tz_localize(zones[zi], ambiguous=np.ones(len(naive), bool), nonexistent="shift_forward")
            utc[rows] = aware.tz_convert("UTC").tz_localize(None).as_unit("us").asi8
        else:
            utc[rows] = local[rows]
    relocal = known & (is_utc | (read_idx != shown_idx))  # local times not read in the zone they are shown in
    for zi in np.unique(shown_idx[relocal]):
        rows = np.flatnonzero(relocal & (shown_idx == zi))
        if zi >= 0 and zones[zi] != "UTC":
            back = pd.DatetimeIndex(utc[rows].astype("datetime64[us]")).tz_localize("UTC").tz_convert(zones[zi])
            local[rows] = back.tz_localize(None).as_unit("us").asi8
        else:
            local[rows] = utc[rows]
    zone_idx = shown_idx
    return Resolved(utc, local, dep_index, zone_idx, corr_index, problem, zones)


def apply_clock(images: pd.DataFrame, book: TimeBook) -> pd.DataFrame:
    """Image rows (with camera_id, capture_time, capture_time_source) with their times placed: `capture_time`
    becomes the corrected UTC time (naive), beside `capture_time_local`, `capture_time_recorded` (what the camera
    said), `time_zone`, `deployment_id`, `clock_correction`, `deployment_problem` and `timestamp_issues`.
    As is when there are no deployments and no corrections."""
    if book.empty or images.empty:
        return images
    recorded = pd.to_datetime(images["capture_time"]).astype("datetime64[us]").to_numpy().view(np.int64)
    sources = images["capture_time_source"] if "capture_time_source" in images else pa.nulls(len(images), pa.string())
    r = resolve(book, images["camera_id"], recorded, sources)
    utc_zone = [*r.zones, "UTC"] if "UTC" not in r.zones else r.zones
    out = images.assign(
        capture_time_recorded=images["capture_time"],
        capture_time=r.utc_us.view("datetime64[us]"),
        capture_time_local=r.local_us.view("datetime64[us]"),
        time_zone=r.categorical(np.where(r.zone_index >= 0, r.zone_index, utc_zone.index("UTC")), utc_zone),
        deployment_id=r.categorical(r.dep_index, [d.deployment_id for d in book.deployments]),
        clock_correction=r.categorical(r.corr_index, [c.decision_id for c in book.corrections]),
        deployment_problem=r.categorical(r.problem_index, PROBLEMS),
        timestamp_issues=np.array([book.issues.get(d.deployment_id, False) for d in book.deployments] + [False],
                                  bool)[r.dep_index])
    return out


def utc_offset_text(local: pd.Series, utc: pd.Series) -> list[str]:
    """Per row the offset of local from UTC as Camtrap DP writes it (`Z`, `+02:00`); a few distinct offsets, each
    formatted once."""
    minutes = ((pd.to_datetime(local) - pd.to_datetime(utc)).dt.total_seconds() // 60).fillna(0).astype(int)
    distinct, which = np.unique(minutes.to_numpy(), return_inverse=True)
    texts = np.array(["Z" if m == 0 else f"{'+' if m > 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
                      for m in distinct.tolist()] or ["Z"], object)
    return texts[which].tolist()
