"""Train the tiny demo species classifier on crops of rendered animals: `python -m model_store.demo.species`.

The crops come from the same renderer as the demo detector's scenes (`render_scene_with_kinds`):
four kinds of `animal` that differ in what is drawn (legs, head carriage, tail, antlers, ears).
They are cut by the product's own crop and preprocessing code (`crop_box`, `crop_input`), with the
boxes jittered as a detector's boxes are, so the classifier sees in training what it sees in use.
Held-out top-1 accuracy is measured on crops of a separately seeded set of scenes.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
from torch import nn

from model_store.core.classifier import crop_input
from model_store.core.config import ClassifierConfig
from model_store.core.crops import crop_box
from model_store.demo.model import conv
from model_store.demo.scenes import ANIMAL, KINDS, render_scene_with_kinds
from model_store.demo.species_spec import HELD_OUT_SEED, INPUT_SIZE, PREPROCESS, TAXONOMY, species_config  # noqa: F401

TRAIN_SEED = 7
TRAIN_CROPS, HELD_OUT_CROPS = 3000, 600
EPOCHS, BATCH, LR = 10, 64, 4e-3
# Small scenes keep rendering cheap; animals narrower than this many pixels are not worth a crop.
SCENE_SIZE, MIN_SIDE = (400, 300), 10
BOX_JITTER = 0.1  # detector boxes are off by about this fraction of their size

def _preprocess_config() -> ClassifierConfig:
    return ClassifierConfig.model_construct(input_size=(INPUT_SIZE, INPUT_SIZE), preprocess=ClassifierConfig
                                            .model_fields["preprocess"].annotation.model_validate(PREPROCESS))


def render_crops(seed: int, n: int, jitter: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """`n` classifier inputs [n, 3, S, S] cut from rendered scenes around their animals, and kind indices [n]."""
    rng = np.random.default_rng(seed)
    cfg = _preprocess_config()
    p = cfg.preprocess
    inputs, labels = [], []
    while len(labels) < n:
        img, boxes, kinds = render_scene_with_kinds(rng, *SCENE_SIZE)
        for box, kind in zip(boxes, kinds, strict=True):
            x1, y1, x2, y2, cls = box
            if int(cls) != ANIMAL or kind is None or min(x2 - x1, y2 - y1) < MIN_SIDE or len(labels) >= n:
                continue
            w, h = x2 - x1, y2 - y1
            dx1, dy1, dx2, dy2 = rng.uniform(-jitter, jitter, 4) * [w, h, w, h]
            crop = crop_box(img, (x1 + dx1, y1 + dy1, x2 + dx2, y2 + dy2), p.crop_padding, p.crop_square)
            inputs.append(crop_input(crop, cfg))
            labels.append(KINDS.index(kind))
    return np.stack(inputs), np.asarray(labels, np.int64)


class TinyClassifier(nn.Module):
    """Four strided conv blocks (64 -> 4 px), global average pooling, one linear layer of logits."""

    def __init__(self, num_classes: int = len(KINDS), width: int = 16) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(conv(3, w, 2), conv(w, 2 * w, 2), conv(2 * w, 3 * w, 2), conv(3 * w, 4 * w, 2))
        self.head = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3)))


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean())


def train(out_dir: Path, seed: int = TRAIN_SEED) -> dict[str, Any]:
    """Render, train, export `out_dir/model.onnx` (checked with onnxruntime) and its state_dict `weights.pt`, and
    return training info."""
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    start = time.perf_counter()
    x_np, y_np = render_crops(seed, TRAIN_CROPS, jitter=BOX_JITTER)
    x_all, y_all = torch.from_numpy(x_np), torch.from_numpy(y_np)
    rendered = time.perf_counter() - start
    model = TinyClassifier()
    steps = EPOCHS * (len(y_all) // BATCH)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _epoch in range(EPOCHS):
        order = torch.randperm(len(y_all), generator=gen)
        for i in range(len(y_all) // BATCH):
            idx = order[i * BATCH:(i + 1) * BATCH]
            x = x_all[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5  # animals face either way
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            loss = F.cross_entropy(model(x), y_all[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    seconds = time.perf_counter() - start
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "model.onnx"
    export(model, onnx_path)
    torch.save(model.state_dict(), out_dir / "weights.pt")  # trainable weights: `models publish --trainable`
    x_test, y_test = render_crops(HELD_OUT_SEED, HELD_OUT_CROPS, jitter=BOX_JITTER)
    top1 = accuracy(run_onnx(onnx_path, x_test), y_test)
    return {"seed": seed, "train_crops": int(len(y_all)), "epochs": EPOCHS, "input_size": INPUT_SIZE,
            "render_seconds": round(rendered, 1), "seconds": round(seconds, 1),
            "params": sum(p.numel() for p in model.parameters()), "torch": torch.__version__,
            "heldout_top1": round(top1, 4), "heldout_set": {"seed": HELD_OUT_SEED, "n_crops": int(len(y_test))},
            "labels": list(KINDS)}


def export(model: nn.Module, path: Path, input_size: tuple[int, int] = (INPUT_SIZE, INPUT_SIZE)) -> None:
    """ONNX with a dynamic batch, input `images` [N, 3, H, W] (`input_size` is W, H), output `logits` [N, labels];
    checked against the torch model with onnxruntime."""
    x = torch.zeros(2, 3, input_size[1], input_size[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (x,), str(path), input_names=["images"], output_names=["logits"], opset_version=17,
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}}, dynamo=False)
    with torch.no_grad():
        expected = model(x).numpy()
    if not np.allclose(run_onnx(path, x.numpy()), expected, rtol=1e-3, atol=1e-3):
        raise RuntimeError("the ONNX export differs from the torch model")


def run_onnx(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": x.astype(np.float32)})[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="directory for model.onnx, weights.pt (its "
                        "trainable weights), config.json and training.json")
    parser.add_argument("--seed", type=int, default=TRAIN_SEED)
    args = parser.parse_args(argv)
    info = train(args.out, args.seed)
    (args.out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    (args.out / "config.json").write_text(json.dumps(species_config(), indent=2) + "\n")
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
