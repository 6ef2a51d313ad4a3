"""The read side of recording: what `GET /v1/images/{id}` and `/v1/cameras` answer, read from storage (the
upload records, the journal and the tables through model_store/tables), never from a replica's memory, so every
replica answers alike and a restarted one forgets nothing. Blocking I/O: the routes run these on a thread."""

from __future__ import annotations

from typing import Any

from model_store.tables.browse import cameras, latest
from serve.recording.uploads import Uploads

__all__ = ["cameras", "image", "latest"]  # cameras and latest: the tables' browse reads, shared with the console


def image(uploads: Uploads, image_id: str) -> dict[str, Any] | None:
    """One recorded upload: where it is, when it was taken, its answer, its snips, and whether its rows are
    committed to the tables yet (`pending`: answered and journaled, in the tables after the next flush)."""
    found = uploads.read(image_id)
    if found is None:
        return None
    doc, state = found
    return {"image_id": doc.image_id, "camera": doc.camera, "status": doc.status, "state": state,
            "uri": doc.stored.uri, "sha256": doc.sha256,
            "capture_time": doc.capture_time, "capture_time_source": doc.capture_time_source,
            "received_at": doc.received_at, "model": doc.model, "filters_hash": doc.filters_hash,
            "answer": doc.answer, "snips": doc.snips}
