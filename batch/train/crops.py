"""The crops a fine-tune reads: a `trapline export --format crops` set (crops/{split}/{label dir}/*.jpg beside its
manifest.json), checked against the classifier and cut into the classifier's input as it sees crops in use
(`crop_input`: its resize, colour order, mean and std; a classifier that crops square gets each crop padded to a
square first, `squared`).

The manifest is the set's identity: its sha256 (`id`) and what it names (the decisions, the tables, the versions,
the seed, the split) go into the fine-tuned version's provenance. The train split trains; the test split, cameras the
model never saw in training, measures top-1 (the val split is not used yet).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ground.errors import BatchError
from model_store.core.classifier import crop_input

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class CropsSet:
    """A crops export: its manifest (and its sha256), and per split the crop files with their label's index."""

    root: Path
    manifest: dict[str, Any]
    manifest_id: str
    files: dict[str, list[tuple[Path, int]]] = field(default_factory=dict)

    def count(self, split: str) -> int:
        return len(self.files.get(split, ()))

    def provenance(self) -> dict[str, Any]:
        """What the fine-tuned version's card and training.json say about its training set."""
        m = self.manifest
        keys = ("format", "written_at", "tables", "model", "filters_hash", "model_sha256", "classifiers", "seed",
                "split", "labels", "splits", "decisions")
        return {"path": str(self.root), "id": self.manifest_id, **{k: m.get(k) for k in keys if k in m},
                "crops": {s: self.count(s) for s in self.files}}


def open_crops(root: str, labels: list[str]) -> CropsSet:
    """Read the set at `root` and check its labels are among the classifier's `labels` (a BatchError otherwise: a
    fine-tune keeps the classifier's outputs, it cannot learn a label it has no output for)."""
    base = Path(root.removeprefix("file://")).expanduser()
    if "://" in root.removeprefix("file://"):
        raise BatchError(f"--crops {root}: a fine-tune reads a local crops set (copy it here first)")
    path = base / "manifest.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BatchError(f"--crops {root} has no manifest.json: give the directory `trapline export --format crops "
                         "--out DIR` wrote") from None
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BatchError(f"--crops {root}: manifest.json is not JSON ({exc})") from None
    if manifest.get("format") != "crops" or not isinstance(manifest.get("label_dirs"), dict):
        raise BatchError(f"--crops {root} is a {manifest.get('format')!r} set, not a crops set: export one with "
                         "`trapline export --format crops`")
    dirs: dict[str, str] = manifest["label_dirs"]
    unknown = sorted(set(dirs) - set(labels))
    if unknown:
        raise BatchError(f"--crops {root} has label(s) {unknown} the classifier has no output for (its labels: "
                         f"{labels}); a fine-tune keeps the classifier's labels")
    index = {label: labels.index(label) for label in dirs}
    files: dict[str, list[tuple[Path, int]]] = {}
    for split in ("train", "val", "test"):
        files[split] = [(f, index[label]) for label, d in sorted(dirs.items())
                        for f in sorted((base / "crops" / split / d).glob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files["train"]:
        raise BatchError(f"--crops {root} has no crop in its train split: nothing to fine-tune on")
    return CropsSet(base, manifest, hashlib.sha256(raw).hexdigest(), files)


def squared(rgb: np.ndarray, cfg: Any) -> np.ndarray:
    """A crop as the classifier sees its crops in use: a classifier that crops square (`crop_square`) gets the export's
    box-shaped crop padded to a square about its centre (edge pixels repeated), so an animal keeps its proportions
    through the resize instead of being squeezed into the input as it never is when serving."""
    h, w = rgb.shape[:2]
    if not getattr(cfg.preprocess, "crop_square", False) or h == w:
        return rgb
    dx, dy = max(h - w, 0), max(w - h, 0)
    return cv2.copyMakeBorder(rgb, dy // 2, dy - dy // 2, dx // 2, dx - dx // 2, cv2.BORDER_REPLICATE)


def split_inputs(crops: CropsSet, split: str, cfg: Any) -> tuple[np.ndarray, np.ndarray]:
    """The split's crops as the classifier's inputs [N, 3, H, W] float32 and their label indices [N] int64."""
    xs, ys = [], []
    for f, y in crops.files.get(split, ()):
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise BatchError(f"--crops: {f} is not a readable image")
        xs.append(crop_input(squared(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), cfg), cfg))
        ys.append(y)
    if not xs:
        w, h = cfg.input_size
        return np.zeros((0, 3, h, w), np.float32), np.zeros((0,), np.int64)
    return np.stack(xs), np.asarray(ys, np.int64)
