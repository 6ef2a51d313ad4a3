"""The one way to get a `Storage` for a location (tables, an archive, an output directory): what to call, and when.

- `storage_for(where)`: where a command or route starts, and in anything that is handed "the tables" (a
  `DecisionsLog`, a `DeploymentsTable`, `TimeBook.load`, `Tables`). A `Storage` passed in is used as it is, so the
  tables opened once at the door travel as the opened thing; a URL is opened by `open_location`, which makes a local
  directory absolute, honours TRAPLINE_S3_ENDPOINT_URL for s3:// and refuses any other scheme (`ArchiveError`).
- `cached_location(url)`: only where caching is the point, a location opened again and again in one process (a
  picture read by its path, row after row; the archive a Ray task reads): one `Storage` per URL per process.

Never `Storage(url)` itself: it skips those checks (tests/unit/test_storage_opening.py finds such calls). The
model store is the one exception: `ModelStore` builds its own, with the storage options it is given.
`open_location` and `cached_location` still live in model_store/tables/archive.py (re-exported here).
"""

from __future__ import annotations

from ground.storage import Storage
from model_store.tables.archive import cached_location, open_location

__all__ = ["cached_location", "open_location", "storage_for"]


def storage_for(where: str | Storage) -> Storage:
    """`where` as a Storage: one passed in as it is (no second open), a URL through `open_location`."""
    return where if isinstance(where, Storage) else open_location(where)
