"""The tests of one room: `make test-room ROOM=serve` (or `python -m tests.rooms serve/local.py`: a changed file's
room is its top folder).

A room is one of the product's packages (serve, batch, model_store, trapline) or benchmarks. Its tests are the test
files that import it, directly or through the tests' own helpers (tests/fixtures/...; imports inside functions
count), those named for it (test_serve_*.py, test_batch_*.py) and, for trapline (where the CLI is), those that run
`trapline` as a subprocess (`python -m trapline.cli`, or the `trapline` command). The
unit ones run on every core (pytest-xdist, as `make test-fast`), then the Ray, Serve, container and Antenna ones in
one process, as `make test` runs them. A file not found this way is still in `make test`.
"""

from __future__ import annotations

import argparse
import ast
import functools
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
ROOMS = ("serve", "batch", "model_store", "trapline", "ground", "benchmarks")


def room_of(arg: str) -> str:
    """`serve` or a path in it (`serve/local.py`, `./batch/jobs/`): the room; anything else is a clear error."""
    parts = Path(arg).parts
    room = (parts[1] if parts[:1] == (".",) and len(parts) > 1 else parts[0]) if parts else ""
    if room not in ROOMS:
        raise ValueError(f"{arg!r} is in no room: give one of {', '.join(ROOMS)} or a file under one")
    return room


@functools.cache
def imports(path: Path) -> frozenset[str]:
    """The modules a file imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return frozenset(names)


def helper_file(module: str) -> Path | None:
    """The file of a tests.* module (not a test file), if there is one."""
    base = REPO.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def reaches(path: Path, room: str, seen: set[Path] | None = None) -> bool:
    seen = set() if seen is None else seen
    seen.add(path)
    for module in imports(path):
        if module == room or module.startswith(room + "."):
            return True
        if module.startswith("tests.") and (helper := helper_file(module)) and helper not in seen:
            if reaches(helper, room, seen):
                return True
    return False


def runs_cli(path: Path) -> bool:
    text = path.read_text(encoding="utf-8")
    return '"trapline.cli"' in text or '"trapline", ' in text


def room_tests(room: str) -> dict[str, list[str]]:
    """{"unit": [...], "ray": [...]}: the room's test files, relative to the repository."""
    out: dict[str, list[str]] = {"unit": [], "ray": []}
    for path in sorted(TESTS.glob("*/test_*.py")):
        if path.name.startswith(f"test_{room}_") or reaches(path, room) or (room == "trapline" and runs_cli(path)):
            out["unit" if path.parent.name == "unit" else "ray"].append(str(path.relative_to(REPO)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.rooms", description=__doc__.split("\n\n")[0])
    parser.add_argument("room", help=f"one of {', '.join(ROOMS)}, or a changed file under one")
    parser.add_argument("--list", action="store_true", help="print the room's test files and run nothing")
    parser.add_argument("--workers", default="auto", help="pytest-xdist workers for the unit tests (default auto)")
    args, pytest_args = parser.parse_known_args(argv)
    try:
        tests = room_tests(room_of(args.room))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list:
        print("\n".join(tests["unit"] + tests["ray"]))
        return 0
    code = 0
    if tests["unit"]:
        code = subprocess.call([sys.executable, "-m", "pytest", *tests["unit"], "-n", args.workers,
                                "--maxprocesses", "4", *pytest_args], cwd=REPO)
    if tests["ray"] and code == 0:
        code = subprocess.call([sys.executable, "-m", "pytest", *tests["ray"], *pytest_args], cwd=REPO)
    return code


if __name__ == "__main__":
    sys.exit(main())
