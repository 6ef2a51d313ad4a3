"""Finding clock problems: what `trapline tables check` says about the pictures' times, after every correction.

Per camera, in the order its files were written (the file counter in the name: `rel_path`), with the times placed
by model_store/tables/clock.py:

- outside: pictures outside every deployment of their camera (or between two that overlap);
- impossible: a time more than 30 days before the camera's first deployment (without deployments: before 2000), or
  more than a day in the future (a reset clock, a wrong year);
- jump: the time going back by more than an hour, or forward by more than `jump_days`, from one file to the next
  (a reset, a battery swap, a clock set by hand), among the camera's own files (times from the path or EXIF) and
  only where the file name is the camera's counter: an upload's name, an mtime, and a name the camera made from its
  own clock (`IMG_20240602_213010.jpg`: sorted, it is the clock's order, not the shutter's) do not give the order
  the camera took them in. A jump names its suspect side: the file whose time lies farther from the camera's other
  times (a reset's default date is the odd one out, not the good picture beside it);
- repeat: one capture time on more than `repeat_frames` files (a clock that stopped: bursts stamp a few);
- setup/pickup (hints, not problems): the first or last picture of a deployment 5 to 90 minutes from its start or
  end: where people take a picture when they set the camera up and pick it up, that says by how much the clock is
  off; where they do not, it is only when the first animal came.

Each finding names the camera (and deployment), how many pictures, and the first of them, so a person can write
the correction (`trapline deployments correct-clock`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from model_store.tables.cameras import fill_camera_ids
from model_store.tables.clock import NO_DEPLOYMENT, OVERLAP, TimeBook, apply_clock
from model_store.tables.reader import Tables
from model_store.tables.schema import IMAGES

# Without deployments, a time before this cannot be a picture: 2000-01-01 is the default many cameras restart at after
# a reset (some at 00:00, some run on from there), so that day is the reset's, not a picture's.
EARLIEST = pd.Timestamp("2000-01-02")
JUMP_BACK_S = 3600  # a clock set back by minutes (a hand correction, an upload order) is no reset
FILE_SOURCES = ("path", "exif", "exif_utc")  # times of camera files, named by the camera's counter
SLACK = pd.Timedelta(days=30)  # a time this long before the camera's first deployment cannot be of it
JUMP_DAYS = 60.0  # a quiet spell of weeks is common; two months without a picture is a clock set wrong
REPEAT_FRAMES = 10
RESET_WINDOW = pd.Timedelta(days=2)  # a reset camera counts from its default date's midnight
# A recorded upload is named by its content (serve/recording/uploads.py `archive_path`: the sha256's first 24 hex
# digits), not by the camera's counter: its place in file order says nothing of when it was taken.
CONTENT_NAMED = r"(?:^|/)[0-9a-f]{24}\.[A-Za-z0-9]+$"
EDGE_MIN_S, EDGE_MAX_S = 5 * 60, 90 * 60  # an hour or so: a clock error's size, not a quiet start
# A file name the camera made from its own clock: YYYYMMDD and HHMMSS, with or without a separator between the parts
# (`IMG_20240602_213010.jpg`, `2024-06-02 21-30-10.JPG`, `PICT20240602T213010.jpg`).
TIME_NAMED = re.compile(r"(?<!\d)(19[7-9]\d|20\d\d)[-_.]?(0[1-9]|1[0-2])[-_.]?(0[1-9]|[12]\d|3[01])[-_. T]?"
                        r"([01]\d|2[0-3])[-_.:]?([0-5]\d)[-_.:]?([0-5]\d)(?!\d)")


@dataclass(frozen=True)
class ClockFinding:
    """One clock problem of one camera (or deployment)."""

    kind: str  # outside | overlap | impossible | jump | repeat | setup | pickup
    camera_id: str
    deployment_id: str | None
    pictures: int
    first_uri: str
    detail: str

    @property
    def hint(self) -> bool:
        """Setup and pickup findings are hints: they assume a picture at the start and end, which not every
        project takes; they are listed, but do not make `trapline tables check` fail."""
        return self.kind in ("setup", "pickup")

    def line(self) -> str:
        where = f"{self.camera_id}" + (f" ({self.deployment_id})" if self.deployment_id else "")
        return f"{self.kind:<10} {where}: {self.detail} [{self.pictures} picture(s), first {self.first_uri}]"

    def as_dict(self) -> dict:
        return asdict(self)


def find_clock_problems(images: pd.DataFrame, book: TimeBook, now: dt.datetime | None = None,
                        jump_days: float = JUMP_DAYS, repeat_frames: int = REPEAT_FRAMES) -> list[ClockFinding]:
    """The clock problems of image rows (uri, rel_path, camera_id, capture_time, capture_time_source), one row per
    file, after the book's deployments and corrections."""
    if images.empty:
        return []
    placed = apply_clock(images, book)
    if "deployment_id" not in placed:
        placed = placed.assign(deployment_id=None, deployment_problem=None)
    placed = placed[placed["capture_time"].notna()]
    horizon = pd.Timestamp(now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)) + pd.Timedelta(days=1)
    order = "rel_path" if "rel_path" in placed else "uri"
    out: list[ClockFinding] = []
    first_start: dict[str, pd.Timestamp] = {}
    for d in book.deployments:
        start = pd.Timestamp(d.start_utc.replace(tzinfo=None)) - SLACK
        first_start[d.camera_id] = min(first_start.get(d.camera_id, start), start)
    with_deployments = set(first_start)
    for camera, g in placed.sort_values(["camera_id", order], kind="stable").groupby("camera_id", sort=True):
        t = pd.to_datetime(g["capture_time"])
        uris = g["uri"].to_numpy(object)

        def add(kind: str, mask: np.ndarray, detail: str, deployment: str | None = None) -> None:
            if mask.any():
                out.append(ClockFinding(kind, camera, deployment, int(mask.sum()), uris[np.argmax(mask)], detail))

        if camera in with_deployments:
            prob = g["deployment_problem"].to_numpy(object)
            add("outside", prob == NO_DEPLOYMENT, "pictures outside every deployment of the camera")
            add("overlap", prob == OVERLAP, "pictures in two deployments at once")
        earliest = first_start.get(camera, EARLIEST)
        add("impossible", ((t < earliest) | (t > horizon) | _reset_default(t)).to_numpy(),
            f"times before {earliest.date()}, a camera's default date after a reset, or in the future")
        # in file order only where the name is the camera's counter: an upload's name and a time from an mtime or
        # the time of receipt say nothing of the order the camera took them in
        counted = g["capture_time_source"].isin(FILE_SOURCES).to_numpy() if "capture_time_source" in g else \
            np.ones(len(g), bool)
        names = g[order].astype(str)
        counted = counted & ~names.str.contains(CONTENT_NAMED, regex=True).to_numpy(bool)
        counted = counted & ~names.map(lambda n: TIME_NAMED.search(n.rsplit("/", 1)[-1]) is not None).to_numpy(bool)
        step = np.full(len(g), np.nan)
        if counted.any():
            step[counted] = t[counted].diff().dt.total_seconds().to_numpy()
        ns = t.to_numpy("datetime64[ns]")
        back = np.nan_to_num(step, nan=0.0) < -JUMP_BACK_S
        ahead = np.nan_to_num(step, nan=0.0) > jump_days * 86400
        for marked, what, sign in ((back, "the time goes back from one file to the next (a reset or a clock set by "
                                          "hand)", -1),
                                   (ahead, f"the time leaps ahead by more than {jump_days:g} days between two files",
                                    1)):
            if not marked.any():
                continue
            named = _suspects(ns, marked, counted)
            detail = f"{what}: first by {_span(sign * step[np.argmax(marked)])}"
            first = int(np.argmax(named))
            if not marked[first]:  # the file before the jump is the odd one out (a reset's default date)
                detail += f"; the earlier side's time ({t.iloc[first]}) lies apart from the camera's other pictures"
            add("jump", named, detail)
        counts = t.map(t.value_counts())
        add("repeat", (counts > repeat_frames).to_numpy(),
            f"one capture time on more than {repeat_frames} files (a stopped clock?)")
    out += _edges(placed, book)
    return out


