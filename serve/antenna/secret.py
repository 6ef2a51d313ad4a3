"""The Antenna door's shared secret (`antenna.secret_env`): checked before any route runs, so a request without it
is answered 401 before its body is read, before an image is fetched or a row recorded.

What Antenna can send: its processing-service registration holds only `endpoint_url` (no header, no token field),
and its calls are `requests` posts to `urljoin(endpoint_url, "/process")` (also `readyz`, `info`). `urljoin` keeps
the URL's user info, and `requests` sends user info as `Authorization: Basic`, so an endpoint_url
`http://antenna:SECRET@HOST:8001` makes every call of Antenna's carry the secret as the Basic password (the user name
is not checked). `trapline antenna work`, and any other client, may send `Authorization: Bearer SECRET` instead.
Only the secret's sha256 digest reaches the replica (serve/app.py reads the secret where the app is built).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from ground.errors import UnauthorizedError
from serve.auth import bearer_token, token_digest

OPEN_PATHS = frozenset({"/livez", "/readyz"})  # probes (an orchestrator's, a balancer's): they say nothing private
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="trapline antenna door"'}


def presented_secret(authorization: str | None) -> str | None:
    """The secret an `Authorization` header carries: a Bearer token, or a Basic password; None without one."""
    token = bearer_token(authorization)
    if token is not None or not authorization:
        return token
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon and password else None


def secret_ok(authorization: str | None, digest: str) -> bool:
    presented = presented_secret(authorization)
    return presented is not None and hmac.compare_digest(token_digest(presented) or "", digest)


class SecretMiddleware:
    """Pure ASGI: a request to a route other than the probes without the secret gets the typed 401 at once."""

    def __init__(self, app: Any, digest: str) -> None:
        self.app, self.digest = app, digest

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1") or None
        if secret_ok(authorization, self.digest):
            await self.app(scope, receive, send)
            return
        said = "a wrong secret" if authorization else "no Authorization header"
        exc = UnauthorizedError(f"the Antenna door requires its shared secret (antenna.secret_env) and got {said}: "
                                "register the processing service's endpoint_url as http://antenna:SECRET@HOST:PORT, "
                                "or send `Authorization: Bearer SECRET`", headers=_CHALLENGE)
        # `detail` too, as the door's other errors: what Antenna puts in the job's log
        await JSONResponse({**exc.body(), "detail": exc.message}, status_code=401, headers=exc.headers)(
            scope, receive, send)


def require_secret(app: FastAPI, digest: str | None) -> None:
    """Guard `app` with the secret whose digest is given (None: the door is open, no check)."""
    if digest is not None:
        app.add_middleware(SecretMiddleware, digest=digest)
