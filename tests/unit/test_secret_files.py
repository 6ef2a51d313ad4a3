"""Secrets from files: each token variable is also read from the file `NAME_FILE` names (compose `secrets:`,
Kubernetes Secrets mounted as files), by the service (build_app), `trapline jobs` and `trapline antenna work`."""

from __future__ import annotations

import pytest

from ground import env
from ground.errors import ServeConfigError, UserError
from serve.auth import token_digest


def test_a_token_from_its_file(tmp_path):
    (tmp_path / "admin").write_text("s3cret\n")
    assert env.secret("TOKEN", {"TOKEN_FILE": str(tmp_path / "admin")}) == "s3cret"  # the newline is no part of it
    assert env.secret("TOKEN", {"TOKEN": "plain"}) == "plain"
    assert env.secret("TOKEN", {}) is None and env.secret("TOKEN", {"TOKEN": "", "TOKEN_FILE": ""}) is None
    assert env.ADMIN_TOKEN.secret({"TRAPLINE_ADMIN_TOKEN_FILE": str(tmp_path / "admin")}) == "s3cret"
    with pytest.raises(ValueError, match="set one"):
        env.secret("TOKEN", {"TOKEN": "a", "TOKEN_FILE": str(tmp_path / "admin")})
    with pytest.raises(ValueError, match="cannot be read"):
        env.secret("TOKEN", {"TOKEN_FILE": str(tmp_path / "missing")})


def test_the_service_reads_its_tokens_from_files(tmp_path):
    from ray.serve._private.build_app import build_app as build_deployments

    from serve import APP_NAME
    from serve.app import build_app

    (tmp_path / "admin").write_text("the-admin-token\n")
    (tmp_path / "api").write_text("the-api-token")
    one = {"store": str(tmp_path), "models": [{"name": "fixture"}], "api_token_env": "MY_API_TOKEN"}
    files = {"TRAPLINE_ADMIN_TOKEN_FILE": str(tmp_path / "admin"), "MY_API_TOKEN_FILE": str(tmp_path / "api")}
    built = repr([(d.init_args, d.init_kwargs) for d in
                  build_deployments(build_app(one, environ=files), name=APP_NAME).deployments])
    assert token_digest("the-admin-token") in built and token_digest("the-api-token") in built
    assert "the-admin-token" not in built  # digests only, as from the variables
    with pytest.raises(ServeConfigError, match="MY_API_TOKEN_FILE"):
        build_app(one, environ={})
    with pytest.raises(ServeConfigError, match="set one"):
        build_app(one, environ={**files, "TRAPLINE_ADMIN_TOKEN": "x"})


def test_the_clients_read_theirs_from_files(tmp_path, monkeypatch):
    from serve.antenna.worker import Worker
    from serve.antenna_config import AntennaWorkOptions

    (tmp_path / "antenna").write_text("tok")
    monkeypatch.setenv("ANTENNA_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(UserError, match="cannot be read"):
        Worker(AntennaWorkOptions(api="http://127.0.0.1:9/api/v2", project=1, service="http://127.0.0.1:9"))
    monkeypatch.delenv("ANTENNA_TOKEN_FILE")
    with pytest.raises(UserError, match="ANTENNA_TOKEN_FILE"):
        Worker(AntennaWorkOptions(api="http://127.0.0.1:9/api/v2", project=1, service="http://127.0.0.1:9"))
