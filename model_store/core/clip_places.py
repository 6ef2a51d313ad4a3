"""Where a clip's frames are: every frame's presentation timestamp, in order, so that a frame's number is its place.

`model_store.core.video.ClipReader.places` asks for them once a reader, when it seeks (its count of frames is lost
there). They come from the container's packets, demuxed without decoding a frame (benchmarks NOTES.md section 13: about
6 us a packet, 55 ms for a 10-minute 720p clip), and a local file's are kept for the next readers of it while the
file is unchanged: the console and the report open a reader for each frame they show.
"""

from __future__ import annotations

import array
import collections
import os
import threading
from collections.abc import Sequence
from typing import IO


def file_key(source: str | IO[bytes]) -> tuple | None:
    """A local file as it is now (path, size, mtime, inode): another file, or this one rewritten, is another key.
    None for a file object (an upload, an S3 object): its places are kept by its reader only."""
    if not isinstance(source, str):
        return None
    try:
        st = os.stat(source)
    except OSError:
        return None
    return os.path.abspath(source), st.st_size, st.st_mtime_ns, st.st_ino


class _KnownPlaces:
    """The `places` of the last few local clips read, so that showing frame after frame of one clip (the console's
    strip, the report's, a reader each) scans it once. Bounded: 8-byte timestamps, a 30-minute 30 fps clip 430 KB."""

    def __init__(self, size: int = 16) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._places: collections.OrderedDict[tuple, Sequence[int]] = collections.OrderedDict()

    def get(self, key: tuple | None) -> Sequence[int] | None:
        if key is None:
            return None
        with self._lock:
            if key in self._places:
                self._places.move_to_end(key)
            return self._places.get(key)

    def clear(self) -> None:
        with self._lock:
            self._places.clear()

    def put(self, key: tuple | None, places: Sequence[int]) -> None:
        if key is None:
            return
        with self._lock:
            self._places[key] = places
            self._places.move_to_end(key)
            while len(self._places) > self.size:
                self._places.popitem(last=False)


_known = _KnownPlaces()


def forget_places() -> None:
    """Drop the kept places (a benchmark timing the scan itself)."""
    _known.clear()


def known_places(container, stream, key: tuple | None) -> Sequence[int]:
    """The sorted presentation timestamps of `stream`'s frames: kept ones for `key` (`file_key`), else read from
    its packets from the start (this moves the container's read position: the caller seeks afterwards). A clip
    broken halfway gives those before the break (not kept); packets without a timestamp give none (empty)."""
    places = _known.get(key)
    if places is not None:
        return places
    import av  # late: only clips need FFmpeg's libraries

    stamps: list[int | None] = []
    complete = True
    try:
        container.seek(0, backward=True)
        for packet in container.demux(stream):
            if packet.size and not packet.is_discard:  # the demuxer's end-of-stream packet is empty
                stamps.append(packet.pts)
    except (av.error.FFmpegError, EOFError):
        complete = False  # the places up to the break are right: numbers are ranks
    places = array.array("q", [] if None in stamps else sorted(stamps))  # type: ignore[type-var]
    if complete:
        _known.put(key, places)
    return places
