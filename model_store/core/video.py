"""Video clips: probe a clip's container and stream the frames a sampling asks for, never the whole clip.

Decoded with PyAV (FFmpeg's libraries; BENCHMARKS.md, section "Video clips", says why not OpenCV's FFmpeg):
it opens a path or any file-like object (an S3 object through fsspec streams in ranged reads), reports the
container's metadata (its creation time), seeks by timestamp, and converts a frame to RGB (swscale). The clip loop
takes frames at full size and letterboxes them with the model's own resize, as a still (`model_store.core.clips`);
`frames(size_for=...)` can scale in the conversion instead (a frame to show).

Memory is bounded per clip: `ClipReader.frames` is a generator of one RGB frame at a time; the container holds
a few packets and the decoder its reference frames. A clip whose sampling asks for more than `max_frames` frames is
refused before any frame is decoded (a 10-hour file by mistake), or stopped there when its length is unknown.

Which frames a sampling takes, and where seeking saves decoding, is the sampling plan's
(`model_store.core.clip_sampling`); this module opens the clip and follows it. One seek-and-decode path shows or
crops one frame (`ClipReader.frame_at`; `frame_numbered` is the same by frame number).

A frame's number is its place in the clip: 0-based, in presentation order, as MegaDetector's tools and OpenCV count
(the MegaDetector export's `frame_number`). Decoding from the first frame counts it; after a seek (sparse sampling,
a later time range, showing one frame) the count is lost, and time x average frame rate gives it back only when
the frames sit on a constant grid, which a variable-frame-rate clip's do not (nor can the container vouch for it
without reading its packets). So a reader that seeks first reads every video packet's timestamp once
(`ClipReader.places`: demuxing only, no frame decoded; benchmarks NOTES.md section 13 gives its cost), and a frame's
number is its timestamp's rank among them.

Every failure is a `VideoDecodeError` with a `reason` the tables record (`failed` rows), never a crash.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

import numpy as np

from ground.errors import TraplineError
from model_store.core.clip_places import file_key, known_places
from model_store.core.clip_sampling import ClipInfo, KeyframeGrid, Sampling, TimeRange, describe

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".m4v")
OFFSET_TOLERANCE_S = 1e-5  # a stored offset is its frame's time rounded to the microsecond; frames are >= 1 ms apart
SHOW_MAX_DECODED = 600  # frames decoded at most to show one frame (frame_numbered): 20 s at 30 fps past a keyframe
# The letterbox's resize filters (model_store.core.preprocess.INTERPOLATION) as swscale names them.
SWS_INTERPOLATION = {"linear": "BILINEAR", "area": "AREA", "nearest": "POINT", "cubic": "BICUBIC"}


class VideoDecodeError(TraplineError, ValueError):
    """A clip that cannot be (fully) decoded; `reason` is the tables' error_reason, `frames_read` how far it got.
    Over HTTP a clip that cannot be opened at all is unprocessable (422)."""

    code, status = "invalid_clip", 422

    def __init__(self, reason: str, message: str, frames_read: int = 0) -> None:
        super().__init__(message, reason=reason)
        self.reason = reason
        self.frames_read = frames_read


@dataclass(frozen=True)
class Frame:
    """One sampled frame: its number in the clip, its time offset in seconds and its RGB pixels."""

    number: int
    offset_s: float
    rgb: np.ndarray
    keyframe: bool = False


def _open(source: str | IO[bytes]):
    import av  # late: only clips need FFmpeg's libraries, and importing them costs ~0.1 s

    try:
        return av.open(source, mode="r", metadata_errors="ignore")
    except av.error.InvalidDataError as exc:
        if _starts_like_mp4(source):  # an MP4/MOV whose index (written last) never made it to disk
            raise VideoDecodeError("truncated", f"the clip is cut short (no index): {_said(exc)}") from None
        raise VideoDecodeError("not_video", f"not a video container: {_said(exc)}") from None
    except av.error.FFmpegError as exc:
        raise VideoDecodeError("decode_error", f"cannot open the clip: {_said(exc)}") from None


def _said(exc: BaseException) -> str:
    """What FFmpeg said, without PyAV's errno and file name (the row names the file; a clip uploaded whole is
    "'<none>'")."""
    return getattr(exc, "strerror", None) or str(exc)


def _starts_like_mp4(source: str | IO[bytes]) -> bool:
    """Whether the file begins with an ISO-BMFF `ftyp` box: an MP4/MOV that FFmpeg cannot open is then cut short."""
    try:
        if isinstance(source, str):
            with open(source, "rb") as f:
                head = f.read(12)
        else:
            source.seek(0)
            head = source.read(12)
    except (OSError, ValueError):
        return False
    return head[4:8] == b"ftyp"


def _created(metadata: dict) -> dt.datetime | None:
    value = metadata.get("creation_time") or metadata.get("date")
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.year < 1980:  # an unset camera clock writes 1904/1970
        return None
    return when.replace(tzinfo=None)


def _info(container) -> ClipInfo:
    if not container.streams.video:
        raise VideoDecodeError("not_video", "the container has no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx is None or not ctx.name:
        raise VideoDecodeError("unsupported", "no decoder for the clip's video codec")
    fps = float(stream.average_rate) if stream.average_rate else None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = None
    return ClipInfo(width=ctx.width, height=ctx.height, fps=fps, duration_s=duration,
                    frame_count=stream.frames or None, codec=ctx.name,
                    created=_created(dict(container.metadata)) or _created(dict(stream.metadata)))


def probe_clip(source: str | IO[bytes]) -> ClipInfo:
    """The clip's size, frame rate, length and creation time from its container (no frame decoded)."""
    with _open(source) as container:
        return _info(container)


