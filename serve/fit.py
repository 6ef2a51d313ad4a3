"""The check before Ray starts: do a config's replicas fit the local Ray `trapline serve` would start?

Every resource a config asks is counted (serve/placement.py `Ask`): CPUs, GPUs, memory when `memory_bytes` (or a Serve
config file's `ray_actor_options.memory`) is set, and custom resources (`ray_actor_options.resources`), against what
the local Ray will have: Ray's own count of this machine (`local_node`: the CPUs it is given or its cgroup quota, the
GPUs it finds, the memory it leaves to tasks and actors, $RAY_OVERRIDE_RESOURCES). A config that cannot fit is
refused in one message that names, for each resource short, what asks it and the setting to change, before anything
runs: a local Ray would wait for room forever, and Serve says so only in its controller's log.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from serve.config import JOB_CPUS
from serve.placement import BIGGER, Ask, cpus_text, local_cpus, resources_text

logger = logging.getLogger(__name__)

EPS = 1e-9


def local_node(num_cpus: int | None) -> dict[str, float]:
    """What a local Ray started with `num_cpus` has, as ray.init resolves it (Ray's ResourceAndLabelSpec: a private
    API, there is no public one for a node not yet started); the CPUs alone where that cannot be had."""
    try:
        from ray._private.resource_and_label_spec import ResourceAndLabelSpec  # late: Ray loads when a service starts

        spec = ResourceAndLabelSpec(num_cpus=num_cpus).resolve(is_head=True, node_ip_address="127.0.0.1")
        node = {k: float(v) for k, v in spec.to_resource_dict().items()}
    except Exception as exc:  # noqa: BLE001 - a Ray without it: the CPUs, as before
        logger.debug("local Ray's resources: %s", exc)
        node = {}
    node["CPU"] = local_cpus(num_cpus)  # the count the embedded default sizes its replicas by
    return node


def fit_error(asks: list[Ask], node: Mapping[str, float]) -> str | None:
    """Why the deployments asking `asks` cannot be placed on the one node `node` (a local Ray: resource -> amount),
    with the setting to change for each resource short; None when they fit."""
    totals: dict[str, float] = {}
    for a in asks:
        for k, v in a.resources().items():
            totals[k] = totals.get(k, 0.0) + a.replicas * v
    short = [k for k, total in totals.items() if total > node.get(k, 0.0) + EPS]
    if not short:
        return None
    has = [f"{cpus_text(node.get('CPU', 0.0))}"] + [_has(k, node.get(k, 0.0)) for k in short if k != "CPU"]
    reasons = [_cpu_reason(asks, node.get("CPU", 0.0)) if k == "CPU" else _other_reason(k, asks, node.get(k, 0.0))
               for k in short]
    return (f"this config does not fit the local Ray it would start ({', '.join(has)}), where it would wait for room "
            f"forever: " + "; and ".join(reasons))


def _has(resource: str, amount: float) -> str:
    if not amount:
        return f"no {resource}" if resource in ("GPU", "memory") else f"no resource {resource!r}"
    return resources_text({resource: amount})


def _cpu_reason(asks: list[Ask], cpus: float) -> str:
    total = sum(a.replicas * a.cpus for a in asks)
    parts = ", ".join(f"{a.what} {a.replicas} x {cpus_text(a.cpus)}" for a in asks)
    fixed = sum(a.replicas * a.cpus for a in asks if a.knob != "num_cpus")
    model_replicas = sum(a.replicas for a in asks if a.knob == "num_cpus")
    # what each model replica may ask so that all of them, the ingress's share and an archive job fit
    share = math.floor(100 * (cpus - fixed - JOB_CPUS) / max(1, model_replicas)) / 100
    example = (f"e.g. `num_cpus: {share:g}` for each of the {model_replicas} replica(s) of models: and "
               "classifiers: leaves room for the ingress and an archive job" if share >= 0.1 else
               "this many replicas do not fit even so")
    return (f"its replicas ask {cpus_text(round(total, 3))} in all ({parts}). Fix: a smaller `num_cpus` per model "
            f"({example}), fewer replicas (`num_replicas`), {BIGGER}")


def _other_reason(resource: str, asks: list[Ask], amount: float) -> str:
    """A GPU, memory or custom resource asked beyond what the node has: who asks it, and each one's setting."""
    askers = [a for a in asks if a.resources().get(resource)]
    total = sum(a.replicas * a.resources()[resource] for a in askers)
    parts = ", ".join(f"{a.what} {a.replicas} x {resources_text({resource: a.resources()[resource]})}" for a in askers)
    settings = ", ".join(f"{a.setting(resource)} for {a.what}" for a in askers)
    if resource == "GPU":
        fix = (f"set {settings} to {'0 (it runs on the CPU)' if not amount else 'less (0: on the CPU)'}, or serve on "
               "a machine or cluster with a GPU (`--address`; Ray finds NVIDIA GPUs through the driver, within "
               "$CUDA_VISIBLE_DEVICES)")
    elif resource == "memory":
        fix = (f"a smaller {settings} (it is a scheduling reservation: unset, nothing is reserved), fewer replicas, or "
               "a machine with more memory")
    else:
        fix = (f"drop {settings}, or give the node that resource (`ray start --resources`, $RAY_OVERRIDE_RESOURCES) "
               "or serve on a cluster whose nodes have it (`--address`)")
    return f"its replicas ask {resources_text({resource: round(total, 3)})} in all ({parts}). Fix: {fix}"
