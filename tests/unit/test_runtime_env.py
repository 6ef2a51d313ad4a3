"""The environment a local Ray is started with (`ensure_ray(env=...)`): trapline's own Ray switches unless the user
set them, the caller's `env`, and none of it left in the caller's environment."""

from __future__ import annotations

import os

from ground.ray_runtime import LOCAL_RAY_ENV, _environ, local_ray_env

KEEP_IDLE = "RAY_idle_worker_killing_time_threshold_ms"


def test_env_is_set_for_the_start_and_put_back_after(monkeypatch):
    monkeypatch.setenv("TRAPLINE_T_KEPT", "before")
    monkeypatch.delenv("TRAPLINE_T_NEW", raising=False)
    with _environ({"TRAPLINE_T_KEPT": "during", "TRAPLINE_T_NEW": "1"}):
        assert os.environ["TRAPLINE_T_KEPT"] == "during" and os.environ["TRAPLINE_T_NEW"] == "1"
    assert os.environ["TRAPLINE_T_KEPT"] == "before" and "TRAPLINE_T_NEW" not in os.environ


def test_a_local_ray_keeps_idle_workers_a_minute_unless_the_user_says_otherwise(monkeypatch):
    monkeypatch.delenv(KEEP_IDLE, raising=False)
    assert local_ray_env(None)[KEEP_IDLE] == LOCAL_RAY_ENV[KEEP_IDLE] == "60000"
    assert local_ray_env({KEEP_IDLE: "5000", "RAY_x": "1"}) == {KEEP_IDLE: "5000", "RAY_x": "1"}
    monkeypatch.setenv(KEEP_IDLE, "1000")  # the user's own setting is inherited as it is
    assert KEEP_IDLE not in local_ray_env(None)
