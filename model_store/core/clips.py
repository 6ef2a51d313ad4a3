"""A clip through the detector: its sampled frames in batches, then its tracks and its summary.

The one clip loop of both doors (the archive's inference actors, the online door's replicas): frames stream out of
`ClipReader` one at a time, are letterboxed by the detector's own preprocessor and run `batch_size` at a time through
`Detector.run_prepared` (the same forward pass, NMS and filters as a still). Only one batch of prepared frames is
held at once, so a clip costs memory for a batch, not for its length.

The kept detections of the clip's frames are then linked into tracks by the tracker of the `track` post-processing
filter (`model_store.core.filters.tracking.link_camera`, the same call the occurrences of a camera's stills go
through; its algorithm is its own), so the clip's animals come out as occurrences with a count: `ClipSummary`.
"""

from __future__ import annotations

import collections
import functools
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from model_store.core.filters.tracking import TrackConfig, confirmed_tracks, link_camera
from model_store.core.records import Detection, FiltersApplied, ImageDetections, ModelInfo
from model_store.core.video import ClipInfo, ClipReader, Sampling, VideoDecodeError


@dataclass(frozen=True)
class ClipTrack:
    """One animal of a clip: its track's frames, its label (score-weighted vote), and its best detection."""

    track: int
    label: str
    score: float  # the best detection's score
    detections: int
    first_offset_s: float
    last_offset_s: float
    best_frame: int  # frame number of the best (highest-scoring) detection
    best_detection: int  # its detection index within the clip
    confirmed: bool  # counts as an animal (the tracker's min_frames / confirm_score)


@dataclass
class ClipDetections:
    """All detections of one clip by one model version: one record per sampled frame, and the clip's tracks.

    `error` / `reason` are set when the clip broke (truncated, unknown codec...): the frames read before it are
    still here. Detection indices run across the clip in frame order (`ranked()` order within a frame), so
    (clip, detection_index) keys a detection as (image, detection_index) keys one of a still."""

    info: ClipInfo | None
    sampling: Sampling
    frames: list[tuple[int, float, ImageDetections]] = field(default_factory=list)  # (number, offset_s, record)
    tracks: list[ClipTrack] = field(default_factory=list)
    track_of: dict[int, int] = field(default_factory=dict)  # detection_index -> track (kept detections only)
    reason: str | None = None
    error: str | None = None
    timing_ms: dict[str, float] = field(default_factory=dict)
    model: ModelInfo | None = None  # the version that ran, and its filters (also when no frame was read)
    filters: FiltersApplied | None = None

    def ranked(self) -> list[tuple[int, float, int, Detection, bool]]:
        """(frame number, offset_s, detection_index, detection, kept) of every raw detection, in clip order."""
        out, index = [], 0
        for number, offset, record in self.frames:
            for d, kept in record.ranked():
                out.append((number, offset, index, d, kept))
                index += 1
        return out

    @property
    def kept(self) -> int:
        return sum(len(r.detections) for _, _, r in self.frames)

    @property
    def max_per_frame(self) -> int:
        """The most kept detections in one sampled frame: the clip's animals seen at once."""
        return max((len(r.detections) for _, _, r in self.frames), default=0)

    @property
    def animals(self) -> int:
        """Confirmed tracks: the clip's count of animals (occurrences)."""
        return sum(t.confirmed for t in self.tracks)

    def determination(self) -> tuple[str | None, float | None]:
        """The clip's label: that of its most confident confirmed track (any track when none is confirmed)."""
        pool = [t for t in self.tracks if t.confirmed] or self.tracks
        if not pool:
            return None, None
        best = max(pool, key=lambda t: (t.score, -t.track))
        return best.label, best.score


Prepare = Callable[[np.ndarray, tuple[int, int]], tuple[np.ndarray, object]]


