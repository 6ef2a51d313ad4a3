"""Shared fixtures: fixture models, a real S3-compatible server (moto in server mode)."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from model_store import ModelStore
from tests.fixtures.onnx_models import constant_model, fixture_config, yolov5_output, yolov8_output

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config) -> None:
    # The Ctrl-C tests send SIGINT to `trapline serve` as a user at a terminal would. Run in the background
    # by a non-interactive shell (`make test &`, nohup), pytest starts with SIGINT ignored and its children
    # inherit that, so the service would rightly ignore the Ctrl-C and the tests would wait in vain.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # `trapline reprocess` sends its images through a running `trapline serve` it finds on record: the suite's
    # commands see only the services the suite itself starts, never the developer's own.
    import tempfile

    os.environ["TRAPLINE_STATE_DIR"] = tempfile.mkdtemp(prefix="trapline-state-")
    # The slowest steps' allowances (tests/budget.yaml): a step far over its own is named in the run's summary.
    from tests.budget import register

    register(config)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """Where the browser tests save their screenshots: a temp dir, so a test run leaves the repository as it was;
    `make screenshots` sets TRAPLINE_SCREENSHOTS to docs/, whose console pictures the README and the docs show."""
    where = os.environ.get("TRAPLINE_SCREENSHOTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        return Path(where)
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="session")
def fixture_models(tmp_path_factory) -> dict[str, Path]:
    """Constant-output ONNX files in both YOLO layouts."""
    d = tmp_path_factory.mktemp("fixture-models")
    return {
        "yolov8": constant_model(yolov8_output(), d / "yolov8.onnx"),
        "yolov5": constant_model(yolov5_output(), d / "yolov5.onnx"),
    }


@pytest.fixture(scope="session")
def colour_onnx(tmp_path_factory) -> Path:
    """The colour classifier (tests/fixtures/classifiers.py) as a real ONNX file exported from torch."""
    from tests.fixtures.classifiers import colour_classifier

    return colour_classifier(tmp_path_factory.mktemp("classifier") / "colour.onnx")


@pytest.fixture
def local_store(tmp_path, fixture_models) -> ModelStore:
    """A fresh local store holding `fixture:1` (yolov8 layout) and `fixture:2` (yolov5 layout)."""
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.publish(fixture_models["yolov5"], "fixture", "2", fixture_config("yolov5"))
    return store


@pytest.fixture(scope="session")
def promoted_store(tmp_path_factory, fixture_models) -> Callable[[str], ModelStore]:
    """`promoted_store(name)`: a new local store under a fresh temp dir holding `fixture:1` (yolov8 layout),
    promoted to production: what a module that serves the fixture model starts from."""
    def make(name: str) -> ModelStore:
        root = tmp_path_factory.mktemp(name)
        store = ModelStore(str(root / "store"), cache_dir=str(root / "cache"))
        store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
        store.promote("fixture:1")
        return store

    return make


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3-compatible HTTP server on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "TRAPLINE_S3_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL": endpoint}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A new empty bucket on the S3 server; yields `s3://<bucket>`."""
    import uuid

    import boto3

    name = f"trapline-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket=name)
    return f"s3://{name}"
