"""A benchmark detector with the compute of YOLOv8n, published to a store like any model.

`python -m benchmarks.bench_model [--store DIR]` builds (once) and publishes:

- `bench-yolov8n:1`             float32 input [B, 3, 640, 640] in 0..1 (the CPU path);
- `bench-yolov8n-uint8:1`       uint8 input, normalised inside the graph (4x less to copy to a GPU);
- `bench-yolov8n-uint8-fp16:1`  uint8 input, float16 compute inside, float32 output (GPU tensor cores).

The network follows YOLOv8n's layout (Conv-BN-SiLU, C2f blocks, SPPF, a PAN neck and the
decoupled head with DFL) with random weights: the speed is the point, not the boxes. Its output
is the YOLOv8 layout [B, 4+80, 8400]. The class biases are calibrated so that a handful of
candidates pass the score threshold on a typical image, as with a real model on camera-trap
frames (an untrained head would make every one of the 8400 anchors a candidate and benchmark NMS).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DEFAULT_STORE
from model_store import ModelStore

NAME = "bench-yolov8n"
VERSION = "1"
INPUT_SIZE = 640
NUM_CLASSES = 80
LABELS = [f"class_{i:02d}" for i in range(NUM_CLASSES)]
# name suffix -> (config input_dtype, compute in float16, backend)
VARIANTS: dict[str, tuple[str, bool, str]] = {
    "": ("float32", False, "onnx-yolo"), "-uint8": ("uint8", False, "onnx-yolo"),
    "-uint8-fp16": ("uint8", True, "onnx-yolo"),
    # torch.export programs of the same network, for GPU boxes without onnxruntime-gpu.
    "-pt2": ("float32", False, "torch-export-yolo"), "-uint8-pt2": ("uint8", False, "torch-export-yolo"),
    "-uint8-fp16-pt2": ("uint8", True, "torch-export-yolo"),
}
ONNX_VARIANTS = ["", "-uint8", "-uint8-fp16"]
CANDIDATES_PER_IMAGE = 20  # class scores above logit(0.25) per image after calibration


def build_network(num_classes: int = NUM_CLASSES, input_size: int = INPUT_SIZE):
    """YOLOv8n (width 0.25, depth 0.33) as a torch module; torch is imported only here."""
    import torch
    from torch import nn

    def conv(c1: int, c2: int, k: int = 1, s: int = 1) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(c1, c2, k, s, k // 2, bias=False), nn.BatchNorm2d(c2), nn.SiLU())

    class Bottleneck(nn.Module):
        def __init__(self, c: int, shortcut: bool) -> None:
            super().__init__()
            self.cv1, self.cv2, self.add = conv(c, c, 3), conv(c, c, 3), shortcut

        def forward(self, x):
            y = self.cv2(self.cv1(x))
            return x + y if self.add else y

    class C2f(nn.Module):
        def __init__(self, c1: int, c2: int, n: int, shortcut: bool) -> None:
            super().__init__()
            self.c = c2 // 2
            self.cv1 = conv(c1, 2 * self.c)
            self.cv2 = conv((2 + n) * self.c, c2)
            self.m = nn.ModuleList(Bottleneck(self.c, shortcut) for _ in range(n))

        def forward(self, x):
            y = list(self.cv1(x).chunk(2, 1))
            y.extend(m(y[-1]) for m in self.m)
            return self.cv2(torch.cat(y, 1))

    class SPPF(nn.Module):
        def __init__(self, c1: int, c2: int) -> None:
            super().__init__()
            self.cv1, self.cv2 = conv(c1, c1 // 2), conv(c1 * 2, c2)
            self.pool = nn.MaxPool2d(5, 1, 2)

        def forward(self, x):
            y = [self.cv1(x)]
            y.extend(self.pool(y[-1]) for _ in range(3))
            return self.cv2(torch.cat(y, 1))

    class YoloV8n(nn.Module):
        reg_max = 16
        strides = (8, 16, 32)

        def __init__(self) -> None:
            super().__init__()
            self.nc = num_classes
            self.b1 = nn.Sequential(conv(3, 16, 3, 2), conv(16, 32, 3, 2), C2f(32, 32, 1, True),
                                    conv(32, 64, 3, 2), C2f(64, 64, 2, True))  # P3
            self.b2 = nn.Sequential(conv(64, 128, 3, 2), C2f(128, 128, 2, True))  # P4
            self.b3 = nn.Sequential(conv(128, 256, 3, 2), C2f(256, 256, 1, True), SPPF(256, 256))  # P5
            self.up = nn.Upsample(scale_factor=2.0, mode="nearest")
            self.n1, self.n2 = C2f(384, 128, 1, False), C2f(192, 64, 1, False)
            self.d1, self.n3 = conv(64, 64, 3, 2), C2f(192, 128, 1, False)
            self.d2, self.n4 = conv(128, 128, 3, 2), C2f(384, 256, 1, False)
            c2, c3 = 64, max(64, min(num_classes, 100))
            self.box = nn.ModuleList(nn.Sequential(conv(c, c2, 3), conv(c2, c2, 3), nn.Conv2d(c2, 4 * self.reg_max, 1))
                                     for c in (64, 128, 256))
            self.cls = nn.ModuleList(nn.Sequential(conv(c, c3, 3), conv(c3, c3, 3), nn.Conv2d(c3, num_classes, 1))
                                     for c in (64, 128, 256))
            anchors, strides = [], []
            for s in self.strides:
                n = input_size // s
                ys, xs = torch.meshgrid(torch.arange(n) + 0.5, torch.arange(n) + 0.5, indexing="ij")
                anchors.append(torch.stack((xs.reshape(-1), ys.reshape(-1))))
                strides.append(torch.full((1, n * n), float(s)))
            self.register_buffer("anchors", torch.cat(anchors, 1)[None])  # [1, 2, 8400] in grid cells
            self.register_buffer("stride", torch.cat(strides, 1)[None])  # [1, 1, 8400]
            self.register_buffer("bins", torch.arange(self.reg_max, dtype=torch.float32).view(1, 1, -1, 1))

        def features(self, x):
            p3 = self.b1(x)
            p4 = self.b2(p3)
            p5 = self.b3(p4)
            t4 = self.n1(torch.cat((self.up(p5), p4), 1))
            o3 = self.n2(torch.cat((self.up(t4), p3), 1))
            o4 = self.n3(torch.cat((self.d1(o3), t4), 1))
            o5 = self.n4(torch.cat((self.d2(o4), p5), 1))
            return o3, o4, o5

        def forward(self, x):
            feats = self.features(x)
            b = x.shape[0]
            box = torch.cat([m(f).view(b, 4 * self.reg_max, -1) for m, f in zip(self.box, feats, strict=True)], 2)
            cls = torch.cat([m(f).view(b, self.nc, -1) for m, f in zip(self.cls, feats, strict=True)], 2)
            # DFL: each side is the expectation of a 16-bin distribution over distances.
            dist = (box.view(b, 4, self.reg_max, -1).softmax(2) * self.bins.to(box.dtype)).sum(2)
            lt, rb = dist.chunk(2, 1)
            xy = (self.anchors + (rb - lt) / 2) * self.stride
            wh = (lt + rb) * self.stride
            return torch.cat((xy, wh, cls.sigmoid()), 1)

    return YoloV8n()


def count_params_and_flops(model, input_size: int = INPUT_SIZE) -> tuple[int, float]:
    """(parameters, GFLOPs for one image at input_size²), FLOPs counted as 2 x multiply-adds."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size))
    return params, counter.get_total_flops() / 1e9


