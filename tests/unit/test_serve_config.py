"""The serve config, serve.yaml and build_app, without a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from serve import APP_NAME, detector_deployment_name
from serve.config import ModelServeConfig, ServeConfig, ServeConfigError, parse_serve_config
from serve.config_files import load_config_file

REPO = Path(__file__).resolve().parents[2]


def test_defaults_and_derived_values():
    cfg = parse_serve_config({"models": [{"name": "fixture", "max_batch_size": 4, "num_cpus": 0.25}]})
    m = cfg.models[0]
    assert m.aliases == ["production"] and cfg.default_model == "fixture"
    # 8 online (one batch running, the next forming) + 8 archive images + 64 to spare: a burst reaches the
    # replica, whose own admission refuses it with a typed 503, and archive traffic never takes the online slots.
    assert m.effective_max_ongoing_requests == 8 + 8 + 64
    assert (m.runtime().online_limit, m.runtime().bulk_limit) == (8, 8)
    assert m.effective_onnx_threads == 1 and m.effective_decode_threads == 2
    threads = {c: parse_serve_config({"models": [{"name": "f", "num_cpus": c}]}).models[0].effective_onnx_threads
               for c in (0.25, 0.75, 1.75, 2.0, 3.4)}
    assert threads == {0.25: 1, 0.75: 1, 1.75: 2, 2.0: 2, 3.4: 3}  # the CPUs Ray reserved, rounded
    assert m.effective_device == "cpu"
    assert parse_serve_config({"models": [{"name": "g", "num_gpus": 0.5, "num_cpus": 3}]}).models[0].effective_device \
        == "auto"
    assert cfg.http.host == "127.0.0.1" and cfg.http.port == 8000
    assert cfg.admin_token_env == "TRAPLINE_ADMIN_TOKEN" and cfg.api_token_env is None
    runtime = m.runtime(cfg.http.max_pixels)
    assert runtime.max_batch_size == 4 and runtime.max_pixels == cfg.http.max_pixels


@pytest.mark.parametrize("models, match", [
    ([{"name": "x", "max_batch_size": 8, "max_ongoing_requests": 4}], r"max_ongoing_requests \(4\) must be >= max_bat"),
    ([{"name": "x", "num_replicas": 2, "autoscaling_config": {"max_replicas": 3}}], "not both"),
    ([{"name": "x", "autoscaling_config": {"min_replicas": -1}}], "invalid autoscaling_config"),
    ([{"name": "x", "num_cpus": 0}], "num_cpus"),
    ([{"name": "x", "aliases": []}], "aliases"),
    ([{"name": "x", "aliases": ["../prod"]}], "invalid alias"),
    ([{"name": "x", "batch_size": 4}], "Extra inputs are not permitted"),
    ([{"name": "x"}, {"name": "x"}], "served once"),
    ([{"name": "bad/name"}], "invalid model name"),
    ([], "at least 1"),
])
def test_invalid_configs_name_the_field(models, match):
    with pytest.raises(ServeConfigError, match=match):
        parse_serve_config({"models": models})


def test_autoscaling_passthrough_is_accepted():
    cfg = parse_serve_config({"models": [{"name": "x", "autoscaling_config": {
        "min_replicas": 1, "max_replicas": 4, "target_ongoing_requests": 8}}]})
    assert cfg.models[0].autoscaling_config["max_replicas"] == 4


def test_repo_serve_yaml_is_a_valid_ray_serve_config():
    from ray.serve.schema import ServeDeploySchema

    raw = yaml.safe_load((REPO / "serve.yaml").read_text())
    schema = ServeDeploySchema.model_validate(raw)
    app = schema.applications[0]
    assert app.name == APP_NAME and app.import_path == "trapline.service:app_builder"
    cfg, http = load_config_file(REPO / "serve.yaml")
    assert isinstance(cfg, ServeConfig) and http == {"host": "127.0.0.1", "port": 8000}
    assert schema.http_options.host == "127.0.0.1"  # secure default: loopback only


def test_bare_config_file_and_errors(tmp_path):
    bare = tmp_path / "bare.yaml"
    bare.write_text("models:\n  - name: fixture\n")
    assert load_config_file(bare)[0].models[0].name == "fixture"
    bad = tmp_path / "bad.yaml"
    bad.write_text("applications:\n  - name: other\n    import_path: other.app:x\n")
    with pytest.raises(ServeConfigError, match="no application with import_path "
                       "trapline.service:app_builder or serve.app:app_builder"):
        load_config_file(bad)
    with pytest.raises(ServeConfigError, match="not found"):
        load_config_file(tmp_path / "missing.yaml")


def test_one_model_is_served_in_one_hop_unless_told_otherwise(tmp_path):
    from ray.serve._private.build_app import build_app as build_deployments

    from serve.app import build_app
    from serve.one_hop import OneHopCore

    one = {"store": str(tmp_path), "models": [{"name": "fixture", "num_cpus": 0.5, "max_batch_size": 4}]}
    [dep] = build_deployments(build_app(one, environ={}), name=APP_NAME).deployments
    assert dep.name == detector_deployment_name("fixture")  # batch jobs find it under the same name
    assert issubclass(dep.func_or_class, OneHopCore) and dep.ray_actor_options == {"num_cpus": 0.5, "num_gpus": 0.0}
    _, replica_args, _, _ = dep.init_args
    assert replica_args[0]["name"] == "fixture" and dep.user_config["max_batch_size"] == 4
    # The replica admits 8 online + the 64 queued (one hop) + 8 archive images, and has 64 slots more in
    # which to refuse a burst itself; Serve's proxy holds at most as many beyond that, then 503 + Retry-After.
    assert dep.user_config["queued_online"] == 64 and dep.max_ongoing_requests == 8 + 64 + 8 + 64
    assert dep._deployment_config.max_queued_requests == dep.max_ongoing_requests
    assert dep._deployment_config.backpressure_config.retry_after_s == 1
    two_hops = build_deployments(build_app({**one, "http": {"one_hop": False}}, environ={}), name=APP_NAME)
    assert {d.name for d in two_hops.deployments} == {"ingress", detector_deployment_name("fixture")}


def test_the_whole_service_puts_the_control_plane_on_whichever_deployment_handles_http(tmp_path):
    from fastapi.testclient import TestClient
    from ray.serve._private.build_app import build_app as build_deployments

    from batch.jobs.routes import attach_jobs
    from batch.views.routes import attach_views
    from serve.app import build_app
    from serve.ingress import IngressCore
    from trapline.service import build_service

    one = {"store": str(tmp_path), "models": [{"name": "fixture"}]}
    for http in ({}, {"one_hop": False}):
        cfg = {**one, "http": http}
        [whole] = [d for d in build_deployments(build_service(cfg, environ={}), name=APP_NAME).deployments
                   if d.name in ("ingress", detector_deployment_name("fixture")) and "features" in d.init_kwargs]
        assert whole.init_kwargs["features"] == (attach_jobs, attach_views)
        alone = [d.init_kwargs.get("features") for d in build_deployments(build_app(cfg, environ={}),
                                                                          name=APP_NAME).deployments]
        assert () in alone and (attach_jobs, attach_views) not in alone
    # the online door alone has its own routes and not the control plane's; the service has both
    door = IngressCore(one, {}).__serve_build_asgi_app__()
    service = IngressCore(one, {}, features=(attach_jobs, attach_views)).__serve_build_asgi_app__()
    door_paths, service_paths = (set(app.openapi()["paths"]) for app in (door, service))
    assert {"/v1/detect", "/v1/models", "/v1/images"} <= door_paths < service_paths
    assert not {"/v1/jobs", "/v1/pictures/cameras", "/v1/individuals"} & door_paths
    assert {"/v1/jobs", "/v1/pictures/cameras", "/v1/individuals"} <= service_paths
    with TestClient(door) as client:
        assert client.get("/console").status_code == 404
    with TestClient(service) as client:
        assert client.get("/console").status_code == 200


def test_the_proxy_bound_of_one_hop_grows_with_replicas_and_never_undercuts_the_replica(tmp_path):
    from ray.serve._private.build_app import build_app as build_deployments

    from serve.app import build_app

    def proxy_bound(**model) -> tuple[int, int]:
        one = {"store": str(tmp_path), "models": [{"name": "fixture", "max_batch_size": 4, **model}]}
        [dep] = build_deployments(build_app(one, environ={}), name=APP_NAME).deployments
        return dep._deployment_config.max_queued_requests, dep.max_ongoing_requests

    admits_plus = 8 + 64 + 8 + 64
    assert proxy_bound() == (admits_plus, admits_plus)
    # Serve counts the queue per proxy: one proxy in front of 3 replicas holds 3 replicas' worth
    assert proxy_bound(num_replicas=3)[0] == 3 * admits_plus
    assert proxy_bound(autoscaling_config={"min_replicas": 1, "max_replicas": 4})[0] == 4 * admits_plus
    # an explicit max_ongoing_requests below what the replica admits sends a burst to Serve's router,
    # but does not shrink the bound on what the proxy holds (that stays max_queued_requests' job)
    assert proxy_bound(max_ongoing_requests=16) == (admits_plus, 16)
    assert proxy_bound(max_queued_requests=-1)[0] == -1  # unbounded, as asked


def test_build_app_wires_deployments_without_a_cluster(tmp_path):
    from ray.serve._private.build_app import build_app as build_deployments

    from serve.app import app_builder, build_app
    from serve.ingress import bearer_ok

    config = {"store": "relative-store", "models": [
        {"name": "fixture", "num_cpus": 0.5, "num_gpus": 0.25, "max_batch_size": 4, "max_queued_requests": 7},
        {"name": "other", "autoscaling_config": {"min_replicas": 1, "max_replicas": 3}},
    ]}
    built = build_deployments(build_app(config, environ={"TRAPLINE_ADMIN_TOKEN": "s3cret"}), name=APP_NAME)
    deps = {d.name: d for d in built.deployments}
    assert set(deps) == {"ingress", detector_deployment_name("fixture"), detector_deployment_name("other")}
    fx = deps["detector-fixture"]
    assert fx.ray_actor_options == {"num_cpus": 0.5, "num_gpus": 0.25}
    assert fx.max_ongoing_requests == 8 + 8 + 64 and fx._deployment_config.max_queued_requests == 7
    assert fx.user_config["max_batch_size"] == 4 and fx.user_config["aliases"] == ["production"]
    model, store_root, _ = fx.init_args
    model = ModelServeConfig.model_validate(model)  # what the replica reads its device and threads from
    model_name, device, threads = model.name, model.effective_device, model.effective_onnx_threads
    assert model_name == "fixture" and Path(store_root).is_absolute() and device == "auto" and threads == 1
    assert deps["detector-other"]._deployment_config.autoscaling_config.max_replicas == 3
    ingress_cfg, handles, admin_digest, api_digest = deps["ingress"].init_args
    assert set(handles) == {"fixture", "other"} and ingress_cfg["store"] == store_root
    assert "s3cret" not in repr(deps["ingress"].init_args)  # only the digest travels
    assert bearer_ok("Bearer s3cret", admin_digest) and not bearer_ok("Bearer s3cre", admin_digest)
    assert not bearer_ok("Basic s3cret", admin_digest) and not bearer_ok(None, admin_digest)
    assert api_digest is None
    # the Serve config file's entry point builds the same app: one model, one hop (its deployment is the ingress)
    one = build_deployments(app_builder({"store": "relative-store", "models": [{"name": "fixture"}]}), name=APP_NAME)
    assert [d.name for d in one.deployments] == [detector_deployment_name("fixture")]
    model, store = one.deployments[0].init_args[1][:2]
    assert model["name"] == "fixture" and store == store_root  # its model and the absolute store


def test_api_token_env_must_be_set_when_named():
    from serve.app import build_app

    with pytest.raises(ServeConfigError, match="TRAPLINE_TEST_API_TOKEN"):
        build_app({"models": [{"name": "x"}], "api_token_env": "TRAPLINE_TEST_API_TOKEN"}, environ={})


@pytest.mark.parametrize("data, match", [
    ({"models": [{"name": "md", "classify": [{"model": "species"}]}]},
     r"routes to classifiers \['species'\] that `classifiers` does not list"),
    ({"models": [{"name": "md", "classify": [{"model": "species@production"}]}], "classifiers": [{"name": "species"}]},
     "invalid classifier name"),
    ({"models": [{"name": "md"}], "classifiers": [{"name": "md"}]},
     r"\['md'\] listed as both a model and a classifier"),
    ({"models": [{"name": "md"}], "classifiers": [{"name": "s"}, {"name": "s"}]}, "each classifier may be served once"),
    ({"models": [{"name": "md", "classify": [{"model": "s", "colour": 1}]}], "classifiers": [{"name": "s"}]},
     "Extra inputs are not permitted"),
])
def test_classifier_routes_are_typed_and_checked(data, match):
    with pytest.raises(ServeConfigError, match=match):
        parse_serve_config(data)
    ok = parse_serve_config({"models": [{"name": "md", "classify": [{"model": "s", "labels": ["animal"]}]}],
                             "classifiers": [{"name": "s", "num_cpus": 0.5, "aliases": ["production", "candidate"]}]})
    assert ok.classifier("s").runtime().aliases == ["production", "candidate"]
