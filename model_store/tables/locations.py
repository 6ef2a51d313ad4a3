"""The one way to get a `Storage` for a location (tables, an archive, an output directory): what to call, and when.

- `open_location(url)`: where a command or route starts (the door). What it returns is what everything below is
  handed: `Tables(storage)`, `DecisionsLog(storage)`, `DeploymentsTable(storage)`, `TimeBook.load(storage)` take the
  opened location and nothing else, so the tables opened once at the door travel as the opened thing. It makes a
  local directory absolute, honours TRAPLINE_S3_ENDPOINT_URL for s3:// and refuses any other scheme (`ArchiveError`).
- `cached_location(url)`: only where caching is the point, a location opened again and again in one process (a
  picture read by its path, row after row; the archive a Ray task reads): one `Storage` per URL per process.

Never `Storage(url)` itself: it skips those checks (tests/unit/test_storage_opening.py finds such calls). The
model store is the one exception: `ModelStore` builds its own, with the storage options it is given.
`open_location` and `cached_location` still live in model_store/tables/archive.py (re-exported here).
"""

from __future__ import annotations

from ground.storage import Storage
from model_store.tables.archive import cached_location, open_location

__all__ = ["cached_location", "open_location", "opened"]


def opened(storage: Storage, holder: str) -> Storage:
    """`storage` if it is an opened location; a URL handed below the door is a programming error, said at once
    (not an AttributeError rows later)."""
    if not isinstance(storage, Storage):
        raise TypeError(f"{holder} takes the location the door opened, open_location(url), not {storage!r}")
    return storage
