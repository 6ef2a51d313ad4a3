"""How clips are treated beyond the detector and its filters: which frames go through it (`Sampling`), how they are
linked into tracks (`TrackConfig`) and how the tracks are counted (`ClipCountConfig`), as one value with a hash.

The hash is what makes a clip "done" besides its result set: a clip row carries it (`images.clip_settings`), and a
rerun with other settings redoes the clips whose current row says otherwise (the stills are untouched). The cap on
sampled frames is left out of it: it changes no clip it lets through, and a clip it refused (`too_long`) is retried
with `--retry-failed`, as any failure is."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from model_store.core.clip_counting import ClipCountConfig
from model_store.core.clip_sampling import Sampling
from model_store.core.filters.track_config import TrackConfig


@dataclass(frozen=True)
class ClipSettings:
    """A run's (or the online door's) settings for clips: sampling, tracking, counting."""

    sampling: Sampling = Sampling()
    tracking: TrackConfig = TrackConfig()
    counting: ClipCountConfig = ClipCountConfig()

    @classmethod
    def of(cls, sampling: Mapping[str, Any] | Sampling | None = None,
           tracking: Mapping[str, Any] | TrackConfig | None = None,
           counting: Mapping[str, Any] | ClipCountConfig | None = None) -> ClipSettings:
        """The settings from their models or their dumps (None: the defaults)."""
        return cls(_as(Sampling, sampling), _as(TrackConfig, tracking), _as(ClipCountConfig, counting))

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """The canonical JSON-able form, every field spelled out (what a part's metadata records)."""
        return {"sampling": self.sampling.model_dump(mode="json"), "tracking": self.tracking.model_dump(mode="json"),
                "counting": self.counting.model_dump(mode="json")}

    @functools.cached_property
    def hash(self) -> str:
        """A stable 16-hex-digit hash of every field but the frame cap (as `FilterSet.hash`, defaults included)."""
        canonical = self.as_dict()
        canonical["sampling"].pop("max_frames")
        return hashlib.sha256(json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _as(model, value):
    if value is None:
        return model()
    return value if isinstance(value, model) else model(**value)
