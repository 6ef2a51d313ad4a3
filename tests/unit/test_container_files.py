"""The container's files read as the tools read them: the image's requirements per flavour, compose.yaml's services
and volumes, and the one place deploy/ names the image. The image itself runs in tests/e2e/test_container.py."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

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


def test_compose_serves_on_8000_with_the_three_volumes_and_the_cluster_services_only_in_their_profile():
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    service = services["trapline"]
    assert "profiles" not in service  # `docker compose up` starts it
    assert service["ports"] == ["${TRAPLINE_BIND:-127.0.0.1}:${TRAPLINE_PORT:-8000}:8000"]
    assert {v.rsplit(":", 1)[1] for v in service["volumes"]} == {"/models", "/archive", "/tables"}
    assert "${TRAPLINE_MODELS:-./models}:/models" in service["volumes"]
    assert set(compose["volumes"]) == {"archive", "tables"}
    assert {name for name, s in services.items() if s.get("profiles") == ["cluster"]} == {"ray-head", "ray-worker"}
    for name in ("ray-head", "ray-worker"):
        assert services[name]["environment"]["RAY_AUTH_MODE"] == "token"
        assert services[name]["volumes"] == service["volumes"]  # a job's tasks on either node see the same files
    # .env holds secrets and stays out of git; its example is committed with every value compose.yaml reads
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()
    example = {line.split("=")[0] for line in (REPO / ".env.example").read_text().splitlines()
               if line and not line.startswith("#")}
    # podman-compose 1.0 (Debian 12) leaves `${X:-}` as it is: an unset token would be that literal text
    assert ":-}" not in (REPO / "compose.yaml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", (REPO / "compose.yaml").read_text()))  # $${X}: the container's
    assert used - {"TRAPLINE_VERSION"} <= example, used - example


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
