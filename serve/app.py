"""Build the trapline Serve application from a typed config. Nothing runs at import time.

    from serve.app import build_app
    serve.run(build_app(config), name="trapline")

or, in a standard Ray Serve config file (serve.yaml), `import_path: serve.app:app_builder`
with the ServeConfig as `args:`; `serve run serve.yaml` / `serve deploy serve.yaml` then call
`app_builder(args)` where the app is built.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ray import serve
from ray.serve import Application
from ray.serve.config import BackpressureConfig

from ground.env import secret
from ground.errors import InvalidRefError
from model_store import ConfigError, ModelRef, ModelStore, NotFoundError
from model_store.core.pipeline import resolve_routes
from serve import (
    ANTENNA_DEPLOYMENT_NAME,
    INGRESS_DEPLOYMENT_NAME,
    classifier_deployment_name,
    detector_deployment_name,
)
from serve.antenna.door import AntennaDoor
from serve.auth import token_digest
from serve.classifier import ClassifierReplica
from serve.config import (
    DeploymentServeConfig,
    ModelRuntimeConfig,
    ServeConfig,
    ServeConfigError,
    parse_serve_config,
)
from serve.ingress import Feature, TraplineIngress
from serve.one_hop import OneHopIngress
from serve.replica import DetectorReplica


def proxy_queue_limit(model: DeploymentServeConfig, runtime: ModelRuntimeConfig) -> int:
    """What Serve's proxy may hold for a one-hop model before answering 503 itself: what its replicas
    admit + REFUSAL_HEADROOM each (Serve counts every request of a burst as queued while it is being
    assigned, and counts per proxy, not per replica), and never less than an explicit
    max_ongoing_requests allows in flight."""
    return max(model.max_ongoing_for(runtime), runtime.routed_limit) * model.max_replicas


def detector_deployment(model: DeploymentServeConfig, http_max_pixels: int, retry_after_s: int = 1,
                        cls: type = DetectorReplica, name: str | None = None):
    """The Serve deployment (with its options) serving one model; `cls` OneHopIngress makes it the ingress too,
    ClassifierReplica (with `name` classifier-NAME) makes it a classifier deployment."""
    scaling: dict[str, Any] = (
        {"autoscaling_config": model.autoscaling_config} if model.autoscaling_config is not None
        else {"num_replicas": model.num_replicas or 1}
    )
    actor_options: dict[str, Any] = {"num_cpus": model.num_cpus, "num_gpus": model.num_gpus}
    # Serve's own defaults unless the config sets them
    health = {k: v for k in ("health_check_period_s", "graceful_shutdown_wait_loop_s", "graceful_shutdown_timeout_s")
              if (v := getattr(model, k)) is not None}
    if model.memory_bytes:
        actor_options["memory"] = model.memory_bytes
    # One hop: Serve's proxy answers its own queue overflow with a plain-text 503, not trapline's JSON.
    # So the replica admits the queue too (max_online_requests + max_queued_requests) and refuses the
    # rest itself, typed, with room to spare (REFUSAL_HEADROOM in serve/config.py). The proxy's own
    # bound (503 + Retry-After) is only the backstop for a burst that outruns even the refusals,
    # instead of the unbounded queue it would otherwise hold (proxy_queue_limit).
    one_hop = cls is OneHopIngress
    bounded = model.max_queued_requests >= 0
    runtime = model.runtime(http_max_pixels, retry_after_s,
                            queued_online=(model.max_queued_requests if bounded else 10**6) if one_hop else 0)
    return serve.deployment(cls).options(
        name=name or detector_deployment_name(model.name),
        max_ongoing_requests=model.max_ongoing_for(runtime),
        max_queued_requests=(proxy_queue_limit(model, runtime) if bounded else -1) if one_hop
        else model.max_queued_requests,
        backpressure_config=BackpressureConfig(retry_after_s=retry_after_s),
        ray_actor_options=actor_options,
        # Applied by reconfigure() on live replicas: a `deployments:` override of it in a Serve
        # config file retunes a running model without restarting it.
        user_config=runtime.model_dump(mode="json"),
        **scaling,
        **health,
    )


def check_routes(store: ModelStore, cfg: ServeConfig) -> ServeConfig:
    """Check each detector's classifier routes against the store (the classifier is a classifier, the routed
    labels are the detector's), with the versions the default aliases point at now; empty route labels
    become the classifier's `applies_to`. Raises ServeConfigError naming the model."""
    models = []
    for m in cfg.models:
        if not m.classify:
            models.append(m)
            continue
        try:
            detector = store.get(ModelRef(m.name, alias=m.aliases[0]))
            if detector.is_classifier:
                raise ConfigError(f"{detector.ref} is a classifier; list it under `classifiers`")
            # each route as configured, pinned to the version its classifier's default alias points at now
            refs = [r.model_copy(update={"model": str(ModelRef(r.model, alias=cfg.classifier(r.model).aliases[0]))})
                    for r in m.classify]
            resolved = resolve_routes(store, refs, detector.config.labels)
        except (ConfigError, NotFoundError) as exc:
            raise ServeConfigError(f"model {m.name!r}, classify: {exc}") from None
        routes = [r.model_copy(update={"labels": list(res.labels)})
                  for r, res in zip(m.classify, resolved, strict=True)]
        models.append(m.model_copy(update={"classify": routes}))
    return cfg.model_copy(update={"models": models})


