"""The environment a local Ray is started with (`ensure_ray(env=...)`) does not leak into the caller's."""

from __future__ import annotations

import os

from trapline.ray_runtime import _environ


def test_env_is_set_for_the_start_and_put_back_after(monkeypatch):
    monkeypatch.setenv("TRAPLINE_T_KEPT", "before")
    monkeypatch.delenv("TRAPLINE_T_NEW", raising=False)
    with _environ({"TRAPLINE_T_KEPT": "during", "TRAPLINE_T_NEW": "1"}):
        assert os.environ["TRAPLINE_T_KEPT"] == "during" and os.environ["TRAPLINE_T_NEW"] == "1"
    assert os.environ["TRAPLINE_T_KEPT"] == "before" and "TRAPLINE_T_NEW" not in os.environ
