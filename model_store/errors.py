"""Errors of the model store; each message says what is wrong and what to do."""

from __future__ import annotations

from trapline.errors import TraplineError


class StoreError(TraplineError, RuntimeError):
    """A store operation that cannot be done; the message says why and what to do."""

    code = "store_error"


class NotFoundError(StoreError, LookupError):
    """A model, version or alias that the store does not hold."""

    code = "not_found"


class ChecksumError(StoreError):
    """Weights whose sha256 does not match config.json; they are never loaded."""

    code = "checksum_mismatch"


class StorageError(StoreError):
    """The store root cannot be read or written safely (unreachable, refused path)."""

    code = "storage_error"