def check_identify(store: ModelStore, cfg: ServeConfig) -> None:
    """Check each detector's identify route against the store, with the versions the aliases point at now: it names
    an identifier, which covers a label of the detector (when the detector is in the store yet). Raises
    ServeConfigError naming the model: a wrong route fails at start, not on the first request with an animal."""
    for m in cfg.models:
        if m.identify is None:
            continue
        try:
            identifier = store.get(m.identify.identifier)
            if identifier.kind != "identifier":
                raise ConfigError(f"{identifier.ref} is a {identifier.kind}; identify needs an identifier (backend "
                                  "keypoints or onnx-embedding, published with `trapline models publish`)")
        except (ConfigError, InvalidRefError, NotFoundError) as exc:
            raise ServeConfigError(f"model {m.name!r}, identify: {exc}") from None
        try:
            labels = store.get(ModelRef(m.name, alias=m.aliases[0])).config.labels
        except NotFoundError:
            continue  # its replicas say why they cannot load it; the labels are checked once it is there
        covered = identifier.config.applies_to
        if not set(covered) & set(labels):
            raise ServeConfigError(f"model {m.name!r}, identify: {identifier.ref} identifies {covered}, none of which "
                                   f"{m.name} detects (its labels: {labels}); name an identifier for its species")


def antenna_secret_of(cfg: ServeConfig, env: Mapping[str, str]) -> str | None:
    """The Antenna door's shared secret (`antenna.secret_env`), refused when named and unset (an open door by
    mistake); None when the config names none."""
    name = cfg.antenna.secret_env if cfg.antenna is not None else None
    if name is None:
        return None
    try:
        value = secret(name, env)
    except ValueError as exc:
        raise ServeConfigError(str(exc)) from None
    if value is None:
        raise ServeConfigError(f"antenna.secret_env names ${name}, which is not set (nor ${name}_FILE); refusing to "
                               "start an open Antenna door (set it, or remove antenna.secret_env)")
    return value


