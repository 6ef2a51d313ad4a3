"""What numbering clip frames by their place costs: the packet scan (`ClipReader.places`) against the pass it serves.

`flock /tmp/trapline-heavy.lock python -m benchmarks.clip_places [CLIP ...] [--out results.json]`

A reader that seeks (sampling every N seconds, a later time range, showing one frame) reads every video packet's
timestamp once, demuxing only, so that a frame's number is its place in the clip on a variable frame rate too. Per
clip: its packets and size, the scan's time (median of 5 fresh readers, the file in the page cache, as a clip just
listed is), one 1 s sampling pass of `ClipReader.frames` (frames scaled to 640 px on the long side as they are
converted, one decoder thread; it includes the scan), the scan's share of it, and showing one frame from its
middle (`frame_numbered`, a reader a request as the console's): first (with the scan), then again (the clip's
places kept from the first).

The clips default to those benchmarks/clips.py makes (720p and 1080p 30 s, 720p 15 fps 10 minutes), if present.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from benchmarks.common import machine_info, print_table, write_json
from model_store.core.clip_places import forget_places, known_places
from model_store.core.clip_sampling import Sampling
from model_store.core.video import ClipReader

DEFAULT_CLIPS = [f"/work/wt/video2/bench-results/clips/{p}" for p in
                 ("set/cam0/clip720_0.mp4", "set/cam0/clip1080_0.mp4", "length/long/clip10min.mp4")]


def _scan_s(path: str) -> tuple[float, int]:
    with ClipReader(path) as reader:
        t0 = time.perf_counter()
        n = len(known_places(reader.container, reader.stream, None))  # None: not kept, scanned each time
        return time.perf_counter() - t0, n


def _show_s(path: str) -> float:
    with ClipReader(path) as reader:
        t0 = time.perf_counter()
        reader.frame_numbered(len(reader.places()) // 2 + 7, max_side=960)
        return time.perf_counter() - t0


def _fit(w: int, h: int) -> tuple[int, int]:
    scale = 640 / max(w, h)
    return round(w * scale) // 2 * 2, round(h * scale) // 2 * 2


def measure(path: str) -> dict:
    scans = [_scan_s(path) for _ in range(5)]
    forget_places()
    with ClipReader(path) as reader:
        t0 = time.perf_counter()
        sampled = sum(1 for _ in reader.frames(Sampling(), _fit))
        pass_s = time.perf_counter() - t0
        info = reader.info
    forget_places()
    show_first, show_next = _show_s(path), _show_s(path)  # a reader each, as the console: the second reuses places
    scan_s = statistics.median(s for s, _ in scans)
    return {"clip": Path(path).name, "size": f"{info.width}x{info.height}", "duration_s": round(info.duration_s or 0),
            "packets": scans[0][1], "MB": round(Path(path).stat().st_size / 2**20, 1),
            "scan_ms": round(scan_s * 1000, 1), "scan_us_per_packet": round(scan_s / scans[0][1] * 1e6, 2),
            "pass_1s_s": round(pass_s, 2), "sampled": sampled, "scan_share": f"{scan_s / pass_s:.1%}",
            "show_first_ms": round(show_first * 1000, 1), "show_next_ms": round(show_next * 1000, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clips", nargs="*", default=[c for c in DEFAULT_CLIPS if Path(c).exists()])
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    rows = [measure(c) for c in args.clips]
    print_table(rows, ["clip", "size", "duration_s", "packets", "MB", "scan_ms", "scan_us_per_packet", "pass_1s_s",
                       "sampled", "scan_share", "show_first_ms", "show_next_ms"])
    if args.out:
        write_json(args.out, {"machine": machine_info(), "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
