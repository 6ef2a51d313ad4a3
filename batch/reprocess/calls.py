"""How many images an inference actor takes a call: the user's `--batch-size`, fewer for a tiled run (each image is
many model inputs) and for a small run (so that every actor gets work)."""

from __future__ import annotations

import math

from batch.reprocess.options import ReprocessOptions

# A tiled still is many model inputs (a 1080p frame at 640 px: 8 tiles and the whole-image pass), so a tiled run's
# actors take `--batch-size` / TILED_INPUTS images a call: about the forward inputs of a plain call, and a folder's
# last calls short, so the actors finish together (16 tiled images a call left one of two actors idle for most of a
# 36-image run: BENCHMARKS.md, tiled job against SAHI).
TILED_INPUTS = 8
CALLS_PER_ACTOR = 2  # a small run's images are split so that each actor gets at least this many calls


def images_per_call(options: ReprocessOptions, tiled: bool) -> int:
    """Images an inference actor takes a call: `--batch-size`, a tiled run's divided by TILED_INPUTS (at least 1).
    Through a deployment the replicas batch the tiles themselves, so a client's calls stay `--batch-size`."""
    if tiled and options.via != "serve":
        return max(1, options.batch_size // TILED_INPUTS)
    return options.batch_size


def spread_calls(per_call: int, images: int, actors: int) -> int:
    """Images a call, lowered for a small run so that every actor gets CALLS_PER_ACTOR calls or more: 48 images at
    16 a call on 2 actors would be 3 calls, one actor doing two while the other waits (a third of the run on one
    core; measured 135 s against 98 s for the same tiled job, NOTES §29d). A big run keeps `per_call`."""
    return max(1, min(per_call, math.ceil(images / (max(1, actors) * CALLS_PER_ACTOR))))
