"""Which code made a result set's rows: the trapline version and the detector core's fingerprint.

A model version and a filter set do not say everything that shapes a row: the core's own code does too (how an image
is decoded, oriented and letterboxed, how a head's output is decoded and suppressed, how a clip is sampled, how a
filter fires). A fix there changes rows for the same model version, so every part records

- `core_version`: `CORE_VERSION`, an integer bumped by hand with a change that changes rows (a preprocessing or
  decoding fix): what `trapline reprocess --redo-if-core-older-than N` compares, because people name it;
- `core_fingerprint`: a hash of the source of the modules that shape rows (`SHAPING`), so a change nobody bumped
  the version for still shows (`trapline tables sets` lists both); it is not compared automatically, as a comment
  or a refactor changes it too;
- `trapline`: the installed package's version.

Not in the fingerprint: the ONNX backends (execution: the same graph gives the same numbers within tolerance), the
store, the tables and the doors (they move rows, they do not make them), the config schema (its values are in the
model version and the filter specs already).
"""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata
from pathlib import Path
from typing import Any

CORE_VERSION = 1
# Modules and packages of model_store/core whose code decides the numbers in a row.
SHAPING = ("imaging.py", "preprocess.py", "detector.py", "masks.py", "heads", "filters", "video.py",
           "clip_sampling.py", "clips.py", "clip_counting.py", "crops.py", "classifier.py", "pipeline.py", "tiling.py",
           "tile_merge.py")


@functools.lru_cache(maxsize=1)
def core_fingerprint() -> str:
    """16 hex digits of sha256 over the shaping modules' source, in a fixed order (line endings normalised)."""
    core = Path(__file__).parent
    digest = hashlib.sha256()
    for name in SHAPING:
        path = core / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for file in files:
            digest.update(file.relative_to(core).as_posix().encode() + b"\0")
            digest.update(file.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def trapline_version() -> str:
    try:
        return metadata.version("trapline")
    except metadata.PackageNotFoundError:  # a checkout on PYTHONPATH without the package installed
        return "unknown"


def provenance() -> dict[str, Any]:
    """What a part's metadata and a run's manifest record of the code that made the rows."""
    return {"trapline": trapline_version(), "core_version": CORE_VERSION, "core_fingerprint": core_fingerprint()}
