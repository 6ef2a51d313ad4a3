"""`config.json` of a detector version, validated by pydantic."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from model_store.core.backend_specs import CLASSIFIER_BACKENDS, DETECTOR_BACKENDS
from model_store.core.clip_counting import ClipCountConfig
from model_store.core.clip_sampling import Sampling
from model_store.core.config.common import (
    ConfigError,
    Strict,
    VersionConfig,
    format_validation_error,
    json_object,
)
from model_store.core.filters import FilterConfigError, FilterSet
from model_store.core.filters.track_config import TrackConfig
from model_store.core.graph import GraphFacts
from model_store.core.heads import (
    HEADS,
    LAYOUTS,
    SEGMENT_HEADS,
    UnknownLayoutError,
    fitting,
    head_for,
    layouts_table,
    shapes_str,
)
from model_store.core.tiling import TilingConfig, check_fits


class PreprocessConfig(Strict):
    """How an RGB image becomes the model's input tensor: resize, pad, channel order, scale, normalisation.

    The defaults are Ultralytics' and YOLOv5's letterbox (centred, 114 grey, bilinear, /255, RGB); the other
    fields state what other families were trained with (YOLOX: top-left, floor sizing, raw 0-255; zamba's
    MegadetectorLite: top-left, black, PIL bicubic; DETRs: ImageNet mean/std)."""

    letterbox: Literal["square", "rect", "stretch"] = Field(
        "square", description="square: keep aspect and pad to input_size (Ultralytics/YOLOv5 auto=False); rect: "
                              "pad only to a multiple of `stride` (auto=True; needs dynamic spatial dims); "
                              "stretch: resize to input_size ignoring aspect")
    pad_anchor: Literal["center", "top_left"] = Field(
        "center", description="where the resized image sits in the padded input: centred (Ultralytics, YOLOv5) or "
                              "at the top-left with padding right and below (YOLOX, zamba's MegadetectorLite)")
    resize_rounding: Literal["round", "floor"] = Field(
        "round", description="the resized side in pixels: round(side x scale) (Ultralytics, PIL ImageOps) or "
                             "int(side x scale) (the YOLOX package's preproc)")
    interpolation: Literal["linear", "area", "nearest", "cubic", "pil_bicubic"] = Field(
        "linear", description="resize filter; linear is what Ultralytics and YOLOv5 use; cubic is OpenCV's; "
                              "pil_bicubic is Pillow's BICUBIC (antialiased when shrinking, unlike OpenCV's), for "
                              "models whose reference pipeline resizes with PIL")
    color_order: Literal["rgb", "bgr"] = "rgb"
    pad_value: int | tuple[int, int, int] = Field(
        114, description="padding colour: one grey level, or [r, g, b] (0-255, in RGB whatever color_order is)")
    scale: float = Field(1 / 255, gt=0, description="multiplier applied to uint8 pixels (1/255, or 1 for raw 0-255)")
    mean: tuple[float, float, float] | None = Field(
        None, description="per-channel mean subtracted after `scale`, in the order the model takes (DETR-style "
                          "models: ImageNet [0.485, 0.456, 0.406] for RGB)")
    std: tuple[float, float, float] | None = Field(
        None, description="per-channel std divided by after the mean (DETR-style: [0.229, 0.224, 0.225])")
    reduced_decode: bool = Field(
        False, description="opt-in speed-up: decode large JPEGs at 1/2, 1/4 or 1/8 scale when still larger than "
                           "the model input (moves scores; see BENCHMARKS.md, section 6, for the measured deviation)")
    input_dtype: Literal["float32", "float16", "uint8"] = Field(
        "float32", description="uint8 means the model normalises inside the graph (cheaper transfer)"
    )

    @field_validator("letterbox", mode="before")
    @classmethod
    def _legacy_bool(cls, value: Any) -> Any:
        # Configs published before `rect` existed say true (square) or false (stretch).
        return {True: "square", False: "stretch"}.get(value, value) if isinstance(value, bool) else value

    @field_validator("pad_value")
    @classmethod
    def _pad_range(cls, value: int | tuple[int, int, int]) -> int | tuple[int, int, int]:
        if not all(0 <= v <= 255 for v in ((value,) if isinstance(value, int) else value)):
            raise ValueError(f"pad_value must be 0-255 (or three such), got {value!r}")
        return value

    @field_validator("std")
    @classmethod
    def _std_positive(cls, value: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
        if value is not None and min(value) <= 0:
            raise ValueError(f"std must be positive, got {value!r}")
        return value

    @model_validator(mode="after")
    def _normalisation_needs_floats(self) -> PreprocessConfig:
        if (self.mean is not None or self.std is not None) and self.input_dtype == "uint8":
            raise ValueError("preprocess.mean/std need a float input; input_dtype is uint8")
        return self

    @property
    def pad_rgb(self) -> tuple[int, int, int]:
        """The padding colour as (r, g, b)."""
        v = self.pad_value
        return (v, v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


class ModelConfig(VersionConfig):
    """Everything needed to run one model version; the backend is chosen here, never by extension."""

    backend: Literal[DETECTOR_BACKENDS]
    output_layout: Literal[LAYOUTS] = Field(..., description=(
        "how the graph's output is decoded (model_store/core/heads): "
        + "; ".join(f"{n}: {h.summary}" for n, h in HEADS.items())))
    task: Literal["detect", "segment"] = Field("detect", description=(
        "segment: the head also gives 32 mask coefficients per box and a second output of prototypes "
        "[B, 32, H/4, W/4]; every detection then carries its mask. Its output_layout names the detection form: "
        + "; ".join(f"{n}: {h.summary}" for n, h in SEGMENT_HEADS.items())))
    score_threshold: float = Field(0.25, ge=0.0, le=1.0)
    nms_iou: float = Field(0.45, gt=0.0, le=1.0)
    class_agnostic_nms: bool = False
    max_detections: int = Field(300, ge=1, le=10_000)
    stride: int = Field(32, ge=1, le=256, description="the model's largest stride; rect letterbox pads to it")
    preprocess: PreprocessConfig = PreprocessConfig()
    filters: list[dict[str, Any]] = Field(default_factory=list, description="default post-processing filters")
    video_sampling: str | None = Field(None, description="clips: the frames this model sees by default ('1s', "
                                                         "'5f', 'all'; a run's --video-sampling overrides it)")
    clip_counting: ClipCountConfig | None = Field(None, description=(
        "clips: how a clip's tracks become its count of animals (doubles merged, still background not counted; "
        "model_store/core/clip_counting.py); a run's --clip-counting overrides fields of it"))
    clip_tracking: TrackConfig | None = Field(None, description=(
        "clips: how a clip's sampled frames are linked into tracks (the `track` filter's config, "
        "model_store/core/filters/track_config.py); a run's --clip-tracking overrides fields of it"))
    typical_detection_threshold: float | None = Field(None, ge=0.0, le=1.0, description=(
        "the score most users keep (MegaDetector's detector_metadata; previews default to it); "
        "exports fall back to score_threshold"))
    conservative_detection_threshold: float | None = Field(None, ge=0.0, le=1.0, description=(
        "a lower score, for when a missed animal costs more than a false box"))
    tiling: TilingConfig | None = Field(None, description=(
        "tiled inference for small animals (model_store/core/tiling.py): the image cut into overlapping tiles at "
        "the input size, each run, their boxes merged; a request's or a job's `tiling` overrides fields of it"))
    description: str = ""
    graph: GraphFacts | None = Field(None, description="the ONNX graph's inspected facts (filled in by publish)")

    @field_validator("video_sampling")
    @classmethod
    def _video_sampling(cls, value: str | None) -> str | None:
        if value is not None:
            Sampling.parse(value)
        return value

    @model_validator(mode="after")
    def _filters_valid(self) -> ModelConfig:
        try:
            filters = FilterSet.from_specs(self.filters)
            filters.require_per_image()
            filters.check_labels(self.labels)
        except FilterConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> ModelConfig:
        typical, conservative = self.typical_detection_threshold, self.conservative_detection_threshold
        if typical is not None and conservative is not None and conservative > typical:
            raise ValueError(f"conservative_detection_threshold {conservative} is above "
                             f"typical_detection_threshold {typical}")
        return self

    @model_validator(mode="after")
    def _agrees_with_graph(self) -> ModelConfig:
        try:
            head_for(self.output_layout, self.task)
        except UnknownLayoutError as exc:
            raise ValueError(str(exc)) from None
        problem = graph_contradiction(self)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _tiling_fits(self) -> ModelConfig:
        if self.tiling is not None:
            check_fits(self.tiling, self.input_size, self.task)
        return self

    def default_filters(self) -> FilterSet:
        """The model's default post-processing filters."""
        return FilterSet.from_specs(self.filters)


