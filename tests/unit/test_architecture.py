"""The README's and docs/architecture.md's picture of the house matches the tree (the import rules
themselves are import-linter contracts, checked by `make lint`)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOMS = ("model_store", "batch")


def packages() -> set[str]:
    """Every sub-package of the rooms, as `parent/child/`."""
    return {f"{p.parent.relative_to(REPO).as_posix()}/" for room in ROOMS
            for p in (REPO / room).glob("*/__init__.py")}


def readme_layout() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = text[text.index("## Architecture"):]
    block = block[block.index("```") + 3:]
    return block[:block.index("```")].splitlines()


def test_readme_layout_names_every_room_and_only_rooms_that_exist():
    named, parent = set(), ""
    for line in readme_layout():
        m = re.match(r"^( *)(\w+)/", line)
        if not m:
            continue
        if not m.group(1):
            parent = m.group(2)
            assert (REPO / parent).is_dir(), line
        else:
            path = f"{parent}/{m.group(2)}/"
            assert (REPO / path).is_dir(), f"README names {path}, which is not in the tree"
            named.add(path)
    missing = {p for p in packages() if not p.startswith("model_store/demo")} - named
    assert not missing, f"rooms missing from the README's layout: {sorted(missing)}"


def test_architecture_doc_covers_every_room_and_every_contract_is_checked():
    doc = (REPO / "docs" / "architecture.md").read_text()
    for pkg in packages():
        assert pkg.split("/", 1)[1] in doc, f"docs/architecture.md does not place {pkg}"
    kinds = set(re.findall(r'^type = "(\w+)"', (REPO / "pyproject.toml").read_text(), re.M))
    assert {"acyclic_siblings", "layers", "forbidden"} <= kinds
    assert "lint-imports" in (REPO / "Makefile").read_text()
