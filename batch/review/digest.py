"""What the report keeps of a table set it reads a slice of whole cameras at a time: counts that add up across
slices, per-camera rows (whole in a slice), and for each gallery cell its total and a sample that stays the one the
whole set would give, with what the sampled images' cards need. Bounded by the cameras, days, labels and cells,
not by the images (the threshold slider's scores are counted per distinct rounded score)."""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from batch.review import plots
from batch.review.animals import Animals, Individuals
from batch.review.compare import Comparison
from batch.review.species import SpeciesCounts, species_frame
from model_store.tables.cameras import DEFAULT_CAMERA_ID

BOX_COLUMNS = ["bbox_x", "bbox_y", "bbox_w", "bbox_h", "label", "score"]


def uri_key(uri: str) -> str:
    """The order a sample takes images in: a hash of the uri (the same tables give the same report)."""
    return hashlib.sha1(uri.encode()).hexdigest()


def sample(uris: Sequence[str], n: int) -> list[str]:
    """A stable sample: the `n` uris first by `uri_key`."""
    return sorted(uris, key=uri_key)[:n]


def band_of(score: float, all_bands: Sequence[tuple[float, float]]) -> int:
    for i, (lo, hi) in enumerate(all_bands):
        if lo <= score < hi or (hi == 1.0 and score >= 1.0):
            return i
    return 0


@dataclass
class Cell:
    """How many images a gallery cell holds and the `n` of them first by `uri_key`: the sample of two cells' images
    is the sample of their two samples."""

    n: int
    total: int = 0
    keys: list[tuple[str, str]] = field(default_factory=list)  # (uri_key, uri), in sample order

    def add(self, uris: Iterable[str]) -> None:
        fresh = [(uri_key(u), u) for u in uris]
        self.total += len(fresh)
        self.keys = heapq.nsmallest(self.n, self.keys + fresh)

    @property
    def uris(self) -> list[str]:
        return [u for _, u in self.keys]


@dataclass
class Flagged:
    """The boxes one filter dropped: how many, in how many images, and the sampled images' dropped boxes."""

    cell: Cell
    boxes: int = 0
    dropped: dict[str, list[Any]] = field(default_factory=dict)  # uri -> its boxes the filter dropped (sampled)


