"""The pins in two files: constraints-runtime.txt (what the image installs) and constraints.txt (it, plus the test,
docs and dev tools' pins), so that a test-only pin never rebuilds the image's dependency layer."""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import re
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]


def pins(name: str) -> dict[str, str]:
    out = {}
    for line in (REPO / name).read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "-c ")):
            package, version = line.split("==")
            out[canonicalize_name(package)] = version
    return out


def runtime_closure() -> set[str]:
    """pyproject.toml's runtime dependencies and everything they pull in, as installed here (both onnxruntime
    builds: the image takes the CPU one, pyproject.toml the GPU one on Linux x86-64)."""
    spec = importlib.util.spec_from_file_location("container_requirements", REPO / "deploy/container/requirements.py")
    reader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reader)  # the image's own reader of pyproject.toml (with Python 3.10's fallback)
    deps = reader.dependencies((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    todo = [Requirement(d) for d in deps] + [Requirement("onnxruntime")]
    seen: dict[str, set[str]] = {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen and set(req.extras) <= seen[name]:
            continue
        seen[name] = seen.get(name, set()) | set(req.extras)
        try:
            requires = md.distribution(req.name).requires or []
        except md.PackageNotFoundError:  # onnxruntime where onnxruntime-gpu is installed: the same requirements
            requires = md.distribution("onnxruntime-gpu").requires or []
        for spec in map(Requirement, requires):
            if spec.marker is None or any(spec.marker.evaluate({"extra": e}) for e in seen[name] | {""}):
                todo.append(spec)
    return set(seen)


def test_constraints_takes_the_runtime_pins_and_adds_only_the_others():
    text = (REPO / "constraints.txt").read_text(encoding="utf-8")
    assert re.search(r"^-c constraints-runtime\.txt$", text, re.M)
    runtime, rest = pins("constraints-runtime.txt"), pins("constraints.txt")
    assert runtime and rest
    assert not set(runtime) & set(rest), "a package pinned in both files"


def test_the_runtime_pins_are_the_runtime_dependencies_closure_and_nothing_else():
    closure, runtime = runtime_closure(), pins("constraints-runtime.txt")
    assert sorted(closure - set(runtime)) == [], "runtime dependencies without a pin in constraints-runtime.txt"
    assert sorted(set(runtime) - closure) == [], "test or dev pins in constraints-runtime.txt: move to constraints.txt"


def test_the_image_installs_only_the_runtime_pins():
    lines = (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines()
    dockerfile = "\n".join(line for line in lines if not line.startswith("#"))
    assert "COPY constraints-runtime.txt ./" in dockerfile
    assert "-c constraints-runtime.txt -r requirements.txt" in dockerfile
    assert "constraints.txt" not in dockerfile.replace("constraints-runtime.txt", "")
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "!constraints-runtime.txt" in ignore and "!constraints.txt" not in ignore
