"""Letterbox an RGB image into a model input, and map boxes back to the original pixels."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ground.errors import ImageDecodeError
from model_store.core.config import ModelConfig, PreprocessConfig
from model_store.core.imaging import decode_image_at_least
from model_store.core.tiling import TiledInput, TiledMeta, TilingConfig, tile_origins


@dataclass(frozen=True)
class LetterboxMeta:
    """How one image was placed in the model input: scale factors, padding, original size."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    width: int
    height: int


INTERPOLATION = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST,
                 "cubic": cv2.INTER_CUBIC}
PIL_BICUBIC = -1  # not an OpenCV flag: Pillow resizes (see `resize`)


def resize(rgb: np.ndarray, new_w: int, new_h: int, interp: int) -> np.ndarray:
    """Resize with an OpenCV flag, or with Pillow's BICUBIC for `PIL_BICUBIC`.

    Pillow is called rather than imitated: its bicubic widens the kernel by the shrink factor (an antialiased
    filter, a = -0.5), OpenCV's INTER_CUBIC does not (a = -0.75, fixed 4x4 support), so on a 4000-px photo
    shrunk to 416 the two differ by tens of grey levels and a model trained on PIL's input scores differently."""
    if interp == PIL_BICUBIC:
        from PIL import Image  # here: only models that ask for it pay the import

        return np.asarray(Image.fromarray(rgb).resize((new_w, new_h), Image.Resampling.BICUBIC))
    return cv2.resize(rgb, (new_w, new_h), interpolation=interp)


def interpolation_flag(name: str) -> int:
    return PIL_BICUBIC if name == "pil_bicubic" else INTERPOLATION[name]


@dataclass(frozen=True)
class Placement:
    """Where the letterbox puts an image: resized to (new_w, new_h), at (left, top) of an (out_w, out_h) input."""

    new_w: int
    new_h: int
    out_w: int
    out_h: int
    left: int
    top: int
    scale_x: float
    scale_y: float


def placement(width: int, height: int, size: tuple[int, int], cfg: PreprocessConfig, stride: int = 32) -> Placement:
    """The letterbox's geometry for a (width, height) image and a model input of `size` (see `letterbox`)."""
    out_w, out_h = size
    if cfg.letterbox == "stretch":
        return Placement(out_w, out_h, out_w, out_h, 0, 0, out_w / width, out_h / height)
    s = min(out_w / width, out_h / height)
    rounding = math.floor if cfg.resize_rounding == "floor" else round
    new_w, new_h = max(1, rounding(width * s)), max(1, rounding(height * s))
    if cfg.letterbox == "rect":
        out_w, out_h = new_w + (out_w - new_w) % stride, new_h + (out_h - new_h) % stride
    if cfg.pad_anchor == "top_left":
        top = left = 0
    else:
        pad_x, pad_y = (out_w - new_w) / 2, (out_h - new_h) / 2
        top, left = round(pad_y - 0.1), round(pad_x - 0.1)  # the Ultralytics rounding
    return Placement(new_w, new_h, out_w, out_h, left, top, s, s)


def letterbox(rgb: np.ndarray, size: tuple[int, int], cfg: PreprocessConfig, stride: int = 32,
              interpolation: int | None = None) -> tuple[np.ndarray, LetterboxMeta]:
    """Resize and pad an RGB image for a model of input `size` = (width, height); returns HWC uint8.

    square: keep aspect, pad to `size`; rect: keep aspect, pad only up to a multiple of `stride`
    (the output is at most `size`); stretch: resize to `size`. Sizes, rounding and padding follow
    Ultralytics' and YOLOv5's `LetterBox` so the same model sees the same tensor it saw there;
    `cfg.pad_anchor` top_left and `cfg.resize_rounding` floor give the YOLOX package's `preproc` instead.
    `interpolation` overrides `cfg.interpolation` (training varies it as augmentation).
    """
    h, w = rgb.shape[:2]
    p = placement(w, h, size, cfg, stride)
    interp = interpolation_flag(cfg.interpolation) if interpolation is None else interpolation
    resized = resize(rgb, p.new_w, p.new_h, interp) if (p.new_w, p.new_h) != (w, h) else rgb
    bottom, right = p.out_h - p.new_h - p.top, p.out_w - p.new_w - p.left
    if p.top or bottom or p.left or right:
        resized = cv2.copyMakeBorder(resized, p.top, bottom, p.left, right, cv2.BORDER_CONSTANT, value=cfg.pad_rgb)
    if cfg.color_order == "bgr":
        resized = resized[:, :, ::-1]
    return resized, LetterboxMeta(p.scale_x, p.scale_y, float(p.left), float(p.top), w, h)


