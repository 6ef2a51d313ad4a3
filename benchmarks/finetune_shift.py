"""Issue 82's measure: a season with a shift the base classifier gets wrong, reviewed by simulated people, exported as a
crops set, fine-tuned with `trapline models train`, and judged on held-out cameras by the gate before promote.

`python -m benchmarks.finetune_shift [--seed 7] [--cameras 24] [--per-camera 30] [--look stretch]
[--label-error 0.05] [--share 0.8] [--epochs 20] [--lr 0.003] [--base DIR]`

1. The base: the demo species classifier as `python -m model_store.demo.species --out DIR` trains it (the shipped
   demo-species 1's recipe: 3,000 crops of rendered animals of four kinds, 10 epochs), published with its trainable
   weights as `species:1` (`trapline models publish --trainable --architecture demo-tiny-classifier`). `--base DIR`
   reuses a DIR that command wrote (else it is trained here, about two minutes).
2. The season: `--cameras` cameras of `--per-camera` pictures of the demo's animal scenes (no person or vehicle: the
   classifier names animals, and a fine-tune keeps its labels), every camera seen through a `--look` the base never
   saw in training (LOOKS: `stretch`, wide-angle lenses that draw every animal wider; `blur`, soft lenses; `none`,
   the base's own look, the control). The pictures run through demo-detector:2 into tables as `trapline reprocess
   --classify species=animal` lays them out (tests/fixtures/gate_season.py), and simulated reviewers who know the
   truth judge `--share` of the pictures through the decisions log (confirm a box naming the animal's kind, reject a
   box on no animal, add a missed animal's box, mark an empty picture), naming a wrong kind `--label-error` of the
   time.
3. `trapline export --format crops --seed 0` (whole cameras per split, 0.7 / 0.15 / 0.15), then `trapline models
   train species:1 --crops SET --version 2 --workers 1 --epochs E` (a Ray Train TorchTrainer on a private local Ray).
4. The gate (batch/review/promote_gate.py) on the test split's cameras (the same seed): top-1 of species:1 and
   species:2 on people's labels of the held-out verified boxes, Wilson 95 % intervals and k/n, and its verdict;
   then `trapline models promote` for real: species:2 over species:1 (the target: better beyond the intervals),
   species:1 back over species:2, and species:2-shuffled (species:2's weights answering with its labels rotated, a
   deliberately worse version) over species:2: both refused.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from batch.review.promote_gate import compare, table
from model_store import ModelStore
from model_store.demo.publish import DEMO_NAME, publish_demo
from model_store.demo.scenes import render_scene_with_kinds
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from tests.fixtures.gate_season import HEIGHT, WIDTH, publish_shuffled, write_season
from trapline.cli import main as trapline

NAME = "species"
EMPTY_SHARE = 0.1  # of the scenes the renderer draws empty, this share is kept (most trap pictures hold an animal)


def stretched(rng: np.random.Generator, factor: float = 1.7) -> tuple[np.ndarray, np.ndarray, list]:
    """A scene drawn `factor` times wider than it was rendered (a wide-angle lens's edges), boxes with it."""
    narrow = round(WIDTH / factor)
    rgb, boxes, kinds = render_scene_with_kinds(rng, narrow, HEIGHT)
    boxes = boxes.copy()
    boxes[:, [0, 2]] *= WIDTH / narrow
    return cv2.resize(rgb, (WIDTH, HEIGHT), interpolation=cv2.INTER_LINEAR), boxes, kinds


def blurred(rng: np.random.Generator, sigma: float = 2.5) -> tuple[np.ndarray, np.ndarray, list]:
    """A scene through a soft lens (a Gaussian blur of `sigma` pixels)."""
    rgb, boxes, kinds = render_scene_with_kinds(rng, WIDTH, HEIGHT)
    return cv2.GaussianBlur(rgb, (0, 0), sigma), boxes, kinds


LOOKS: dict[str, Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray, list]]] = {
    "stretch": stretched, "blur": blurred, "none": lambda rng: render_scene_with_kinds(rng, WIDTH, HEIGHT)}


def season_scenes(seed: int, n: int, look: str) -> list[tuple[np.ndarray, np.ndarray, list]]:
    """`n` scenes of the demo's animals through `look`: a rendered scene with a person or a vehicle is drawn again,
    an empty one kept EMPTY_SHARE of the time. Deterministic by seed."""
    rng, keep = np.random.default_rng(seed), random.Random(seed)
    out = []
    while len(out) < n:
        scene = LOOKS[look](rng)
        if any(k is None for k in scene[2]) or (not scene[2] and keep.random() >= EMPTY_SHARE):
            continue
        out.append(scene)
    return out


