"""Each package docstring that maps its files (`    name.py   what it holds`) is true: every file it names is there,
and every module and sub-package beside it is named (the views excepted: batch/views/routes.py finds them). A map that
drifts fails here, not in a new maintainer's head."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("trapline", "model_store", "serve", "batch", "ground")
# A map line: indented, then a file or folder name (`kinds.py`, `console/`), then what it holds.
ENTRY = re.compile(r"^\s+([A-Za-z_]\w*(?:\.py|/))\s")


def maps() -> dict[Path, set[str]]:
    out = {}
    for top in PACKAGES:
        for init in sorted((REPO / top).rglob("__init__.py")):
            doc = ast.get_docstring(ast.parse(init.read_text())) or ""
            named = {m.group(1) for line in doc.splitlines() if (m := ENTRY.match(line))}
            named |= {w for line in doc.splitlines() if ENTRY.match(line)
                      for w in re.findall(r"(?<![/\w])([a-z_]\w*\.py)\b", line)}  # a line may name its companions too
            if named:
                out[init.parent] = named
    return out


def beside(package: Path) -> set[str]:
    """The modules and folders (sub-packages, the console's static files) in `package`."""
    files = {p.name for p in package.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    return files | {p.name + "/" for p in package.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}


def views() -> set[str]:
    """The views' modules and their bodies: named by their registry (batch/views/routes.py), not by the map."""
    from batch.views.routes import view_routers

    return {f"{name}{end}" for name in view_routers() for end in (".py", "_protocol.py")}


def test_every_package_map_names_exactly_the_files_beside_it():
    found = maps()
    read = {REPO / "batch" / "jobs", REPO / "batch" / "views", REPO / "serve" / "recording"}
    assert read <= set(found)  # the maps there are read
    wrong = {}
    for package, named in found.items():
        there = beside(package) - (views() - named if package == REPO / "batch" / "views" else set())
        missing, unnamed = sorted(named - there), sorted(there - named)
        if missing or unnamed:
            wrong[str(package.relative_to(REPO))] = {"named but not there": missing, "there but not named": unnamed}
    assert not wrong, wrong