def letterbox_planar(rgb: np.ndarray, size: tuple[int, int], cfg: PreprocessConfig, stride: int = 32
                     ) -> tuple[np.ndarray, LetterboxMeta]:
    """`letterbox` as (3, H, W) uint8 planes in the model's channel order, the layout of the input tensor, so a
    batch is stacked and scaled without a transpose (a clip's frames): the same resize, then padded straight into
    the planes. Same pixels as `letterbox`."""
    h, w = rgb.shape[:2]
    p = placement(w, h, size, cfg, stride)
    if (p.new_w, p.new_h) != (w, h):
        rgb = resize(rgb, p.new_w, p.new_h, interpolation_flag(cfg.interpolation))
    out = np.empty((3, p.out_h, p.out_w), np.uint8)
    order = (2, 1, 0) if cfg.color_order == "bgr" else (0, 1, 2)
    for c, k in enumerate(order):
        out[c] = cfg.pad_rgb[k]
        out[c, p.top:p.top + p.new_h, p.left:p.left + p.new_w] = rgb[:, :, k]
    return out, LetterboxMeta(p.scale_x, p.scale_y, float(p.left), float(p.top), w, h)


class TensorBuffers:
    """Reusable storage for input tensors, one per thread and dtype. A new array each batch pays its page faults
    when it is first written: filling a fresh (8, 3, 640, 640) tensor took 11.0 ms here, a reused one 2.2 ms
    (BENCHMARKS.md, "Video clips"); the uint8 planes a batch is transposed into likewise (a fresh 32-tile batch
    cost 3.2 ms a tile to make, a reused one 1.9 ms: NOTES §29e). A tensor made in it lives until the same thread
    makes the next one of its dtype, so it is for a forward pass that ends before then (`Detector`); the storage
    grows to the largest batch seen."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, shape: tuple[int, ...], dtype: type = np.float32) -> np.ndarray:
        n = math.prod(shape)
        key = f"buf_{np.dtype(dtype).name}"
        buf = getattr(self._local, key, None)
        if buf is None or buf.size < n:
            buf = np.empty(n, dtype)
            setattr(self._local, key, buf)
        return buf[:n].reshape(shape)


def to_tensor(images: Sequence[np.ndarray], cfg: PreprocessConfig, buffers: TensorBuffers | None = None
              ) -> np.ndarray:
    """Stack letterboxed HWC uint8 images into the model's NCHW input tensor (made in `buffers` when given)."""
    if len({img.shape for img in images}) != 1:
        raise ValueError(f"a batch of inputs of different sizes: {sorted({img.shape for img in images})}")
    h, w, c = images[0].shape
    shape = (len(images), c, h, w)
    planes = buffers.get(shape, np.uint8) if buffers is not None else np.empty(shape, np.uint8)
    for i, img in enumerate(images):
        planes[i] = img.transpose(2, 0, 1)  # a uint8 transpose is cheap; the float pass then reads in order
    return scaled_tensor(planes, cfg, buffers)


