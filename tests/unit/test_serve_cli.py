"""`trapline serve` argument handling, without starting anything (--print-config and errors)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from serve.config import JOB_CPUS, parse_serve_config
from serve.local import ServeStartError, check_port_free, client_url
from tests.fixtures.onnx_models import fixture_config
from trapline.cli import main

REPO = Path(__file__).resolve().parents[2]


def print_config(capsys, *args) -> dict:
    assert main(["serve", *args, "--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_embedded_default_serves_every_model_with_a_production_alias(local_store, capsys):
    local_store.promote("fixture:1")
    out = print_config(capsys, "--store", local_store.root)
    from ray.serve.schema import ServeDeploySchema

    app = ServeDeploySchema.model_validate(out).applications[0]
    assert app.import_path == "trapline.service:app_builder" and app.name == "trapline"
    cfg = parse_serve_config(app.args)
    assert [m.name for m in cfg.models] == ["fixture"] and cfg.store == local_store.root
    assert out["http_options"] == {"host": "127.0.0.1", "port": 8000}


def test_embedded_default_fits_replicas_on_the_local_cpus(local_store, fixture_models):
    from serve.defaults import local_default

    local_store.publish(fixture_models["yolov8"], "other", "1", {**fixture_config("yolov8")})
    local_store.promote("fixture:1")
    local_store.promote("other:1")
    cfg = local_default(local_store.root, cpus=2)
    assert [m.name for m in cfg.models] == ["fixture", "other"]
    assert [(m.num_replicas, m.effective_onnx_threads) for m in cfg.models] == [(1, 1), (1, 1)]  # a core each
    assert sum(m.num_cpus * m.num_replicas for m in cfg.models) + cfg.http.ingress_num_cpus + JOB_CPUS <= 2
    cluster = local_default(local_store.root, ["fixture"]).models[0]  # a cluster: no fitting
    assert (cluster.num_cpus, cluster.num_replicas) == (1.0, None)


@pytest.mark.parametrize(("cpus", "replicas", "threads"), [(1, 1, 1), (2, 2, 1), (4, 4, 1), (16, 4, 4)])
def test_the_embedded_default_runs_one_detector_at_the_machines_speed(local_store, cpus, replicas, threads):
    """One detector alone gets a replica per core (single-thread sessions side by side, the raw ceiling of
    the machine), up to DEFAULT_REPLICAS and more threads each beyond; all of it, and an archive job sent
    through it, fits the local Ray's CPUs."""
    from serve.config import DEFAULT_REPLICAS
    from serve.defaults import local_default

    local_store.promote("fixture:1")
    [m] = local_default(local_store.root, cpus=cpus).models
    assert (m.num_replicas, m.effective_onnx_threads) == (replicas, threads)
    assert m.num_replicas <= DEFAULT_REPLICAS and m.num_replicas * m.effective_onnx_threads == cpus
    assert m.num_cpus * m.num_replicas + JOB_CPUS <= cpus  # one hop: no ingress deployment to leave room for
    assert m.max_batch_size == 2  # a CPU: a batch costs its size, a larger one only lengthens the wait


def test_embedded_default_serves_classifiers_as_classifiers(local_store, fixture_models, colour_onnx, capsys):
    """`make demo` leaves a promoted classifier beside the detectors: it is served as a classifier
    deployment, routed to the detectors that have a label its applies_to names, never as a detector."""
    from tests.fixtures.classifiers import colour_config

    other = {**fixture_config("yolov8"), "labels": ["bird", "insect"]}
    local_store.publish(fixture_models["yolov8"], "birds", "1", other)
    local_store.publish(colour_onnx, "colours", "1", colour_config(applies_to=["deer"]))
    local_store.publish(colour_onnx, "anything", "1", colour_config(applies_to=[]))
    for ref in ("fixture:1", "birds:1", "colours:1", "anything:1"):
        local_store.promote(ref)
    cfg = parse_serve_config(print_config(capsys, "--store", local_store.root)["applications"][0]["args"])
    assert [m.name for m in cfg.models] == ["birds", "fixture"]
    assert sorted(c.name for c in cfg.classifiers) == ["anything", "colours"]
    routes = {m.name: {r.model: r.labels for r in m.classify} for m in cfg.models}
    assert routes == {"birds": {"anything": []}, "fixture": {"anything": [], "colours": ["deer"]}}

    from serve.defaults import local_default

    fitted = local_default(local_store.root, cpus=2)
    used = sum(d.num_cpus for d in [*fitted.models, *fitted.classifiers]) + fitted.http.ingress_num_cpus
    assert used <= 2


def test_a_store_of_classifiers_alone_is_refused_in_one_line(tmp_path, colour_onnx, capsys):
    from model_store import ModelStore
    from tests.fixtures.classifiers import colour_config

    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(colour_onnx, "colours", "1", colour_config())
    store.promote("colours:1")
    assert main(["serve", "--store", store.root, "--print-config"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no detector to serve" in err and "colours" in err, err


def test_flags_override_the_config_file(capsys, tmp_path):
    out = print_config(capsys, "--config", str(REPO / "serve.yaml"), "--port", "9123", "--store", str(tmp_path))
    args = out["applications"][0]["args"]
    assert out["http_options"]["port"] == 9123 and args["store"] == str(tmp_path)
    assert args["models"][0]["name"] == "demo-detector" and args["models"][0]["max_batch_size"] == 8


def test_clear_errors_exit_2(local_store, capsys, tmp_path):
    assert main(["serve", "--store", local_store.root, "--print-config"]) == 2  # nothing promoted yet
    assert "no models to serve" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - name: fixture\n    max_batch_size: 0\n")
    assert main(["serve", "--config", str(bad), "--print-config"]) == 2
    assert "max_batch_size" in capsys.readouterr().err


def test_local_helpers_report_a_busy_port_and_build_client_urls():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(ServeStartError, match="in use; pick another --port"):
            check_port_free("127.0.0.1", busy.getsockname()[1])
    assert client_url("0.0.0.0", 8000) == "http://127.0.0.1:8000"
    assert client_url("127.0.0.1", 8123, "/trap/") == "http://127.0.0.1:8123/trap"


def test_start_up_lines_name_every_door_with_its_address():
    """`trapline serve` says where each door it opened answers: HTTP, direct ingress, the Antenna door, recording."""
    from serve.cli import door_lines

    cfg = parse_serve_config({
        "store": "/tmp/models", "models": [{"name": "demo-detector"}],
        "record": {"archive": "/tmp/up", "tables": "/tmp/tables"},
        "antenna": {"host": "0.0.0.0", "port": 8101, "record": {},
                    "pipelines": [{"slug": "trapline-demo", "detector": "demo-detector"}]}})
    lines = door_lines("http://127.0.0.1:8000", cfg, "enabled", ["http://127.0.0.1:40001"])
    text = "\n".join(lines)
    assert lines[0].startswith("trapline is up at http://127.0.0.1:8000")
    assert "direct ingress, no proxy hop (1 replica(s)" in text and "http://127.0.0.1:40001" in text
    [antenna] = [line for line in lines if line.startswith("antenna door:")]
    assert "http://127.0.0.1:8101, bound on 0.0.0.0" in antenna and "trapline-demo" in antenna
    [recording] = [line for line in lines if line.startswith("recording:")]
    assert "http://127.0.0.1:8000/v1/images" in recording and "antenna door's answers too" in recording
    plain = door_lines("http://127.0.0.1:8000", parse_serve_config({"models": [{"name": "m"}]}), "disabled", [])
    assert not any(line.startswith(("antenna door", "recording", "direct ingress")) for line in plain)
