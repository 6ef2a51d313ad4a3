"""Tiled inference for small animals: an image cut into overlapping tiles at the model's input size, each run as
its own input, their boxes shifted back and merged (model_store/core/tile_merge.py).

A detector sees an image squeezed to its input size, so a 60-px moth on a 4,000-px sheet becomes 10 px and is
lost. Tiling is the field's answer (SAHI's `get_sliced_prediction`, MegaDetector's `run_tiled_inference`); the
geometry, the optional whole-image pass and the merge rules follow SAHI's so the answers can be compared box for
box (tests/fixtures/reference/build_sahi.py); `tiling: "megadetector"` is MegaDetector's geometry, settings and
de-duplication instead (MEGADETECTOR; tests/fixtures/reference/build_megadetector_tiled.py). Set per model
(`config.json` `tiling`) or per call (a request's, a job's or an Antenna pipeline's `tiling`, overriding fields of
the model's); what ran is in every record (`ImageDetections.tiling`).

Memory: the tiles of one image are views of its decoded pixels (a tile at the model's input size is neither
resized nor copied); only `batch_tiles` of them at a time become the float input tensor. An 8K frame (7680x4320,
99.5 MB decoded) at 640 px tiles with 0.2 overlap is 135 tiles: at most the decoded image, plus 32 tiles of uint8
planes and float32 tensor (6.1 MB a tile, ~200 MB) at once, plus the backend's own working memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ground.errors import TilingConfigError
from ground.problems import describe, problems

MERGES = ("nms", "nmm", "greedy_nmm", "megadetector")
GEOMETRIES = ("sahi", "megadetector")


class TilingConfig(BaseModel):
    """How an image is tiled and the tiles' boxes merged (SAHI's names and defaults where it has them). Frozen and
    strict like the config models (this module sits below model_store/core/config, which includes it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tile_size: tuple[int, int] | None = Field(
        None, description="tile width and height in image pixels (one number: square); default the model's input "
                          "size, so a tile is fed as it is, never shrunk")
    overlap: float = Field(0.2, ge=0.0, lt=1.0, description="fraction of a tile shared with its neighbour, each "
                                                            "direction (SAHI's overlap_*_ratio)")
    whole_image: bool = Field(True, description="also run the whole image letterboxed as usual, for animals larger "
                                                "than a tile (SAHI's perform_standard_pred)")
    merge: Literal[MERGES] = Field(
        "greedy_nmm", description="how the tiles' boxes of one animal become one: nms keeps the best box; nmm and "
                                  "greedy_nmm merge matched boxes into their union (SAHI's postprocess_type); "
                                  "megadetector is run_tiled_inference's NMS (whole-pixel boxes, its order)")
    geometry: Literal[GEOMETRIES] = Field(
        "sahi", description="how far apart tiles start: sahi, tile - int(overlap x tile); megadetector, "
                            "round(tile x (1 - overlap)); they differ only where overlap x tile is not whole")
    match_metric: Literal["ios", "iou"] = Field(
        "ios", description="overlap measure for matching: intersection over the smaller box (ios) or over the union")
    match_threshold: float = Field(0.5, gt=0.0, le=1.0, description="boxes overlapping at least this much match")
    class_agnostic: bool = Field(False, description="match boxes across labels (default: within a label only)")
    min_box_px: float = Field(0.0, ge=0.0, description="after merging, drop boxes narrower or shorter than this, in "
                                                       "original pixels (slivers cut by a tile edge)")
    batch_tiles: int = Field(32, ge=1, le=256, description="at most this many tiles in one forward pass (bounds "
                                                           "memory: a 4K frame at 640 px is 32 tiles, one pass)")
    max_tiles: int = Field(512, ge=1, le=4096, description="an image needing more tiles than this fails, typed")

    @field_validator("tile_size", mode="before")
    @classmethod
    def _square(cls, value: Any) -> Any:
        return (value, value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("tile_size")
    @classmethod
    def _tile_range(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not all(16 <= v <= 8192 for v in value):
            raise ValueError(f"tile_size must be within 16..8192 pixels, got {list(value)}")
        return value

    def tile_wh(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """The tile's (width, height): `tile_size`, or the model's input size."""
        return self.tile_size or input_size

    def describe(self, input_size: tuple[int, int]) -> dict[str, Any]:
        """What a record and /v1/models say ran: every field, the tile size resolved."""
        return {**self.model_dump(mode="json"), "tile_size": list(self.tile_wh(input_size))}


PER_IMAGE = ("tiles", "whole_image_run")  # what a record's `tiling` says of its own image, beyond the settings


# MegaDetector's run_tiled_inference as it runs by default: tiles at the detector's input (1280 for MDv5) overlapping
# by half, no whole-image pass (its docstring leaves that to a separate plain run), one class-agnostic NMS at 0.45.
MEGADETECTOR = {"overlap": 0.5, "whole_image": False, "merge": "megadetector", "match_metric": "iou",
                "match_threshold": 0.45, "class_agnostic": True, "geometry": "megadetector"}


def tiling_settings(record_tiling: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The settings of a record's `tiling` (what a result set is made with), without its image's own counts."""
    return {k: v for k, v in record_tiling.items() if k not in PER_IMAGE} if record_tiling else None


def check_fits(tiling: TilingConfig, input_size: tuple[int, int], task: str = "detect") -> None:
    """TilingConfigError when `tiling` cannot run on a model of `input_size` (width, height) and `task`."""
    tw, th = tiling.tile_wh(input_size)
    if tw > input_size[0] or th > input_size[1]:
        raise TilingConfigError(
            f"tiling.tile_size {tw}x{th} is larger than the model's input {input_size[0]}x{input_size[1]}: each tile "
            "would be shrunk as the whole-image pass is, which is the loss tiling is for; use at most the input size")
    if task != "detect":
        raise TilingConfigError(f"tiling is for box models; this model's task is {task!r} (its masks are not merged "
                                "across tiles)")


def resolve_tiling(base: TilingConfig | None, override: Any, input_size: tuple[int, int],
                   task: str = "detect") -> TilingConfig | None:
    """The tiling a call runs with: the model's `base` (None: off) and a call's `override` (None: the model's;
    false / "off": none; true / "on": the model's or the defaults; an object: fields over the model's or the
    defaults; "megadetector": MegaDetector's run_tiled_inference settings, or an object of settings over them
    with `"preset": "megadetector"`). TilingConfigError naming the field and value when it cannot run."""
    if override is None:
        tiling = base
    elif override is False or override == "off":
        return None
    elif override is True or override == "on":
        tiling = base or TilingConfig()
    elif override == "megadetector":
        tiling = TilingConfig(**MEGADETECTOR)
    elif isinstance(override, Mapping) and "preset" in override:
        if override["preset"] != "megadetector":
            raise TilingConfigError(f"tiling.preset must be \"megadetector\", got {override['preset']!r}")
        rest = {k: v for k, v in override.items() if k != "preset"}
        return resolve_tiling(None, {**MEGADETECTOR, **rest}, input_size, task)
    elif isinstance(override, Mapping):
        merged = {**(base.model_dump(exclude_unset=True) if base else {}), **override}
        try:
            tiling = TilingConfig.model_validate(merged)
        except ValidationError as exc:
            raise TilingConfigError("invalid tiling: " + describe(problems(exc), lambda f: f"tiling.{f}")) from None
    elif isinstance(override, TilingConfig):
        tiling = override
    else:
        raise TilingConfigError(f"tiling must be an object of settings, true, false, \"on\", \"off\" or "
                                f"\"megadetector\"; got {override!r}")
    if tiling is not None:
        check_fits(tiling, input_size, task)
    return tiling


def check_tiling_option(override: Any) -> None:
    """TilingConfigError when `override` is no tiling any call could ask for (a bad field or value); whether it fits
    a given model (tile within its input, a box model) is `resolve_tiling`'s, where the model is known. For configs
    read before their models load (an Antenna pipeline's `tiling`): 8192 px is the largest tile there is."""
    resolve_tiling(None, override, (8192, 8192))


def parse_tiling_option(text: str | None) -> Any:
    """A command line's `--tiling`: on, off, megadetector, or a JSON object of settings (None: the model's)."""
    if text is None or text in ("on", "off", "megadetector"):
        return text
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise TilingConfigError(f"tiling must be on, off, megadetector or a JSON object of settings, got "
                                f"{text!r}") from None
    if not isinstance(value, dict):
        raise TilingConfigError(f"tiling must be on, off, megadetector or a JSON object of settings, got {text!r}")
    return value


def tile_origins(width: int, height: int, tile_w: int, tile_h: int, overlap: float,
                 geometry: str = "sahi") -> list[tuple[int, int, int, int]]:
    """The tiles of a (width, height) image as x1, y1, x2, y2, row by row: SAHI's `get_slice_bboxes` (a step of
    the tile less int(overlap x tile); the last row and column shifted back inside the image, so every tile is
    full-size unless the image is smaller than a tile). MegaDetector's `get_patch_boundaries` walks the same way
    with a step of round(tile x (1 - overlap))."""
    boxes = []
    if geometry == "megadetector":
        step_x, step_y = max(1, round(tile_w * (1.0 - overlap))), max(1, round(tile_h * (1.0 - overlap)))
    else:
        step_x, step_y = tile_w - int(overlap * tile_w), tile_h - int(overlap * tile_h)
    y_min = y_max = 0
    while y_max < height:
        x_min = x_max = 0
        y_max = y_min + tile_h
        while x_max < width:
            x_max = x_min + tile_w
            if y_max > height or x_max > width:
                xe, ye = min(width, x_max), min(height, y_max)
                boxes.append((max(0, xe - tile_w), max(0, ye - tile_h), xe, ye))
            else:
                boxes.append((x_min, y_min, x_max, y_max))
            x_min = x_min + step_x
        y_min = y_min + step_y
    return boxes


@dataclass(frozen=True)
class TiledInput:
    """One image's model inputs under tiling: each tile letterboxed, then the whole image when asked for. A tile at
    the model's input size is a view of the decoded image, not a copy."""

    inputs: tuple[np.ndarray, ...]
    batch_tiles: int = 0  # at most this many inputs in one forward pass (0: no bound)

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class TiledMeta:
    """How to map each input of a `TiledInput` back: its letterbox meta (in original pixels, relative to the tile)
    and the tile's origin in the original image; the whole-image pass, when run, is last with origin (0, 0)."""

    width: int
    height: int
    metas: tuple[Any, ...]  # LetterboxMeta per input
    origins: tuple[tuple[float, float], ...]
    tiling: TilingConfig
    tile_wh: tuple[int, int]

    @property
    def tiles(self) -> int:
        return len(self.metas) - int(self.tiling.whole_image and len(self.metas) > 1)

    def provenance(self) -> dict[str, Any]:
        """What a record says of the tiling that made it: the settings, the tile size and this image's tiles."""
        return {**self.tiling.model_dump(mode="json"), "tile_size": list(self.tile_wh), "tiles": self.tiles,
                "whole_image_run": len(self.metas) > self.tiles}
