"""Publish the shipped demo detectors to a model store: `python -m model_store.demo.publish`.

`demo-detector` 1 and 2 are the ONNX exports (production -> 1, so a promote to 2 shows a hot
swap); `demo-detector-torch` 2 is the same v2 network as a torch.export program, to show the
second backend; `demo-species` 1 is a classifier of four rendered animal kinds (production -> 1),
for `--classify demo-species=animal`. Already-published versions are left alone, so this is safe to run repeatedly.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
from pathlib import Path

from ground.env import STORE_HELP
from model_store.demo.scenes import LABELS
from model_store.demo.species_spec import HELD_OUT_SEED, TAXONOMY, species_config
from model_store.store.store import ModelStore, NotFoundError

ASSETS = Path(__file__).resolve().parent / "assets"
DEMO_NAME = "demo-detector"
TORCH_NAME = "demo-detector-torch"
SPECIES_NAME = "demo-species"


def demo_config(backend: str = "onnx-yolo", version: str = "2") -> dict:
    """config.json for a demo version (weights.sha256 is filled in at publish)."""
    weights = "model.onnx" if backend == "onnx-yolo" else "model.pt2"
    return {
        "backend": backend,
        "weights": {"file": weights},
        "input_size": 320,
        "labels": list(LABELS),
        "output_layout": "yolov8",
        "score_threshold": 0.25,
        "nms_iou": 0.5,
        "max_detections": 100,
        "preprocess": {"letterbox": True, "color_order": "rgb", "pad_value": 114, "scale": 1 / 255},
        # Tiny boxes on a 320 px model are mostly texture noise: flag them by default, keep them stored.
        "filters": [{"name": "min_size", "config": {"min_area_fraction": 0.0005, "action": "flag"}}],
        "description": f"trapline demo detector v{version}: a small CNN trained on rendered scenes.",
    }


def model_card(version: str, backend: str) -> str:
    info_path = ASSETS / f"v{version}" / "training.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    lines = [
        f"# demo-detector {version} ({backend})",
        "",
        "A small anchor-free CNN trained in torch on procedurally rendered camera-trap-like scenes",
        "(animal / person / vehicle silhouettes on textured day and night backgrounds). It exists so",
        "that trapline can be demonstrated and tested without downloading weights. It is not a",
        "wildlife model: use it on the rendered samples, not on real photos.",
        "",
        f"- labels: {', '.join(LABELS)}",
        "- input: 320x320 RGB, letterboxed (pad 114), scaled to 0..1",
        "- output: YOLOv8 layout [B, 4+3, N] (cx, cy, w, h in input pixels; sigmoid class scores)",
        "- regenerate: `python -m model_store.demo.train --version " + version + " --out DIR`",
    ]
    for key in ("heldout_map50", "steps", "seconds", "seed"):
        if key in info:
            lines.append(f"- {key}: {info[key]}")
    return "\n".join(lines) + "\n"


def species_card() -> str:
    """README of the demo species classifier, with its held-out top-1 accuracy."""
    info_path = ASSETS / "species" / "training.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    lines = [
        "# demo-species 1 (onnx-classifier)",
        "",
        "A small CNN trained in torch on crops of rendered animals: four kinds of the demo detector's",
        "`animal`, drawn by the same renderer and differing in what is drawn (roe deer: long legs, high",
        "head, antlers; wild boar: short legs, deep body, low head and snout; red fox: short legs, ears,",
        "a long bushy tail with a pale tip; grey wolf: long legs, ears, a drooping tail). Not a wildlife",
        "model: use it on the rendered samples.",
        "",
        "- labels and taxonomy (class > family > species): "
        + "; ".join(f"{k}: {' > '.join(v)}" for k, v in TAXONOMY.items()),
        "- input: 64x64 RGB; crops padded 10% and squared, stretched, ImageNet mean / std",
        "- output: logits [N, 4]",
        "- regenerate: `python -m model_store.demo.species --out DIR`",
    ]
    if "heldout_top1" in info:
        lines.append(f"- held-out top-1 accuracy: {info['heldout_top1']:.3f} on {info['heldout_set']['n_crops']} "
                     f"crops of separately rendered scenes (seed {HELD_OUT_SEED})")
    for key in ("train_crops", "epochs", "seconds", "seed"):
        if key in info:
            lines.append(f"- {key}: {info[key]}")
    return "\n".join(lines) + "\n"


def publish_demo(store: ModelStore, with_torch: bool | None = None) -> list[str]:
    """Publish every demo version not yet in `store`; returns what was published.

    The torch.export version only where torch is installed (`with_torch` None: look): without torch (the container
    image) it could not load, and a production alias on it would keep the service from being ready."""
    if with_torch is None:
        with_torch = importlib.util.find_spec("torch") is not None
    published = []
    targets = [(DEMO_NAME, "1", "onnx-yolo"), (DEMO_NAME, "2", "onnx-yolo")]
    targets += [(TORCH_NAME, "2", "torch-export-yolo")] if with_torch else []
    for name, version, backend in targets:
        if version in store.list_versions(name):
            continue
        weights = ASSETS / f"v{version}" / ("model.onnx" if backend == "onnx-yolo" else "model.pt2")
        with tempfile.TemporaryDirectory() as tmp:
            card = Path(tmp) / "README.md"
            card.write_text(model_card(version, backend))
            store.publish(weights, name, version, demo_config(backend, version), card=card)
        published.append(f"{name}:{version}")
    if "1" not in store.list_versions(SPECIES_NAME):
        with tempfile.TemporaryDirectory() as tmp:
            card = Path(tmp) / "README.md"
            card.write_text(species_card())
            store.publish(ASSETS / "species" / "model.onnx", SPECIES_NAME, "1", species_config(), card=card)
        published.append(f"{SPECIES_NAME}:1")
    for name, version in ((DEMO_NAME, "1"), (TORCH_NAME, "2"), (SPECIES_NAME, "1")):
        if version not in store.list_versions(name):
            continue
        try:
            store.resolve(f"{name}@production")
        except NotFoundError:
            store.promote(f"{name}:{version}")
    return published


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--store", default=None, help=STORE_HELP)
    args = parser.parse_args(argv)
    store = ModelStore(args.store)
    done = publish_demo(store)
    print(f"demo models in {store.root}: " + (", ".join(done) + " published" if done else "already published"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
