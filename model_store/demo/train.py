"""Train the tiny demo detector on freshly rendered scenes and export it to ONNX and torch.export."""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias

from model_store.core.config import PreprocessConfig
from model_store.core.preprocess import letterbox
from model_store.demo.evaluate import HELD_OUT_SEED, evaluate_onnx
from model_store.demo.model import INPUT_SIZE, NUM_CLASSES, STRIDE, TinyDetector
from model_store.demo.scenes import LABELS, render_scene

# Recipes of the shipped artefacts: v1 is the same model trained for far fewer steps.
VERSIONS: dict[str, dict[str, int]] = {
    "1": {"steps": 200, "seed": 1, "batch": 16},
    "2": {"steps": 400, "seed": 2, "batch": 16},
}
LR = 3e-3
WARMUP = 20
# Positives: cells within this many strides of a box centre (and inside the box), FCOS centre sampling.
CENTRE_RADIUS = 1.5
BOX_WEIGHT = 2.0
# Training renders at a mix of frame shapes so letterbox scales (and padding) vary as they will in use.
FRAME_SIZES = ((640, 480), (480, 360), (800, 450), (640, 360), (400, 300), (320, 320), (360, 480), (512, 384))
MAX_TRAIN_OBJECTS = 5


def make_batch(rng: np.random.Generator, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Render and letterbox a batch: images [B, 3, S, S] in 0..1, targets [B, G, 5] padded with class -1."""
    images = np.empty((batch, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    targets: list[np.ndarray] = []
    for i in range(batch):
        w, h = FRAME_SIZES[int(rng.integers(len(FRAME_SIZES)))]
        img, boxes = render_scene(rng, w, h, MAX_TRAIN_OBJECTS)
        # Consumers shrink with INTER_LINEAR (Ultralytics) or INTER_AREA (trapline's core): train on both.
        interp = cv2.INTER_AREA if rng.random() < 0.5 else cv2.INTER_LINEAR
        images[i], meta = letterbox(img, (INPUT_SIZE, INPUT_SIZE), PreprocessConfig(), interpolation=interp)
        boxes[:, [0, 2]] = boxes[:, [0, 2]] * meta.scale_x + meta.pad_x
        boxes[:, [1, 3]] = boxes[:, [1, 3]] * meta.scale_y + meta.pad_y
        targets.append(boxes)
    g = max(1, max(len(t) for t in targets))
    padded = np.full((batch, g, 5), -1.0, np.float32)
    for i, t in enumerate(targets):
        padded[i, : len(t)] = t
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    return x.contiguous(), torch.from_numpy(padded)


def box_iou_giou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise IoU and GIoU of matching xyxy boxes [M, 4]."""
    lt, rb = torch.maximum(a[:, :2], b[:, :2]), torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area_a, area_b = (a[:, 2:] - a[:, :2]).prod(1), (b[:, 2:] - b[:, :2]).prod(1)
    union = area_a + area_b - inter + 1e-7
    iou = inter / union
    hull = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).prod(1) + 1e-7
    return iou, iou - (hull - union) / hull


