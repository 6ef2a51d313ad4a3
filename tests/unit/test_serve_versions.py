"""VersionManager on a real local store and real ONNX sessions: swaps, refusals, LRU, fallbacks (no Ray)."""

from __future__ import annotations

import json
import threading

import pytest

from ground.errors import NotFoundError, NotReadyError, VersionRefusedError
from model_store import ModelRef
from serve.config import ModelRuntimeConfig
from serve.versions import ModelUnavailableError, VersionManager
from tests.fixtures.onnx_models import fixture_config, plant_corrupt_version


class CountingLoader:
    """The production loader (store.load_detector), counting calls per version."""

    def __init__(self, store) -> None:
        self.store = store
        self.calls: dict[str, int] = {}

    def __call__(self, version: str):
        self.calls[version] = self.calls.get(version, 0) + 1
        return self.store.load_detector(ModelRef("fixture", version=version))


def manager(store, **runtime) -> tuple[VersionManager, CountingLoader]:
    loader = CountingLoader(store)
    vm = VersionManager(store, "fixture", loader)
    vm.configure(ModelRuntimeConfig(**runtime))
    return vm, loader


def publish_corrupt_onnx(store, tmp_path, version: str) -> None:
    plant_corrupt_version(store, "fixture", version, tmp_path)


def test_initial_load_swap_and_instant_rollback(local_store):
    local_store.promote("fixture:1")
    vm, loader = manager(local_store)
    assert vm.refresh(initial=True) == [("production", None, "1")]
    assert vm.lookup().version == "1"
    local_store.promote("fixture:2")
    assert vm.refresh() == [("production", "1", "2")]
    assert vm.lookup().version == "2" and vm.lookup(version="1").version == "1"  # old one kept in the LRU
    local_store.rollback("fixture")
    assert vm.refresh() == [("production", "2", "1")]
    assert loader.calls == {"1": 1, "2": 1}  # the rollback reused the loaded version
    status = vm.status()
    assert status["aliases"] == {"production": "1"} and status["store_aliases"] == {"production": "1"}
    assert {v["version"]: v["aliases"] for v in status["versions"]} == {"1": ["production"], "2": []}


def test_broken_versions_are_refused_and_the_old_keeps_serving(local_store, tmp_path):
    local_store.promote("fixture:1")
    vm, loader = manager(local_store, failed_retry_s=3600)
    vm.refresh(initial=True)
    publish_corrupt_onnx(local_store, tmp_path, "3")
    local_store.promote("fixture:3")  # the checksum matches, so the store accepts it
    assert vm.refresh() == []
    assert vm.lookup().version == "1"
    [err] = vm.status()["errors"]
    assert err["version"] == "3" and err["type"] == "model_load_failed"
    vm.refresh()
    assert loader.calls["3"] == 1  # not retried on every poll ...
    vm.refresh(retry_failed=True)
    assert loader.calls["3"] == 2  # ... but on an explicit reload
    with pytest.raises(VersionRefusedError, match="model_load_failed"):
        vm.lookup(version="3")

    # weights changed after publish: checksum mismatch; config.json broken: invalid config
    local_store.publish(local_store.fetch("fixture:1")[1], "fixture", "4", fixture_config("yolov8"))
    (tmp_path / "store" / "fixture" / "4" / "model.onnx").write_bytes(b"swapped")
    local_store.publish(local_store.fetch("fixture:1")[1], "fixture", "5", fixture_config("yolov8"))
    cfg_path = tmp_path / "store" / "fixture" / "5" / "config.json"
    cfg_path.write_text(json.dumps({**json.loads(cfg_path.read_text()), "score_threshold": 7}))
    for version, kind in (("4", "checksum_mismatch"), ("5", "invalid_config")):
        alias_file = tmp_path / "store" / "fixture" / "_aliases" / "production.json"
        alias_file.write_text(json.dumps({"version": version, "history": ["1"]}))
        assert vm.refresh() == [] and vm.lookup().version == "1"
        assert {e["version"]: e["type"] for e in vm.status()["errors"]}[version] == kind


def test_fresh_replica_falls_back_to_alias_history(local_store, tmp_path):
    local_store.promote("fixture:1")
    publish_corrupt_onnx(local_store, tmp_path, "3")
    local_store.promote("fixture:3")
    vm, _ = manager(local_store)
    assert vm.refresh(initial=True) == [("production", None, "1")]
    assert vm.status()["store_aliases"] == {"production": "3"}
    assert vm.status()["errors"][0]["version"] == "3"


def test_initial_load_fails_loudly_without_a_servable_version(local_store, tmp_path):
    vm, _ = manager(local_store)
    with pytest.raises(ModelUnavailableError, match="no alias 'production'"):
        vm.refresh(initial=True)
    publish_corrupt_onnx(local_store, tmp_path, "3")
    local_store.promote("fixture:3")
    vm, _ = manager(local_store)
    with pytest.raises(ModelUnavailableError, match="model_load_failed"):
        vm.refresh(initial=True)
    with pytest.raises(NotReadyError, match="model_load_failed"):
        vm.lookup()


def test_lookup_errors(local_store):
    local_store.promote("fixture:1")
    vm, _ = manager(local_store)
    vm.refresh(initial=True)
    with pytest.raises(NotFoundError, match="alias 'staging' .* not served"):
        vm.lookup(alias="staging")
    assert vm.lookup(version="2") is None  # loadable on demand
    with pytest.raises(NotFoundError, match="no version '9'"):
        vm.ensure("9")


def test_on_demand_versions_live_in_a_bounded_lru(local_store, fixture_models):
    local_store.promote("fixture:1")
    for v in ("3", "4"):
        local_store.publish(fixture_models["yolov8"], "fixture", v, fixture_config("yolov8"))
    vm, loader = manager(local_store, max_cached_versions=1, pinned_versions=["4"])
    vm.refresh(initial=True)
    assert loader.calls == {"1": 1, "4": 1}  # pinned versions load with the aliases
    vm.ensure("2")
    vm.ensure("3")  # evicts 2, the least recently used spare; 1 (alias) and 4 (pinned) are protected
    loaded = {v["version"] for v in vm.status()["versions"]}
    assert loaded == {"1", "3", "4"}
    vm.ensure("2")
    assert loader.calls["2"] == 2


def test_concurrent_requests_for_one_version_load_it_once(local_store):
    local_store.promote("fixture:1")
    vm, loader = manager(local_store)
    gate = threading.Event()
    real = vm._loader

    def slow(version):
        gate.wait(10)
        return real(version)

    vm._loader = slow
    results = []
    threads = [threading.Thread(target=lambda: results.append(vm.ensure("2").version)) for _ in range(4)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert results == ["2"] * 4 and loader.calls == {"2": 1}


def test_reconfigure_drops_aliases_no_longer_served(local_store):
    local_store.promote("fixture:1")
    local_store.promote("fixture:2", "staging")
    vm, _ = manager(local_store, aliases=["production", "staging"])
    vm.refresh(initial=True)
    assert vm.lookup(alias="staging").version == "2"
    vm.configure(ModelRuntimeConfig(aliases=["production"]))
    with pytest.raises(NotFoundError):
        vm.lookup(alias="staging")
