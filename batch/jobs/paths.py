"""Which locations a job may name: local paths under the allowed roots, s3:// locations in the named buckets."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from ground.errors import PathNotAllowedError

SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


class PathPolicy:
    """`check(field, value)` gives the location a job will use (a local path made absolute, symlinks resolved)
    or raises PathNotAllowedError naming the field; nothing outside `roots` / `buckets` passes."""

    def __init__(self, roots: Iterable[str], buckets: Iterable[str], working_dir: str | None = None) -> None:
        self.roots = [os.path.realpath(r) for r in roots]
        self.buckets = set(buckets)
        self.working_dir = working_dir or os.getcwd()

    def check(self, field: str, value: str) -> str:
        m = SCHEME.match(value)
        if m:
            if m.group(1).lower() != "s3":
                raise PathNotAllowedError(f"{field}: {value!r}: only local paths and s3:// locations are allowed",
                                          field=field, fields=[field])
            bucket = value[len(m.group(0)):].split("/", 1)[0]
            if bucket not in self.buckets:
                named = ", ".join(sorted(self.buckets)) or "none: set jobs.s3_buckets in the serve config"
                raise PathNotAllowedError(f"{field}: bucket {bucket!r} is not one the service may use "
                                          f"(allowed: {named})", field=field, fields=[field])
            return value
        if "\x00" in value:
            raise PathNotAllowedError(f"{field}: {value!r} is not a path", field=field, fields=[field])
        path = os.path.realpath(os.path.join(self.working_dir, value))
        if not any(path == root or path.startswith(root.rstrip("/") + "/") for root in self.roots):
            raise PathNotAllowedError(f"{field}: {value!r} is outside the allowed roots "
                                      f"({', '.join(self.roots) or 'none'}; jobs.roots in the serve config)",
                                      field=field, fields=[field])
        return path