def calibrate(model, seed: int = 0) -> None:
    """Give random weights sane activations (BatchNorm statistics) and a realistic candidate count."""
    import torch

    from benchmarks.images import camera_trap_frame
    from model_store.core.config import PreprocessConfig
    from model_store.core.preprocess import letterbox

    # Generated camera-trap frames, letterboxed by the product's own preprocessing.
    frames = [letterbox(camera_trap_frame(i, seed=seed + 1000), (INPUT_SIZE, INPUT_SIZE), PreprocessConfig())[0]
              for i in range(4)]
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration passes
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model.features(x)
        model.eval()
        logits = torch.cat([m(f).flatten(2) for m, f in zip(model.cls, model.features(x), strict=True)], 2)
        # Shift every class bias so that about CANDIDATES_PER_IMAGE scores per frame pass 0.25.
        kth = logits.flatten(1).topk(CANDIDATES_PER_IMAGE, dim=1).values[:, -1].mean()
        shift = math.log(0.25 / 0.75) - float(kth)
        for head in model.cls:
            head[-1].bias += shift


def export_variant(model, path: Path, input_dtype: str, fp16: bool, backend: str = "onnx-yolo") -> None:
    """Export to ONNX or torch.export (dynamic batch); uint8 variants normalise inside the graph."""
    import torch

    class Wrapped(torch.nn.Module):
        def __init__(self, net) -> None:
            super().__init__()
            self.net = net

        def forward(self, x):
            dtype = torch.float16 if fp16 else torch.float32
            y = self.net(x.to(dtype) * (1.0 / 255.0)) if input_dtype == "uint8" else self.net(x)
            return y.float()

    net = Wrapped(model.half() if fp16 else model.float()).eval()
    if input_dtype == "uint8":
        example = torch.randint(0, 255, (2, 3, INPUT_SIZE, INPUT_SIZE), dtype=torch.uint8)
    else:
        example = torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE)
    if backend == "torch-export-yolo":
        batch = torch.export.Dim("batch", min=1, max=1024)
        program = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter is deprecated; onnxscript is not a dependency
            torch.onnx.export(net, (example,), str(path), input_names=["images"], output_names=["output0"],
                              opset_version=17, dynamic_axes={"images": {0: "batch"}, "output0": {0: "batch"}},
                              dynamo=False)
    model.float()


