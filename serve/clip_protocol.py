"""The online door's clips: how a body is known to be a clip, and the answer to one (`POST /v1/detect` with a
short video): per sampled frame its detections, and the clip's summary (its tracks, animals and label).

A clip is known by its container's signature, not its Content-Type (clients send octet-stream): see
`model_store.core.video.looks_like_clip`. Nothing here imports Ray.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from model_store.core.clips import ClipDetections
from model_store.core.video import looks_like_clip

__all__ = ["ClipResponse", "clip_response", "looks_like_clip"]
from serve.protocol import DetectionOut, FiltersOut, ModelOut, detection_out


class FrameOut(BaseModel):
    frame_number: int = Field(description="the frame's number in the clip (decode order)")
    offset_s: float = Field(description="seconds from the clip's start")
    detections: list[DetectionOut]


class ClipTrackOut(BaseModel):
    track: int
    label: str
    score: float = Field(description="its best detection's score")
    detections: int
    first_offset_s: float
    last_offset_s: float
    best_frame: int = Field(description="frame_number of its best detection (for a snip or a poster)")
    confirmed: bool = Field(description="counts as an animal: enough frames or one confident detection")


class ClipSummaryOut(BaseModel):
    max_per_frame: int = Field(description="the most kept detections in one sampled frame")
    animals: int = Field(description="confirmed tracks across the sampled frames: the clip's count")
    label: str | None = Field(description="the clip's determination: its most confident confirmed track's label")
    score: float | None
    tracks: list[ClipTrackOut]


class ClipOut(BaseModel):
    width: int
    height: int
    fps: float | None
    duration_s: float | None
    frame_count: int | None
    frames_sampled: int
    sampling: str = Field(description="which frames went through the detector")


class ClipResponse(BaseModel):
    """The body of a successful POST /v1/detect with a clip."""

    kind: str = "video"
    model: ModelOut
    clip: ClipOut
    status: str = Field(description="ok | empty | failed (the clip broke: `error` says why; the frames read "
                                    "before it are here)")
    error_reason: str | None = None
    error: str | None = None
    frames: list[FrameOut] = Field(description="every sampled frame with at least one kept detection")
    summary: ClipSummaryOut
    filters: FiltersOut
    timing_ms: dict[str, float]


def clip_response(clip: ClipDetections, verbose: bool = False) -> ClipResponse:
    """The HTTP body for one clip's detections."""
    info, s = clip.info, clip.sampling
    label, score = clip.determination()
    sampling = {"seconds": f"{s.every_s:g}s", "frames": f"{s.every_n}f", "all": "all"}[s.mode]
    kept = sum(len(r.detections) for _, _, r in clip.frames)
    return ClipResponse(
        model=ModelOut.model_validate(clip.model, from_attributes=True),
        clip=ClipOut(width=info.width, height=info.height, fps=info.fps, duration_s=info.duration_s,
                     frame_count=info.frame_count, frames_sampled=len(clip.frames), sampling=sampling),
        status="failed" if clip.reason else ("ok" if kept else "empty"), error_reason=clip.reason, error=clip.error,
        frames=[FrameOut(frame_number=n, offset_s=o, detections=[detection_out(d, verbose, False)
                                                                 for d in r.detections])
                for n, o, r in clip.frames if r.detections],
        summary=ClipSummaryOut(max_per_frame=clip.max_per_frame, animals=clip.animals, label=label, score=score,
                               tracks=[ClipTrackOut(track=t.track, label=t.label, score=t.score,
                                                    detections=t.detections, first_offset_s=t.first_offset_s,
                                                    last_offset_s=t.last_offset_s, best_frame=t.best_frame,
                                                    confirmed=t.confirmed) for t in clip.tracks]),
        filters=FiltersOut.model_validate(clip.filters, from_attributes=True),
        timing_ms=clip.timing_ms,
    )