class ClipReader:
    """One open clip: its `info`, then `frames(sampling, size_for)` streams the sampled frames.

    Lifecycle: a context manager per clip (it holds the container open); `frames` may be iterated once.
    `size_for(width, height)` gives the (width, height) each frame is scaled to as it is converted to RGB
    (a frame to show); None keeps the full size (the clip loop: the letterbox resizes).
    """

    def __init__(self, source: str | IO[bytes], threads: int = 1, max_pixels: int | None = None) -> None:
        self.container = _open(source)
        try:
            self.info = _info(self.container)
        except BaseException:
            self.container.close()
            raise
        if max_pixels is not None and self.info.width * self.info.height > max_pixels:
            self.container.close()
            raise VideoDecodeError("too_large", f"{self.info.width}x{self.info.height} frames are over the "
                                                f"{max_pixels} pixel limit")
        self.stream = self.container.streams.video[0]
        from av.video.reformatter import VideoReformatter

        self._reformatter = VideoReformatter()
        self.stream.thread_type = "AUTO"  # frame + slice threads, as many as `threads`
        self.stream.codec_context.thread_count = max(1, threads)
        self._tb = float(self.stream.time_base) if self.stream.time_base else 0.0
        self._start = float(self.stream.start_time * self.stream.time_base) if self.stream.start_time else 0.0
        self._places: Sequence[int] | None = None  # `places`, once read
        self._file = file_key(source)

    def __enter__(self) -> ClipReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    def frames(self, sampling: Sampling, size_for: Callable[[int, int], tuple[int, int]] | None = None,
               interpolation: str = "area", span: TimeRange | None = None) -> Iterator[Frame]:
        """The sampled frames in time order, one RGB frame at a time; with `span`, only those of that time
        range (`clip_ranges`: it seeks to its start). Raises VideoDecodeError: too_long (over
        `sampling.max_frames`, before decoding when the length is known), empty (no frame at all), or truncated /
        decode_error after `frames_read` frames were handed out."""
        info = self.info
        expected = sampling.expected_frames(info.duration_s, info.fps, info.frame_count)
        if expected is not None and expected > sampling.max_frames:
            raise VideoDecodeError("too_long", f"sampling {describe(sampling)} takes {expected} frames of this "
                                               f"{_length(info)} clip, over the cap of {sampling.max_frames} a clip")
        size = size_for(info.width, info.height) if size_for else None
        yield from self._sampled(sampling, size, SWS_INTERPOLATION[interpolation], span or TimeRange())

    def frame_at(self, offset_s: float, max_side: int | None = None, max_decoded: int | None = None) -> Frame:
        """The frame at `offset_s` (a sampled frame's offset, its time to the microsecond: its snips and crops are cut
        from it), or the first after it: a seek to the keyframe before it, then decoded up to it (at most
        `max_decoded` frames: a frame further from a keyframe is refused, so showing one frame never decodes a whole
        clip). Full size, or scaled so its long side is at most `max_side`. Raises VideoDecodeError (no_frame,
        decode_error) when it cannot be had."""
        return self._shown(offset_s, None, max_side, max_decoded)

    def frame_numbered(self, number: int, max_side: int, max_decoded: int = SHOW_MAX_DECODED) -> np.ndarray:
        """Frame `number` (its place in the clip, as the tables number a sampled frame) as RGB, its long side at most
        `max_side`: found by its own timestamp (`places`), so on a variable frame rate too it is the frame that was
        sampled; at most `max_decoded` frames past the keyframe before it."""
        places = self.places()
        if number < 0 or (places and number >= len(places)) or (
                not places and self.info.frame_count and number >= self.info.frame_count):
            raise VideoDecodeError("no_frame", f"the clip has no frame {number}")
        if places:
            pts = places[number]
            return self._shown(pts * self._tb - self._start, pts, max_side, max_decoded).rgb
        fps = self.info.fps or 0.0  # packets without timestamps: the average rate's grid is all there is
        return self._shown(number / fps if fps else 0.0, None, max_side, max_decoded).rgb

    def places(self) -> Sequence[int]:
        """Every frame's presentation timestamp (in the stream's time base) in order: frame n is at `places()[n]`, so
        a frame's number is its timestamp's rank. Read once per reader from the container's packets, demuxing only
        (`model_store.core.clip_places`: a local file's are kept for its next readers while it is unchanged). It
        moves the read position: called before a seek, never mid-decode. Empty when the packets carry no
        timestamps."""
        if self._places is None:
            self._places = known_places(self.container, self.stream, self._file)
        return self._places

    def _seek(self, offset_s: float, pts: int | None = None) -> None:
        """To the last keyframe at or before `offset_s` (or timestamp `pts`: a frame's own, not one tick before it
        from a float's round trip, which lands a keyframe early); the clip's `places` are read first (a seek loses
        the count)."""
        self.places()
        if pts is None:
            pts = max(0, round((offset_s + self._start) / self._tb)) if self._tb else 0
        self.container.seek(pts, stream=self.stream, backward=True)

    def _time(self, frame, decoded: int) -> float:
        """A frame's time in seconds from the clip's first frame (without a timestamp: `decoded` x the average rate)."""
        if frame.pts is not None and self._tb:
            return float(frame.pts) * self._tb - self._start
        return decoded / self.info.fps if self.info.fps else 0.0

    def _number(self, frame, t: float) -> int:
        """A frame's place after a seek: its timestamp's rank among the clip's (`places`); its time x the average rate
        only when the packets carry no timestamps."""
        places = self.places()
        if places and frame.pts is not None:
            return bisect.bisect_left(places, frame.pts)
        return round(t * self.info.fps) if self.info.fps else 0

    def _shown(self, offset_s: float, pts: int | None, max_side: int | None, max_decoded: int | None) -> Frame:
        """The frame with timestamp `pts`, or (None) the first at `offset_s` or after it: a seek, then decoded up to
        it."""
        import av

        self._seek(offset_s, pts)
        size = None
        if max_side is not None:
            w, h = self.info.width, self.info.height
            scale = min(1.0, max_side / max(w, h, 1))
            size = (max(2, round(w * scale) // 2 * 2), max(2, round(h * scale) // 2 * 2))
        try:
            for decoded, frame in enumerate(self.container.decode(self.stream)):
                t = self._time(frame, decoded)
                by_pts = pts is not None and frame.pts is not None
                if (frame.pts >= pts) if by_pts else t + OFFSET_TOLERANCE_S >= offset_s:
                    rgb = self._rgb(frame, size, SWS_INTERPOLATION["area"])
                    return Frame(number=self._number(frame, t), offset_s=round(t, 6), rgb=rgb,
                                 keyframe=bool(frame.key_frame))
                if max_decoded is not None and decoded >= max_decoded:
                    raise VideoDecodeError("no_frame", f"the frame at {offset_s:g} s is not within {max_decoded} "
                                                       "frames of a keyframe")
        except av.error.FFmpegError as exc:
            raise VideoDecodeError("decode_error", f"cannot decode the frame at {offset_s:g} s: {_said(exc)}") from None
        raise VideoDecodeError("no_frame", f"the clip has no frame at {offset_s:g} s")

    def _sampled(self, sampling: Sampling, size: tuple[int, int] | None, interpolation: str,
                 span: TimeRange) -> Iterator[Frame]:
        import av

        fps = self.info.fps or 0.0
        keys = KeyframeGrid(fps) if sampling.mode == "seconds" and self._tb else None  # None: never seek
        target, index, handed, last_pts, t = span.start_s, -1, 0, None, 0.0  # index: decode order (exact until a seek)
        seeked = False  # after a seek a frame's number is its rank among the clip's timestamps (`places`)
        if span.start_s > 0 and self._tb:  # a later range of the clip: from the last keyframe before its start
            self._seek(span.start_s)
            seeked = True
        decoded = iter(self.container.decode(self.stream))
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                break
            except (av.error.InvalidDataError, av.error.EOFError, EOFError) as exc:
                raise VideoDecodeError("truncated", f"the clip breaks after {handed} sampled frame(s): {_said(exc)}",
                                       handed) from None
            except av.error.FFmpegError as exc:
                raise VideoDecodeError("decode_error", f"decoding failed after {handed} sampled frame(s): {_said(exc)}",
                                       handed) from None
            index += 1
            t = self._time(frame, index)
            if keys is not None and frame.key_frame:
                keys.saw(t)
            if span.end_s is not None and t + 1e-6 >= span.end_s:
                return  # the next range's first frame
            if t + 1e-6 < span.start_s:
                continue  # before the range, from the keyframe its seek landed on
            if last_pts is not None and frame.pts is not None and frame.pts <= last_pts:
                if keys is not None:
                    keys.landed_behind()  # the keyframes are not where the grid said: decode through from now on
                continue
            number = self._number(frame, t) if seeked else index
            if sampling.mode == "seconds":
                if t + 1e-6 < target:
                    continue
                # the next target after this frame: the sampled times are a grid, not "this frame + every_s"
                target = (math.floor((t + 1e-6) / sampling.every_s) + 1) * sampling.every_s
            elif sampling.mode == "frames" and number % sampling.every_n:  # every Nth of the clip, not of the range
                continue
            if handed >= sampling.max_frames:
                raise VideoDecodeError("too_long", f"the clip has more than {sampling.max_frames} sampled frames "
                                                   "(the cap a clip)", handed)
            rgb = self._rgb(frame, size, interpolation)
            handed += 1
            last_pts = frame.pts
            yield Frame(number=number, offset_s=round(t, 6), rgb=rgb, keyframe=bool(frame.key_frame))
            if sampling.mode == "seconds" and span.end_s is not None and target >= span.end_s:
                return  # no sampled time left in the range: nothing more to decode (not even the next range's)
            if sampling.mode == "seconds" and self.info.duration_s and target >= self.info.duration_s:
                break  # nor in the clip: a seek there would land on its last keyframe and decode its last second
            if keys is not None and keys.worth_seeking(t, target):
                self._seek(target)
                decoded = iter(self.container.decode(self.stream))
                seeked = True
        if handed == 0 and span.start_s > 0:
            raise VideoDecodeError("truncated", f"the clip ends before {span.start_s:g} s of the "
                                                f"{_length(self.info)} its header says")
        if handed == 0:
            raise VideoDecodeError("empty", "the clip has no decodable frame")
        duration = self.info.duration_s
        slack = max(1.0, sampling.every_s if sampling.mode == "seconds" else 0.0) + (1 / fps if fps else 0.0)
        if duration and index >= 0 and t < duration - slack:  # the stream ended long before the header said
            raise VideoDecodeError("truncated", f"the clip ends at {t:.1f} s of the {duration:.1f} s its header "
                                                f"says, after {handed} sampled frame(s)", handed)

    def _rgb(self, frame, size: tuple[int, int] | None, interpolation: str) -> np.ndarray:
        """The frame as RGB, scaled to `size` in the same swscale pass (None: full size). One reformatter a clip:
        a new one a frame sets its scaler up again each time (BENCHMARKS.md, "Video clips", before and after)."""
        if size is None or (size[0], size[1]) == (frame.width, frame.height):
            return self._reformatter.reformat(frame, format="rgb24").to_ndarray()
        return self._reformatter.reformat(frame, size[0], size[1], format="rgb24",
                                          interpolation=interpolation).to_ndarray()


def _length(info: ClipInfo) -> str:
    return f"{info.duration_s:.0f} s" if info.duration_s else "unknown-length"


def looks_like_clip(data: bytes) -> bool:
    """Whether bytes start like a video container decoded as a clip: an ISO-BMFF `ftyp` box (MP4, MOV, M4V), a RIFF
    AVI header, or Matroska's EBML magic (uploads come as octet-stream: the bytes say what they are)."""
    head = data[:12]
    return head[4:8] == b"ftyp" or (head[:4] == b"RIFF" and head[8:12] == b"AVI ") or head[:4] == b"\x1a\x45\xdf\xa3"


def clip_created(data: bytes) -> dt.datetime | None:
    """The creation time a clip's container holds (None: none, or not a readable clip)."""
    import io

    try:
        return probe_clip(io.BytesIO(data)).created
    except VideoDecodeError:
        return None


def is_clip(path: str) -> bool:
    """Whether a file name is a video clip by its extension."""
    return path.lower().endswith(VIDEO_EXTENSIONS)
