"""Every field of the serve config reaches what uses it: each field of each config model is set to a value other than
its default, passed through the real `build_app` (built into deployments by Serve's own builder, no cluster), and
looked for where it is used: the deployment's options, the `user_config` its replicas apply, the replica built from its
bound arguments, or the ingress core built from the bound arguments of whichever deployment handles HTTP, in both
layouts (one hop, separate ingress).

A field added to a config model without a line in CHECKS fails here, and so does one that `build_app` drops on its way
(issue 43: the ingress's copy of a model's config re-listed the fields it kept, and `identify` was not one of them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from model_store import ModelStore
from model_store.core.pipeline import ClassifierRoute
from serve import APP_NAME, classifier_deployment_name, detector_deployment_name
from serve.auth import bearer_ok
from serve.config import (
    ClassifierServeConfig,
    HttpConfig,
    IdentifyRoute,
    ModelRuntimeConfig,
    ModelServeConfig,
    PeopleConfig,
    RecordConfig,
    ServeConfig,
    ServeConfigError,
)
from serve.jobs_config import JobsConfig, OnPromote
from tests.fixtures.classifiers import colour_config
from tests.fixtures.onnx_models import fixture_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DET, CLF = "det", "species"
LAYOUTS = ("one_hop", "two_hops")
ENV = {"TRAPLINE_ADMIN_TOKEN": "admin-secret", "WALK_ADMIN": "walk-admin", "WALK_API": "walk-api",
       "WALK_ANTENNA": "walk-antenna"}


@dataclass
class Built:
    """One `build_app` result as Serve built it, and the objects its deployments would make of their arguments."""

    deployments: dict[str, Any]
    config: ServeConfig  # what went in

    @property
    def one_hop(self) -> bool:
        return "ingress" not in self.deployments

    @property
    def http(self) -> Any:
        return self.deployments["ingress" if not self.one_hop else detector_deployment_name(self.config.models[0].name)]

    @property
    def detector(self) -> Any:
        return self.deployments[detector_deployment_name(self.config.models[0].name)]

    @property
    def classifier(self) -> Any:
        return self.deployments[classifier_deployment_name(self.config.classifiers[0].name)]

    @cached_property
    def detector_runtime(self) -> ModelRuntimeConfig:
        return ModelRuntimeConfig.model_validate(self.detector.user_config)  # as reconfigure() applies it

    @cached_property
    def classifier_runtime(self) -> ModelRuntimeConfig:
        return ModelRuntimeConfig.model_validate(self.classifier.user_config)

    @cached_property
    def detector_replica(self) -> Any:
        from serve.replica import DetectorReplica

        return DetectorReplica(*(self.detector.init_args[1] if self.one_hop else self.detector.init_args))

    @cached_property
    def classifier_replica(self) -> Any:
        from serve.classifier import ClassifierReplica

        return ClassifierReplica(*self.classifier.init_args, **self.classifier.init_kwargs)

    @cached_property
    def ingress(self) -> Any:
        """The ingress core of whichever deployment handles HTTP (in one hop, OneHopCore's own)."""
        from serve.ingress import IngressCore

        config, _, admin, api = self.http.init_args
        return IngressCore(config, {}, admin, api, classifiers=self.http.init_kwargs["classifiers"])

    @property
    def model(self) -> ModelServeConfig:
        return self.ingress.config.models[0]

    def options(self, deployment: Any) -> Any:
        return deployment._deployment_config


def same(found: Any, value: Any) -> bool:
    """`found` is `value`, a config model being equal to the mapping it was given as."""
    return found == (type(found).model_validate(value) if isinstance(found, BaseModel) else value)


def _actor(dep: Any, key: str) -> Any:
    return dep.ray_actor_options.get(key)


# -- where each field is used: field -> check(built, value) ------------------------------------------------------------
# A check returns whether `value` arrived; one that applies to one layout only says so with `layouts`.

@dataclass(frozen=True)
class Check:
    found: Callable[[Built, Any], bool]
    layouts: tuple[str, ...] = LAYOUTS
    alone: bool = False  # set in a build of its own (it excludes another field's sample, or changes the layout)


RUNTIME = ("aliases", "pinned_versions", "max_cached_versions", "max_batch_size", "batch_wait_timeout_s",
           "batch_wait_policy", "max_online_requests", "bulk_max_batch_size", "preempt_bulk", "bulk_max_waiting",
           "alias_poll_interval_s", "failed_retry_s")


def deployment_checks(kind: str) -> dict[str, Check]:
    """What a detector's and a classifier's deployments share: Serve's options, the user_config, the replica."""
    def dep(b: Built) -> Any:
        return getattr(b, kind)

    def runtime(b: Built) -> ModelRuntimeConfig:
        return getattr(b, f"{kind}_runtime")

    def replica(b: Built) -> Any:
        return getattr(b, f"{kind}_replica")

    return {
        **{f: Check(lambda b, v, f=f: getattr(runtime(b), f) == v) for f in RUNTIME},
        "max_ongoing_requests": Check(lambda b, v: dep(b).max_ongoing_requests == v),
        "num_replicas": Check(lambda b, v: b.options(dep(b)).num_replicas == v),
        "autoscaling_config": Check(lambda b, v: all(getattr(b.options(dep(b)).autoscaling_config, k) == x
                                                     for k, x in v.items()), alone=True),  # not with num_replicas
        "num_cpus": Check(lambda b, v: _actor(dep(b), "num_cpus") == v),
        "num_gpus": Check(lambda b, v: _actor(dep(b), "num_gpus") == v),
        "memory_bytes": Check(lambda b, v: _actor(dep(b), "memory") == v),
        **{f: Check(lambda b, v, f=f: getattr(b.options(dep(b)), f) == v)
           for f in ("health_check_period_s", "graceful_shutdown_wait_loop_s", "graceful_shutdown_timeout_s")},
        "device": Check(lambda b, v: replica(b).device == v),
        "onnx_threads": Check(lambda b, v: replica(b).onnx_threads == v),
    }


MODEL_CHECKS: dict[str, Check] = {
    **deployment_checks("detector"),
    # the replicas serve and hot-swap them; the ingress records uploads under the first (POST /v1/images)
    "aliases": Check(lambda b, v: b.detector_runtime.aliases == v and b.model.aliases == v),
    "name": Check(lambda b, v: b.detector_replica.model == v and b.ingress.config.default_model == v
                  and b.detector.name == detector_deployment_name(v)),
    # two hops: Serve's queue in front of the model; one hop: the replica admits that many more online requests
    "max_queued_requests": Check(lambda b, v: (b.detector_runtime.queued_online if b.one_hop
                                               else b.options(b.detector).max_queued_requests) == v),
    "decode_threads": Check(lambda b, v: b.detector_replica._decode_pool._max_workers == v),
    "classify": Check(lambda b, v: [r.model_dump() for r in b.ingress.composer.classifiers_of(DET)]
                      == [ClassifierRoute.model_validate(r).model_dump() for r in v]),
    "on_promote": Check(lambda b, v: b.model.on_promote == OnPromote.model_validate(v)),  # read by the jobs feature
    "identify": Check(lambda b, v: b.ingress.identifiers[DET].route == IdentifyRoute.model_validate(v)),
}

CLASSIFIER_CHECKS: dict[str, Check] = {
    **deployment_checks("classifier"),
    "name": Check(lambda b, v: b.classifier_replica.model == v and set(b.ingress.classifier_handles) == {v}
                  and b.classifier.name == classifier_deployment_name(v)),
    "max_queued_requests": Check(lambda b, v: b.options(b.classifier).max_queued_requests == v),
}

ROUTE_CHECKS: dict[str, Check] = {  # a model's `classify` entries, as the composer routes detections
    f: Check(lambda b, v, f=f: getattr(b.ingress.composer.classifiers_of(DET)[0], f) == v)
    for f in ("model", "labels", "min_crop_px")
}

IDENTIFY_CHECKS: dict[str, Check] = {
    f: Check(lambda b, v, f=f: getattr(b.ingress.identifiers[DET].route, f) == v)
    for f in ("identifier", "threshold", "candidates", "tables")
}

ON_PROMOTE_CHECKS: dict[str, Check] = {f: Check(lambda b, v, f=f: getattr(b.model.on_promote, f) == v)
                                       for f in ("alias", "reprocess")}


def http_check(field: str) -> Check:
    """What the ingress core itself reads (the router's limits and CORS, the crops cap; host, port, timeout and
    direct ingress are read by run_local from the same config before it builds the app)."""
    return Check(lambda b, v: getattr(b.ingress.config.http, field) == v)


INGRESS_LAYOUT = ("two_hops",)  # the ingress deployment's own sizing: one hop has no ingress deployment
HTTP_CHECKS: dict[str, Check] = {
    **{f: http_check(f) for f in ("host", "port", "max_body_bytes", "direct_ingress", "request_timeout_s",
                                  "cors_origins", "max_crops", "max_clip_bytes", "clip_sampling",
                                  "clip_max_frames")},
    "max_pixels": Check(lambda b, v: b.detector_runtime.max_pixels == v and b.classifier_runtime.max_pixels == v),
    "retry_after_s": Check(lambda b, v: b.detector_runtime.retry_after_s == v
                           and b.options(b.detector).backpressure_config.retry_after_s == v
                           and b.ingress._retry_after == {"Retry-After": str(v)}),
    "one_hop": Check(lambda b, v: not b.one_hop, layouts=("one_hop",), alone=True),
    "ingress_num_cpus": Check(lambda b, v: _actor(b.http, "num_cpus") == v, INGRESS_LAYOUT),
    "ingress_num_replicas": Check(lambda b, v: b.options(b.http).num_replicas == v, INGRESS_LAYOUT),
    "ingress_max_ongoing_requests": Check(lambda b, v: b.http.max_ongoing_requests == v, INGRESS_LAYOUT),
}

RECORD_CHECKS: dict[str, Check] = {f: Check(lambda b, v, f=f: same(getattr(b.ingress.recorder.cfg, f), v))
                                   for f in RecordConfig.model_fields}

JOBS_CHECKS: dict[str, Check] = {  # read by the jobs feature (batch/jobs/) from the ingress's config, resolved
    **{f: Check(lambda b, v, f=f: getattr(b.ingress.config.jobs, f) == v)
       for f in ("enabled", "address", "s3_buckets", "python", "entrypoint_num_cpus", "promote_poll_s")},
    "roots": Check(lambda b, v: b.ingress.config.jobs.roots[:len(v)] == v),
    "working_dir_allowed": Check(lambda b, v: os.path.realpath(os.getcwd()) not in b.ingress.config.jobs.roots),
    "working_dir": Check(lambda b, v: b.ingress.config.jobs.working_dir == v),
    "pictures": Check(lambda b, v: [p.model_dump() for p in b.ingress.config.jobs.pictures] == v),
}

PEOPLE_CHECKS: dict[str, Check] = {  # the ingress's view of the people registry (serve/people.py)
    "location": Check(lambda b, v: b.ingress.people_location == v == b.ingress.tokens.people.registry.location),
    "refresh_s": Check(lambda b, v: b.ingress.tokens.people.refresh_s == v),
}

SERVE_CHECKS: dict[str, Check] = {
    "store": Check(lambda b, v: b.detector_replica.store.root == v == b.ingress.store.root
                   and b.classifier_replica.store.root == v),
    "cache_dir": Check(lambda b, v: str(b.detector_replica.store.cache_dir) == v == str(b.ingress.store.cache_dir)
                       and str(b.classifier_replica.store.cache_dir) == v),
    "admin_token_env": Check(lambda b, v: bearer_ok(f"Bearer {ENV[v]}", b.ingress.tokens.admin_digest)
                             and b.ingress.tokens.admin_token_env == v),
    "api_token_env": Check(lambda b, v: bearer_ok(f"Bearer {ENV[v]}", b.ingress.tokens.api_digest)),
    # the Antenna door gets the ingress's config whole (its block read there), the name of the ingress it calls and
    # the digest of its shared secret (antenna.secret_env, read where the app is built)
    "antenna": Check(lambda b, v: same(ServeConfig.model_validate(b.deployments["antenna"].init_args[0]).antenna, v)
                     and b.deployments["antenna"].init_args[1] == b.http.name
                     and bearer_ok(f"Bearer {ENV[v['secret_env']]}", b.deployments["antenna"].init_args[2])),
    # the nested models, walked field by field below
    **{f: Check(lambda b, v: True) for f in ("models", "classifiers", "http", "jobs", "record", "people")},
}


# -- the walk ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(tmp_path_factory, fixture_models, colour_onnx) -> dict[str, Any]:
    return make_site(tmp_path_factory.mktemp("plumbing"), fixture_models, colour_onnx)


def make_site(root: Any, fixture_models: dict[str, Any], colour_onnx: Any) -> dict[str, Any]:
    """A store with the detector and its classifier (each at production and staging) and places the samples name."""
    store = ModelStore(str(root / "store"))
    store.publish(fixture_models["yolov8"], DET, "1", fixture_config("yolov8"))
    store.publish(colour_onnx, CLF, "1", colour_config())
    store.publish(None, "coats", "1", {"backend": "keypoints", "applies_to": ["deer"]})  # an identifier of deer
    for name in (DET, CLF, "coats"):
        for alias in ("production", "staging"):
            store.promote(f"{name}:1", alias)
    for name in ("demo-detector", "megadetector"):  # the detectors serve.yaml and the RayService serve
        store.publish(fixture_models["yolov8"], name, "1", fixture_config("yolov8"))
    dirs = {d: os.path.realpath(root / d) for d in ("archive", "tables", "gallery", "work", "cache", "people")}
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    shutil.copytree(store.root, root / "store2")  # the same models elsewhere: for the `store` sample
    return {"store": store.root, "store2": str(root / "store2"), **dirs}


def samples(site: dict[str, Any]) -> dict[type[BaseModel], dict[str, Any]]:
    """A value other than the default for each field (a required field: the one the base config has)."""
    runtime = {"pinned_versions": ["1"], "max_cached_versions": 5, "max_batch_size": 3, "batch_wait_timeout_s": 0.25,
               "batch_wait_policy": "fixed", "max_online_requests": 7, "bulk_max_batch_size": 2,
               "preempt_bulk": False, "bulk_max_waiting": 9, "alias_poll_interval_s": 11.0, "failed_retry_s": 13.0,
               "aliases": ["staging", "production"]}
    deployment = {**runtime, "max_ongoing_requests": 123, "max_queued_requests": 17, "num_replicas": 3,
                  "autoscaling_config": {"min_replicas": 2, "max_replicas": 5}, "num_cpus": 0.75, "num_gpus": 0.5,
                  "memory_bytes": 2**30, "health_check_period_s": 4.0, "graceful_shutdown_wait_loop_s": 0.3,
                  "graceful_shutdown_timeout_s": 6.0, "device": "cuda", "onnx_threads": 3}
    route = {"model": CLF, "labels": ["deer"], "min_crop_px": 20}
    identify = {"identifier": "coats@staging", "threshold": 0.7, "candidates": 3, "tables": site["gallery"]}
    on_promote = {"alias": "staging", "reprocess": {"archive": site["archive"], "out": site["tables"]}}
    return {
        ModelServeConfig: {**deployment, "name": DET, "decode_threads": 5, "classify": [route],
                           "on_promote": on_promote, "identify": identify},
        ClassifierServeConfig: {**deployment, "name": CLF},
        ClassifierRoute: route,
        IdentifyRoute: identify,
        OnPromote: on_promote,
        HttpConfig: {"host": "0.0.0.0", "port": 8123, "max_body_bytes": 1234, "max_pixels": 4321,
                     "one_hop": False, "direct_ingress": True, "ingress_num_cpus": 0.5, "ingress_num_replicas": 2,
                     "ingress_max_ongoing_requests": 77, "retry_after_s": 3, "request_timeout_s": 9.0,
                     "cors_origins": ["https://example.org"], "max_crops": 4, "max_clip_bytes": 5678,
                     "clip_sampling": "5f", "clip_max_frames": 99},
        RecordConfig: {"archive": site["archive"], "tables": site["tables"], "flush_rows": 10,
                       "flush_interval_s": 5.0, "crops": {"padding": 0.2, "square": True, "min_size": 16},
                       "lease_ttl_s": 30.0},
        JobsConfig: {"enabled": False, "address": "http://127.0.0.1:8266", "roots": [site["archive"]],
                     "working_dir_allowed": False, "s3_buckets": ["bucket"], "working_dir": site["work"],
                     "python": "/usr/bin/python3", "entrypoint_num_cpus": 0.5, "promote_poll_s": 7.0,
                     "pictures": [{"name": "cams", "tables": site["tables"], "archive": site["archive"]}]},
        PeopleConfig: {"location": site["people"], "refresh_s": 0.5},
        ServeConfig: {"store": site["store2"], "cache_dir": site["cache"], "admin_token_env": "WALK_ADMIN",
                      "api_token_env": "WALK_API",
                      "antenna": {"port": 18999, "secret_env": "WALK_ANTENNA",
                                  "pipelines": [{"slug": "walk", "detector": DET, "classifier": CLF}]}},
    }


CHECKS: dict[type[BaseModel], dict[str, Check]] = {
    ModelServeConfig: MODEL_CHECKS, ClassifierServeConfig: CLASSIFIER_CHECKS, ClassifierRoute: ROUTE_CHECKS,
    IdentifyRoute: IDENTIFY_CHECKS, OnPromote: ON_PROMOTE_CHECKS, HttpConfig: HTTP_CHECKS, RecordConfig: RECORD_CHECKS,
    JobsConfig: JOBS_CHECKS, PeopleConfig: PEOPLE_CHECKS, ServeConfig: SERVE_CHECKS,
}


def not_found(check: Check, built: Built, value: Any) -> str | None:
    """None when the value arrived, else why not (a missing route or replica reads as a KeyError)."""
    try:
        return None if check.found(built, value) else ""
    except (KeyError, AttributeError, IndexError) as exc:
        return f": {type(exc).__name__} {exc}"


def base(site: dict[str, Any], layout: str) -> dict[str, Any]:
    """The smallest config in which every sample has a place: a detector routed to a classifier, recording on."""
    return {"store": site["store"], "models": [{"name": DET, "classify": [{"model": CLF}]}],
            "classifiers": [{"name": CLF}], "http": {"one_hop": layout == "one_hop"},
            "record": {"archive": site["archive"], "tables": site["tables"]}}


def with_sample(config: dict[str, Any], model: type[BaseModel], field: str, value: Any) -> dict[str, Any]:
    """`config` with one more field of one of its models set."""
    def set_in(entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, field: value}

    m, c = config["models"][0], config["classifiers"][0]
    place: dict[type[BaseModel], Callable[[], dict[str, Any]]] = {
        ServeConfig: lambda: set_in(config),
        ModelServeConfig: lambda: {**config, "models": [set_in(m)]},
        ClassifierServeConfig: lambda: {**config, "classifiers": [set_in(c)]},
        ClassifierRoute: lambda: {**config, "models": [{**m, "classify": [set_in(m["classify"][0])]}]},
        IdentifyRoute: lambda: {**config, "models": [{**m, "identify": set_in(m.get("identify")
                                                                              or {"identifier": "coats"})}]},
        OnPromote: lambda: {**config, "models": [{**m, "on_promote": set_in(
            m.get("on_promote") or {"reprocess": {"archive": "a", "out": "o"}})}]},
        HttpConfig: lambda: {**config, "http": set_in(config["http"])},
        RecordConfig: lambda: {**config, "record": set_in(config["record"])},
        JobsConfig: lambda: {**config, "jobs": set_in(config.get("jobs", {}))},
        PeopleConfig: lambda: {**config, "people": set_in(config.get("people", {}))},
    }
    return place[model]()


def build(config: dict[str, Any]) -> Built:
    from ray.serve._private.build_app import build_app as build_deployments

    from serve.app import build_app

    built = build_deployments(build_app(config, environ=ENV), name=APP_NAME)
    return Built({d.name: d for d in built.deployments}, ServeConfig.model_validate(config))


@pytest.mark.parametrize("model", list(CHECKS), ids=lambda m: m.__name__)
def test_every_field_reaches_what_uses_it(site, model):
    checks, values = CHECKS[model], samples(site)[model]
    unchecked = sorted(set(model.model_fields) - set(checks))
    assert not unchecked, (f"{model.__name__} has fields no check follows through build_app: {unchecked}; add each "
                           "to CHECKS with where the deployment that uses it finds it")
    assert set(values) | {"models", "classifiers", "http", "jobs", "record", "people"} >= set(model.model_fields)
    walked = {f: c for f, c in checks.items() if f in values}  # the rest are nested models, walked on their own
    for field in walked:
        default = model.model_fields[field].get_default(call_default_factory=True)
        assert default is PydanticUndefined or values[field] != default, f"{model.__name__}.{field}: a default"
    # Every sample in one build per layout (Serve's own build costs ~0.1 s), those that must be alone in their own.
    groups = [[f for f, c in walked.items() if not c.alone], *([f] for f, c in walked.items() if c.alone)]
    missed = []
    for group in groups:
        for layout in LAYOUTS:
            fields = [f for f in group if layout in walked[f].layouts]
            if not fields:
                continue
            config = base(site, layout)
            for field in fields:
                config = with_sample(config, model, field, values[field])
            built = build(config)
            missed += [f"{model.__name__}.{f} ({layout}){why}" for f in fields
                       if (why := not_found(walked[f], built, values[f])) is not None]
    assert not missed, f"build_app dropped these on their way: {missed}"


def test_a_classifier_refuses_decode_threads_it_would_never_use(site):
    """A classifier's crops arrive decoded: `decode_threads` there would be silently ignored, so it is refused."""
    config = {**base(site, "one_hop"), "classifiers": [{"name": CLF, "decode_threads": 3}]}
    with pytest.raises(ServeConfigError, match=r"classifiers\.0\.decode_threads"):
        build(config)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the jobs' roots resolve against the test's own directory