def _reset_default(t: pd.Series) -> pd.Series:
    """Times in the first two days of a year (a camera's default date after a reset: 2000-01-01 00:00 and its kin)
    cut off from the camera's other pictures: none in the month after those two days, and the camera's median a
    year or more later. A deployment that starts on New Year's Day goes on taking pictures; a reset clock's
    pictures sit alone."""
    new_year = t.dt.normalize() - pd.to_timedelta(t.dt.dayofyear - 1, unit="D")
    candidate = ((t - new_year) < RESET_WINDOW) & ((t.median() - t) > pd.Timedelta(days=365))
    if not candidate.any():
        return candidate
    ordered = np.sort(t.dropna().to_numpy("datetime64[ns]"))
    after = (new_year + RESET_WINDOW).to_numpy("datetime64[ns]")
    nxt = np.searchsorted(ordered, after, side="left")
    following = np.where(nxt < len(ordered), ordered[np.minimum(nxt, len(ordered) - 1)], np.datetime64("NaT"))
    alone = pd.Series(following, index=t.index) - (new_year + RESET_WINDOW) > pd.Timedelta(days=30)
    return candidate & alone


def _suspects(t: np.ndarray, marked: np.ndarray, counted: np.ndarray) -> np.ndarray:
    """Of the two files of each marked step (marked on its later file; the earlier is the previous counted file), the
    one whose time lies farther from the camera's median time: a reset's default date (2000-01-01) or a wrong year
    sits apart from the camera's other pictures, and the picture beside it is the good one."""
    out = np.zeros(len(t), bool)
    order = np.flatnonzero(counted)
    if not marked.any() or order.size == 0:
        return out
    ns = t.astype("int64")
    median = np.median(ns[counted])
    for i in np.flatnonzero(marked):
        j = order[np.searchsorted(order, i) - 1]
        out[j if abs(ns[j] - median) > abs(ns[i] - median) else i] = True
    return out


