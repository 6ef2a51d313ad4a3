"""The training-set formats of `trapline export` (batch/export/registry.py): `yolo` (Ultralytics' layout and
data.yaml), `coco-dataset` (one COCO file per split, as pycocotools' `COCO` reads it) and `crops` (torchvision's
ImageFolder layout). What goes in, and the split: batch/export/training_set.py.

The set is written into a hidden directory beside `--out` and renamed to `--out` once whole, manifest.json last: a
refused or failed export leaves nothing that looks like a set. `--out` must be a local directory that does not exist
yet (or is empty)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from typing import Any

import yaml

from batch.export.base import Exporter, ExportJob
from batch.export.training_options import SPLITS, CropsSetOptions, TrainingSetOptions
from batch.export.training_set import (
    Gathered,
    Item,
    gather,
    is_local,
    labels_of,
    left_out_notes,
    local_path,
    manifest,
    name_pictures,
    split,
)
from batch.postprocessing.snips import source_bytes
from ground.errors import BatchError
from model_store.core.crops import crop_region
from model_store.core.imaging import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image, encode_jpeg
from model_store.tables.archive import is_web


def place_picture(it: Item, dest: str, how: str) -> None:
    """Put the original picture of `it` at `dest`: copied, hard-linked (a copy across file systems) or symlinked; a
    picture on S3 or the web is always copied. OSError when it is gone."""
    if not is_local(it.uri) or is_web(it.uri):
        with open(dest, "wb") as f:
            f.write(source_bytes({"uri": it.uri, "size_bytes": it.size_bytes}))
        return
    src = local_path(it.uri)
    if not os.path.isfile(src):
        raise FileNotFoundError(f"{it.uri} is not in the archive any more")
    if how == "symlink":
        os.symlink(src, dest)
        return
    if how == "hardlink":
        try:
            os.link(src, dest)
            return
        except OSError:
            pass  # another file system: a copy
    shutil.copyfile(src, dest)


def _stem(name: str) -> str:
    return name.rpartition(".")[0] or name


class TrainingSetExporter(Exporter[TrainingSetOptions]):
    """What the three formats share: the checks, the gathering and split, the hidden directory renamed into place,
    the manifest. A format says whether it takes partly reviewed images (`whole_only`) and writes its files
    (`fill`), returning the items it wrote (a picture that cannot be read is left out and named in a note)."""

    whole_only = True

    def check(self, options: TrainingSetOptions) -> Any:
        out = options.out
        if not is_local(out):
            raise BatchError(f"--format {options.format} writes a local directory; --out {out} is not one")
        path = local_path(out)
        if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
            raise BatchError(f"--out {out} exists and is not an empty directory: a training set is written into a "
                             "new one")
        return None

    def fill(self, root: str, final: str, items: list[Item], labels: list[str], job: ExportJob
             ) -> tuple[list[Item], list[str], dict[str, Any]]:  # pragma: no cover - interface
        """Write the format's files under `root` (to be renamed `final`): (items written, notes, manifest keys)."""
        raise NotImplementedError

    def write(self, job: ExportJob[TrainingSetOptions]) -> tuple[list[str], list[str]]:
        found: Gathered = gather(job)
        items = [it for it in found.items if it.whole or not self.whole_only]
        where = f"{job.tset.model_name}:{job.tset.model_version} [filters {job.tset.filters_hash}]"
        if not items:
            raise BatchError(f"no reviewed image to put in a training set of {where} ("
                             + ("; ".join(left_out_notes(found, self.whole_only)) or "no image in scope")
                             + "): review some first (trapline review, or the console's Review page)")
        split(items, job.options.fractions(), job.options.seed, found.sites)
        name_pictures(items)
        labels = labels_of(items)
        final = local_path(job.out)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        root = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}.partial-", dir=os.path.dirname(final))
        try:
            written, notes, extra = self.fill(root, final, items, labels, job)
            doc = manifest(job, found, written, labels, self.whole_only, extra)
            counts = doc["splits"]
            with open(os.path.join(root, "manifest.json"), "w", encoding="utf-8") as f:
                json.dump(doc, f, indent=1)
            if os.path.isdir(final):
                os.rmdir(final)  # empty (checked first)
            os.rename(root, final)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        job.images, job.failed = sum(c["images"] for c in counts.values()), 0
        job.detections = sum(sum(c["boxes"].values()) for c in counts.values())
        notes = [*left_out_notes(found, self.whole_only), *notes,
                 *(f"split {s} is empty (too few cameras for every split)" for s in SPLITS
                   if job.options.fractions()[s] > 0 and not counts[s]["images"]),
                 "training set: " + ", ".join(f"{s} {counts[s]['images']} image(s)" for s in SPLITS)
                 + f", {doc['decisions']['count']} decision(s); manifest {final}/manifest.json"]
        return [final], notes


class _WholeImages(TrainingSetExporter):
    """The formats of whole pictures (yolo, coco-dataset): the pictures under images/{split}/."""

    def pictures(self, root: str, items: list[Item], how: str) -> tuple[list[Item], list[str]]:
        for s in SPLITS:
            os.makedirs(os.path.join(root, "images", s), exist_ok=True)
        written, notes = [], []
        for it in sorted(items, key=lambda i: (i.split, i.name)):
            try:
                place_picture(it, os.path.join(root, "images", it.split, it.name), how)
            except OSError as exc:
                notes.append(f"left out {it.uri}: {exc}")
                continue
            written.append(it)
        return written, notes


