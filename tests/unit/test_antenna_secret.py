"""The Antenna door's shared secret without Ray: what a header presents, and a secret named but unset refused where
the app is built (the door over real HTTP: tests/integration/test_antenna_door.py)."""

from __future__ import annotations

import base64
from urllib.parse import urljoin

import pytest
import requests

from serve.antenna.secret import presented_secret, secret_ok
from serve.app import antenna_secret_of
from serve.auth import token_digest
from serve.config import ServeConfig, ServeConfigError


def basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(("header", "presented"), [
    (None, None), ("", None), ("Bearer s3cret", "s3cret"), ("bearer  s3cret ", "s3cret"),
    (basic("antenna:s3cret"), "s3cret"), (basic("anyone:s:with:colons"), "s:with:colons"),
    (basic("antenna:"), None), (basic("no-colon"), None), ("Basic !!not-base64", None), ("Token s3cret", None),
])
def test_what_a_header_presents(header, presented):
    assert presented_secret(header) == presented


def test_what_antenna_sends_for_an_endpoint_url_with_user_info_is_the_secret():
    """Antenna's call, as its backend makes it (ami/ml/models/pipeline.py: a requests Session posts to
    `urljoin(endpoint_url, "/process")`): the URL's user info arrives as the Basic password."""
    prepared = requests.Session().prepare_request(requests.Request(
        "POST", urljoin("http://antenna:s3cret-_.~@127.0.0.1:8001/", "/process"), json={}))
    assert prepared.url == "http://antenna:s3cret-_.~@127.0.0.1:8001/process"  # urljoin keeps the user info
    assert secret_ok(prepared.headers["Authorization"], token_digest("s3cret-_.~"))
    assert not secret_ok(prepared.headers["Authorization"], token_digest("other"))


def config(secret_env: str | None) -> ServeConfig:
    return ServeConfig.model_validate({"models": [{"name": "det"}], "antenna": {
        "secret_env": secret_env, "pipelines": [{"slug": "p", "detector": "det"}]}})


def test_a_secret_named_must_be_set_and_none_named_is_an_open_door(tmp_path):
    assert antenna_secret_of(config(None), {"TRAPLINE_ANTENNA_SECRET": "unused"}) is None
    assert antenna_secret_of(config("DOOR"), {"DOOR": "s3cret"}) == "s3cret"
    (tmp_path / "secret").write_text("from-file\n")
    assert antenna_secret_of(config("DOOR"), {"DOOR_FILE": str(tmp_path / "secret")}) == "from-file"
    with pytest.raises(ServeConfigError, match=r"antenna.secret_env names \$DOOR, which is not set .*refusing"):
        antenna_secret_of(config("DOOR"), {})
    with pytest.raises(ServeConfigError, match=r"both \$DOOR and \$DOOR_FILE are set"):
        antenna_secret_of(config("DOOR"), {"DOOR": "a", "DOOR_FILE": str(tmp_path / "secret")})


def test_the_pull_worker_sends_the_doors_secret_as_bearer_when_it_is_set(monkeypatch):
    from serve.antenna.worker import Worker  # late: as the command does
    from serve.antenna_config import AntennaWorkOptions

    def worker(**given) -> Worker:
        return Worker(AntennaWorkOptions(api="http://127.0.0.1:9/api/v2", project=1, token="t", batch_size=1,
                                         service="http://127.0.0.1:9", **given))

    monkeypatch.delenv("TRAPLINE_ANTENNA_SECRET", raising=False)
    assert "authorization" not in worker().door.client.headers
    monkeypatch.setenv("TRAPLINE_ANTENNA_SECRET", "s3cret")
    assert worker().door.client.headers["authorization"] == "Bearer s3cret"
    assert worker().antenna.client.headers["authorization"] == "Token t"  # Antenna's own token, not the door's
    monkeypatch.setenv("DOOR", "other")
    assert worker(service_secret_env="DOOR").door.client.headers["authorization"] == "Bearer other"