def _edges(placed: pd.DataFrame, book: TimeBook) -> list[ClockFinding]:
    """Setup/pickup: a deployment's first (last) picture minutes to hours after its start (before its end)."""
    out = []
    if "deployment_id" not in placed or placed["deployment_id"].isna().all():
        return out
    starts = {d.deployment_id: (d, pd.Timestamp(d.start_utc.replace(tzinfo=None)),
                                pd.Timestamp(d.end_utc.replace(tzinfo=None))) for d in book.deployments}
    for dep, g in placed[placed["deployment_id"].notna()].groupby("deployment_id", sort=True):
        d, start, end = starts[dep]
        t = pd.to_datetime(g["capture_time"])
        first, last = t.min(), t.max()
        if EDGE_MIN_S <= (first - start).total_seconds() <= EDGE_MAX_S:
            out.append(ClockFinding("setup", d.camera_id, dep, 1, g["uri"].iloc[int(np.argmin(t.to_numpy()))],
                                    f"first picture {_span((first - start).total_seconds())} after the start"))
        if EDGE_MIN_S <= (end - last).total_seconds() <= EDGE_MAX_S:
            out.append(ClockFinding("pickup", d.camera_id, dep, 1, g["uri"].iloc[int(np.argmax(t.to_numpy()))],
                                    f"last picture {_span((end - last).total_seconds())} before the end"))
    return out


def _span(seconds: float) -> str:
    seconds = abs(float(seconds))
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    h, rest = divmod(int(round(seconds)), 3600)
    return f"{h} h {rest // 60:02d} min" if h else f"{rest // 60} min {rest % 60:02d} s"


def check_clock(tables: Tables) -> list[ClockFinding]:
    """The clock problems of every file in the tables (all model versions: one row per uri, the newest)."""
    dataset = tables.dataset(IMAGES)
    if dataset is None:
        return []
    rows = dataset.to_table(columns=["uri", "rel_path", "camera_id", "capture_time", "capture_time_source",
                                     "processed_at"]).to_pandas()
    if rows.empty:
        return []
    rows = rows.sort_values("processed_at", ascending=False, kind="stable").drop_duplicates("uri")
    return find_clock_problems(fill_camera_ids(rows), TimeBook.load(tables.storage))
