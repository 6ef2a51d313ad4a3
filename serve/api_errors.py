"""Failures of the replicas and the store, as typed API errors (each carries its HTTP status, ground/errors.py).

The ingress core (serve/ingress.py) awaits every handle call through `await_replica` and runs every blocking store
call through `store_call`, so a route never sees a Ray or Serve exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ray.exceptions import ActorUnavailableError, RayActorError
from ray.serve.exceptions import BackPressureError, DeploymentUnavailableError

from ground.errors import (
    InvalidParameterError,
    NotReadyError,
    OverloadedError,
    TraplineError,
    VersionRefusedError,
)
from serve.protocol import core_error, load_error_kind, unwrap_error

logger = logging.getLogger("ray.serve.trapline")

T = TypeVar("T")


async def await_replica(awaitable: Awaitable[T], retry_after: dict[str, str]) -> T:
    """Await a handle call; replica errors come back as typed API errors, overload as 503 with `retry_after`."""
    try:
        return await awaitable
    except BackPressureError as exc:
        raise OverloadedError(f"the model is at capacity ({exc}); retry shortly", headers=retry_after) from None
    except DeploymentUnavailableError as exc:
        raise NotReadyError(f"no replica can take the request: {exc}", headers=retry_after) from None
    except (RayActorError, ActorUnavailableError) as exc:
        # The replica died (or became unreachable) with this request on it: a transient server-side
        # fault that a retry fixes once Serve has replaced it, so 503 + Retry-After, not 500.
        logger.warning("replica lost while serving a request: %s", str(exc).splitlines()[0] if str(exc) else exc)
        raise NotReadyError("the replica handling this request stopped; retry shortly", headers=retry_after) from None
    except Exception as exc:  # noqa: BLE001 - map what the replica raised
        cause = unwrap_error(exc)
        api = core_error(cause)
        if api is not None:
            raise api from None
        if isinstance(cause, BackPressureError):
            raise OverloadedError(str(cause), headers=retry_after) from None
        raise


async def store_call(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking store call in a thread; its errors become API errors."""
    try:
        return await asyncio.to_thread(fn, *args)
    except TraplineError as exc:
        if exc.code in ("checksum_mismatch", "invalid_config"):
            raise VersionRefusedError(str(exc), reason=load_error_kind(exc)) from None
        # not_found -> 404; the rest (nothing to roll back to, an invalid alias) is a bad parameter
        raise (core_error(exc) or InvalidParameterError(str(exc))) from None
    except ValueError as exc:
        raise InvalidParameterError(str(exc)) from None
