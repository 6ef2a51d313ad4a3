"""How far one command's options travel through the house: stays, rooms, climbs back up and returns, per run.

    python -m benchmarks.option_walk [--out bench-results/option_walk.json]

Issue 65's walk, taken by the program instead of by hand: the command runs in process (`trapline.cli.main`, on the
small tables of benchmarks/tables_opened.py), and every call of a product function (batch/, model_store/, serve/,
trapline/) that is handed the command's options model, or one of its option values (by identity: the very object
the command line gave; None, bools and numbers are shared objects, so not followed), is a *stay*. Each function
counts once, at its first such call, in the order they came (a function called per row is one stay).

- rooms: the distinct rooms of the stays (a room: the top-level package and the sub-package under it, as
  tests/unit/test_architecture.py says: `batch.identify`, `model_store.tables`; `batch.commands` is one of its own);
- climbs back up: a step from one stay's room to the next where the next room imports the one before it (through
  any chain of imports, and not the other way round): the options going back up the house;
- returns: a step into a room the walk had already left.

Steps are taken between consecutive stays in different rooms. It counts where the options go, not the time it
costs; the figures of the issue's own walk (36 stays in 17 rooms, 6 climbs, 19 returns) were taken by hand and by
another reading of "stay", so compare this script's before with its after.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path
from typing import Any

import grimp

from benchmarks.common import write_json
from benchmarks.tables_opened import KEYPOINTS
from model_store.store.store import ModelStore
from tests.fixtures.occurrences import SHEET_MODEL, write_sheet_tables
from tests.fixtures.reid_tables import write_identity_tables
from trapline.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("batch", "model_store", "serve", "trapline", "ground")


def room(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _followed(options: Any) -> dict[int, Any]:
    """The options model and every option value worth following by identity (kept alive by the dict)."""
    carried = {id(options): options}
    for value in vars(options).values():
        if value is not None and not isinstance(value, bool | int | float):
            carried[id(value)] = value
    return carried


def walk(argv: list[str]) -> list[tuple[str, str]]:
    """(module, function) of every stay of `trapline ARGV`'s options, in order: from the options model the command
    line made (`parse_options`, wherever the command calls it) on."""
    import batch.options

    build_parser()  # every command's module imported first, so each holds the real parse_options to replace
    carried: dict[int, Any] = {}
    stays: list[tuple[str, str]] = []
    seen: set[Any] = set()
    real = batch.options.parse_options
    # every module that took the name (batch/cli.py for the registry, a command with its own handler)
    holders = [m for m in list(sys.modules.values()) if getattr(m, "parse_options", None) is real]

    def parsed(*args: Any, **kwargs: Any) -> Any:  # the command's options model, as the command line made it
        options = real(*args, **kwargs)
        carried.update(_followed(options))
        return options

    def profile(frame: Any, event: str, arg: Any) -> None:
        if event != "call" or not carried or frame.f_code in seen:
            return
        module = frame.f_globals.get("__name__", "")
        if module.split(".")[0] not in PRODUCT:
            return
        code = frame.f_code
        names = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
        if any(id(frame.f_locals.get(n)) in carried for n in names if n not in ("self", "cls")):
            seen.add(code)
            stays.append((module, code.co_qualname))

    for m in holders:
        m.parse_options = parsed
    sys.setprofile(profile)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    finally:
        sys.setprofile(None)
        for m in holders:
            m.parse_options = real
    if code != 0:
        raise SystemExit(f"trapline {' '.join(argv)} exited {code}")
    return stays


def figures(stays: list[tuple[str, str]], graph: Any) -> dict[str, Any]:
    rooms = [room(m) for m, _ in stays]
    steps = [r for i, r in enumerate(rooms) if i == 0 or r != rooms[i - 1]]
    above: dict[tuple[str, str], bool] = {}

    def imports(a: str, b: str) -> bool:
        if (a, b) not in above:
            above[(a, b)] = bool(graph.chain_exists(importer=a, imported=b, as_packages=True))
        return above[(a, b)]

    climbs = sum(1 for a, b in zip(steps, steps[1:], strict=False) if imports(b, a) and not imports(a, b))
    returns = sum(1 for i, r in enumerate(steps) if r in steps[:i])
    return {"stays": len(stays), "rooms": len(set(rooms)), "climbs_back_up": climbs, "returns": returns,
            "walk": [f"{m}:{f}" for m, f in stays]}


def measure(root: Path) -> dict[str, dict[str, Any]]:
    tables, _ = write_identity_tables(root / "reid", individuals=5, views=3)
    store = str((root / "models").resolve())
    ModelStore(store).publish(None, "coats", "1", KEYPOINTS)
    sheet = str(write_sheet_tables(root / "sheet").resolve())
    graph = grimp.build_graph(*PRODUCT)
    return {
        "identify": figures(walk(["identify", "--tables", tables, "--identifier", "coats:1", "--store", store]),
                            graph),
        "postprocess --filter track": figures(walk(["postprocess", "--tables", sheet, "--model", SHEET_MODEL,
                                                    "--filter", "track", "--config", '{"appearance": "none"}']),
                                              graph),
    }


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="also write the figures (and each walk) here as JSON")
    parser.add_argument("--show", action="store_true", help="print each walk's stays too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp))
    for command, f in result.items():
        print(f"trapline {command:28s} {f['stays']} stays in {f['rooms']} rooms, {f['climbs_back_up']} climbs back "
              f"up, {f['returns']} returns")
        if args.show:
            print("\n".join(f"    {s}" for s in f["walk"]))
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main_())
