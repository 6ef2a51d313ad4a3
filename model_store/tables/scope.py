"""Which images a command reads or rewrites: the whole table, some cameras, a capture-time window, one image, the
images of some occurrences.

One meaning for `--camera` (repeatable), `--since` / `--until`, `--image` and `--occurrence` (repeatable; postprocess
only) in every command that takes them (export, report, postprocess, crops, events): each narrows the set, and given
together they intersect (camera cam01 *and* captured since May). An occurrence names its images through the
detections table of the set a run reads: the caller resolves it (`with_occurrence_uris`) before the scope selects
rows. A run says plainly what it touched (`Scope.describe`), and an `--image` or `--occurrence` that names nothing is
an error, never an empty run.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from ground.errors import ScopeError

if TYPE_CHECKING:
    import pyarrow.dataset as ds

ScopeKind = Literal["table", "camera", "window", "image", "occurrence", "combined"]


@dataclass(frozen=True)
class Scope:
    cameras: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    image: str | None = None
    occurrences: tuple[str, ...] = ()
    occurrence_uris: tuple[str, ...] | None = None  # the images of `occurrences`, once resolved

    @classmethod
    def of(cls, cameras: Sequence[str] | None = None, since: Any = None, until: Any = None,
           image: str | None = None, occurrences: Sequence[str] | None = None) -> Scope:
        """Validate the scope options of one run; given together they intersect."""
        try:
            start, end = parse_when(since), parse_when(until, end_of_day=True)
        except ValueError as exc:
            raise ScopeError(f"--since/--until: {exc}") from None
        if start and end and start > end:
            raise ScopeError(f"--since {since} is after --until {until}")
        if cameras and any(not c for c in cameras):
            raise ScopeError("--camera needs a camera id")
        if occurrences and any(not o for o in occurrences):
            raise ScopeError("--occurrence needs an occurrence id")
        return cls(tuple(cameras or ()), start, end, image or None, tuple(dict.fromkeys(occurrences or ())))

    def with_occurrence_uris(self, uris: Sequence[str]) -> Scope:
        """This scope with its occurrences' images found (by the caller, in the set it reads)."""
        return replace(self, occurrence_uris=tuple(sorted(set(uris))))

    @property
    def parts(self) -> list[str]:
        """The kinds this scope narrows by (empty: the whole table)."""
        return [k for k, given in (("camera", bool(self.cameras)), ("window", bool(self.since or self.until)),
                                   ("image", bool(self.image)), ("occurrence", bool(self.occurrences)))
                if given]

    @property
    def kind(self) -> ScopeKind:
        parts = self.parts
        return "table" if not parts else parts[0] if len(parts) == 1 else "combined"

    def image_keys(self) -> list[str]:
        """The strings an --image may equal: a URI or rel_path as given, or a local path made absolute."""
        keys = [self.image] if self.image else []
        if self.image and "://" not in self.image and os.path.exists(self.image):
            keys.append(os.path.abspath(self.image))
        return keys

    def expression(self) -> ds.Expression | None:
        """The rows of the images table this scope selects (None: all): every given part must hold."""
        expr = None
        for part in self._expressions():
            expr = part if expr is None else expr & part
        return expr

    def _expressions(self) -> list[ds.Expression]:
        import pyarrow.dataset as ds  # late: options models import Scope, and the CLI's start-up skips pandas with it

        out = []
        if self.cameras:
            out.append(ds.field("camera_id").isin(list(self.cameras)))
        if self.since or self.until:
            out.append(time_window(self.since, self.until))
        if self.image:
            keys = self.image_keys()
            out.append(ds.field("uri").isin(keys) | ds.field("rel_path").isin(keys))
        if self.occurrences:
            if self.occurrence_uris is None:
                raise ScopeError("the --occurrence scope was not resolved to its images before reading")
            out.append(ds.field("uri").isin(list(self.occurrence_uris)))
        return out

    def describe(self) -> str:
        said = []
        if self.cameras:
            said.append(f"camera {', '.join(self.cameras)}")
        if self.since or self.until:
            said.append(f"captured {self.since or '...'} to {self.until or '...'}")
        if self.image:
            said.append(f"image {self.image}")
        if self.occurrences:
            said.append(f"occurrence {', '.join(self.occurrences)}")
        return ", ".join(said) or "whole table"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "description": self.describe(), "cameras": list(self.cameras) or None,
                "image": self.image, "occurrences": list(self.occurrences) or None,
                "since": self.since.isoformat() if self.since else None,
                "until": self.until.isoformat() if self.until else None}


def time_window(since: dt.datetime | None, until: dt.datetime | None) -> ds.Expression | None:
    import pyarrow.dataset as ds  # late: see Scope._expressions

    expr = None
    if since is not None:
        expr = ds.field("capture_time") >= since
    if until is not None:
        end = ds.field("capture_time") <= until
        expr = end if expr is None else expr & end
    return expr


def parse_when(value: Any, end_of_day: bool = False) -> dt.datetime | None:
    """A date or date-time; a bare date means its first (or, for --until, last) microsecond."""
    if value is None or isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        value = value.isoformat()
    text = str(value).strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        day = dt.datetime.fromisoformat(text)
        return day + dt.timedelta(days=1, microseconds=-1) if end_of_day else day
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"expected YYYY-MM-DD or an ISO date-time, got {value!r}") from None
    # Capture times are naive (camera clock); compare like with like.
    return when.astimezone(dt.timezone.utc).replace(tzinfo=None) if when.tzinfo else when
