"""The token checks of the online door: who a request's token names, and whether their role may do what it asks.

The ingress core (serve/ingress.py) holds one `Tokens` and answers `authorize(authorization, role)` with it; the routes
reach that through the role dependencies in serve/deps.py. Only sha256 digests are kept: `build_app` reads the admin
and API tokens from the environment and passes their digests, and the people registry (serve/people.py) holds only
its people's digests, so a token never travels in the config. A token is read from the `Authorization: Bearer`
header alone, never from a query string (which lands in logs and browser history).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from ground.errors import ForbiddenError, UnauthorizedError
from serve.people import PeopleView
from serve.roles import ADMIN_TOKEN_PERSON, API_TOKEN_PERSON, OPEN, Person, Role

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def token_digest(token: str | None) -> str | None:
    """sha256 hex of a token: the ingress keeps and compares digests, never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def bearer_ok(authorization: str | None, digest: str | None) -> bool:
    """Constant-time check of an `Authorization: Bearer <token>` header against a token digest."""
    token = bearer_token(authorization)
    if not digest or token is None:
        return False
    return hmac.compare_digest(token_digest(token), digest)


@dataclass
class Tokens:
    """The digests one ingress replica checks requests against, and its view of the people registry (None: the
    service has no people, only its two tokens). `admin_token_env` names the variable in messages."""

    admin_digest: str | None
    api_digest: str | None
    admin_token_env: str
    people: PeopleView | None = None

    @property
    def admin_enabled(self) -> bool:
        return bool(self.admin_digest) or (self.people is not None and self.people.anyone)

    def person(self, authorization: str | None) -> Person | None:
        """Who the header's token names, or None (no token, or no token of this service)."""
        token = bearer_token(authorization)
        if token is None:
            return None
        digest = token_digest(token)
        # the service's own two: compared in constant time, as before people existed
        if self.admin_digest and hmac.compare_digest(digest, self.admin_digest):
            return ADMIN_TOKEN_PERSON
        if self.api_digest and hmac.compare_digest(digest, self.api_digest):
            return API_TOKEN_PERSON
        return self.people.person(digest) if self.people is not None else None

    def authorize(self, authorization: str | None, role: Role) -> Person:
        """The person the header names when their role is at least `role`; else 401 (no such token) or 403."""
        person = self.person(authorization)
        if person is None:
            if role == Role.reader and not self.api_digest and not (self.people is not None and self.people.anyone):
                return OPEN  # no API token and nobody registered: reads are open, as they always were
            if role > Role.reader and not self.admin_enabled:
                raise ForbiddenError(f"{role.name} routes are disabled: set ${self.admin_token_env} where the app is "
                                     "built, or register people (`trapline people add`)")
            raise UnauthorizedError(f"this route needs `Authorization: Bearer <token>` of {role.a} or above",
                                    headers=_CHALLENGE)
        if person.role < role:
            raise ForbiddenError(f"{person.name} is {person.role.a}; this needs {role.a} or above",
                                 person=person.name, role=person.role.name, needed=role.name)
        if self.people is not None and person.personal:
            self.people.touch(person)
        return person

    def check_api(self, authorization: str | None) -> None:
        """Pass when the service has no API token, or the header holds any token of a reader or above."""
        self.authorize(authorization, Role.reader)

    def check_admin(self, authorization: str | None) -> None:
        self.authorize(authorization, Role.admin)

    def link_key(self) -> bytes:
        """The key that signs the console's report links: derived from the token digests, so every replica has
        it, and a new admin or API token voids the links signed under the old one. (People's tokens do not enter
        it: adding or revoking a person voids nobody's links.)"""
        material = f"trapline report links\n{self.api_digest or ''}\n{self.admin_digest or ''}".encode()
        if self.api_digest or self.admin_digest or self.people is None:
            return hashlib.sha256(material).digest()
        # no token of its own: a service of people alone keys its links with the registry's secret (the digests of
        # nothing would be a key anyone could compute)
        return hashlib.sha256(material + b"\n" + self.people.link_secret()).digest()