class Digest:
    """The report's figures over the slices added (`add`), each a slice of whole cameras (uris never repeat)."""

    def __init__(self, all_bands: Sequence[tuple[float, float]], per_band: int, max_failed: int,
                 animals: Animals | None = None, individuals: Individuals | None = None) -> None:
        self.bands, self.per_band, self.max_failed = list(all_bands), per_band, max_failed
        self.animals, self.individuals = animals, individuals  # a tracked set's, a set identify ran on
        self.images = self.kept = self.dropped = self.failed_total = 0
        self.status: Counter[str] = Counter()
        self.cameras: set[Any] = set()
        self.camera_status: list[pd.DataFrame] = []  # per slice: camera x status
        self.camera_labels: list[pd.DataFrame] = []  # per slice: camera x label (kept boxes)
        self.per_day: Counter[tuple[Any, str]] = Counter()  # (capture date, status) -> images
        self.label_boxes: Counter[str] = Counter()
        self.label_images: Counter[str] = Counter()
        self.scores: dict[str, np.ndarray] = {}  # label -> kept boxes per histogram bin
        self.best: dict[str, Counter[float]] = {}  # label -> each image's best score (rounded) -> images
        self.kept_labels: set[str] = set()
        self.det_labels: set[str] = set()
        self.gallery: dict[tuple[str, int], Cell] = {}  # (label, band) -> its images
        self.species_gallery: dict[tuple[str, int], Cell] = {}
        self.species = SpeciesCounts()
        self.blanks = Cell(per_band)
        self.flagged: dict[str, Flagged] = {}
        self.failed: list[dict] = []  # the first `max_failed` failed image rows by uri
        self.comparison: Comparison | None = None
        self.shown: dict[str, dict] = {}  # sampled uri -> its card's name, camera and time
        self.boxes: dict[str, list[Any]] = {}  # sampled uri -> its kept boxes

    def add(self, images: pd.DataFrame, kept: pd.DataFrame, dropped: pd.DataFrame,
            comparison: Comparison | None = None) -> None:
        """One slice: its current image rows, their kept boxes (with the species columns) and dropped boxes, and
        the comparison of its images with another version's."""
        self.images += len(images)
        self.kept += len(kept)
        self.dropped += len(dropped)
        statuses = images["status"].value_counts()
        self.status.update({str(k): int(v) for k, v in statuses.items() if v})
        self.cameras |= {None if pd.isna(c) else c for c in images["camera_id"]}
        cameras = images["camera_id"].fillna(DEFAULT_CAMERA_ID)
        self.camera_status.append(pd.crosstab(cameras, images["status"]))
        timed = images[images["capture_time"].notna()]
        if not timed.empty:
            local = "capture_time_local" if "capture_time_local" in timed else "capture_time"  # placed: the local day
            days = pd.crosstab(pd.to_datetime(timed[local]).dt.date, timed["status"])
            self.per_day.update({(d, s): int(v) for d, row in days.iterrows() for s, v in row.items() if v})
        self.det_labels |= set(kept.get("label", [])) | set(dropped.get("label", []))
        if not kept.empty:
            self._kept(images, kept)
        self.blanks.add(images.loc[images["status"] == "empty", "uri"])
        if not dropped.empty:
            self._dropped(dropped)
        failed = images[images["status"] == "failed"]
        self.failed_total += len(failed)
        self.failed = sorted(self.failed + failed.head(self.max_failed).to_dict("records"),
                             key=lambda r: r["uri"])[: self.max_failed]
        if self.animals is not None:
            self.animals.add(images, kept)
        if self.individuals is not None:
            self.individuals.add(images)
        if comparison is not None:
            self.compared(comparison)
        self._keep_shown(images, kept)

    def compared(self, comparison: Comparison) -> None:
        """A slice's comparison with the other version: the figures added, the first diffs kept (their cards)."""
        self.comparison = comparison if self.comparison is None else self.comparison.merge(
            comparison, keep=self.per_band * 2)

    def _kept(self, images: pd.DataFrame, kept: pd.DataFrame) -> None:
        self.kept_labels |= set(kept["label"])
        cams = kept.merge(images[["uri", "camera_id"]], on="uri")
        self.camera_labels.append(pd.crosstab(cams["camera_id"].fillna(DEFAULT_CAMERA_ID), cams["label"]))
        for label, g in kept.groupby("label"):
            self.label_boxes[label] += len(g)
            self.label_images[label] += g["uri"].nunique()
            self.scores[label] = self.scores.get(label, 0) + plots.score_counts(g["score"])
            self.best.setdefault(label, Counter()).update(g.groupby("uri")["score"].max().round(4).tolist())
        self._cells(self.gallery, kept)
        self.species.add(kept)
        self._cells(self.species_gallery, species_frame(kept))

    def _cells(self, cells: dict[tuple[str, int], Cell], boxes: pd.DataFrame) -> None:
        """Each image under each label it has a box of, in the band of that label's best score."""
        if boxes.empty:
            return
        top = boxes.groupby(["label", "uri"], as_index=False)["score"].max()
        which: dict[tuple[str, int], list[str]] = {}
        for label, uri, score in zip(top["label"], top["uri"], top["score"], strict=True):
            which.setdefault((label, band_of(score, self.bands)), []).append(uri)
        for key, uris in which.items():
            cells.setdefault(key, Cell(self.per_band)).add(uris)

    def _dropped(self, dropped: pd.DataFrame) -> None:
        exploded = dropped.explode("flags").dropna(subset=["flags"])
        for name, g in exploded.groupby("flags"):
            f = self.flagged.setdefault(name, Flagged(Cell(self.per_band)))
            f.boxes += len(g)
            by_uri = {u: d for u, d in g.groupby("uri")}
            f.cell.add(by_uri)
            for uri in set(f.cell.uris) & set(by_uri):
                f.dropped[uri] = list(by_uri[uri][BOX_COLUMNS].itertuples(index=False))
            f.dropped = {u: f.dropped[u] for u in f.cell.uris}

    def sampled(self) -> set[str]:
        """Every uri a card shows."""
        cells = [*self.gallery.values(), *self.species_gallery.values(), self.blanks,
                 *(f.cell for f in self.flagged.values())]
        uris = {u for c in cells for u in c.uris}
        return uris | ({d.uri for d in self.comparison.diffs} if self.comparison is not None else set())

    def _keep_shown(self, images: pd.DataFrame, kept: pd.DataFrame) -> None:
        """What the sampled images' cards need, the images no longer sampled forgotten."""
        wanted = self.sampled()
        for r in images[images["uri"].isin(wanted)].itertuples(index=False):
            self.shown[r.uri] = {"name": str(getattr(r, "rel_path", None) or r.uri), "uri": r.uri,
                                 "camera": r.camera_id if isinstance(r.camera_id, str) else "",
                                 "time": _when(getattr(r, "capture_time_local", r.capture_time)),
                                 "clip": getattr(r, "kind", None) == "video"}
        if not kept.empty:
            columns = [*BOX_COLUMNS, "species", "species_score", *(["mask"] if "mask" in kept.columns else []),
                       *(["frame_number"] if "frame_number" in kept else [])]
            for uri, g in kept[kept["uri"].isin(wanted)].groupby("uri", sort=False):
                self.boxes[uri] = list(g[columns].itertuples(index=False))
        self.shown = {u: v for u, v in self.shown.items() if u in wanted}
        self.boxes = {u: v for u, v in self.boxes.items() if u in wanted}

    # -- the page's figures --------------------------------------------------------------------------
    def summary(self) -> dict[str, int]:
        return {"images": self.images, "ok": self.status["ok"], "empty": self.status["empty"],
                "failed": self.status["failed"], "kept": self.kept, "dropped": self.dropped,
                "cameras": len(self.cameras)}

    def status_columns(self) -> list[str]:
        return [s for s in ("ok", "empty", "failed") if self.status[s]]

    def camera_status_table(self) -> pd.DataFrame:
        """camera x status (images), cameras and statuses sorted, as one crosstab of the whole set gives it."""
        table = pd.concat(self.camera_status).fillna(0).astype("int64")
        return table[sorted(table.columns)].sort_index()

    def per_camera(self) -> list[dict]:
        table = self.camera_status_table()
        for s in ("ok", "empty", "failed"):
            if s not in table:
                table[s] = 0
        if self.kept:
            labels = pd.concat(self.camera_labels).fillna(0).astype("int64")
            table = table.join(labels[sorted(labels.columns)].sort_index(), how="left").fillna(0)
        return [{"camera": cam, **{k: int(v) for k, v in r.items()}} for cam, r in table.iterrows()]

    def per_day_table(self) -> pd.DataFrame:
        days = sorted({d for d, _ in self.per_day})
        statuses = sorted({s for _, s in self.per_day})
        return pd.DataFrame([[self.per_day.get((d, s), 0) for s in statuses] for d in days], index=days,
                            columns=statuses)

    def per_label_images(self) -> pd.DataFrame:
        labels = sorted(self.label_images)
        return pd.DataFrame({"images": [self.label_images[k] for k in labels]}, index=labels)

    def threshold_data(self) -> dict[str, list[float]]:
        """Per label, each image's best score (rounded), highest first: the threshold slider's data."""
        return {label: sorted(self.best[label].elements(), reverse=True) for label in sorted(self.best)}


def _when(value: Any) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")
