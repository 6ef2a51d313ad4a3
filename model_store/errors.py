"""Errors of the model store; each message says what is wrong and what to do."""

from __future__ import annotations


class StoreError(RuntimeError):
    """A store operation that cannot be done; the message says why and what to do."""


class NotFoundError(StoreError, LookupError):
    """A model, version or alias that the store does not hold."""


class ChecksumError(StoreError):
    """Weights whose sha256 does not match config.json; they are never loaded."""


class StorageError(StoreError):
    """The store root cannot be read or written safely (unreachable, refused path)."""
