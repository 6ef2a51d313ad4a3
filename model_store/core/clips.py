"""A clip through the detector: its sampled frames in batches, then its tracks and its summary.

The one clip loop of both doors (the archive's inference actors, the online door's replicas): frames stream out of
`ClipReader` one at a time, are letterboxed by the detector's own preprocessor and run `batch_size` at a time through
`Detector.run_planar` (the same forward pass, NMS and filters as a still; the frames are padded straight into the
input tensor's planes, so a batch is stacked and scaled without a transpose). Only one batch of prepared frames is
held at once, so a clip costs memory for a batch, not for its length.

The kept detections of the clip's frames are then linked into tracks by the tracker of the `track` post-processing
filter (`model_store.core.filters.tracking.link_camera`, the same call the occurrences of a camera's stills go
through; its algorithm is its own), so the clip's animals come out as occurrences with a count: `ClipSummary`.
"""

from __future__ import annotations

import collections
import contextlib
import io
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from model_store.core.clip_counting import ClipCountConfig, ClipRows, best_per_frame, merge_duplicates, still_tracks
from model_store.core.clip_sampling import Sampling, TimeRange, clip_ranges
from model_store.core.clip_settings import ClipSettings
from model_store.core.filters.tracking import TrackConfig, confirmed_tracks, link_camera
from model_store.core.records import Detection, FiltersApplied, ImageDetections, ModelInfo
from model_store.core.video import ClipInfo, ClipReader, VideoDecodeError


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


MIN_RANGE_FRAMES = 60  # a clip is cut into time ranges only when each gets at least this many sampled frames


@dataclass(frozen=True)
class ClipDecoding:
    """How a clip's frames are read and batched: `batch_size` frames per forward pass; with `reopen` (another reader
    of the same clip) and `parts` > 1, a long clip is cut into up to `parts` time ranges, each of at least
    `min_range_frames` sampled frames, decoded at once."""

    batch_size: int = 8
    reopen: Callable[[], AbstractContextManager[ClipReader]] | None = None
    parts: int = 1
    min_range_frames: int = MIN_RANGE_FRAMES


def detect_clip(detector, reader: ClipReader, settings: ClipSettings, filters=None,
                decoding: ClipDecoding = ClipDecoding(), tiling: Any = "model") -> ClipDetections:
    """Run the detector on the clip's sampled frames (`settings.sampling`), `decoding.batch_size` at a time, then link
    its tracks (`settings.tracking`) and count them (`settings.counting`).

    With `decoding.reopen` (another reader of the same clip) and `decoding.parts` > 1, a long clip is cut into up to
    `parts` time ranges (`clip_ranges`) decoded at once on threads of their own, each from a seek to its start: one
    clip then keeps more than one core busy (PyAV, swscale and the letterbox release the GIL). Their frames meet in
    the batches as they come, and the records are put back in frame order, so the result is the one an uncut pass
    gives.

    With `tiling` (a `TilingConfig`; "model": the detector config's) each frame is cut into tiles as a still is,
    and a batch's frames' tiles share its forward passes (`Detector.run_prepared`).

    Never raises for a bad clip: a VideoDecodeError ends the loop and is recorded on the result (with the frames
    read until then); a failing forward pass raises the detector's ModelRunError, as for stills."""
    info, sampling, batch_size = reader.info, settings.sampling, decoding.batch_size
    tiling = detector.config.tiling if tiling == "model" else tiling
    fs = filters if filters is not None else detector.default_filters
    out = ClipDetections(info=info, sampling=sampling, model=detector.info,  # (None: a deployment's, --via serve)
                         filters=FiltersApplied(names=fs.names, hash=fs.hash, configs=fs.as_specs()) if fs else None)
    ranges = (clip_ranges(info, sampling, decoding.parts, decoding.min_range_frames) if decoding.reopen is not None
              else [TimeRange()])
    pending: list[_Prepared] = []
    t0 = time.perf_counter()
    infer_s = 0.0

    def flush() -> None:
        nonlocal infer_s
        t1 = time.perf_counter()
        if tiling is not None:
            records = detector.run_prepared([p.image for p in pending], [p.meta for p in pending], filters)
        else:
            records = detector.run_planar(np.stack([p.image for p in pending]), [p.meta for p in pending], filters)
        infer_s += time.perf_counter() - t1
        for p, record in zip(pending, records, strict=True):
            if isinstance(record, Exception):  # one frame's postprocessing failed: the clip says so
                raise VideoDecodeError("postprocess_error", f"frame {p.number}: {type(record).__name__}: {record}",
                                       len(out.frames))
            out.frames.append((p.number, p.offset_s, record))
        pending.clear()

    prepared = (_prepared_frames(detector.preprocessor, reader, sampling, tiling=tiling) if len(ranges) == 1 else
                _prepared_in_ranges(detector.preprocessor, reader, sampling, ranges, decoding, tiling))
    try:
        with contextlib.closing(prepared):  # a model error stops the range threads at once
            for p in prepared:
                pending.append(p)
                if len(pending) >= batch_size:
                    flush()
            if pending:
                flush()
    except VideoDecodeError as exc:
        if pending and exc.reason != "postprocess_error":
            flush()  # what was decoded before the break is detected and kept
        out.reason, out.error = exc.reason, str(exc)
    out.frames.sort(key=lambda f: f[1])  # ranges hand their frames in as they come
    if sampling.mode == "all" and len(ranges) > 1 and out.reason is None:
        # a range after the first numbers its frames from their time (a seek cannot count the frames before it);
        # every frame of the clip was read, in order, so its number is its place
        out.frames = [(k, offset, record) for k, (_, offset, record) in enumerate(out.frames)]
    out.timing_ms = {"total": round((time.perf_counter() - t0) * 1000, 3), "inference": round(infer_s * 1000, 3)}
    link_tracks(out, settings.tracking, settings.counting)
    return out