def graph_contradiction(cfg: ModelConfig) -> str | None:
    """One line naming both values when the config and the inspected graph disagree, else None."""
    g = cfg.graph
    if g is None:
        return None
    w, h = cfg.input_size
    if len(g.input.shape) != 4:
        return f"the graph's input {g.input.describe()} is not an image batch [N, 3, H, W]"
    if isinstance(g.input.shape[1], int) and g.input.shape[1] != 3:
        return f"the graph's input {g.input.describe()} has {g.input.shape[1]} channels; trapline feeds 3 (RGB/BGR)"
    if g.static_hw and g.static_hw != (w, h):
        return (f"input_size is {w}x{h} but the graph's input {g.input.describe()} is fixed at "
                f"{g.static_hw[0]}x{g.static_hw[1]}")
    if cfg.preprocess.letterbox == "rect" and g.static_hw:
        return (f"preprocess.letterbox is 'rect' but the graph's input {g.input.describe()} has fixed spatial dims; "
                "use 'square' or export with dynamic=True")
    if g.input.dtype in ("float32", "float16", "uint8") and g.input.dtype != cfg.preprocess.input_dtype:
        return (f"preprocess.input_dtype is {cfg.preprocess.input_dtype} but the graph's input "
                f"{g.input.describe()} takes {g.input.dtype}")
    given = ", ".join(o.describe() for o in g.outputs)
    if g.probed_outputs:
        given += f" (on a blank input: {shapes_str(g.probed_outputs)})"
    return layout_contradiction(cfg, g.output_shapes(), given, g.static_hw)