def model_config(input_dtype: str, description: str, backend: str = "onnx-yolo") -> dict[str, Any]:
    weights = "model.onnx" if backend == "onnx-yolo" else "model.pt2"
    return {
        "backend": backend, "weights": {"file": weights}, "input_size": INPUT_SIZE, "labels": LABELS,
        "output_layout": "yolov8", "score_threshold": 0.25, "nms_iou": 0.45, "max_detections": 300,
        "preprocess": {"letterbox": True, "color_order": "rgb", "pad_value": 114, "scale": 1 / 255,
                       "input_dtype": input_dtype},
        "description": description,
    }


def ensure_if_bench_model(store: ModelStore | str, model: str, variants: list[str] | None = None) -> None:
    """Build the benchmark models when `model` names one; any other model must already be in the store."""
    if model.startswith(NULL_NAME):
        ensure_null_model(ModelStore(store) if isinstance(store, str) else store,
                          "uint8" if model.startswith(f"{NULL_NAME}-u8") else "float32")
    elif model.startswith(NAME):
        ensure_bench_models(ModelStore(store) if isinstance(store, str) else store, variants)


def ensure_bench_models(store: ModelStore, variants: list[str] | None = None, verbose: bool = True) -> list[str]:
    """Publish the benchmark model variants missing from `store` (cached: built at most once);
    returns every requested reference, e.g. ["bench-yolov8n:1", ...]. Default: the ONNX variants."""
    variants = list(ONNX_VARIANTS) if variants is None else variants
    refs = [f"{NAME}{v}:{VERSION}" for v in variants]
    missing = [v for v in variants if VERSION not in store.list_versions(f"{NAME}{v}")]
    if missing:
        _build_and_publish(store, missing, verbose)
    for v in variants:  # the service serves the `production` alias by default
        if "production" not in store.aliases(f"{NAME}{v}"):
            store.promote(f"{NAME}{v}:{VERSION}")
    return refs


def _build_and_publish(store: ModelStore, missing: list[str], verbose: bool) -> None:
    import torch

    torch.manual_seed(0)
    model = build_network()
    calibrate(model)
    params, gflops = count_params_and_flops(model)
    if verbose:
        print(f"benchmark network: {params / 1e6:.3f} M parameters, {gflops:.2f} GFLOPs at {INPUT_SIZE}x{INPUT_SIZE} "
              "(YOLOv8n: 3.157 M, 8.7 GFLOPs)")
    with tempfile.TemporaryDirectory() as tmp:
        for variant in missing:
            input_dtype, fp16, backend = VARIANTS[variant]
            path = Path(tmp) / f"model{variant}.{'onnx' if backend == 'onnx-yolo' else 'pt2'}"
            export_variant(model, path, input_dtype, fp16, backend)
            desc = (f"Benchmark detector with YOLOv8n's compute ({params / 1e6:.2f} M params, {gflops:.1f} GFLOPs "
                    f"at 640²), random weights; input {input_dtype}{', float16 compute' if fp16 else ''}.")
            store.publish(path, f"{NAME}{variant}", VERSION, model_config(input_dtype, desc, backend))
            if verbose:
                print(f"published {NAME}{variant}:{VERSION} to {store.root}")


