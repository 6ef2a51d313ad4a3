"""Warm-up is one forward pass, whatever the batcher's sizes: a replica loading a version, a batch actor starting.

Real exports and real ONNX Runtime sessions; the backend's `run` is wrapped only to record the input shapes it
is given (each call is one forward pass). No Ray.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from batch.reprocess.actor_settings import DetectorSettings
from batch.reprocess.detect import DetectorActor
from model_store import ModelRef, ModelStore
from model_store.core.backends.onnx_runtime import OnnxBackend
from serve.config import ModelRuntimeConfig
from serve.versions import VersionManager
from tests.fixtures.onnx_models import constant_model, fixture_config, yolov8_output

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    d = tmp_path_factory.mktemp("warmup")
    s = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    s.publish(REFERENCE / "trained_demo_yolov8.onnx", "static1", "1")  # Ultralytics' defaults: batch 1, 320
    s.publish(REFERENCE / "yolov8n_dynamic.onnx", "dynamic", "1")  # dynamic=True: any batch, rect letterbox
    s.publish(constant_model(yolov8_output(), d / "b4.onnx", batch=4), "static4", "1", fixture_config("yolov8"))
    for name in ("static1", "dynamic", "static4"):
        s.promote(f"{name}:1")
    return s


@pytest.fixture
def passes(monkeypatch) -> list[tuple[int, ...]]:
    """The input shape of every forward pass ONNX Runtime runs in this test."""
    shapes: list[tuple[int, ...]] = []
    run = OnnxBackend.run

    def recording(self, batch: np.ndarray, interrupt=None) -> np.ndarray:
        shapes.append(tuple(batch.shape))
        return run(self, batch, interrupt)

    monkeypatch.setattr(OnnxBackend, "run", recording)
    return shapes


WARM_SHAPES = {"static1": (1, 3, 320, 320), "dynamic": (1, 3, 640, 640), "static4": (4, 3, 320, 320)}


@pytest.mark.parametrize("name", sorted(WARM_SHAPES))
def test_a_replica_warms_a_version_with_one_pass_whatever_its_batch_sizes(store, passes, name):
    vm = VersionManager(store, name, lambda v: store.load_detector(ModelRef(name, version=v), threads=1))
    vm.configure(ModelRuntimeConfig(max_batch_size=16, bulk_max_batch_size=16))
    vm.refresh(initial=True)
    assert vm.lookup().version == "1"
    # Was: a pass at 1, one at max_batch_size (16 chunks of a batch-1 graph) and a check: 18 passes.
    assert passes == [WARM_SHAPES[name]]


@pytest.mark.parametrize("name", ["static1", "dynamic"])
def test_a_batch_actor_warms_once_when_it_starts(store, passes, name):
    DetectorActor(DetectorSettings(store.root, f"{name}:1", [], threads=1))  # was: no pass (the first batch paid it)
    assert passes == [WARM_SHAPES[name]]
