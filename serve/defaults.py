"""The embedded default: what `trapline serve` deploys with no config file. Every model with a production alias in
the store, detectors as model deployments and classifiers routed to the detectors whose labels they cover, each
sized to the machine (`default_sizing`)."""

from __future__ import annotations

import math
from typing import Any

from ground.errors import ServeConfigError, TraplineError
from model_store import ModelStore
from model_store.core.refs import DEFAULT_ALIAS
from serve.config import DEFAULT_REPLICAS, JOB_CPUS, HttpConfig, ServeConfig, parse_serve_config

CPU_MAX_BATCH = 2  # see default_sizing


def local_default(store: str | None = None, models: list[str] | None = None, cpus: float | None = None,
                  **http: Any) -> ServeConfig:
    """The embedded default: the given models (else every model with a production alias in the store).

    Detectors become model deployments; classifiers become classifier deployments, each routed to the
    served detectors that have a label its `applies_to` names (every served detector when it names none).
    A classifier no served detector routes to is left out: it would hold a replica no request reaches.
    With `cpus` (a local Ray's CPU count), each detector runs a replica per core (`default_sizing`), sized so that
    all of them, the ingress and an archive job sent through them (`JOB_CPUS`) fit; without, one replica of the
    default 1 CPU each (a cluster scales to fit).
    """
    store_ = ModelStore(store)
    root = store_.root
    names = models or discover_models(root)
    if not names:
        raise ServeConfigError(
            f"no models to serve: the store {root} has no model with a production alias "
            "(publish and promote one with `trapline models publish/promote`, or name the models)")
    served = {name: _current_version(store_, name) for name in names}
    detectors = [n for n, mv in served.items() if mv is None or not mv.is_classifier]
    if not detectors:
        raise ServeConfigError(
            f"no detector to serve: {', '.join(names)} {'is a classifier' if len(names) == 1 else 'are classifiers'} "
            f"(backend onnx-classifier) and a classifier only runs on a detector's boxes; publish and promote a "
            f"detector to {root}, or name one with --model")
    routes = {d: [] for d in detectors}
    classifiers = []
    for name, mv in served.items():
        if mv is None or not mv.is_classifier:
            continue
        for d in detectors:
            wanted = mv.config.applies_to
            labels = [label for label in wanted if served[d] is not None and label in served[d].config.labels]
            if labels or not wanted:
                routes[d].append({"model": name, "labels": labels})
        if any(r["model"] == name for rs in routes.values() for r in rs):
            classifiers.append(name)
    ingress = HttpConfig.model_fields["ingress_num_cpus"].default if len(detectors) > 1 or \
        http.get("one_hop") is False else 0.0  # one model, one hop: its replicas are the ingress
    sizing, classifier_sizing = ({}, {}) if not cpus else default_sizing(cpus, len(detectors), len(classifiers),
                                                                         ingress)
    return parse_serve_config(
        {"store": root, "models": [{"name": d, "classify": routes[d], **sizing} for d in detectors],
         "classifiers": [{"name": c, **classifier_sizing} for c in classifiers], "http": http}, "default config")


def default_sizing(cpus: float, detectors: int, classifiers: int, ingress: float = 0.0
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(each detector's, each classifier's) replicas, CPUs and threads on a machine of `cpus` cores.

    Each detector gets a replica per core it can count on (its share of the cores, at most DEFAULT_REPLICAS,
    more threads each beyond that); a classifier, which runs on crops only, one replica of one thread. Their
    CPU asks (logical) are the cores less the ingress and JOB_CPUS, split evenly over all replicas, so that
    they, the ingress and an archive job sent through them fit in a local Ray of `cpus`."""
    cores = max(1, int(cpus))
    per_detector = max(1, cores // detectors)
    replicas = min(per_detector, DEFAULT_REPLICAS)
    threads = max(1, per_detector // replicas)
    budget = cpus - ingress - JOB_CPUS
    share = max(0.1, min(float(threads), math.floor(100 * budget / (detectors * replicas + classifiers)) / 100))
    # Two images a forward pass, not ServeConfig's 8: on a CPU a batch costs its size (YOLOv8n, 2 x 1 thread: 23.1
    # images/s at batch 1, 22.8 at 2, 21.9 at 8), so a larger one only makes the requests that arrive while it runs
    # wait longer: a 10-min soak at 80 % held p99 <= 1 s in 16 of 20 windows at 2 against 12 at 8 (worst 1.6 s
    # against 2.2; benchmarks/results/NOTES.md section 22). The embedded default is a local Ray's CPUs only.
    detector = {"num_replicas": replicas, "num_cpus": share, "onnx_threads": threads, "max_batch_size": CPU_MAX_BATCH}
    return detector, {"num_replicas": 1, "num_cpus": min(share, 1.0), "onnx_threads": 1}


def _current_version(store, name: str):
    """The version a model's production alias (else its latest) points at, to tell its kind and labels;
    None when it has neither (the deployment then reports why it cannot load)."""
    for alias in (DEFAULT_ALIAS, "latest"):
        try:
            return store.get(f"{name}@{alias}")
        except TraplineError:
            continue
    return None


def discover_models(store_root: str | None, alias: str = DEFAULT_ALIAS) -> list[str]:
    """Models in the store that have `alias` set (detectors and classifiers): the embedded default of
    `trapline serve`."""
    store = ModelStore(store_root)
    return [name for name in store.list_models() if alias in store.aliases(name)]
