"""Replicas that cannot be placed, said as an error with its reason: which deployment, what each replica asks, what
the cluster has, and the fix.

Ray Serve waits for a replica the cluster has no room for as long as one lets it (a cluster may autoscale), and says
why only in its controller's log after 30 s. trapline says it in two places:

- before Ray starts (serve/fit.py): a local Ray that `trapline serve` starts has the resources Ray finds on the
  machine (the CPUs it is given), and the config's asks are known, so a config that cannot fit is refused before
  anything runs;
- while a service waits (`PlacementWatch`): replicas of the app that Ray still holds in PENDING_CREATION after
  `PLACEMENT_GRACE_S` with no room free for one on any node (at once when they ask more than any node has), read
  from Ray's actor table against each node's free resources and totals (`ray.nodes()`); `trapline serve` prints it, the
  ingress's and the Antenna door's `/readyz` answer it in their body, and the replicas log it.

An app that never came up is deleted without waiting out Serve's graceful stop of the replicas it never placed
(`end_pending_replicas`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ground.every import Every
from serve import (
    ANTENNA_DEPLOYMENT_NAME,
    APP_NAME,
    INGRESS_DEPLOYMENT_NAME,
    classifier_deployment_name,
    detector_deployment_name,
)
from serve.config import DeploymentServeConfig, ServeConfig

logger = logging.getLogger("ray.serve.trapline")

# A replica that asks more than any node has in all is reported at its second sighting, a poll later. One that would
# fit a node but finds no room is reported once pending this long: Ray's actor table cannot tell it from a replica
# placed whose worker process is still starting (the resources taken, both PENDING_CREATION, both with a node), which
# takes seconds on a busy 2-core machine. Either way within ~25 s (Serve's own warning comes after 30 s).
PLACEMENT_GRACE_S = 20.0
PLACEMENT_POLL_S = 2.0
REPLICA_ACTOR_PREFIX = "SERVE_REPLICA::"
BIGGER = "or a bigger node (a local Ray: more cores, `--num-cpus` counts only what the machine has; a cluster: "\
         "`ray start --num-cpus` or a node type with more)"


@dataclass(frozen=True)
class Ask:
    """What one deployment of a trapline app asks Ray for: `replicas` replicas of `cpus` CPUs, `gpus` GPUs, `memory`
    bytes (a scheduling reservation) and custom resources (`custom`: a Serve config file's `ray_actor_options`)."""

    deployment: str
    what: str  # how the config names it: "model 'x'", "classifier 'y'", "the ingress", "the Antenna door"
    replicas: int
    cpus: float
    gpus: float = 0.0
    knob: str = "num_cpus"  # the config key that sets `cpus`
    memory: float = 0.0
    custom: Mapping[str, float] = field(default_factory=dict)
    overridden: frozenset[str] = frozenset()  # the resources a Serve config file's `deployments:` entry sets

    def resources(self) -> dict[str, float]:
        """What one replica asks, as Ray names the resources."""
        return {"CPU": self.cpus, **({"GPU": self.gpus} if self.gpus else {}),
                **({"memory": self.memory} if self.memory else {}), **{k: v for k, v in self.custom.items() if v}}

    def setting(self, resource: str) -> str:
        """The setting that makes this deployment ask `resource`, as the config (or the Serve config file) names it."""
        if resource in self.overridden or resource not in ("CPU", "GPU", "memory"):
            key = OPTION_OF.get(resource, f"resources: {{{resource}: ...}}")
            return f"`ray_actor_options` `{key}` of `{self.deployment}` under the file's `deployments:`"
        return f"`{ {'CPU': self.knob, 'GPU': 'num_gpus', 'memory': 'memory_bytes'}[resource] }`"


OPTION_OF = {"CPU": "num_cpus", "GPU": "num_gpus", "memory": "memory"}  # ray_actor_options' names


def _replicas(m: DeploymentServeConfig) -> int:
    """The replicas Serve starts a deployment with: num_replicas, or autoscaling's initial (else min) replicas."""
    if m.autoscaling_config is None:
        return m.num_replicas or 1
    auto = m.autoscaling_config
    return int(auto.get("initial_replicas") or auto.get("min_replicas", 1))


def config_asks(cfg: ServeConfig) -> list[Ask]:
    """Every deployment of the app serve/app.py builds from `cfg`, with what its replicas ask (serve/app.py's
    `detector_deployment` and `build_app`: one-hop serves a single model's replicas as the ingress)."""
    one_hop = cfg.http.one_hop and len(cfg.models) == 1
    asks = [Ask(detector_deployment_name(m.name), f"model {m.name!r}", _replicas(m), m.num_cpus, m.num_gpus,
                memory=float(m.memory_bytes or 0)) for m in cfg.models]
    asks += [Ask(classifier_deployment_name(c.name), f"classifier {c.name!r}", _replicas(c), c.num_cpus, c.num_gpus,
                 memory=float(c.memory_bytes or 0)) for c in cfg.classifiers]
    if not one_hop:
        asks.append(Ask(INGRESS_DEPLOYMENT_NAME, "the ingress", cfg.http.ingress_num_replicas,
                        cfg.http.ingress_num_cpus, knob="http.ingress_num_cpus"))
    if cfg.antenna is not None:
        asks.append(Ask(ANTENNA_DEPLOYMENT_NAME, "the Antenna door", 1, cfg.http.ingress_num_cpus,
                        knob="http.ingress_num_cpus"))
    return asks


def cpus_text(value: float) -> str:
    return f"{value:g} CPU" if value == 1 else f"{value:g} CPUs"


def with_overrides(asks: list[Ask], deployments: list[dict[str, Any]] | None) -> list[Ask]:
    """The asks with a Ray Serve config file's `deployments:` overrides of the app applied (num_replicas,
    ray_actor_options' num_cpus, num_gpus, memory and resources)."""
    by_name = {d.get("name"): d for d in deployments or []}
    out = []
    for a in asks:
        o = by_name.get(a.deployment) or {}
        options = o.get("ray_actor_options") or {}
        replicas = o.get("num_replicas") if isinstance(o.get("num_replicas"), int) else a.replicas
        custom = {str(k): float(v) for k, v in (options.get("resources") or {}).items()}
        overridden = frozenset({r for r, key in OPTION_OF.items() if key in options} | set(custom))
        out.append(Ask(a.deployment, a.what, replicas, float(options.get("num_cpus", a.cpus)),
                       float(options.get("num_gpus", a.gpus)), a.knob, float(options.get("memory") or a.memory),
                       custom or a.custom, overridden))
    return out


def local_cpus(num_cpus: int | None) -> float:
    """The CPUs a local Ray started with `num_cpus` has: that, else what Ray detects (cgroup limits included)."""
    if num_cpus:
        return float(num_cpus)
    try:
        from ray._private.utils import get_num_cpus  # Ray's own count: a container's CPU quota, not the host's cores

        return float(get_num_cpus())
    except Exception:  # noqa: BLE001 - a Ray without it: the machine's count
        return float(os.cpu_count() or 1)


def resources_text(values: Mapping[str, float]) -> str:
    return ", ".join(f"memory {v / 2**30:.3g} GiB" if k == "memory" else f"{k} {v:g}" for k, v in values.items())


class PlacementWatch:
    """Tells the replicas of app `app_name` that Ray cannot place. `check()` answers deployment -> reason, asked of
    Ray at most every PLACEMENT_POLL_S: a replica counts once it was seen pending in two checks and asks more than any
    node has, or once it was seen pending for PLACEMENT_GRACE_S while no node has room free for it (no room free now,
    room split over nodes, a resource no node has): a replica pending while a node has room for it is one placed whose
    worker is still starting. Each reason is logged once per watch."""

    def __init__(self, app_name: str, cfg: ServeConfig | None = None) -> None:
        self.app_name = app_name
        self.asks = {a.deployment: a for a in config_asks(cfg)} if cfg is not None else {}
        self.first_seen: dict[str, float] = {}
        self.reasons: dict[str, str] = {}
        self.polls = Every(PLACEMENT_POLL_S)
        self.logged: set[str] = set()

    def check(self) -> dict[str, str]:
        # late: the CLI imports this module for `trapline serve`'s checks; Ray loads once a service runs
        import ray

        if not self.polls.take():
            return self.reasons
        now = time.monotonic()
        try:
            pending = pending_replicas(self.app_name)
            nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")] if pending else []
            free = list(_free_per_node().values()) if pending else []
        except Exception as exc:  # noqa: BLE001 - best effort: the answer is only what a waiting service says
            logger.debug("placement: could not list pending replicas: %s", exc)
            return self.reasons
        self.first_seen = {actor: self.first_seen.get(actor, now) for actor in pending}
        late: dict[str, int] = {}
        for actor, deployment in pending.items():
            seen = now - self.first_seen[actor]
            ask = self.asks.get(deployment)
            never = ask is not None and not any(_fits(ask, n) for n in nodes)
            # Pending with room free for it on a node: placed, its worker still starting (on a busy 2-core machine
            # that took over 20 s and `trapline serve` gave up on a replica that would have come up), not unplaced.
            room = ask is not None and any(_fits(ask, f) for f in free)
            if (seen >= PLACEMENT_GRACE_S and not room) or (seen > 0 and never):
                late[deployment] = late.get(deployment, 0) + 1
        self.reasons = {d: self.reason(d, n) for d, n in sorted(late.items())}
        for reason in self.reasons.values():
            if reason not in self.logged:
                self.logged.add(reason)
                logger.error("%s", reason)
        return self.reasons

    def reason(self, deployment: str, count: int) -> str:
        # late: the CLI imports this module for `trapline serve`'s checks; Ray loads once a service runs
        import ray

        ask = self.asks.get(deployment)
        free = ray.available_resources()
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        asked = ask.resources() if ask else {"CPU": 1.0}
        kinds = list(dict.fromkeys(["CPU", "GPU", *asked]))
        shown = [k for k in kinds if k == "CPU" or asked.get(k) or any(n.get(k) for n in nodes)]
        total = {k: sum(n.get(k, 0.0) for n in nodes) for k in shown}
        largest = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
        what, asks = (f" ({ask.what})", resources_text(ask.resources())) if ask else ("", "what its options say")
        # the resource no node has enough of for one replica (a GPU on a cluster without one), else the CPUs
        short = next((k for k, v in asked.items() if not any(n.get(k, 0.0) + 1e-9 >= v for n in nodes)), "CPU")
        fix = (f"a smaller {ask.setting(short)} for {ask.what}" if ask else "a smaller `num_cpus` per replica") + \
            (" (0: it runs on the CPU)" if short == "GPU" else "") + f", fewer replicas, {BIGGER}"
        has = f"{resources_text({k: free.get(k, 0.0) for k in shown})} free of {resources_text(total)}"
        return (f"deployment {deployment!r}{what} of app {self.app_name!r}: {count} replica(s) cannot be placed: "
                f"each asks {asks}, the cluster has {has} ({len(nodes)} node(s), the largest {cpus_text(largest)}). "
                f"Fix: {fix}")


def _fits(ask: Ask, resources: Mapping[str, float]) -> bool:
    """One replica of `ask` fits in `resources` (a node's total, or what it has free)."""
    return all(v <= resources.get(k, 0.0) + 1e-9 for k, v in ask.resources().items())


def _free_per_node() -> dict[str, dict[str, float]]:
    """Each live node's free resources (Ray's developer API for it, `ray._private.state`, as `pending_replicas`)."""
    # late: the CLI imports this module for `trapline serve`'s checks; Ray loads once a service runs
    from ray._private.state import available_resources_per_node

    return available_resources_per_node()


def pending_replicas(app_name: str) -> dict[str, str]:
    """Replica actors of `app_name` that Ray has not created yet (no room, or the worker starting): actor id ->
    deployment.

    Read from the GCS's actor table (`ray._private.state.actors`, Ray's developer API for it): the state API's
    `list_actors` would give each one's required resources too, but it needs the dashboard, which a cluster (and the
    tests' Ray) may run without; what each replica asks is the config's (`config_asks`)."""
    return {actor_id: deployment for actor_id, (_, deployment) in _pending_replica_actors(app_name).items()}


def end_pending_replicas(app_name: str) -> int:
    """Kill the replicas of `app_name` that Ray has not created yet, for an app that never came up and is being
    deleted; returns how many. Serve stops a replica with a graceful-shutdown call and kills it only when no answer
    came within its graceful_shutdown_timeout_s (20 s by default): a replica never placed cannot answer, so the
    stop would wait that out for one that never held a request (`trapline serve` exiting 20 s after it said why)."""
    # late: the CLI imports this module for `trapline serve`'s checks; Ray loads once a service runs
    import ray
    from ray.serve._private.constants import SERVE_NAMESPACE

    ended = 0
    for name, _ in _pending_replica_actors(app_name).values():
        try:
            ray.kill(ray.get_actor(name, namespace=SERVE_NAMESPACE), no_restart=True)
            ended += 1
        except ValueError:  # gone meanwhile
            continue
    return ended


def _pending_replica_actors(app_name: str) -> dict[str, tuple[str, str]]:
    """Replica actors of `app_name` in PENDING_CREATION: actor id -> (actor name, deployment)."""
    # late: the CLI imports this module for `trapline serve`'s checks; Ray loads once a service runs
    from ray._private.state import actors

    out = {}
    for actor_id, actor in actors(actor_state_name="PENDING_CREATION").items():
        name = actor.get("Name") or ""
        if not name.startswith(REPLICA_ACTOR_PREFIX):
            continue
        app, _, rest = name[len(REPLICA_ACTOR_PREFIX):].partition("#")
        deployment = rest.split("#", 1)[0]
        if app == app_name and deployment:
            out[actor_id] = (name, deployment)
    return out


def replica_app_name() -> str:
    """The Serve app of the replica this runs in (the default app's name outside Serve: unit tests)."""
    # late: the CLI imports this module for `trapline serve`'s checks; Ray loads once a service runs
    from ray import serve

    try:
        return serve.get_replica_context().app_name
    except Exception:  # noqa: BLE001 - not inside Serve
        return APP_NAME