def assign(anchors: torch.Tensor, targets: torch.Tensor, grid_w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Match cells to boxes: fg mask [B, N] and matched box index [B, N] (smallest box wins ties)."""
    valid = targets[..., 4] >= 0  # [B, G]
    x1, y1, x2, y2 = (targets[..., k, None] for k in range(4))  # each [B, G, 1]
    ax, ay = anchors[:, 0], anchors[:, 1]  # [N]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    inside = (ax > x1) & (ax < x2) & (ay > y1) & (ay < y2)
    r = CENTRE_RADIUS * STRIDE
    central = ((ax - cx).abs() < r) & ((ay - cy).abs() < r)
    # The cell holding the centre is always positive, so even boxes smaller than a cell get a match.
    home = (cy / STRIDE).floor().clamp(0, grid_w - 1) * grid_w + (cx / STRIDE).floor().clamp(0, grid_w - 1)
    is_home = torch.arange(anchors.shape[0], device=anchors.device) == home
    cand = ((inside & central) | is_home) & valid[..., None]
    area = ((x2 - x1) * (y2 - y1)).expand_as(cand)
    cost = torch.where(cand, area, torch.full_like(area, math.inf))
    best, idx = cost.min(dim=1)  # over boxes
    return torch.isfinite(best), idx


def detection_loss(
    model: TinyDetector, images: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """Quality focal loss on IoU-valued class targets plus GIoU box loss (GFL-style)."""
    raw = model.raw(images)
    grid_h, grid_w = raw.shape[2:]
    boxes, logits = model.decode(raw)
    anchors = model.anchors(grid_h, grid_w, raw.device)
    fg, idx = assign(anchors, targets, grid_w)
    matched = torch.gather(targets, 1, idx[..., None].expand(-1, -1, 5))  # [B, N, 5]
    n_pos = max(1.0, float(fg.sum()))
    iou, giou = box_iou_giou(boxes[fg], matched[fg][:, :4])
    box_loss = (1.0 - giou).sum() / n_pos
    # Class target = IoU of the predicted box, so scores rank boxes by localisation quality (helps NMS/AP).
    cls_target = torch.zeros_like(logits)
    cls_target[fg, matched[fg][:, 4].long()] = iou.detach().clamp(min=0.0)
    bce = F.binary_cross_entropy_with_logits(logits, cls_target, reduction="none")
    cls_loss = (bce * (logits.sigmoid() - cls_target).abs().pow(2)).sum() / n_pos
    loss = cls_loss + BOX_WEIGHT * box_loss
    mean_iou = iou.mean().item() if len(iou) else 0.0
    return loss, {"cls": cls_loss.item(), "box": box_loss.item(), "iou": mean_iou}


def export(model: TinyDetector, out_dir: Path) -> None:
    """Write model.onnx (YOLOv8 layout, dynamic batch, checked with onnxruntime) and model.pt2."""
    import onnx
    import onnxruntime as ort

    model.eval()
    x = torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE)
    onnx_path = out_dir / "model.onnx"
    with warnings.catch_warnings():
        # onnxscript (needed by the dynamo exporter) is not a dependency; the TorchScript exporter suffices.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model, (x,), str(onnx_path), input_names=["images"], output_names=["output0"], opset_version=17,
            dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}}, dynamo=False,
        )  # fmt: skip
    # The TorchScript exporter leaves the output's [4 + nc, N] dims symbolic; ONNX data propagation proves
    # them static, and consumers that read the output shape from the file then see [batch, 7, 1600].
    proto = onnx.load(str(onnx_path))
    inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    proto.graph.output[0].CopyFrom(inferred.graph.output[0])
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(onnx_path))
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["output0"], {"images": x.numpy()})
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-3, atol=1e-2):
        raise RuntimeError(f"ONNX output differs from torch: max abs diff {np.abs(got - expected).max()}")
    batch = torch.export.Dim("batch", min=1, max=256)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: batch},))
    # Drop the stored example batch: it is 2.4 MB of random pixels that no consumer needs.
    program.example_inputs = None
    torch.export.save(program, str(out_dir / "model.pt2"))


def train(version: str, seed: int, steps: int, out_dir: Path, batch: int = 16) -> dict[str, Any]:
    """Train from scratch on rendered scenes, export to `out_dir`, and return training info."""
    torch.set_num_threads(2)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = TinyDetector()
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=5e-4)
    # Linear warm-up then cosine decay to 5% of LR: short schedules need the fast start and the soft landing.
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / WARMUP) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * s / steps)))
    )
    start = time.perf_counter()
    model.train()
    ema: float | None = None
    for step in range(steps):
        images, targets = make_batch(rng, batch)
        loss, parts = detection_loss(model, images, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        ema = loss.item() if ema is None else 0.9 * ema + 0.1 * loss.item()
        if step % 50 == 0 or step == steps - 1:
            print(f"v{version} step {step:4d} loss {ema:.3f} cls {parts['cls']:.3f} box {parts['box']:.3f} "
                  f"iou {parts['iou']:.2f} {time.perf_counter() - start:.0f}s", flush=True)  # fmt: skip
    seconds = time.perf_counter() - start
    export(model, out_dir)
    return {
        "version": version, "seed": seed, "steps": steps, "batch": batch, "input_size": INPUT_SIZE,
        "num_classes": NUM_CLASSES, "final_loss": round(float(ema or 0.0), 4), "seconds": round(seconds, 1),
        "params": sum(p.numel() for p in model.parameters()), "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }  # fmt: skip


def main() -> None:
    """CLI: python -m model_store.demo.train --version 2 --out DIR [--steps N] [--seed S] [--no-eval]."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--version", default="2", choices=sorted(VERSIONS))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--no-eval", action="store_true", help="skip the held-out mAP@0.5 check")
    args = ap.parse_args()
    recipe = VERSIONS[args.version]
    steps = args.steps if args.steps is not None else recipe["steps"]
    seed = args.seed if args.seed is not None else recipe["seed"]
    info = train(args.version, seed, steps, args.out, recipe["batch"])
    if not args.no_eval:
        result = evaluate_onnx(args.out / "model.onnx")
        info["heldout_map50"] = round(result["map50"], 4)
        info["heldout_per_class"] = {LABELS[k]: round(v, 4) for k, v in result["per_class"].items()}
        info["heldout_set"] = {"seed": HELD_OUT_SEED, "n_images": result["n_images"], "size": [640, 480]}
    (args.out / "training.json").write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))


if __name__ == "__main__":
    main()