def layout_contradiction(cfg: ModelConfig, shapes: list, given: str,
                         input_wh: tuple[int, int] | None = None) -> str | None:
    """Why the config's `output_layout` cannot decode outputs of `shapes` for its `num_classes` labels (None when it
    can): one line naming the layout's shape, what the graph gave, and the layouts that do fit (or every layout
    there is)."""
    layout, nc, letterbox, task = cfg.output_layout, cfg.num_classes, cfg.preprocess.letterbox, cfg.task
    head = head_for(layout, task)
    if head.normalised and letterbox == "rect":
        return (f"output_layout {layout} gives boxes normalised to the input, which a rect letterbox makes vary per "
                "image; use preprocess.letterbox square or stretch")
    if task == "segment" and len(shapes) < head.outputs:
        return f"task segment needs two outputs ({head.shape(nc)}); the graph has only {given}"
    if len(shapes) >= head.outputs and head.fits(shapes, nc):
        return head.check(shapes, input_wh)
    fits = [f for f in fitting(shapes, nc, task) if f != layout]
    other = "detect" if task == "segment" else "segment"
    if fits:
        hint = f"it fits {', '.join(fits)}"
    elif fitting(shapes, nc, other):
        hint = (f"it is a {'segmentation' if other == 'segment' else 'detection'} head: set \"task\": \"{other}\" "
                f"(output_layout {', '.join(fitting(shapes, nc, other))})")
    else:
        hint = f"the layouts there are: {layouts_table(nc, task)}"
    if task == "segment":  # the first output is what tells the forms apart; the prototypes are named after it
        first, _, protos = head.shape(nc).partition(" + ")
        return (f"{nc} labels with task segment and output_layout {layout} mean a first output of {first} (boxes, "
                f"class scores, 32 mask coefficients) and the prototypes {protos}, but the graph's outputs are "
                f"{given}; {hint}")
    return (f"{nc} labels with output_layout {layout} mean an output of {head.shape(nc)}, but the graph's output "
            f"is {given}; {hint}")

def parse_config(data: bytes | str | dict[str, Any], source: str = "config.json") -> ModelConfig:
    """Parse and validate a config from JSON text or a dict (a detector's; see `parse_any_config`)."""
    data = json_object(data, source)
    if data.get("backend") in CLASSIFIER_BACKENDS:
        raise ConfigError(f"{source} is a classifier (backend {data['backend']}), not a detector")
    try:
        return ModelConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