def scaled_tensor(planes: np.ndarray, cfg: PreprocessConfig, buffers: TensorBuffers | None = None) -> np.ndarray:
    """A uint8 NCHW batch as the model's input: as it is (uint8 input), or scaled, mean-subtracted and divided
    by the std in float32, by a 256-entry table a channel (`_levels`: the same float32 operations on each grey
    level as on each pixel, so the same values bit for bit, in one pass that reads uint8; BENCHMARKS.md, "Video
    clips": the float tensor was the job's largest cost after decoding)."""
    if cfg.input_dtype == "uint8":
        return planes
    out = buffers.get(planes.shape) if buffers is not None else np.empty(planes.shape, np.float32)
    tables = _levels(cfg)
    for i in range(planes.shape[0]):
        for c in range(planes.shape[1]):
            cv2.LUT(planes[i, c], tables[c], dst=out[i, c])
    return out.astype(np.float16) if cfg.input_dtype == "float16" else out


def _levels(cfg: PreprocessConfig) -> np.ndarray:
    """(3, 256) float32: what each grey level of each channel becomes in the input tensor."""
    out = np.repeat(np.arange(256, dtype=np.float32)[None, :], 3, axis=0)
    divisor = 1.0 / cfg.scale
    if divisor == 1.0:
        pass  # raw 0-255 (YOLOX)
    elif abs(divisor - round(divisor)) < 1e-6:
        # x / 255 as the reference libraries compute it: x * float32(1/255) differs by an ulp for some
        # pixels, which is enough to flip saturated class-score ties on real exports.
        out /= np.float32(round(divisor))
    else:
        out *= np.float32(cfg.scale)
    if cfg.mean is not None:
        out -= np.asarray(cfg.mean, np.float32).reshape(3, 1)
    if cfg.std is not None:
        out /= np.asarray(cfg.std, np.float32).reshape(3, 1)
    return np.ascontiguousarray(out)


def unletterbox(boxes_xyxy: np.ndarray, meta: LetterboxMeta) -> np.ndarray:
    """Map (N, 4) x1,y1,x2,y2 boxes from model-input pixels to original pixels, clipped to the image."""
    out = np.empty_like(boxes_xyxy, dtype=np.float32)
    out[:, [0, 2]] = (boxes_xyxy[:, [0, 2]] - meta.pad_x) / meta.scale_x
    out[:, [1, 3]] = (boxes_xyxy[:, [1, 3]] - meta.pad_y) / meta.scale_y
    # Fancy indexing returns copies, so clip by assignment (np.clip(..., out=x[:, [0, 2]]) is a no-op).
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, meta.width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, meta.height)
    return out


