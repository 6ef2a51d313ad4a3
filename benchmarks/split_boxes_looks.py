"""Pictures for the blind split-box generator (benchmarks/split_boxes_scenes.py; how it was written and what it must
not be tuned on: benchmarks/split_boxes_blind.py): each camera's backdrop and its animals drawn with cv2 frame by
frame, and the product's descriptors of every detection's crop.

Written blind with it (issue 84, item 3): the drawings are this file's own (a deer, a bird, a moth), not the
tracker's test scenes'. A split animal is drawn the same in every frame, whatever the detector boxed: two halves with
an occluder in the gap (a stem, a fold of the sheet), a head beside a body, or a bird with its reflection.
"""

from __future__ import annotations

from collections import defaultdict

import cv2
import numpy as np

from benchmarks.split_boxes_scenes import Scene
from model_store.core.filters.appearance import animal_descriptor, appearance_descriptor

# Each species' base colour (RGB) by camera backdrop; an animal's own tint is added to it.
_COAT = {"trail": (150, 100, 60), "nest": (170, 160, 60), "sheet": (150, 130, 100), "window": (130, 95, 70)}
_OCCLUDER = {"trail": (60, 45, 30), "nest": (100, 70, 45), "sheet": (190, 190, 180), "window": (230, 230, 230)}


