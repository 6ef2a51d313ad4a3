"""cluster.yaml: valid for the Ray cluster launcher, consistent node types, installs trapline, secure defaults."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def test_matches_the_ray_launcher_schema(cluster):
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(cluster, schema)
    assert cluster["provider"]["type"] == "aws"
    # What `ray up` does before touching the cloud: fill in the provider defaults and validate again.
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(json.loads(json.dumps(cluster))))


def test_node_types_exist_and_include_cpu_head_and_gpu_workers(cluster):
    types = cluster["available_node_types"]
    assert cluster["head_node_type"] in types
    head = types[cluster["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    gpu_workers = [name for name, t in types.items() if t["resources"].get("GPU", 0) > 0]
    assert gpu_workers, "needs at least one GPU worker type"
    for name, node in types.items():
        if name != cluster["head_node_type"]:
            assert 0 <= node.get("min_workers", 0) <= node["max_workers"] <= cluster["max_workers"]
    assert sum(t.get("min_workers", 0) for t in types.values()) <= cluster["max_workers"]


def test_setup_installs_this_project_on_every_node(cluster):
    mounts = {str(k): str(v) for k, v in cluster["file_mounts"].items()}
    repo_mount = next(remote for remote, local in mounts.items() if local in (".", "./"))
    setup = " && ".join(cluster["setup_commands"])
    assert re.search(rf"pip install .*-e {re.escape(repo_mount)}\b", setup), setup
    assert f"-c {repo_mount}/constraints.txt" in setup  # the same pins as CI
    assert (REPO / "pyproject.toml").is_file() and (REPO / "constraints.txt").is_file()


def test_dashboard_on_loopback_and_token_auth_on(cluster):
    head = " ".join(cluster["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    for cmd in cluster["head_start_ray_commands"] + cluster["worker_start_ray_commands"]:
        if " start " in f" {cmd} " or "ray start" in cmd:
            assert "RAY_AUTH_MODE=token" in cmd, cmd
    assert "~/.ray/auth_token" in {str(k) for k in cluster["file_mounts"]}
    rules = cluster["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(8000, 8000)]  # only the HTTP port is opened
    assert all(ip["CidrIp"] != "0.0.0.0/0" for r in rules for ip in r["IpRanges"])
