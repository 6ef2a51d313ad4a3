"""What a post-processing run rewrites: the whole table, some cameras, a capture-time window, or one image.

Exactly one kind of scope per run, like a job's selection: a camera (repeatable), a window
(`--since` and/or `--until`), or one image (its URI or archive-relative path). Mixing kinds is a
usage error rather than a silent intersection, so a run always says plainly what it touched.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow.dataset as ds

from .errors import BatchError
from .options import parse_when

ScopeKind = Literal["table", "camera", "window", "image"]


class ScopeError(BatchError):
    """A post-processing scope that mixes kinds or names nothing."""

    code = "usage"


@dataclass(frozen=True)
class Scope:
    cameras: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    image: str | None = None

    @classmethod
    def of(cls, cameras: Sequence[str] | None = None, since: Any = None, until: Any = None,
           image: str | None = None) -> Scope:
        """Validate the options of one run: at most one kind of scope."""
        kinds = [k for k, given in (("--camera", bool(cameras)), ("--since/--until", since or until),
                                    ("--image", image)) if given]
        if len(kinds) > 1:
            raise ScopeError(f"choose one scope: {' or '.join(kinds)}, not both (or none for the whole table)")
        try:
            start, end = parse_when(since), parse_when(until, end_of_day=True)
        except ValueError as exc:
            raise ScopeError(f"--since/--until: {exc}") from None
        if start and end and start > end:
            raise ScopeError(f"--since {since} is after --until {until}")
        if cameras and any(not c for c in cameras):
            raise ScopeError("--camera needs a camera id")
        return cls(tuple(cameras or ()), start, end, image or None)

    @property
    def kind(self) -> ScopeKind:
        if self.cameras:
            return "camera"
        if self.since or self.until:
            return "window"
        return "image" if self.image else "table"

    def image_keys(self) -> list[str]:
        """The strings an --image may equal: a URI or rel_path as given, or a local path made absolute."""
        keys = [self.image] if self.image else []
        if self.image and "://" not in self.image and os.path.exists(self.image):
            keys.append(os.path.abspath(self.image))
        return keys

    def expression(self) -> ds.Expression | None:
        """The rows of the images table this scope rewrites (None: all)."""
        if self.kind == "camera":
            return ds.field("camera_id").isin(list(self.cameras))
        if self.kind == "window":
            return time_window(self.since, self.until)
        if self.kind == "image":
            keys = self.image_keys()
            return ds.field("uri").isin(keys) | ds.field("rel_path").isin(keys)
        return None

    def describe(self) -> str:
        if self.kind == "camera":
            return f"camera {', '.join(self.cameras)}"
        if self.kind == "window":
            return f"captured {self.since or '...'} to {self.until or '...'}"
        return f"image {self.image}" if self.kind == "image" else "whole table"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": self.describe(), "cameras": list(self.cameras) or None,
                "image": self.image, "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None}


def time_window(since: dt.datetime | None, until: dt.datetime | None) -> ds.Expression | None:
    expr = None
    if since is not None:
        expr = ds.field("capture_time") >= since
    if until is not None:
        end = ds.field("capture_time") <= until
        expr = end if expr is None else expr & end
    return expr
