"""Print the image's requirements: pyproject.toml's runtime dependencies (no extras), one a line.

    python3 requirements.py --flavour cpu|gpu > requirements.txt

cpu installs plain onnxruntime where pyproject.toml would take onnxruntime-gpu (Linux x86-64): the GPU build
is several times the size and needs CUDA libraries a CPU host does not have. Markers stay as they are; pip
evaluates them. Standard library only: it runs on the bare base image before anything is installed.
"""

from __future__ import annotations

import argparse
import re

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (a CUDA base with Ubuntu 22.04): a minimal reader of the one list
    tomllib = None


def dependencies(text: str) -> list[str]:
    if tomllib is not None:
        return tomllib.loads(text)["project"]["dependencies"]
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
    return re.findall(r'^\s*"([^"]+)"', block, re.M)


def requirements(deps: list[str], flavour: str) -> list[str]:
    if flavour == "gpu":
        return deps
    return [re.sub(r"^onnxruntime-gpu\b", "onnxruntime", d) for d in deps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--flavour", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--pyproject", default="pyproject.toml")
    args = parser.parse_args()
    with open(args.pyproject, encoding="utf-8") as f:
        print("\n".join(requirements(dependencies(f.read()), args.flavour)))


if __name__ == "__main__":
    main()
