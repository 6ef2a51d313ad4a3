"""The container's files read as the tools read them: the image's requirements per flavour, compose.yaml's services
and volumes, and the one place deploy/ names the image. The image itself runs in tests/e2e/test_container.py."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _requirements_module():
    spec = importlib.util.spec_from_file_location("container_requirements", REPO / "deploy/container/requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cpu_image_takes_onnxruntime_where_pyproject_takes_the_gpu_build_and_no_extras():
    req = _requirements_module()
    text = (REPO / "pyproject.toml").read_text()
    deps = req.dependencies(text)
    cpu, gpu = req.requirements(deps, "cpu"), req.requirements(deps, "gpu")
    assert any(d.startswith("onnxruntime-gpu") for d in gpu)
    assert not any("onnxruntime-gpu" in d for d in cpu)
    assert [d for d in cpu if d.startswith("onnxruntime")] == [
        "onnxruntime" + d.removeprefix("onnxruntime-gpu").removeprefix("onnxruntime")
        for d in deps if d.startswith("onnxruntime")]
    assert not any(re.match(r"(torch|pytest|onnx[<>=]|ruff)", d) for d in cpu)  # no train or dev extra
    # the reader for Python 3.10 (no tomllib: a CUDA base on Ubuntu 22.04) reads the same list
    req_310 = _requirements_module()
    req_310.tomllib = None
    assert req_310.dependencies(text) == deps


def test_compose_serves_on_8000_with_the_three_volumes_and_the_cluster_services_in_a_file_of_their_own():
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"trapline"}  # a compose that ignores `profiles:` starts nothing else
    service = services["trapline"]
    assert service["ports"] == ["${TRAPLINE_BIND:-127.0.0.1}:${TRAPLINE_PORT:-8000}:8000"]
    assert {v.rsplit(":", 1)[1] for v in service["volumes"]} == {"/models", "/archive", "/tables"}
    assert "${TRAPLINE_MODELS:-./models}:/models" in service["volumes"]
    assert set(compose["volumes"]) == {"archive", "tables"}
    cluster = yaml.safe_load((REPO / "compose.cluster.yaml").read_text())
    assert set(cluster["services"]) == {"ray-head", "ray-worker"} and set(cluster["volumes"]) == {"archive", "tables"}
    for name, s in cluster["services"].items():
        assert s["environment"]["RAY_AUTH_MODE"] == "token"
        assert s["environment"]["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?")  # compose refuses without it
        assert s["volumes"] == service["volumes"]  # a job's tasks on either node see the same files
        assert s["restart"] == "on-failure"  # a container without its token stops (exit 0) instead of looping
    # .env holds secrets and stays out of git; its example is committed with every value the compose files read
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()
    example = {line.split("=")[0] for line in (REPO / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    for path in ("compose.yaml", "compose.cluster.yaml"):
        text = (REPO / path).read_text()
        # podman-compose 1.0 (Debian 12) leaves `${X:-}` as it is: an unset token would be that literal text
        assert ":-}" not in text
        used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", text))  # $${X}: the container's
        assert used - {"TRAPLINE_VERSION"} <= example, (path, used - example)


@pytest.mark.parametrize("service", ["ray-head", "ray-worker"])
def test_a_ray_container_without_its_token_says_so_once_and_stops(service):
    """The container's own command (as compose hands it to the shell, `$$` unescaped) with an empty token: one line
    on stderr, exit 0, which `restart: on-failure` leaves stopped; nothing of Ray is run."""
    [command] = yaml.safe_load((REPO / "compose.cluster.yaml").read_text())["services"][service]["command"]
    done = subprocess.run(["/bin/sh", "-c", command.replace("$$", "$")], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/nonexistent", "RAY_AUTH_TOKEN": ""})
    assert done.returncode == 0 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: RAY_AUTH_TOKEN is empty: set it in .env")


@pytest.mark.skipif(shutil.which("podman-compose") is None, reason="Debian's podman-compose is not installed")
def test_debians_podman_compose_starts_only_the_service_and_the_cluster_file_only_with_its_token(tmp_path):
    """podman-compose 1.0.3 (Debian 12's `podman compose`), which ignores `profiles:`, asked what `up -d` would run
    (--dry-run: the podman commands, none run; it still creates the project's volumes and network, removed after)."""
    project = f"tl-dry-{uuid.uuid4().hex[:8]}"

    def dry_run(*files: str, services: tuple[str, ...] = (), token: str | None = None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "RAY_AUTH_TOKEN"} | (
            {"RAY_AUTH_TOKEN": token} if token is not None else {})
        args = [a for f in files for a in ("-f", str(REPO / f))]
        return subprocess.run(["podman-compose", *args, "-p", project, "--dry-run", "up", "-d", *services],
                              capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)

    def started(done: subprocess.CompletedProcess) -> list[str]:
        return re.findall(rf"^podman run --name={project}_([\w-]+)_1", done.stdout, re.M)

    try:
        assert started(dry_run("compose.yaml")) == ["trapline"]
        both = ("compose.yaml", "compose.cluster.yaml")
        assert started(dry_run(*both, services=("ray-head", "ray-worker"), token="t")) == ["ray-head", "ray-worker"]
        refused = dry_run(*both, services=("ray-head",))
        assert refused.returncode != 0 and "set RAY_AUTH_TOKEN in .env" in refused.stderr and not started(refused)
    finally:
        subprocess.run(["podman", "volume", "rm", "-f", f"{project}_archive", f"{project}_tables"], capture_output=True,
                       timeout=60)
        subprocess.run(["podman", "network", "rm", "-f", f"{project}_default"], capture_output=True, timeout=60)


def _containers(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers"):
                yield from value
            else:
                yield from _containers(value)
    elif isinstance(node, list):
        for item in node:
            yield from _containers(item)


def test_deploy_names_the_image_once_for_every_pod_of_every_manifest():
    kustomization = yaml.safe_load((REPO / "deploy/kustomization.yaml").read_text())
    manifests = sorted(str(p.relative_to(REPO / "deploy")) for p in (REPO / "deploy").glob("kube*/*.yaml"))
    assert sorted(kustomization["resources"]) == manifests
    names = {i["name"] for i in kustomization["images"]}
    images = [c["image"] for m in manifests for doc in yaml.safe_load_all((REPO / "deploy" / m).read_text())
              for c in _containers(doc)]
    assert len(images) >= 7
    assert {image.split(":")[0] for image in images} <= names
    assert {i["newName"] for i in kustomization["images"]} == {"ghcr.io/SET-YOUR-ORG/trapline"}
