"""Errors a user can fix (bad options, missing archive, unreachable service): printed as `error: ...`, exit 2."""

from __future__ import annotations

from trapline.errors import UserError


class BatchError(UserError, ValueError):
    """A batch command cannot run as asked; the message says why and what to change."""

    code = "batch_error"