def build_app(config: ServeConfig | Mapping[str, Any], environ: Mapping[str, str] | None = None,
              features: Sequence[Feature] = ()) -> Application:
    """The online door: one `detector-<model>` deployment per model behind one FastAPI ingress,
    or, for a single model with `http.one_hop` (the default), that model's deployment as the ingress.
    `features` add their routes to whichever deployment handles HTTP (serve/ingress.py, `Feature`): the whole
    service, with the jobs and the console, is trapline/service.py's `build_service`, which passes them.
    Each entry of `classifiers` is a `classifier-<name>` deployment whose handle is bound into
    whichever deployment handles HTTP (serve/compose.py). A model's classifier and identify routes are checked
    against the store here. Every deployment gets its part of the config whole, never a re-listed copy
    (tests/unit/test_serve_config_plumbing.py walks every field to where it is used).

    Tokens are read here from `environ` (default: os.environ) and only their sha256 digests
    are passed on, so they never appear in the Serve config or the dashboard.
    """
    cfg = parse_serve_config(dict(config) if isinstance(config, Mapping) else config)
    env = os.environ if environ is None else environ
    try:  # each also from the file its NAME_FILE names (compose secrets, Kubernetes Secrets as files)
        admin_token = secret(cfg.admin_token_env, env)
        api_token = secret(cfg.api_token_env, env) if cfg.api_token_env else None
    except ValueError as exc:
        raise ServeConfigError(str(exc)) from None
    if cfg.api_token_env and api_token is None:
        raise ServeConfigError(f"api_token_env names ${cfg.api_token_env}, which is not set (nor "
                               f"${cfg.api_token_env}_FILE); refusing to start an open service (set it, or remove "
                               "api_token_env)")
    antenna_secret = antenna_secret_of(cfg, env)
    # Resolve a relative store path where the app is built, not in each replica's working directory.
    store_root = ModelStore(cfg.store).root
    update = {"store": store_root, "jobs": cfg.jobs.resolved()}  # the jobs' roots too: relative to here
    cfg = check_routes(ModelStore(store_root), cfg.model_copy(update=update))
    check_identify(ModelStore(store_root), cfg)
    if cfg.record is not None:  # likewise the recording archive and tables
        cfg = cfg.model_copy(update={"record": cfg.record.model_copy(update={
            k: v if "://" in v else os.path.abspath(os.path.expanduser(v))
            for k, v in (("archive", cfg.record.archive), ("tables", cfg.record.tables))})})
    # Whichever deployment handles HTTP gets the config as resolved here, whole: a model's routes (classify,
    # identify, on_promote) and whatever a model's config gains later reach it without being listed again (a copy
    # that listed the fields it kept once dropped `identify`: online re-identification never ran, issue 43).
    ingress_cfg = cfg.model_dump(mode="json")
    digests = (token_digest(admin_token), token_digest(api_token))
    # Each replica gets its model's config whole and reads what it is built with from it (device, threads).
    replica_args = {m.name: (m.model_dump(mode="json"), store_root, cfg.cache_dir) for m in cfg.models}
    # Each classifier is its own deployment, bound into whichever deployment handles HTTP.
    classifiers = {c.name: detector_deployment(c, cfg.http.max_pixels, cfg.http.retry_after_s, ClassifierReplica,
                                               classifier_deployment_name(c.name))
                   .bind(c.model_dump(mode="json"), store_root, cfg.cache_dir)
                   for c in cfg.classifiers}
    one_hop = cfg.http.one_hop and len(cfg.models) == 1
    # Antenna's API on a port of its own (serve/antenna/door.py says why a deployment): bound into the ingress so
    # Serve deploys it; it calls the ingress's detect by the ingress's deployment name.
    antenna = None if cfg.antenna is None else serve.deployment(AntennaDoor).options(
        name=ANTENNA_DEPLOYMENT_NAME, num_replicas=1, max_ongoing_requests=cfg.http.ingress_max_ongoing_requests,
        ray_actor_options={"num_cpus": cfg.http.ingress_num_cpus},
    ).bind(ingress_cfg, detector_deployment_name(cfg.models[0].name) if one_hop else INGRESS_DEPLOYMENT_NAME,
           token_digest(antenna_secret))
    if one_hop:  # the model's replicas are the ingress (serve/one_hop.py)
        [m] = cfg.models
        deployment = detector_deployment(m, cfg.http.max_pixels, cfg.http.retry_after_s, OneHopIngress)
        return deployment.bind(ingress_cfg, replica_args[m.name], *digests,
                               classifiers=classifiers, features=tuple(features), antenna=antenna)
    detectors = {m.name: detector_deployment(m, cfg.http.max_pixels, cfg.http.retry_after_s).bind(*replica_args[m.name])
                 for m in cfg.models}
    ingress = serve.deployment(TraplineIngress).options(
        name=INGRESS_DEPLOYMENT_NAME,
        num_replicas=cfg.http.ingress_num_replicas,
        max_ongoing_requests=cfg.http.ingress_max_ongoing_requests,
        ray_actor_options={"num_cpus": cfg.http.ingress_num_cpus},
    )
    return ingress.bind(ingress_cfg, detectors, *digests, classifiers=classifiers,
                        features=tuple(features), antenna=antenna)


def app_builder(args: dict[str, Any]) -> Application:
    """The online door alone, for Ray Serve config files: `import_path: serve.app:app_builder`, `args:` a
    ServeConfig. The whole service (jobs, console) is `trapline.service:app_builder`."""
    return build_app(args)