class Preprocessor:
    """The config-only first stage of a detector: RGB image -> letterboxed model input.

    Needs no weights, so batch jobs run it in cheap CPU tasks before inference actors.
    """

    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    def prepare(self, rgb: np.ndarray, original_size: tuple[int, int] | None = None,
                tiling: TilingConfig | None | str = "model") -> tuple[np.ndarray, LetterboxMeta]:
        """Letterbox one RGB uint8 image; returns HWC uint8 input and the metadata to map boxes back.

        `original_size` (width, height) is the full-resolution size when `rgb` was decoded scaled
        down: boxes are then mapped back to the original pixels, not the reduced ones. With `tiling`
        ("model": the config's; None: none) the input is a `TiledInput` and the meta a `TiledMeta`.
        """
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image (H, W, 3), got {rgb.dtype} {rgb.shape}")
        tiling = self.config.tiling if tiling == "model" else tiling
        if tiling is not None:
            return self.prepare_tiled(rgb, original_size, tiling)  # type: ignore[return-value]
        prepared, meta = letterbox(rgb, self.config.input_size, self.config.preprocess, self.config.stride)
        return prepared, self._original(meta, original_size)

    def prepare_tiled(self, rgb: np.ndarray, original_size: tuple[int, int] | None, tiling: TilingConfig
                      ) -> tuple[TiledInput, TiledMeta]:
        """Each tile of `rgb` letterboxed (SAHI's slices, `tile_origins`), then the whole image when `tiling` asks
        and there is more than one tile. ImageDecodeError `too_many_tiles` past `tiling.max_tiles`."""
        h, w = rgb.shape[:2]
        ow, oh = original_size or (w, h)
        fx, fy = ow / w, oh / h
        tw, th = tiling.tile_wh(self.config.input_size)
        cut = tile_origins(w, h, tw, th, tiling.overlap, tiling.geometry)
        if len(cut) > tiling.max_tiles:
            raise ImageDecodeError("too_many_tiles", f"a {w}x{h} image is {len(cut)} tiles of {tw}x{th} at overlap "
                                                     f"{tiling.overlap}, over tiling.max_tiles {tiling.max_tiles}")
        inputs, metas, origins = [], [], []
        for x1, y1, x2, y2 in cut:
            tile = rgb[y1:y2, x1:x2]
            prepared, meta = letterbox(tile, self.config.input_size, self.config.preprocess, self.config.stride)
            inputs.append(prepared)
            metas.append(self._original(meta, (round((x2 - x1) * fx), round((y2 - y1) * fy))))
            origins.append((x1 * fx, y1 * fy))
        if tiling.whole_image and len(cut) > 1:
            prepared, meta = letterbox(rgb, self.config.input_size, self.config.preprocess, self.config.stride)
            inputs.append(prepared)
            metas.append(self._original(meta, (ow, oh)))
            origins.append((0.0, 0.0))
        meta = TiledMeta(ow, oh, tuple(metas), tuple(origins), tiling, (tw, th))
        return TiledInput(tuple(inputs), tiling.batch_tiles), meta

    def prepare_planar(self, rgb: np.ndarray, original_size: tuple[int, int]) -> tuple[np.ndarray, LetterboxMeta]:
        """`prepare` as the input tensor's (3, H, W) uint8 planes (`Detector.run_planar` takes a stack of them): the
        letterbox's resize, then padded straight into planes (`letterbox_planar`)."""
        planes, meta = letterbox_planar(rgb, self.config.input_size, self.config.preprocess, self.config.stride)
        return planes, self._original(meta, original_size)

    def _original(self, meta: LetterboxMeta, original_size: tuple[int, int] | None) -> LetterboxMeta:
        """`meta` mapping boxes back to `original_size` (width, height) when the image was decoded smaller."""
        if original_size and original_size != (meta.width, meta.height):
            ow, oh = original_size
            return LetterboxMeta(meta.scale_x * meta.width / ow, meta.scale_y * meta.height / oh,
                                 meta.pad_x, meta.pad_y, ow, oh)
        return meta

    def accepts(self, prepared: np.ndarray) -> bool:
        """Whether `prepared` is an input this config's letterbox could have produced (each of a `TiledInput`'s)."""
        if isinstance(prepared, TiledInput):
            return bool(prepared.inputs) and all(self.accepts(p) for p in prepared.inputs)
        if not isinstance(prepared, np.ndarray) or prepared.dtype != np.uint8 or prepared.ndim != 3 \
                or prepared.shape[2] != 3:
            return False
        (w, h), (ph, pw) = self.config.input_size, prepared.shape[:2]
        if self.config.preprocess.letterbox != "rect":
            return (pw, ph) == (w, h)
        stride = self.config.stride
        return 0 < pw <= w and 0 < ph <= h and (pw == w or pw % stride == 0) and (ph == h or ph % stride == 0)

    def min_decode_size(self, width: int, height: int) -> tuple[int, int]:
        """The smallest decoded size (width, height) that loses nothing for this model's input."""
        in_w, in_h = self.config.input_size
        if self.config.preprocess.letterbox == "stretch":
            return in_w, in_h
        s = min(in_w / width, in_h / height)
        return math.ceil(width * s), math.ceil(height * s)

    def prepare_bytes(self, data: bytes, max_pixels: int) -> tuple[np.ndarray, LetterboxMeta]:
        """Decode (scaled down where that loses nothing) and letterbox: the path of served and batch images."""

        # A tiled image is decoded whole: its tiles are cut from the full-resolution pixels.
        reduce = self.min_decode_size if self.config.preprocess.reduced_decode and self.config.tiling is None else None
        rgb, size = decode_image_at_least(data, max_pixels, reduce)
        return self.prepare(rgb, size)
