"""`trapline identify` in one process against `--ray` (describe and match on Ray Data actor pools), same archive.

    flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.reid_ray [--individuals 150 --views 4]

The identity archive of benchmarks/reid_archive.py; a local Ray of this machine's CPUs started once before the
timed runs (its start-up is not counted); each run's wall seconds and sightings/s, and whether both runs put the
same sightings in the same individuals.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from batch.identify.distributed import RayWorkers
from batch.identify.options import IdentifyOptions
from batch.identify.run import run_identify
from benchmarks.common import local_ray
from model_store.store.store import ModelStore
from model_store.tables.identities import SIGHTINGS, read_result
from model_store.tables.locations import open_location


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--individuals", type=int, default=150)
    p.add_argument("--views", type=int, default=4)
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fixture lives in tests/
    from tests.fixtures.reid_tables import write_identity_tables

    with tempfile.TemporaryDirectory() as d:
        tables, _ = write_identity_tables(Path(d), individuals=args.individuals, views=args.views)
        store = str(Path(d) / "models")
        ModelStore(store).publish(None, "coats", "1", {"backend": "keypoints", "applies_to": ["zebra"]})
        t = time.perf_counter()
        local = run_identify(IdentifyOptions(tables=str(tables), identifier="coats:1", store=str(store)))
        local_s = time.perf_counter() - t
        first = read_result(open_location(tables), SIGHTINGS).set_index("uri")["individual_id"]
        with local_ray():
            workers = RayWorkers("coats:1", store)
            t = time.perf_counter()
            run_identify(IdentifyOptions(tables=str(tables), identifier="coats:1", store=str(store)), workers=workers)
            ray_s = time.perf_counter() - t
        same = read_result(open_location(tables), SIGHTINGS).set_index("uri")["individual_id"].equals(first)
    n = local.sightings
    print(f"{n} sightings: one process {local_s:.1f} s ({n / local_s:.1f}/s); on Ray ({workers.concurrency} actors) "
          f"{ray_s:.1f} s ({n / ray_s:.1f}/s, {local_s / ray_s:.2f}x); same individuals: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