@dataclass(frozen=True)
class _Prepared:
    number: int
    offset_s: float
    image: Any  # letterboxed model input, (3, H, W) uint8 planes (Preprocessor.prepare_planar), or a TiledInput
    meta: object


def _prepared_frames(prep, reader: ClipReader, sampling: Sampling, span: TimeRange | None = None, tiling=None
                     ) -> Iterator[_Prepared]:
    """The sampled frames of `span`, converted to RGB at full size and letterboxed by the model's own resize into
    the input's planes, as a still is: the model sees the input it was validated on (BENCHMARKS.md, "Video clips":
    swscale scaling in the conversion was slower, and its bilinear is not OpenCV's, up to 130 grey levels off)."""
    info = reader.info
    for frame in reader.frames(sampling, span=span):
        if tiling is not None:  # tiles are views: of a copy, as the reader may reuse its frame's memory
            image, meta = prep.prepare(frame.rgb.copy(), (info.width, info.height), tiling=tiling)
        else:
            image, meta = prep.prepare_planar(frame.rgb, (info.width, info.height))
        yield _Prepared(frame.number, frame.offset_s, image, meta)


def _prepared_in_ranges(prep, reader: ClipReader, sampling: Sampling, ranges: list[TimeRange],
                        decoding: ClipDecoding, tiling=None) -> Iterator[_Prepared]:
    """The prepared frames of all `ranges` as their threads make them, each range after the first from its own
    reader (`decoding.reopen`; at most two batches waiting: memory stays a few batches). A range's VideoDecodeError
    is raised once every range is done, the earliest range's first, so the frames the others read are kept."""
    done = object()
    out: queue.Queue = queue.Queue(maxsize=2 * decoding.batch_size)
    stop = threading.Event()
    errors: dict[int, VideoDecodeError] = {}

    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(k: int, span: TimeRange) -> None:
        try:
            with contextlib.nullcontext(reader) if k == 0 else decoding.reopen() as r:
                for p in _prepared_frames(prep, r, sampling, span, tiling):
                    if not put(p):
                        return
        except VideoDecodeError as exc:
            errors[k] = exc
        except Exception as exc:  # noqa: BLE001 - a decoder crash in one range is the clip's failure, not a hang
            errors[k] = VideoDecodeError("decode_error", f"{type(exc).__name__}: {exc}")
        finally:
            put(done)

    threads = [threading.Thread(target=run, args=(k, span), name=f"clip-range-{k}", daemon=True)
               for k, span in enumerate(ranges)]
    for t in threads:
        t.start()
    try:
        running = len(threads)
        while running:
            item = out.get()
            if item is done:
                running -= 1
            else:
                yield item
    finally:
        stop.set()  # the consumer stopped early (a model error): let the threads end
        for t in threads:
            t.join()
    if errors:
        raise errors[min(errors)]


def detect_clip_bytes(detector, data: bytes, sampling: Sampling, filters=None, max_pixels: int | None = None,
                      tiling: Any = "model") -> ClipDetections:
    """A clip uploaded whole (the online door's short clips): opened from memory, else as `detect_clip` (one range,
    `ClipDecoding`'s batch of frames), tracked and counted by the detector config's settings. Raises VideoDecodeError
    when it cannot be opened at all (not a clip, an unknown codec, over `max_pixels`)."""
    settings = ClipSettings.of(sampling, detector.config.clip_tracking, detector.config.clip_counting)
    with ClipReader(io.BytesIO(data), threads=1, max_pixels=max_pixels) as reader:
        return detect_clip(detector, reader, settings, filters, tiling=tiling)


def link_tracks(clip: ClipDetections, config: TrackConfig, count: ClipCountConfig | None = None) -> None:
    """Link the clip's kept detections across its frames (the tracker's own algorithm), merge the tracks that
    double one animal, and summarise each track; still background is not confirmed (`clip_counting`)."""
    count = count or ClipCountConfig()
    rows = [(n, off, i, d) for n, off, i, d, kept in clip.ranked() if kept]
    if not rows:
        clip.tracks, clip.track_of = [], {}
        return
    times = np.array([off for _, off, _, _ in rows], dtype=np.float64)
    frames = np.array([n for n, _, _, _ in rows], dtype=np.int64)
    boxes = np.array([_xyxy(d) for _, _, _, d in rows], dtype=np.float64)
    labels = np.array([d.label for _, _, _, d in rows], dtype=object)
    scores = np.array([d.score for _, _, _, d in rows], dtype=np.float64)
    # A clip merges its doubles by its own rule (merge_duplicates, the clip counts' duplicate_min_frames), so the
    # tracker's folding of second boxes (issue 69, for a camera's stills) is left to that rule here.
    ids = link_camera(times, frames, boxes, config.model_copy(update={"fold": False}), labels=labels, scores=scores)
    kept = ClipRows(frames, boxes, scores, labels)
    ids = merge_duplicates(ids, kept, count)
    one = best_per_frame(ids, frames, scores)  # a merged track holds a double's boxes: one vote a frame
    confirmed = confirmed_tracks(ids[one], config, scores[one])
    for t in still_tracks(ids, kept, count):
        confirmed[t] = False
    members: dict[int, list[int]] = collections.defaultdict(list)
    for j, t in enumerate(ids.tolist()):
        members[t].append(j)
    clip.track_of = {rows[j][2]: int(t) for j, t in enumerate(ids.tolist())}
    tracks = []
    for t, js in sorted(members.items()):
        votes: dict[str, float] = collections.defaultdict(float)
        for j in one[ids[one] == t]:
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
