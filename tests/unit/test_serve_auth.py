"""serve/auth.py and serve/api_errors.py on their own: the token checks and the error mapping, without Ray or HTTP."""

from __future__ import annotations

import asyncio

import pytest
from ray.exceptions import ActorDiedError
from ray.serve.exceptions import BackPressureError

from ground.errors import (
    ForbiddenError,
    InvalidParameterError,
    NotReadyError,
    OverloadedError,
    UnauthorizedError,
    VersionRefusedError,
)
from serve.api_errors import await_replica, store_call
from serve.auth import Tokens, bearer_ok, token_digest

ADMIN, API = "admin-secret", "api-secret"


def test_bearer_ok_takes_only_a_bearer_header_with_the_token():
    digest = token_digest(ADMIN)
    assert token_digest(None) is None and token_digest("") is None
    assert bearer_ok(f"Bearer {ADMIN}", digest) and bearer_ok(f"bearer  {ADMIN} ", digest)
    assert not bearer_ok(f"Basic {ADMIN}", digest) and not bearer_ok("Bearer ", digest)
    assert not bearer_ok(f"Bearer {ADMIN}x", digest) and not bearer_ok(None, digest)
    assert not bearer_ok(f"Bearer {ADMIN}", None)


def test_api_check_passes_either_token_and_admin_check_only_the_admin_token():
    tokens = Tokens(token_digest(ADMIN), token_digest(API), "TRAPLINE_ADMIN_TOKEN")
    tokens.check_api(f"Bearer {API}")
    tokens.check_api(f"Bearer {ADMIN}")  # the console holds one token
    tokens.check_admin(f"Bearer {ADMIN}")
    with pytest.raises(UnauthorizedError) as info:
        tokens.check_api("Bearer nope")
    assert info.value.headers == {"WWW-Authenticate": "Bearer"}
    with pytest.raises(ForbiddenError):  # the API token's person is a reader: known, and not allowed
        tokens.check_admin(f"Bearer {API}")
    Tokens(token_digest(ADMIN), None, "X").check_api(None)  # no API token: the door is open


def test_without_an_admin_token_admin_routes_are_forbidden_and_say_which_variable():
    tokens = Tokens(None, None, "TRAPLINE_ADMIN_TOKEN")
    assert not tokens.admin_enabled
    with pytest.raises(ForbiddenError, match=r"\$TRAPLINE_ADMIN_TOKEN"):
        tokens.check_admin(f"Bearer {ADMIN}")


def test_link_key_changes_with_either_token():
    key = Tokens(token_digest(ADMIN), token_digest(API), "X").link_key()
    assert key == Tokens(token_digest(ADMIN), token_digest(API), "Y").link_key()
    assert key != Tokens(token_digest(ADMIN), token_digest("other"), "X").link_key()
    assert key != Tokens(token_digest("other"), token_digest(API), "X").link_key()


async def _raise(exc: BaseException):
    raise exc


@pytest.mark.parametrize("raised, expected", [
    (BackPressureError(num_queued_requests=3, max_queued_requests=2), OverloadedError),
    (ActorDiedError(), NotReadyError),  # the replica died with the request on it: retry, not 500
])
def test_replica_failures_become_503_with_retry_after(raised, expected):
    with pytest.raises(expected) as info:
        asyncio.run(await_replica(_raise(raised), {"Retry-After": "2"}))
    assert info.value.status == 503 and info.value.headers == {"Retry-After": "2"}


def test_unknown_replica_failures_pass_through_and_answers_come_back():
    assert asyncio.run(await_replica(asyncio.sleep(0, result=7), {})) == 7
    with pytest.raises(KeyError):
        asyncio.run(await_replica(_raise(KeyError("x")), {}))


def test_store_errors_become_typed_api_errors():
    from model_store import ConfigError

    def bad_config():
        raise ConfigError("config.json does not validate")

    def bad_value():
        raise ValueError("alias 'a b' is not a valid name")

    with pytest.raises(VersionRefusedError):
        asyncio.run(store_call(bad_config))
    with pytest.raises(InvalidParameterError, match="not a valid name"):
        asyncio.run(store_call(bad_value))
    assert asyncio.run(store_call(lambda x: x + 1, 1)) == 2


def test_a_service_of_people_alone_keys_its_links_with_the_registrys_secret(tmp_path):
    """Without an admin or API token the digests give no secret: the registry's link secret keys the links, the
    same for every replica reading that registry, and made only when first needed."""
    from serve.people import LINK_SECRET_FILE, PeopleView

    views = [PeopleView(str(tmp_path), refresh_s=60) for _ in range(2)]
    try:
        assert not (tmp_path / LINK_SECRET_FILE).exists()
        keys = [Tokens(None, None, "X", v).link_key() for v in views]
        assert keys[0] == keys[1] != Tokens(None, None, "X").link_key()
        assert Tokens(token_digest(ADMIN), None, "X", views[0]).link_key() == Tokens(token_digest(ADMIN), None,
                                                                                     "X").link_key()
    finally:
        for v in views:
            v.close()


def test_refusals_name_each_role_with_its_article(tmp_path):
    """403: "ana is an operator; this needs an admin or above" (not "a operator", "a admin"); 401 likewise."""
    from serve.people import PeopleRegistry, PeopleView
    from serve.roles import Role

    assert [r.a for r in Role] == ["a reader", "a reviewer", "an operator", "an admin"]
    token = PeopleRegistry(str(tmp_path)).add("ana", "operator")
    view = PeopleView(str(tmp_path), refresh_s=60)
    try:
        tokens = Tokens(token_digest(ADMIN), None, "TRAPLINE_ADMIN_TOKEN", view)
        with pytest.raises(ForbiddenError) as refused:
            tokens.authorize(f"Bearer {token}", Role.admin)
        assert refused.value.message.startswith("ana is an operator; this needs an admin or above")
        with pytest.raises(UnauthorizedError, match="of an operator or above"):
            tokens.authorize(None, Role.operator)
    finally:
        view.close()
