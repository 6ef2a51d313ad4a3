"""The README's and docs/architecture.md's picture of the house matches the tree (the import rules
themselves are import-linter contracts, checked by `make lint`)."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOMS = ("model_store", "batch")
PRODUCT = ("trapline", "model_store", "serve", "batch", "ground")


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


def _unexplained_late_imports(path: Path) -> list[str]:
    """Imports of a project module or of Ray inside a function with no comment on their line, nor on the
    line above them (a block of imports in a row shares the comment above its first line)."""
    source = path.read_text()
    comments = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT}
    found = []
    for fn in ast.walk(ast.parse(source)):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        imports = [node for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))]
        ending_on = {node.end_lineno: node for node in imports}
        for node in imports:
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                modules = [node.module or ""] if node.level == 0 else ["."]  # relative: the project's own
            if not any(m == "." or m.split(".")[0] in (*PRODUCT, "ray") for m in modules):
                continue
            first = node.lineno
            while first - 1 in ending_on:  # the first line of the block of imports this one is in
                first = ending_on[first - 1].lineno
            if not comments & {*range(node.lineno, node.end_lineno + 1), first - 1}:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    return found


def test_imports_sit_at_the_top_unless_a_comment_says_why():
    """docs/architecture.md: an import of the project or of Ray inside a function says why on its line or the
    line above (a heavy runtime loaded late, the CLI's start-up, a Ray worker's cold start)."""
    found = [hit for package in PRODUCT for path in sorted((REPO / package).rglob("*.py"))
             for hit in _unexplained_late_imports(path)]
    assert not found, "function-level imports without a comment saying why: " + ", ".join(sorted(set(found)))


def test_environment_variables_are_read_only_through_the_registry():
    """Every TRAPLINE_* (and RAY_ADDRESS) read goes through ground/env.py, so its generated docs page is all."""
    from ground import env

    declared = {v.name for v in env.VARIABLES} | set(env.FORWARDED)
    pattern = re.compile(r"""(?:environ\.get|getenv|environ\[)\(?\s*["'](TRAPLINE_[A-Z_]+|RAY_ADDRESS)["']""")
    offenders, named = [], set()
    for package in PRODUCT:
        for path in (REPO / package).rglob("*.py"):
            text = path.read_text()
            named |= set(re.findall(r"\bTRAPLINE_[A-Z_]+\b", text))
            if path.name != "env.py" and pattern.search(text):
                offenders.append(path.relative_to(REPO).as_posix())
    assert offenders == [], f"read these through ground.env: {offenders}"
    assert named - declared == set(), f"named in the code, not declared in ground/env.py: {named - declared}"


def _room(module: str) -> str:
    """The room a module belongs to: its top-level package and the sub-package under it (`batch.reprocess`,
    `serve.recording`); a module directly under a top-level package is a room of its own (`serve.ingress`)."""
    return ".".join(module.split(".")[:2])


def test_no_room_imports_a_private_name_of_another():
    """docs/architecture.md: a name with a leading underscore is its room's own; another room imports what its owner
    made public (or the owner makes it public), so a private name can change without breaking a stranger."""
    found = []
    for package in (*PRODUCT, "benchmarks"):
        for path in sorted((REPO / package).rglob("*.py")):
            here = ".".join(path.relative_to(REPO).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                if node.module.split(".")[0] not in (*PRODUCT, "benchmarks") or _room(node.module) == _room(here):
                    continue
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                found += [f"{path.relative_to(REPO)}:{node.lineno} {node.module}.{name}" for name in private]
    assert not found, "private names imported across rooms: " + ", ".join(found)