class YoloExporter(_WholeImages):
    """`--format yolo`: images/{split}/NAME and labels/{split}/STEM.txt (one `class cx cy w h` line per box,
    normalised; empty for a negative), data.yaml as Ultralytics' `check_det_dataset` reads it."""

    def fill(self, root: str, final: str, items: list[Item], labels: list[str], job: ExportJob
             ) -> tuple[list[Item], list[str], dict[str, Any]]:
        written, notes = self.pictures(root, items, job.options.pictures)
        index = {label: i for i, label in enumerate(labels)}
        for s in SPLITS:
            os.makedirs(os.path.join(root, "labels", s), exist_ok=True)
        for it in written:
            lines = [f"{index[b.label]} {b.bbox[0] + b.bbox[2] / 2:.6f} {b.bbox[1] + b.bbox[3] / 2:.6f} "
                     f"{b.bbox[2]:.6f} {b.bbox[3]:.6f}\n" for b in it.boxes]
            with open(os.path.join(root, "labels", it.split, _stem(it.name) + ".txt"), "w") as f:
                f.writelines(lines)
        data = {"path": final, **{s: f"images/{s}" for s in SPLITS}, "nc": len(labels),
                "names": dict(enumerate(labels))}
        with open(os.path.join(root, "data.yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True)
        return written, notes, {}


class CocoDatasetExporter(_WholeImages):
    """`--format coco-dataset`: images/{split}/NAME and annotations/{split}.json: images (file_name relative to
    images/{split}/), annotations (bbox x, y, w, h in pixels, area, iscrowd 0), categories (id i + 1 for label i)."""

    def fill(self, root: str, final: str, items: list[Item], labels: list[str], job: ExportJob
             ) -> tuple[list[Item], list[str], dict[str, Any]]:
        written, notes = self.pictures(root, items, job.options.pictures)
        categories = [{"id": i + 1, "name": label, "supercategory": "animal"} for i, label in enumerate(labels)]
        ids = {c["name"]: c["id"] for c in categories}
        os.makedirs(os.path.join(root, "annotations"))
        model = f"{job.tset.model_name}:{job.tset.model_version}"
        for s in SPLITS:
            images, annotations = [], []
            for it in (i for i in written if i.split == s):
                images.append({"id": len(images) + 1, "file_name": it.name, "width": it.width, "height": it.height})
                for b in it.boxes:
                    x, y, w, h = (round(b.bbox[0] * it.width, 2), round(b.bbox[1] * it.height, 2),
                                  round(b.bbox[2] * it.width, 2), round(b.bbox[3] * it.height, 2))
                    annotations.append({"id": len(annotations) + 1, "image_id": len(images),
                                        "category_id": ids[b.label], "bbox": [x, y, w, h],
                                        "area": round(w * h, 2), "iscrowd": 0})
            doc = {"info": {"description": f"{s} split of people's verified boxes on {model} (images under "
                                           f"images/{s}/)"},
                   "licenses": [], "images": images, "annotations": annotations, "categories": categories}
            with open(os.path.join(root, "annotations", f"{s}.json"), "w", encoding="utf-8") as f:
                json.dump(doc, f)
        return written, notes, {}


def label_dirs(labels: list[str]) -> dict[str, str]:
    """label -> its folder name under crops/{split}/ (a file-system-safe name; a clash gets a number)."""
    out: dict[str, str] = {}
    for label in labels:
        base = re.sub(r"[^\w.-]+", "_", label).strip("._") or "label"
        name, n = base, 1
        while name in out.values():
            n += 1
            name = f"{base}_{n}"
        out[label] = name
    return out


class CropsExporter(TrainingSetExporter):
    """`--format crops`: crops/{split}/{label}/STEM_dN.jpg (N: the detection's index; STEM_addedK.jpg a box people
    added), cut from the original pictures with `--margin` around each
    verified box (partly reviewed images give their verified boxes; negatives give none)."""

    whole_only = False

    def fill(self, root: str, final: str, items: list[Item], labels: list[str], job: ExportJob[CropsSetOptions]
             ) -> tuple[list[Item], list[str], dict[str, Any]]:
        dirs = label_dirs(labels)
        margin = job.options.margin
        written, notes = [], []
        for it in sorted((i for i in items if i.boxes), key=lambda i: (i.split, i.name)):
            try:
                rgb = decode_image(source_bytes({"uri": it.uri, "size_bytes": it.size_bytes}), DEFAULT_MAX_PIXELS)
            except (OSError, ImageDecodeError) as exc:
                notes.append(f"left out {it.uri}: {exc}")
                continue
            h, w = rgb.shape[:2]
            for k, b in enumerate(it.boxes):  # named by the detection's index, or as the k-th box of the image
                x, y, bw, bh = b.bbox
                x0, y0, x1, y1 = crop_region((x * w, y * h, (x + bw) * w, (y + bh) * h), w, h, margin)
                folder = os.path.join(root, "crops", it.split, dirs[b.label])
                os.makedirs(folder, exist_ok=True)
                tag = f"d{b.detection_index}" if b.detection_index is not None else f"added{k}"
                with open(os.path.join(folder, f"{_stem(it.name)}_{tag}.jpg"), "wb") as f:
                    f.write(encode_jpeg(rgb[y0:y1, x0:x1]))
            written.append(it)
        negatives = sum(it.negative for it in items)
        if negatives:
            notes.append(f"{negatives} image(s) marked empty give no crop")
        return written, notes, {"label_dirs": dirs, "margin": margin}