def cli(*argv: str) -> tuple[int, str, str]:
    """`trapline ARGV` in this process: its exit code, what it printed and what it said on stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = trapline(list(argv))
    return code, out.getvalue(), err.getvalue()


def must(*argv: str) -> str:
    code, out, err = cli(*argv)
    if code != 0:
        sys.exit(f"trapline {' '.join(argv)}: exit {code}\n{out}{err}")
    return out


def base_weights(given: Path | None, tmp: Path) -> Path:
    """A directory with the base's model.onnx, weights.pt and config.json (`given` if it has them, else trained)."""
    out = given or tmp / "base"
    if not (out / "weights.pt").exists():
        from model_store.demo.species import main as train_species

        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            train_species(["--out", str(out)])
        print(f"base: trained by `python -m model_store.demo.species --out {out}` in {time.perf_counter() - t0:.0f} s")
    return out


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=7, help="the season's scenes and reviewers")
    ap.add_argument("--cameras", type=int, default=24)
    ap.add_argument("--per-camera", type=int, default=30)
    ap.add_argument("--look", choices=sorted(LOOKS), default="stretch", help="the season's shift")
    ap.add_argument("--label-error", type=float, default=0.05, help="share of reviewed animals named a wrong kind")
    ap.add_argument("--share", type=float, default=0.8, help="share of the pictures people review")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--lr", type=float, default=0.003, help="models train --lr")
    ap.add_argument("--base", type=Path, help="a directory `python -m model_store.demo.species --out` wrote (reused; "
                    "written there when it has no weights.pt)")
    a = ap.parse_args(argv)
    if not 0 <= a.label_error <= 1 or not 0 < a.share <= 1:
        ap.error("--label-error takes 0..1, --share (0, 1]")
    if a.cameras < 7 or a.per_camera < 1 or a.epochs < 1:
        ap.error("--cameras at least 7 (a test split of whole cameras), --per-camera and --epochs at least 1")
    return a


def run(a: argparse.Namespace, tmp: Path) -> dict:
    store = str(tmp / "store")
    models = ModelStore(store)
    publish_demo(models, with_torch=False)
    base = base_weights(a.base, tmp)
    must("models", "publish", str(base / "model.onnx"), "--name", NAME, "--version", "1", "--config",
         str(base / "config.json"), "--trainable", str(base / "weights.pt"), "--architecture",
         "demo-tiny-classifier", "--store", store)
    must("models", "promote", f"{NAME}:1", "--store", store)  # the alias's first version: no gate

    t0 = time.perf_counter()
    scenes = season_scenes(a.seed, a.cameras * a.per_camera, a.look)
    tables = write_season(tmp / "season", models, f"{DEMO_NAME}:2", a.cameras, a.per_camera, a.seed, kinds=True,
                          scenes=scenes, classifier=f"{NAME}:1", label_error=a.label_error, share=a.share)
    animals = sum(len(s[1]) for s in scenes)
    print(f"season: {len(scenes)} pictures ({a.cameras} cameras x {a.per_camera}, look {a.look!r}, seed {a.seed}), "
          f"{animals} animals ({animals / a.cameras:.1f} a camera), through {DEMO_NAME}:2; {a.share:g} of the "
          f"pictures reviewed, kinds named wrongly {a.label_error:g} of the time; {time.perf_counter() - t0:.0f} s")

    crops = tmp / "set"
    t0 = time.perf_counter()
    must("export", "--tables", tables, "--model", f"{DEMO_NAME}:2", "--store", store, "--format", "crops", "--out",
         str(crops), "--seed", "0")
    manifest = json.loads((crops / "manifest.json").read_text())
    counts = {s: sum(1 for _ in (crops / "crops" / s).rglob("*.jpg")) for s in ("train", "val", "test")}
    print(f"export --format crops --seed 0: {counts} crops, {manifest['decisions']['count']} decisions; "
          f"{time.perf_counter() - t0:.0f} s")

    t0 = time.perf_counter()
    said = must("models", "train", f"{NAME}:1", "--crops", str(crops), "--version", "2", "--workers", "1",
                "--epochs", str(a.epochs), "--lr", str(a.lr), "--seed", "0", "--checkpoints", str(tmp / "ckpt"),
                "--store", store, "--json")
    trained = json.loads(said[said.index("{\n"):])  # after any line Ray printed
    train_s = time.perf_counter() - t0
    heldout = trained["training"]["heldout"]
    print(f"models train: {counts['train']} crops x {a.epochs} epochs, 1 Ray Train worker, {train_s:.0f} s; the set's "
          f"test split: source top-1 {heldout['source_top1']['value']:.2f}, fine-tuned {heldout['top1']['value']:.2f}")

    c = compare(Tables(open_location(tables)), f"{NAME}:1", f"{NAME}:2", models)
    print(f"\n{table(c)}\n")
    shuffled = publish_shuffled(models, f"{NAME}:2", "2-shuffled")
    promotes = {}
    for ref in (f"{NAME}:2", f"{NAME}:1", shuffled):
        code, out, err = cli("models", "promote", ref, "--tables", tables, "--store", store)
        now = models.resolve(f"{NAME}@production").version
        promotes[ref] = {"exit": code, "verdict": next((x.split(": ", 1)[1] for x in out.splitlines()
                                                        if x.strip().startswith("verdict:")), None),
                         "production": now}
        print(f"$ trapline models promote {ref} --tables ...: exit {code}, production -> {NAME}:{now}\n{out}{err}")
    return {"comparison": c, "promotes": promotes, "counts": counts, "train_seconds": round(train_s, 1),
            "heldout": heldout}


def main(argv: list[str] | None = None) -> None:
    a = arguments(argv)
    with tempfile.TemporaryDirectory() as tmp:
        got = run(a, Path(tmp))
    f = got["comparison"]["figures"]
    target = got["comparison"]["verdict"] == "better"
    print(f"base top-1 {f['current']['top1']['value']:.2f} ({f['current']['top1']['k']}/{f['current']['top1']['n']}), "
          f"fine-tuned {f['candidate']['top1']['value']:.2f} ({f['candidate']['top1']['k']}/"
          f"{f['candidate']['top1']['n']}) on the held-out cameras: fine-tuned better beyond the intervals: "
          f"{'yes' if target else 'no'}; refused: "
          + ", ".join(f"{ref} (exit {p['exit']})" for ref, p in got["promotes"].items() if p["exit"] == 2))


if __name__ == "__main__":
    main()
