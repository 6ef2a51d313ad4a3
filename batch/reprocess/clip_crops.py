"""A clip's snips and classifier crops: cut from the best frame of each of its tracks.

A clip's animals are its tracks (`model_store.core.clips.link_tracks`): one snip and one classification a track,
from the frame where its detection scored best, rather than one a sampled frame (the same animal 30 times). Each
such frame is decoded again at full size from a seek (`ClipReader.frame_at`), one frame in memory at a time.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator, Sequence

import numpy as np

from batch.reprocess.clips import open_clip
from model_store import Detection
from model_store.tables.archive import cached_location


def best_frames(row: dict, ranked: Sequence[tuple[Detection, bool]], archive_url: str, max_pixels: int | None
                ) -> Iterator[tuple[np.ndarray, list[tuple[Detection, bool]]]]:
    """(full-size RGB, `ranked` with only the best detections of the tracks in that frame kept) for each frame of
    the clip that holds a track's best detection, in time order. Raises VideoDecodeError / OSError when the clip
    cannot be read again."""
    best = {int(t["best_detection_index"]) for t in json.loads(row.get("clip_tracks") or "[]")}
    frames: dict[float, set[int]] = collections.defaultdict(set)
    for d in row["detections"]:
        if d["detection_index"] in best:
            frames[float(d["frame_offset_s"])].add(int(d["detection_index"]))
    if not frames:
        return
    with open_clip(cached_location(archive_url), row["uri"], max_pixels) as reader:
        for offset in sorted(frames):
            rgb = reader.frame_at(offset).rgb
            yield rgb, [(det, kept and j in frames[offset]) for j, (det, kept) in enumerate(ranked)]
