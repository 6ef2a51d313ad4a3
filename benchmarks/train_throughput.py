"""`trapline models train`'s Ray Train loop: crops per second with 1 and with 2 workers, on this machine.

    flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.train_throughput [--crops 600 --epochs 2]

A crops set rendered at start (tests/fixtures/crops_sets.py: the demo's scenes, cut as `trapline export --format
crops` cuts them) and the demo's TinyClassifier published as a trainable version; then the same fine-tune
(batch/train/run.py: plan, then a TorchTrainer run) with `--workers` 1 and then 2, on one local Ray started before
the timed runs. Crops/s is the training loop's own (rank 0's crops of every global batch over the epochs' seconds,
what the run summary reports), and the run's wall seconds (with Ray Train's worker start-up) beside it. Each worker
reserves `--cpus-per-worker` CPUs and runs `max(1, int(cpus))` torch threads; on 2 cores, 1 worker x 1 CPU and
2 workers x 1 CPU use the same cores, so the figure is what data parallelism costs or gains there, not a scale-out.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from batch.models_commands import TrainOptions
from batch.train.run import plan, run_trainer
from benchmarks.common import local_ray, machine_info
from model_store import ModelStore


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--crops", type=int, default=600, help="train crops")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--workers", default="1,2", help="worker counts to compare")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fixture lives in tests/
    from tests.fixtures.crops_sets import publish_trainable, write_crops_set

    rows = []
    with tempfile.TemporaryDirectory() as d:
        store = ModelStore(str(Path(d) / "models"))
        publish_trainable(store, "species", "1")
        write_crops_set(Path(d) / "set", {"train": args.crops})
        with local_ray():
            for workers in (int(w) for w in args.workers.split(",")):
                o = TrainOptions(ref="species:1", crops=str(Path(d) / "set"), version=f"w{workers}",
                                 store=store.root, workers=workers, cpus_per_worker=args.cpus_per_worker,
                                 epochs=args.epochs, batch_size=args.batch_size)
                t = time.perf_counter()
                result = run_trainer(plan(o), o, str(Path(d) / "checkpoints"), f"bench-{workers}")
                wall = time.perf_counter() - t
                r = result.return_value
                rows.append((workers, r["crops_per_s"], r["seconds"], wall))
                print(f"{workers} worker(s) x {args.cpus_per_worker:g} CPU: {r['crops_per_s']:.0f} crops/s in the "
                      f"loop ({args.epochs} epochs of {args.crops} crops, {r['seconds']:.1f} s), {wall:.1f} s wall "
                      "with start-up", flush=True)
    info = machine_info()
    print(f"machine: {info['cpu_count']} CPUs ({info.get('cpu_model', '?')}), load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())} at the end (shared with other work: see it)")
    if len(rows) == 2:
        print(f"{rows[1][0]} vs {rows[0][0]} worker(s): {rows[1][1] / rows[0][1]:.2f}x crops/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