def detect_clip(detector, reader: ClipReader, sampling: Sampling, filters=None, batch_size: int = 8,
                track_config: TrackConfig | None = None) -> ClipDetections:
    """Run the detector on the clip's sampled frames, `batch_size` at a time, then link its tracks.

    Never raises for a bad clip: a VideoDecodeError ends the loop and is recorded on the result (with the frames
    read until then); a failing forward pass raises the detector's ModelRunError, as for stills."""
    info = reader.info
    fs = filters if filters is not None else detector.default_filters
    out = ClipDetections(info=info, sampling=sampling, model=detector.info,
                         filters=FiltersApplied(names=fs.names, hash=fs.hash, configs=fs.as_specs()))
    prep = detector.preprocessor
    cfg = prep.config.preprocess
    pending: list[tuple[int, float, np.ndarray, object]] = []
    t0 = time.perf_counter()
    infer_s = 0.0

    def flush() -> None:
        nonlocal infer_s
        t1 = time.perf_counter()
        records = detector.run_prepared([p for _, _, p, _ in pending], [m for _, _, _, m in pending], filters)
        infer_s += time.perf_counter() - t1
        for (number, offset, _, _), record in zip(pending, records, strict=True):
            if isinstance(record, Exception):  # one frame's postprocessing failed: the clip says so
                raise VideoDecodeError("postprocess_error", f"frame {number}: {type(record).__name__}: {record}",
                                       len(out.frames))
            out.frames.append((number, offset, record))
        pending.clear()

    try:
        for frame in reader.frames(sampling, functools.partial(letterbox_size, prep.config), cfg.interpolation):
            prepared, meta = prep.prepare(frame.rgb, (info.width, info.height))
            pending.append((frame.number, frame.offset_s, prepared, meta))
            if len(pending) >= batch_size:
                flush()
        if pending:
            flush()
    except VideoDecodeError as exc:
        if pending and exc.reason != "postprocess_error":
            flush()  # what was decoded before the break is detected and kept
        out.reason, out.error = exc.reason, str(exc)
    out.timing_ms = {"total": round((time.perf_counter() - t0) * 1000, 3), "inference": round(infer_s * 1000, 3)}
    link_tracks(out, track_config or TrackConfig())
    return out


def detect_clip_bytes(detector, data: bytes, sampling: Sampling, filters=None, max_pixels: int | None = None,
                      batch_size: int = 8) -> ClipDetections:
    """A clip uploaded whole (the online door's short clips): opened from memory, else as `detect_clip`. Raises
    VideoDecodeError when it cannot be opened at all (not a clip, an unknown codec, over `max_pixels`)."""
    with ClipReader(io.BytesIO(data), threads=1, max_pixels=max_pixels) as reader:
        return detect_clip(detector, reader, sampling, filters, batch_size)


def letterbox_size(config, width: int, height: int) -> tuple[int, int]:
    """The size the letterbox resizes a (width, height) frame to: frames are scaled to it as they are converted
    to RGB (one swscale pass), so the letterbox only pads."""
    in_w, in_h = config.input_size
    if config.preprocess.letterbox == "stretch":
        return in_w, in_h
    s = min(in_w / width, in_h / height)
    return max(1, round(width * s)), max(1, round(height * s))


def link_tracks(clip: ClipDetections, config: TrackConfig) -> None:
    """Link the clip's kept detections across its frames (the tracker's own algorithm) and summarise each track."""
    rows = [(n, off, i, d) for n, off, i, d, kept in clip.ranked() if kept]
    if not rows:
        clip.tracks, clip.track_of = [], {}
        return
    times = np.array([off for _, off, _, _ in rows], dtype=np.float64)
    frames = np.array([n for n, _, _, _ in rows], dtype=np.int64)
    boxes = np.array([_xyxy(d) for _, _, _, d in rows], dtype=np.float64)
    labels = np.array([d.label for _, _, _, d in rows], dtype=object)
    scores = np.array([d.score for _, _, _, d in rows], dtype=np.float64)
    ids = link_camera(times, frames, boxes, config, labels=labels, scores=scores)
    confirmed = confirmed_tracks(ids, config, scores)
    members: dict[int, list[int]] = collections.defaultdict(list)
    for j, t in enumerate(ids.tolist()):
        members[t].append(j)
    clip.track_of = {rows[j][2]: int(t) for j, t in enumerate(ids.tolist())}
    tracks = []
    for t, js in sorted(members.items()):
        votes: dict[str, float] = collections.defaultdict(float)
        for j in js:
            votes[rows[j][3].label] += rows[j][3].score
        best = max(js, key=lambda j: rows[j][3].score)
        tracks.append(ClipTrack(track=t, label=max(votes, key=lambda k: (votes[k], k)), score=rows[best][3].score,
                                detections=len(js), first_offset_s=min(rows[j][1] for j in js),
                                last_offset_s=max(rows[j][1] for j in js), best_frame=rows[best][0],
                                best_detection=rows[best][2], confirmed=bool(confirmed[t])))
    clip.tracks = tracks


def _xyxy(d: Detection) -> tuple[float, float, float, float]:
    x, y, w, h = d.bbox
    return x, y, x + w, y + h
