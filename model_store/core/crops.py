"""Crops of detections: the one cropping code of the library, the Serve replicas and the batch stages.

A crop is cut from the decoded, upright, full-resolution image (never the letterboxed model
input) around a detection's pixel box, optionally padded and squared. Snip files get
deterministic names, so a rerun overwrites the same files instead of adding copies.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from model_store.core.imaging import encode_jpeg
from model_store.core.masks import from_rle
from model_store.core.records import MaskRLE

CROPS_DIR = "crops"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class CropOptions(BaseModel):
    """How snips are cut and encoded (`--crops`, `trapline crops`, `?crops=true`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    padding: float = Field(0.0, ge=0.0, le=2.0, description="grow the box by this fraction of its size on each side")
    square: bool = Field(False, description="grow the shorter side so the crop is square (clipped at the image edge)")
    # `min_size` is what it was called before: the name of the filter on a box's area fraction (accepted still)
    min_side_px: int = Field(0, ge=0, le=10_000, validation_alias=AliasChoices("min_side_px", "min_size"),
                             description="no snip for boxes whose shorter side is under this many pixels (in the "
                                         "original image)")
    quality: int = Field(90, ge=1, le=100, description="JPEG quality")
    background: Literal["keep", "blank"] = Field(
        "keep", description="blank: a segmentation model's snip shows the detection's mask only, every other pixel "
                            "of the box black (box-only models' snips are unchanged)")

    @property
    def hash(self) -> str:
        """8 hex digits identifying the geometry and encoding; part of every snip's path."""
        spec = self.model_dump(mode="json")
        spec["min_size"] = spec.pop("min_side_px")  # its name when the hash was first defined: the same paths
        if spec["background"] == "keep":
            del spec["background"]  # options from before the field keep their hash (and their snips' paths)
        canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def crop_region(box_px: Sequence[float], width: int, height: int, padding: float = 0.0,
                square: bool = False) -> tuple[int, int, int, int]:
    """Integer (x0, y0, x1, y1) of the crop around `box_px` (x1, y1, x2, y2), inside the image, at least 1x1."""
    x1, y1, x2, y2 = (float(v) for v in box_px)
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    w, h = w * (1 + 2 * padding), h * (1 + 2 * padding)
    if square:
        w = h = max(w, h)
    # Shift a window that pokes out of the image back inside when it fits (a square crop at the
    # edge stays square); otherwise clip it.
    x0, y0 = cx - w / 2, cy - h / 2
    x0 = min(max(x0, 0.0), max(width - w, 0.0))
    y0 = min(max(y0, 0.0), max(height - h, 0.0))
    ix0, iy0 = int(np.floor(x0)), int(np.floor(y0))
    ix1, iy1 = int(np.ceil(min(x0 + w, width))), int(np.ceil(min(y0 + h, height)))
    ix0, iy0 = min(max(ix0, 0), width - 1), min(max(iy0, 0), height - 1)
    return ix0, iy0, max(ix1, ix0 + 1), max(iy1, iy0 + 1)


def crop_box(rgb: np.ndarray, box_px: Sequence[float], padding: float = 0.0, square: bool = False) -> np.ndarray:
    """The crop of an RGB uint8 image (H, W, 3) around one detection's pixel box (a contiguous copy)."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = crop_region(box_px, w, h, padding, square)
    return np.ascontiguousarray(rgb[y0:y1, x0:x1])


def big_enough(box_px: Sequence[float], min_side_px: int) -> bool:
    """Whether the box's shorter side reaches `min_side_px` pixels."""
    x1, y1, x2, y2 = box_px
    return min(x2 - x1, y2 - y1) >= min_side_px


def snip_jpeg(rgb: np.ndarray, box_px: Sequence[float], options: CropOptions,
              mask: MaskRLE | None = None) -> bytes | None:
    """The JPEG snip of one detection, or None when its box's shorter side is under `options.min_side_px`. With
    `background` blank and the detection's `mask` (a segmentation model's), the pixels outside the mask are black."""
    if not big_enough(box_px, options.min_side_px):
        return None
    crop = crop_box(rgb, box_px, options.padding, options.square)
    if options.background == "blank" and mask is not None:
        h, w = rgb.shape[:2]
        x0, y0, x1, y1 = crop_region(box_px, w, h, options.padding, options.square)
        inside = from_rle(mask.model_dump())[y0:y1, x0:x1] if tuple(mask.size) == (h, w) else None
        if inside is not None:
            crop[~inside] = 0
    return encode_jpeg(crop, options.quality)


@dataclass(frozen=True)
class SnipSet:
    """Whose snips and how cut: one model version's result set and the crop options, which name the folder its snips
    live in (`crops/NAME/VERSION/RESULT_HASH/CROP_HASH/`). One value, so what names and writes snips takes it whole."""

    model_name: str
    model_version: str
    result_hash: str
    options: CropOptions

    @property
    def folder(self) -> tuple[str, ...]:
        return (CROPS_DIR, self.model_name, self.model_version, self.result_hash, self.options.hash)


def snip_path(rel_path: str | None, uri: str, content_id: str, snips: SnipSet,
              detection_index: int) -> tuple[str, ...]:
    """Path parts of a snip under the destination: one name per image version, model, set, geometry and index.

    `crops/NAME/VERSION/FILTERS_HASH/CROP_HASH/<dirs of rel_path>/<stem>_<id>_<index>.jpg`, where
    `<id>` hashes the uri and content id, so two files of one name, or a file that changed, never
    share a snip, and the same detection always gets the same name.
    """
    ident = hashlib.sha1(f"{uri}\0{content_id}".encode()).hexdigest()[:12]
    rel = (rel_path or posixpath.basename(uri)).replace("\\", "/")
    dirs = [_UNSAFE.sub("_", d).lstrip(".") or "_" for d in posixpath.dirname(rel).split("/") if d]
    stem = _UNSAFE.sub("_", posixpath.splitext(posixpath.basename(rel))[0]).lstrip(".") or "image"
    return (*snips.folder, *dirs, f"{stem}_{ident}_{detection_index:03d}.jpg")
