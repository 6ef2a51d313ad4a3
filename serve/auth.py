"""The token checks of the online door: digests of the admin and API tokens, compared in constant time.

The ingress core (serve/ingress.py) holds one `Tokens` and answers `check_api_token` / `check_admin_token` /
`link_key` with it; the routes reach those through the dependencies in serve/deps.py. Only sha256 digests are kept:
`build_app` reads the tokens from the environment and passes their digests, so a token never travels in the config.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from trapline.base.errors import ForbiddenError, UnauthorizedError


def token_digest(token: str | None) -> str | None:
    """sha256 hex of a token: the ingress keeps and compares digests, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def bearer_ok(authorization: str | None, digest: str | None) -> bool:
    """Constant-time check of an `Authorization: Bearer <token>` header against a token digest."""
    if not digest or not authorization:
        return False
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return False
    return hmac.compare_digest(token_digest(token.strip()), digest)


@dataclass(frozen=True)
class Tokens:
    """The digests one ingress replica checks requests against; `admin_token_env` names the variable in messages."""

    admin_digest: str | None
    api_digest: str | None
    admin_token_env: str

    @property
    def admin_enabled(self) -> bool:
        return bool(self.admin_digest)

    def check_api(self, authorization: str | None) -> None:
        """Pass when the service has no API token, or the header holds it (or the admin token)."""
        # The admin token reads too (the console and `trapline jobs` hold one token).
        if self.api_digest and not bearer_ok(authorization, self.api_digest) \
                and not bearer_ok(authorization, self.admin_digest):
            raise UnauthorizedError("this service needs `Authorization: Bearer <token>`",
                                    headers={"WWW-Authenticate": "Bearer"})

    def check_admin(self, authorization: str | None) -> None:
        """Pass when the header holds the admin token; without one, admin routes are disabled (403)."""
        if not self.admin_digest:
            raise ForbiddenError(
                f"admin routes are disabled: set ${self.admin_token_env} where the app is built")
        if not bearer_ok(authorization, self.admin_digest):
            raise UnauthorizedError("admin routes need `Authorization: Bearer <admin token>`",
                                    headers={"WWW-Authenticate": "Bearer"})

    def link_key(self) -> bytes:
        """The key that signs the console's report links: derived from the token digests, so every replica has
        it, and a new token voids the links signed under the old one."""
        material = f"trapline report links\n{self.api_digest or ''}\n{self.admin_digest or ''}"
        return hashlib.sha256(material.encode()).digest()
