"""One error root with stable codes, mapped once by the CLI and once by the HTTP layer."""

from __future__ import annotations

import pytest

import ground.errors
from ground.errors import BatchError, StorageError, TraplineError, UserError
from ground.ray_runtime import RayUnreachableError
from model_store import (
    ChecksumError,
    ConfigError,
    FilterConfigError,
    ImageDecodeError,
    InvalidRefError,
    ModelLoadError,
    ModelRunError,
    NotFoundError,
    StoreError,
)
from model_store.tables.lease import LeaseHeldError
from serve.local import ServeStartError
from serve.protocol import core_error, load_error_kind
from serve.versions import ModelUnavailableError
from trapline.cli import main

ALL = [UserError, StoreError, NotFoundError, ChecksumError, StorageError, ConfigError, FilterConfigError,
       InvalidRefError, ImageDecodeError, ModelLoadError, ModelRunError, BatchError, RayUnreachableError,
       ServeStartError, ModelUnavailableError]


def test_every_error_a_user_sees_has_a_documented_stable_code():
    """Defined in ground/errors.py (the generated error reference lists exactly those classes), documented."""
    for cls in ALL:
        assert issubclass(cls, TraplineError) and cls.code != "error", cls
        assert cls.__module__ == ground.errors.__name__ and cls.__dict__.get("__doc__"), cls
    assert len({cls.code for cls in ALL}) == len(ALL)
    assert issubclass(LeaseHeldError, BatchError) and issubclass(InvalidRefError, ValueError)  # old catches still work


@pytest.mark.parametrize("exc, status, kind", [
    (NotFoundError("no model 'x'"), 404, "not_found"),
    (FilterConfigError("min_size: bad"), 422, "invalid_filter"),
    (InvalidRefError("bad ref"), 422, "invalid_parameter"),
    (ModelRunError("model m:1 failed on an input of shape [1, 3, 9, 9]"), 500, "model_error"),
    (ImageDecodeError("empty", "empty body"), 400, "invalid_image"),
    (ImageDecodeError("truncated", "cut short"), 422, "invalid_image"),
])
def test_http_maps_codes_to_statuses(exc, status, kind):
    api = core_error(exc)
    assert (api.status, api.type, api.message) == (status, kind, str(exc))


def test_errors_that_are_not_the_clients_fault_are_not_mapped():
    assert core_error(RuntimeError("boom")) is None and core_error(ChecksumError("sha")) is None
    assert load_error_kind(ChecksumError("x")) == "checksum_mismatch"
    assert load_error_kind(NotFoundError("x")) == "weights_missing" and load_error_kind(OSError()) == "load_failed"


def test_cli_prints_one_line_and_exits_2_for_every_trapline_error(capsys, tmp_path):
    assert main(["models", "show", "nope:1", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "nope" in err


def _subclasses(cls: type) -> list[type]:
    return [cls, *(c for sub in cls.__subclasses__() for c in _subclasses(sub))]


def test_no_http_error_is_a_twin_of_a_core_error():
    """A request-only error never repeats a core error's code: the core error carries its HTTP status itself."""
    http = {cls.code for cls in _subclasses(ground.errors.HttpError)}
    core = {cls.code for cls in _subclasses(TraplineError) if not issubclass(cls, ground.errors.HttpError)}
    assert not http & core, http & core
    assert ground.errors.QuantizeRefusedError.__module__ == "ground.errors"
