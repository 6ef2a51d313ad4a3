"""Stopping a forward pass in flight (model_store.core.backends.Interrupt), on real ONNX Runtime sessions.

The Serve replica preempts an archive batch with it when an online request arrives; what matters is
that the pass really stops early, that the caller can tell a stop from a failure, and that running
the same inputs again gives the same records.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from model_store import Interrupt, ModelRunError, ModelStore, RunInterruptedError
from model_store.core.backends import run_chunked
from model_store.core.imaging import DEFAULT_MAX_PIXELS
from tests.fixtures.parity import IMAGES, image_names, reference_store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    return reference_store(tmp_path_factory.mktemp("interrupt"))


def _prepared(det, n: int):
    names = image_names()
    pairs = [det.prepare_bytes((IMAGES / names[i % len(names)]).read_bytes(), DEFAULT_MAX_PIXELS) for i in range(n)]
    return [p for p, _ in pairs], [m for _, m in pairs]


def _request_after(interrupt: Interrupt, seconds: float) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), interrupt.request()))
    thread.start()
    return thread


def test_hooks_run_once_when_requested_and_at_once_when_added_late():
    calls = []
    interrupt = Interrupt()
    interrupt.on_request(lambda: calls.append("early"))
    assert not interrupt.requested and calls == []
    interrupt.request()
    interrupt.request()
    interrupt.on_request(lambda: calls.append("late"))
    assert interrupt.requested and calls == ["early", "late"]


def test_onnx_runtime_honours_the_terminate_flag_of_a_requested_interrupt(store):
    det = store.load_detector("yolov8n_dynamic:1")
    interrupt = Interrupt()
    interrupt.request()
    tensor = np.zeros((1, 3, 640, 640), np.float32)
    with pytest.raises(RunInterruptedError) as caught:
        det.backend.run(tensor, interrupt)
    assert "terminate flag" in str(caught.value.__cause__)  # ORT's own answer: the flag reached the session
    assert det.backend.run(tensor).shape[0] == 1  # the session itself is unharmed


@pytest.mark.parametrize("name", ["yolov8n_dynamic", "yolov8n_static"])  # one pass of 6; six chunked passes
def test_an_interrupt_stops_the_batch_early_and_the_rerun_matches_an_uninterrupted_run(store, name):
    det = store.load_detector(f"{name}:1")
    prepared, metas = _prepared(det, 6)
    det.run_prepared(prepared[:1], metas[:1])  # warm
    t0 = time.perf_counter()
    expected = det.run_prepared(prepared, metas)
    full_s = time.perf_counter() - t0

    interrupt = Interrupt()
    thread = _request_after(interrupt, full_s / 6)
    t0 = time.perf_counter()
    with pytest.raises(RunInterruptedError, match=f"{name}:1 was interrupted") as caught:
        det.run_prepared(prepared, metas, interrupt=interrupt)
    stopped_s = time.perf_counter() - t0
    thread.join()
    assert not isinstance(caught.value, ModelRunError)  # a stop, not a failure of the model
    assert stopped_s < full_s * 0.75, (stopped_s, full_s)  # the remaining work was skipped, not finished

    again = det.run_prepared(prepared, metas, interrupt=Interrupt())
    assert [r.model_dump(exclude={"timing_ms"}) for r in again] == \
        [r.model_dump(exclude={"timing_ms"}) for r in expected]


def test_an_interrupt_requested_before_the_pass_runs_nothing(store):
    det = store.load_detector("yolov8n_dynamic:1")
    prepared, metas = _prepared(det, 1)
    interrupt = Interrupt()
    interrupt.request()
    with pytest.raises(RunInterruptedError, match="before it started"):
        det.run_prepared(prepared, metas, interrupt=interrupt)


class _Failing:
    """A backend that fails on its own while an interrupt is requested: a model error, not a stop."""

    fixed_batch = None
    interruptible = True
    device = "cpu"

    def __init__(self, interrupt: Interrupt) -> None:
        self.interrupt = interrupt

    def expects(self) -> str:
        return "anything"

    def run(self, batch, interrupt=None):
        self.interrupt.request()
        raise ValueError("shape mismatch in node 7")


def test_a_model_error_during_a_preemption_is_reported_as_the_model_error():
    interrupt = Interrupt()
    with pytest.raises(ModelRunError, match="shape mismatch in node 7"):
        run_chunked(_Failing(interrupt), np.zeros((1, 3, 8, 8), np.float32), "m:1", interrupt)
    assert interrupt.requested

