"""A config whose replicas cannot be placed is said as an error with its reason (serve/placement.py): before Ray
starts when the local Ray's CPUs are known; the running check is in tests/integration/test_antenna_door.py."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from serve.config import JOB_CPUS, parse_serve_config
from serve.placement import config_asks, fit_error, with_overrides

GUIDE_DEFAULTS = {"models": [{"name": "demo-detector", "classify": [{"model": "demo-species"}]}],
                  "classifiers": [{"name": "demo-species"}],
                  "antenna": {"pipelines": [{"slug": "trapline-demo", "detector": "demo-detector",
                                             "classifier": "demo-species"}]}}


def test_the_asks_are_every_deployment_the_app_builds():
    cfg = parse_serve_config({**GUIDE_DEFAULTS, "http": {"one_hop": False, "ingress_num_cpus": 0.1}})
    asks = {a.deployment: (a.replicas, a.cpus) for a in config_asks(cfg)}
    assert asks == {"detector-demo-detector": (1, 1.0), "classifier-demo-species": (1, 1.0), "ingress": (1, 0.1),
                    "antenna": (1, 0.1)}
    one_hop = {a.deployment for a in config_asks(parse_serve_config(GUIDE_DEFAULTS))}
    assert "ingress" not in one_hop  # the single model's replicas are the ingress
    auto = parse_serve_config({"models": [{"name": "m", "autoscaling_config": {"min_replicas": 2, "max_replicas": 4}}]})
    assert [(a.replicas, a.cpus) for a in config_asks(auto)] == [(2, 1.0)]
    overridden = with_overrides(config_asks(auto), [{"name": "detector-m", "num_replicas": 3,
                                                     "ray_actor_options": {"num_cpus": 0.5}}])
    assert [(a.replicas, a.cpus) for a in overridden] == [(3, 0.5)]


def test_a_config_that_cannot_fit_says_what_asks_what_the_machine_has_and_the_fix():
    """The Antenna guide's config with the default CPUs per replica, on a 2-core machine (issue 67)."""
    reason = fit_error(config_asks(parse_serve_config(GUIDE_DEFAULTS)), cpus=2)
    assert reason is not None
    assert "(2 CPUs)" in reason and "ask 2.25 CPUs" in reason
    assert "model 'demo-detector' 1 x 1 CPU" in reason and "the Antenna door 1 x 0.25 CPUs" in reason
    assert "num_cpus: 0.62" in reason and "fewer replicas" in reason and "bigger node" in reason
    # the share it suggests fits, with an archive job's room
    fixed = {**GUIDE_DEFAULTS, "models": [{**GUIDE_DEFAULTS["models"][0], "num_cpus": 0.62}],
             "classifiers": [{"name": "demo-species", "num_cpus": 0.62}]}
    asks = config_asks(parse_serve_config(fixed))
    assert fit_error(asks, cpus=2) is None and sum(a.cpus * a.replicas for a in asks) + JOB_CPUS <= 2
    # a replica larger than the whole machine: no share of it fits
    alone = fit_error(config_asks(parse_serve_config({"models": [{"name": "m", "num_cpus": 3}]})), 2)
    assert "ask 3 CPUs" in alone and "num_cpus: 1.5" in alone


def test_trapline_serve_refuses_a_config_that_cannot_fit_before_ray_starts(local_store, tmp_path):
    """In a process of its own, as a user runs it: in the suite's process a session Ray may be up already, which
    `trapline serve` would join instead of starting one."""
    local_store.promote("fixture:1")
    config = tmp_path / "serve.yaml"
    config.write_text(yaml.safe_dump({"store": local_store.root, "models": [{"name": "fixture", "num_cpus": 1.5}],
                                      "classifiers": [], "http": {"one_hop": False}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.run([sys.executable, "-m", "trapline.cli", "serve", "--config", str(config), "--num-cpus", "1",
                           "--port", "0"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "does not fit the local Ray it would start (1 CPU)" in proc.stderr, proc.stderr
    assert "model 'fixture' 1 x 1.5 CPUs" in proc.stderr
    assert "Ray logs" not in proc.stdout + proc.stderr  # refused before a Ray was started
