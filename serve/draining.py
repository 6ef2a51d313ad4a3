"""The graceful stop of an HTTP replica: from the stop on, every new request gets the typed 503 + Retry-After that
says "retry shortly" (a client or a balancer retries it elsewhere), while the requests already inside are answered.

`trapline serve` closes the gate of every replica that handles HTTP (serve/stopping.py, `drain_app`) before Serve's
proxy goes: without it, a request that came in between the app's removal and the proxy's end got Serve's own
404 ("Path not found"), which a client takes for a wrong URL, not for a service on its way out.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import FastAPI, Request

from ground.errors import NotReadyError
from serve.bodies import error_response

DRAIN_POLL_S = 0.05


class Gate:
    """Counts the HTTP requests inside a replica and, once closed, turns new ones away (see the module)."""

    def __init__(self, retry_after_s: int) -> None:
        self.retry_after = {"Retry-After": str(retry_after_s)}
        self.closed = False
        self.inside = 0

    def attach(self, app: FastAPI) -> None:
        """Wrap `app`: added last, so it runs before any route, feature or other middleware."""
        app.add_middleware(GateMiddleware, gate=self)

    async def close(self, timeout_s: float) -> int:
        """Refuse new requests from now on; return once those inside are answered (or after `timeout_s`) with how
        many were inside when it closed."""
        self.closed = True
        held = self.inside
        deadline = time.monotonic() + timeout_s
        while self.inside and time.monotonic() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
        return held

    def refusal(self) -> NotReadyError:
        return NotReadyError("the service is shutting down; retry shortly (another instance, or this one once it "
                             "is back, takes the request)", headers=self.retry_after)


class GateMiddleware:
    """Pure ASGI (not BaseHTTPMiddleware): a request is counted until its response is sent, body included."""

    def __init__(self, app: Any, gate: Gate) -> None:
        self.app, self.gate = app, gate

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.gate.closed:
            await error_response(self.gate.refusal(), Request(scope))(scope, receive, send)
            return
        self.gate.inside += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.gate.inside -= 1
