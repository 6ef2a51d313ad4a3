"""How many times one command opens the same tables: `Storage` objects built per run, by the root they open.

    python -m benchmarks.tables_opened [--out bench-results/tables_opened.json]

Issue 65's measure "tables opened per run" (target: once), with issue 83's reprocess: the archive, the output tables and
the model store opened once at its door (batch/reprocess/plan.py `RunPlaces`), and the gated promote: the tables
and the model store opened once by `trapline models promote` for its gate and the promote (store 3, tables 4 before);
tests/unit/test_opened_once.py holds every command at one. Small tables written at run time (the identity archive
of tests/fixtures/reid_tables.py, the light-trap sheet of tests/fixtures/occurrences.py, a reviewed season of
tests/fixtures/gate_season.py), then the commands a user runs on them, in process (`trapline.cli.main`); every
`Storage(...)` built meanwhile is counted by its root: the tables, the model store, the archive, the output, the
audit log beside the store, `/` (a picture read by its absolute path opens the filesystem root), or anything else
(the default ./models of a command not given --store). It counts how often a location is opened, not the time it
costs (one local open is cheap; on S3 each builds a client and, off the cache, lists again).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import tempfile
from pathlib import Path

from ground import storage
from model_store.demo.publish import DEMO_NAME, publish_demo
from model_store.store.store import ModelStore
from serve.people import people_location
from tests.fixtures.archive import brightness_config, brightness_model, build_archive, write_local
from tests.fixtures.gate_season import write_season
from tests.fixtures.occurrences import SHEET_MODEL, write_sheet_tables
from tests.fixtures.reid_tables import write_identity_tables
from trapline.cli import main

KEYPOINTS = {"backend": "keypoints", "applies_to": ["zebra"]}


@contextlib.contextmanager
def counting(roots: dict[str, str]):
    """Count every Storage built inside the block by the name of the root it opens (`roots`: name -> path)."""
    counts: collections.Counter = collections.Counter()
    real = storage.Storage.__init__

    def counted(self, root: str, *args, **kwargs) -> None:
        where = str(Path(root).resolve()) if "://" not in root else root
        name = next((n for n, r in roots.items() if where == r or where.startswith(r + "/")),
                    "pictures by path (root /)" if where == "/" else "other")
        counts[name] += 1
        real(self, root, *args, **kwargs)

    storage.Storage.__init__ = counted
    try:
        yield counts
    finally:
        storage.Storage.__init__ = real


def run(argv: list[str], roots: dict[str, str]) -> dict[str, int]:
    with counting(roots) as counts, contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    if code != 0:
        raise SystemExit(f"trapline {' '.join(argv)} exited {code}")
    return dict(counts)


def measure(root: Path) -> dict[str, dict[str, int]]:
    tables, _ = write_identity_tables(root / "reid", individuals=5, views=3)
    store = str((root / "models").resolve())
    ModelStore(store).publish(None, "coats", "1", KEYPOINTS)
    sheet = str(write_sheet_tables(root / "sheet").resolve())
    reid = {"tables": str(Path(tables).resolve()), "store": store,
            "archive": str((root / "reid" / "archive").resolve())}
    trip = {"tables": sheet, "store": store, "archive": str((root / "sheet" / "archive").resolve()),
            "out": str(root.resolve())}
    archive = write_local(build_archive(), root / "traps")
    ModelStore(store).publish(brightness_model(root / "bright.onnx"), "trapcam", "1", brightness_config())
    run_at = {"archive": str(archive.resolve()), "out": str((root / "detections").resolve()), "store": store}
    gated = str((root / "gate-store").resolve())  # the demo detectors, production -> 1, and a season reviewed on 1
    publish_demo(ModelStore(gated), with_torch=False)
    season = str(Path(write_season(root / "season", ModelStore(gated), f"{DEMO_NAME}:1")).resolve())
    # the audit log beside the store (serve/people.py `people_location`) is a place of its own, named first: it
    # lies under the store's root
    promote_at = {"audit log": people_location(None, gated), "tables": season, "store": gated}
    return {
        "reprocess --dry-run": run(["reprocess", "--archive", str(archive), "--out", str(root / "detections"),
                                    "--model", "trapcam:1", "--store", store, "--dry-run"], run_at),
        "identify": run(["identify", "--tables", tables, "--identifier", "coats:1", "--store", store], reid),
        "postprocess --filter track": run(["postprocess", "--tables", sheet, "--model", SHEET_MODEL, "--filter",
                                           "track", "--config", '{"appearance": "none"}'], trip),
        "occurrences review": run(["occurrences", "review", "--tables", sheet, "--model", SHEET_MODEL], trip),
        "export --format megadetector": run(["export", "--tables", sheet, "--model", SHEET_MODEL, "--format",
                                             "megadetector", "--out", str(root / "md.json")], trip),
        "report": run(["report", "--tables", sheet, "--model", SHEET_MODEL, "--out", str(root / "report")], trip),
        "models promote (gated)": run(["models", "promote", f"{DEMO_NAME}:2", "--store", gated,
                                       "--tables", season], promote_at),
    }


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="also write the counts here as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(Path(tmp))
    for command, counts in result.items():
        print(f"trapline {command:30s} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main_())
