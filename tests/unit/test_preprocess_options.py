"""The preprocessing fields other families need: pad anchor, size rounding, PIL bicubic, pad colour, mean/std."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from model_store import ConfigError, parse_config
from model_store.core.config import PreprocessConfig
from model_store.core.preprocess import TensorBuffers, letterbox, letterbox_planar, to_tensor


def image(w: int = 97, h: int = 61) -> np.ndarray:
    return np.random.default_rng(w + h).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_defaults_are_todays_letterbox():
    cfg = PreprocessConfig()
    assert (cfg.pad_anchor, cfg.resize_rounding, cfg.interpolation, cfg.pad_rgb) == ("center", "round", "linear",
                                                                                     (114, 114, 114))
    assert cfg.mean is None and cfg.std is None and cfg.scale == pytest.approx(1 / 255)


def test_top_left_floor_is_the_yolox_preproc():
    # YOLOX's preproc: r = min(416/61, 416/97); resized to (int(97 r), int(61 r)); pasted at [0, 0] on 114 grey
    cfg = PreprocessConfig(pad_anchor="top_left", resize_rounding="floor", scale=1)
    out, meta = letterbox(image(), (416, 416), cfg)
    r = min(416 / 61, 416 / 97)
    w, h = int(97 * r), int(61 * r)
    assert (w, h) == (416, 261) and meta.pad_x == meta.pad_y == 0 and meta.scale_x == pytest.approx(r)
    assert (out[h:] == 114).all() and not (out[:h] == 114).all()
    assert (to_tensor([out], cfg)[0, :, 0, 0] == out[0, 0]).all()  # raw 0-255, no scaling


def test_pil_bicubic_is_pillows_own_resize_and_pad_colour_is_rgb():
    cfg = PreprocessConfig(interpolation="pil_bicubic", pad_anchor="top_left", pad_value=(10, 20, 30))
    src = image(400, 300)
    out, _ = letterbox(src, (200, 200), cfg)
    want = np.asarray(Image.fromarray(src).resize((200, 150), Image.Resampling.BICUBIC))
    assert (out[:150] == want).all() and (out[150:] == (10, 20, 30)).all()


def test_mean_std_normalise_after_scaling():
    cfg = PreprocessConfig(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    px = np.full((2, 2, 3), 128, np.uint8)
    got = to_tensor([px], cfg)[0, :, 0, 0]
    assert np.allclose(got, (128 / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]))


@pytest.mark.parametrize("preprocess, message", [
    ({"pad_value": [0, 0, 300]}, "pad_value must be 0-255"),
    ({"std": [1, 0, 1]}, "std must be positive"),
    ({"mean": [0.5, 0.5, 0.5], "input_dtype": "uint8"}, "mean/std need a float input"),
    ({"pad_anchor": "bottom"}, "preprocess.pad_anchor"),
])
def test_bad_preprocessing_is_refused_quoting_it(preprocess, message):
    cfg = {"backend": "onnx-yolo", "weights": {"file": "m.onnx", "sha256": "0" * 64}, "input_size": 320,
           "labels": ["a"], "output_layout": "yolov8", "preprocess": preprocess}
    with pytest.raises(ConfigError, match=message):
        parse_config(cfg)


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080), (700, 401)])
@pytest.mark.parametrize("kw", [{}, {"color_order": "bgr", "pad_value": (10, 20, 30)},
                                {"pad_anchor": "top_left", "resize_rounding": "floor"}, {"letterbox": "rect"},
                                {"interpolation": "area"}, {"interpolation": "pil_bicubic"}])
def test_a_frame_is_letterboxed_straight_into_planes_with_the_still_s_pixels(kw, size):
    # a clip's frame (full size, or already at the resized size) becomes the letterbox's pixels as (3, H, W) planes
    cfg = PreprocessConfig(**kw)
    frame = image(*size)
    want, want_meta = letterbox(frame, (640, 640), cfg)
    planes, meta = letterbox_planar(frame, (640, 640), cfg)
    assert planes.shape == (3, *want.shape[:2]) and meta == want_meta
    assert np.array_equal(planes, want.transpose(2, 0, 1))


@pytest.mark.parametrize("kw", [{}, {"scale": 1}, {"scale": 0.0037}, {"input_dtype": "float16"},
                                {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}])
def test_the_input_tensor_is_the_float_arithmetic_bit_for_bit(kw):
    cfg = PreprocessConfig(**kw)
    images = [image(64, 48), np.arange(64 * 48 * 3, dtype=np.int64).reshape(48, 64, 3).astype(np.uint8)]
    want = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32)
    if cfg.scale != 1:
        want = want / np.float32(255) if cfg.scale == pytest.approx(1 / 255) else want * np.float32(cfg.scale)
    if cfg.mean:
        want = (want - np.float32(cfg.mean).reshape(1, 3, 1, 1)) / np.float32(cfg.std).reshape(1, 3, 1, 1)
    want = np.ascontiguousarray(want, np.float16 if cfg.input_dtype == "float16" else np.float32)
    got = to_tensor(images, cfg)
    assert got.dtype == want.dtype and np.array_equal(got.view(np.uint8), want.view(np.uint8))


def test_a_reused_tensor_buffer_gives_the_fresh_tensor_and_each_thread_its_own():
    cfg, buffers = PreprocessConfig(), TensorBuffers()
    big, small = [image(64, 48), image(64, 48)[::-1].copy()], [image(64, 48)[:, ::-1].copy()]
    first = to_tensor(big, cfg, buffers)
    assert np.array_equal(first, to_tensor(big, cfg))
    again = to_tensor(small, cfg, buffers)  # a smaller batch: a view of the same storage, the small batch's values
    assert np.array_equal(again, to_tensor(small, cfg)) and np.shares_memory(again, first)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(to_tensor(big, cfg, buffers)))
    worker.start()
    worker.join()
    assert np.array_equal(seen[0], to_tensor(big, cfg)) and not np.shares_memory(seen[0], again)


def test_the_uint8_planes_are_reused_storage_too():
    """The planes a batch is transposed into come from the buffers (a fresh 32-tile array paid its page faults on
    every pass); a uint8-input model's tensor is those planes, with the float tensor's lifetime."""
    cfg, buffers = PreprocessConfig(input_dtype="uint8"), TensorBuffers()
    a, b = [image(64, 48)], [image(64, 48)[::-1].copy()]
    first = to_tensor(a, cfg, buffers)
    assert np.array_equal(first, to_tensor(a, cfg))
    second = to_tensor(b, cfg, buffers)
    assert np.shares_memory(first, second) and np.array_equal(second, to_tensor(b, cfg))
    floats = to_tensor(a, PreprocessConfig(), buffers)  # a float pass: the planes' storage again, its own tensor
    assert floats.dtype == np.float32 and not np.shares_memory(floats, second)
    assert np.array_equal(floats, to_tensor(a, PreprocessConfig()))