NULL_NAME = "bench-null"


def null_onnx(path: Path, anchors: int = 100, input_dtype: str = "float32") -> Path:
    """A detector with no inference cost: [B, 3, 640, 640] in, a constant [B, 5, anchors] (YOLOv8 layout,
    one class) out. It reads one pixel per image, so what a run measures is everything but the model:
    the plumbing a fast accelerator would leave. With `input_dtype` uint8 it takes the letterboxed pixels as they
    are, as an accelerator that scales them on the device does: the host never makes a float tensor."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    const = np.zeros((1, 5, anchors), np.float32)
    const[0, :4] = rng.uniform(20, 600, (4, anchors))
    const[0, 2:4] = rng.uniform(10, 80, (2, anchors))
    const[0, 4, :3] = [0.9, 0.6, 0.4]  # three candidates above the threshold, as a real frame might have
    nodes = [
        helper.make_node("Slice", ["images", "zero", "one", "axes"], ["pixel_in"]),  # [B, 1, 1, 1]
        helper.make_node("Cast", ["pixel_in"], ["pixel"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["pixel", "zero_f"], ["nothing"]),
        helper.make_node("Reshape", ["nothing", "shape_b11"], ["b11"]),
        helper.make_node("Add", ["b11", "const"], ["output0"]),  # broadcast to [B, 5, anchors]
    ]
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
             (("zero", [0, 0, 0]), ("one", [1, 1, 1]), ("axes", [1, 2, 3]), ("shape_b11", [-1, 1, 1]))]
    inits += [numpy_helper.from_array(np.zeros((), np.float32), "zero_f"), numpy_helper.from_array(const, "const")]
    graph = helper.make_graph(
        nodes, "null-detector", [helper.make_tensor_value_info(
            "images", TensorProto.UINT8 if input_dtype == "uint8" else TensorProto.FLOAT, ["batch", 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 5, anchors])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def ensure_null_model(store: ModelStore, input_dtype: str = "float32") -> str:
    """Publish `bench-null:1` (see null_onnx; `bench-null-u8:1` for uint8 input) once and promote it; returns its
    reference."""
    name = NULL_NAME if input_dtype == "float32" else f"{NULL_NAME}-u8"
    if VERSION not in store.list_versions(name):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = {**model_config(input_dtype, "Null detector: constant output, no inference cost (benchmarks)."),
                   "labels": ["thing"]}
            store.publish(null_onnx(Path(tmp) / "model.onnx", input_dtype=input_dtype), name, VERSION, cfg)
    if "production" not in store.aliases(name):
        store.promote(f"{name}:{VERSION}")
    return f"{name}:{VERSION}"


def check_outputs(store: ModelStore, ref: str) -> dict[str, Any]:
    """Load `ref` through the product and report output shape and detections on a noise image."""
    detector = store.load_detector(ref)
    from benchmarks.images import camera_trap_frame

    rgb = camera_trap_frame(1)
    [raw] = detector.infer([detector.prepare(rgb)[0]])
    result = detector.predict_batch([rgb])[0]
    return {"ref": ref, "output_shape": [1, *raw.shape], "detections": len(result.detections)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=str(DEFAULT_STORE), help="model store root (default %(default)s)")
    parser.add_argument("--variants", default="onnx", help=(
        "onnx (default), all, or a comma list of name suffixes: '', -uint8, -uint8-fp16, -pt2, -uint8-pt2, "
        "-uint8-fp16-pt2 (the -pt2 ones are torch.export programs)"))
    parser.add_argument("--stats", action="store_true", help="only print parameters and GFLOPs")
    args = parser.parse_args(argv)
    if args.stats:
        params, gflops = count_params_and_flops(build_network())
        print(f"{params} parameters, {gflops:.3f} GFLOPs at {INPUT_SIZE}x{INPUT_SIZE}")
        return 0
    groups = {"onnx": ONNX_VARIANTS, "all": list(VARIANTS)}
    variants = groups.get(args.variants) or [v.strip().strip("'\"") for v in args.variants.split(",")]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    store = ModelStore(args.store)
    for ref in ensure_bench_models(store, variants):
        print(f"{ref}: ready in {store.root}")
    for ref in (f"{NAME}{v}:{VERSION}" for v in ("", "-pt2") if v in variants):
        print(check_outputs(store, ref))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