def backdrop(ground: str, size_px: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A camera's empty view (H, W, 3) uint8 RGB."""
    w, h = size_px
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    if ground == "trail":  # foliage above, earth below, a few stems
        top, bottom = np.array([90, 120, 70]), np.array([120, 100, 70])
        img[:] = top + (bottom - top) * (yy / h)[..., None]
        for x in rng.uniform(0, w, 3):
            img[:, int(x):int(x) + max(2, w // 60)] = (60, 45, 30)
    elif ground == "nest":  # planks with their grain, the entrance hole
        img[:] = (130, 95, 60)
        img += (12 * np.sin(yy / 3.0 + 2 * np.sin(xx / 40.0)))[..., None]
        cv2.circle(img, (int(w * rng.uniform(0.3, 0.7)), int(h * 0.25)), h // 8, (20, 15, 10), -1)
    elif ground == "sheet":  # a white sheet's folds under a lamp
        img[:] = (225, 225, 215)
        img *= (0.9 + 0.06 * np.sin(xx / 25.0))[..., None]
        img *= (1.0 - 0.3 * (((xx - w / 2) / w) ** 2 + ((yy - h / 3) / h) ** 2))[..., None]
    elif ground == "window":  # glass above a feeder tray, a window bar
        img[:] = (150, 170, 185)
        img += (20 * xx / w)[..., None]
        img[int(h * 0.7):] = (110, 80, 50)
        img[:, int(w * rng.uniform(0.4, 0.6)):][:, :max(3, w // 50)] = (230, 230, 230)
    else:
        raise ValueError(f"unknown backdrop {ground!r}")
    img += rng.normal(0, 6, img.shape)
    return np.clip(cv2.GaussianBlur(img, (3, 3), 0), 0, 255).astype(np.uint8)


def _px(box: np.ndarray, size_px: tuple[int, int]) -> tuple[int, int, int, int]:
    w, h = size_px
    return (int(round(box[0] * w)), int(round(box[1] * h)), int(round(box[2] * w)), int(round(box[3] * h)))


def draw_animal(img: np.ndarray, body: str, box: tuple[int, int, int, int], coat: np.ndarray, facing: float) -> None:
    """A deer, a bird or a moth filling `box` (pixels), facing left (-1) or right (+1)."""
    x1, y1, x2, y2 = box
    w, h = max(x2 - x1, 2), max(y2 - y1, 2)
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    col = tuple(int(c) for c in np.clip(coat, 0, 255))
    pale = tuple(int(c) for c in np.clip(coat * 0.6 + 100, 0, 255))
    dark = tuple(int(c) for c in np.clip(coat * 0.45, 0, 255))
    if body == "deer":
        by = y1 + int(0.45 * h)
        for dx in (-0.3, -0.2, 0.2, 0.3):  # legs
            cv2.line(img, (cx + int(dx * w), by), (cx + int(dx * w), y2), dark, max(1, w // 30))
        cv2.ellipse(img, (cx, by), (int(0.38 * w), int(0.22 * h)), 0, 0, 360, col, -1)
        cv2.ellipse(img, (cx, by + int(0.08 * h)), (int(0.25 * w), int(0.08 * h)), 0, 0, 360, pale, -1)
        hx = cx + int(facing * 0.38 * w)
        cv2.line(img, (cx + int(facing * 0.25 * w), by), (hx, y1 + int(0.2 * h)), col, max(2, w // 12))
        cv2.circle(img, (hx, y1 + int(0.17 * h)), max(2, int(0.12 * h)), col, -1)
        cv2.circle(img, (cx - int(facing * 0.38 * w), by - int(0.1 * h)), max(1, w // 30), (235, 235, 230), -1)
    elif body == "bird":
        tail = [(cx - int(facing * 0.3 * w), cy), (cx - int(facing * 0.5 * w), cy + int(0.3 * h)),
                (cx - int(facing * 0.45 * w), cy + int(0.4 * h))]
        cv2.fillPoly(img, [np.array(tail, np.int32)], dark)
        cv2.ellipse(img, (cx, cy + int(0.05 * h)), (int(0.35 * w), int(0.3 * h)), 0, 0, 360, col, -1)
        cv2.ellipse(img, (cx + int(facing * 0.1 * w), cy + int(0.12 * h)), (int(0.2 * w), int(0.18 * h)), 0, 0, 360,
                    pale, -1)
        hx, hy, r = cx + int(facing * 0.28 * w), y1 + int(0.3 * h), max(2, int(0.2 * min(w, h)))
        cv2.circle(img, (hx, hy), r, dark, -1)
        beak = [(hx + int(facing * r), hy - 1), (hx + int(facing * (r + 0.15 * w)), hy), (hx + int(facing * r), hy + 2)]
        cv2.fillPoly(img, [np.array(beak, np.int32)], (60, 50, 20))
    elif body == "moth":
        for s in (-1, 1):  # two wings from the thorax, an eye spot on each
            wing = [(cx, y1 + int(0.15 * h)), (cx + s * int(0.5 * w), y1), (cx + s * int(0.42 * w), y2)]
            cv2.fillPoly(img, [np.array(wing, np.int32)], col)
            cv2.circle(img, (cx + s * int(0.28 * w), cy), max(1, int(0.08 * w)), dark, -1)
        cv2.ellipse(img, (cx, cy), (max(1, int(0.06 * w)), int(0.42 * h)), 0, 0, 360, dark, -1)
    else:
        raise ValueError(f"unknown animal {body!r}")


def _draw_sprite(img: np.ndarray, scene: Scene, sprite: dict, coat: np.ndarray, facing: float) -> None:
    cam, size = scene.camera, scene.camera.size_px
    lay = scene.animals[sprite["animal"]]["split"]
    if lay is None or lay["style"] == "halves":
        draw_animal(img, cam.body, _px(sprite["body"], size), coat, facing)
    if lay is None:
        return
    main, second = _px(sprite["main"], size), _px(sprite["second"], size)
    if lay["style"] == "halves" and lay["gap"] > 0:  # what hides the middle: a stem, a fold
        a = 0 if lay["axis"] == "x" else 1
        lo, hi = sorted((main[a + 2], second[a]) if lay["side"] == "after" else (second[a + 2], main[a]))
        gap = list(_px(sprite["body"], size))
        gap[a], gap[a + 2] = lo, hi
        cv2.rectangle(img, (gap[0], gap[1]), (gap[2], gap[3]), _OCCLUDER[cam.ground], -1)
    elif lay["style"] == "head":  # a body and, beside it, a darker head with an eye
        draw_animal(img, cam.body, main, coat, facing)
        x1, y1, x2, y2 = second
        centre, axes = ((x1 + x2) // 2, (y1 + y2) // 2), (max(1, (x2 - x1) // 2), max(1, (y2 - y1) // 2))
        cv2.ellipse(img, centre, axes, 0, 0, 360, tuple(int(c) for c in np.clip(coat * 0.6, 0, 255)), -1)
        cv2.circle(img, (centre[0] + axes[0] // 3, centre[1] - axes[1] // 3), max(1, axes[0] // 5), (10, 10, 10), -1)
    elif lay["style"] == "reflection":  # the bird, and its mirror image faint in the glass beside it
        draw_animal(img, cam.body, main, coat, facing)
        ghost = img.copy()
        draw_animal(ghost, cam.body, second, coat, -facing)
        x1, y1, x2, y2 = (max(0, v) for v in second)
        img[y1:y2, x1:x2] = cv2.addWeighted(img[y1:y2, x1:x2], 0.55, ghost[y1:y2, x1:x2], 0.45, 0)


def frames(scene: Scene) -> dict[int, np.ndarray]:
    """Every frame that holds a detection, drawn: the backdrop (its light changing by burst) and the animals."""
    cam = scene.camera
    rng = np.random.default_rng([scene.seed, 84, len(scene.animals)])
    ground = backdrop(cam.ground, cam.size_px, rng).astype(np.float32)
    lit = [np.clip(ground * light, 0, 255).astype(np.uint8) for light in rng.uniform(0.85, 1.15, cam.visits)]
    burst_of = dict(zip(scene.frame_ids.tolist(), scene.burst.tolist(), strict=False))
    by_frame: dict[int, list[dict]] = defaultdict(list)
    for s in scene.sprites:
        by_frame[s["frame"]].append(s)
    out = {}
    for f, b in burst_of.items():
        img = lit[b].copy()
        for s in by_frame[f]:
            a = scene.animals[s["animal"]]
            coat = np.asarray(_COAT[cam.ground], np.float64) + a["tint"]
            if a["young"]:
                coat = coat * 0.7 + 70
            _draw_sprite(img, scene, s, coat, a["facing"])
        out[f] = img
    return out


def descriptors(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """The product's appearance and animal descriptors of every detection's crop, (N, D) and (N, D2) float32."""
    pictures = frames(scene)
    w, h = scene.camera.size_px
    app, ani = [], []
    for f, box in zip(scene.frame_ids.tolist(), scene.boxes, strict=True):
        x1, y1, x2, y2 = _px(box, (w, h))
        x1, y1 = min(max(0, x1), w - 2), min(max(0, y1), h - 2)
        crop = pictures[f][y1:max(y2, y1 + 2), x1:max(x2, x1 + 2)]
        app.append(appearance_descriptor(crop))
        ani.append(animal_descriptor(crop))
    return np.asarray(app, np.float32), np.asarray(ani, np.float32)
