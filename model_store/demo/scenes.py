"""Deterministic renderer of camera-trap-like scenes with animal, person and vehicle silhouettes."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

LABELS = ("animal", "person", "vehicle")
ANIMAL, PERSON, VEHICLE = 0, 1, 2

# Objects span ~4%..50% of the shorter image side; sizes are log-uniform so small ones are common.
MIN_SIZE_FRAC, MAX_SIZE_FRAC = 0.04, 0.5
# A new object may overlap existing ones only a little, so every labelled object stays visible.
MAX_OVERLAP = 0.3
# The demo's sample scenes: a seed whose eight scenes hold animals of all four demo kinds (chosen for that).
SAMPLES_SEED = 2061

Colour = tuple[int, int, int]


def _colour(rng: np.random.Generator, night: bool, bg_luma: float) -> Colour:
    """Pick an object colour that differs in brightness from the local background."""
    for _ in range(8):
        c = rng.integers(0, 256, 3)
        if night:
            c[:] = c[0]
        if abs(float(c.mean()) - bg_luma) > 40:
            break
    return int(c[0]), int(c[1]), int(c[2])


def _shade(c: Colour, f: float) -> Colour:
    """Return a darker (f < 1) or lighter (f > 1) variant of a colour, for secondary parts."""
    r, g, b = (int(np.clip(v * f, 0, 255)) for v in c)
    return r, g, b


def _background(rng: np.random.Generator, w: int, h: int, night: bool) -> np.ndarray:
    """Render a textured background: gradient, blotches, grass strokes or flat colour, plus noise."""
    kind = int(rng.integers(0, 4))
    base = rng.integers(0, 256, (2, 3)).astype(np.float32)
    if kind == 0:  # vertical or horizontal two-colour gradient (sky/ground feel)
        vertical = rng.random() < 0.7
        t = np.linspace(0.0, 1.0, h if vertical else w, dtype=np.float32)[:, None]
        ramp = base[0] + t * (base[1] - base[0])
        img = np.broadcast_to(ramp[:, None, :] if vertical else ramp[None], (h, w, 3))
    elif kind == 1:  # low-frequency blotches: a tiny random image upscaled with smooth interpolation
        small = rng.integers(0, 256, (int(rng.integers(2, 7)), int(rng.integers(2, 7)), 3)).astype(np.float32)
        img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    else:  # flat colour (kind 2) or grass (kind 3, strokes drawn below)
        img = np.broadcast_to(base[0], (h, w, 3))
    img = np.ascontiguousarray(img, dtype=np.float32)
    if kind == 3:
        # Short, mostly vertical strokes give the grass/undergrowth texture detectors must ignore.
        n = int(w * h / 400 * rng.uniform(0.3, 1.0))
        x = rng.integers(0, w, n)
        y = rng.integers(0, h, n)
        length = rng.uniform(0.01, 0.05, n) * h
        angle = rng.normal(np.pi / 2, 0.35, n)
        tint = base[1] + rng.normal(0, 25, (n, 3))
        for i in range(n):
            x2 = int(x[i] + length[i] * np.cos(angle[i]))
            y2 = int(y[i] - length[i] * np.sin(angle[i]))
            cv2.line(img, (int(x[i]), int(y[i])), (x2, y2), tint[i].tolist(), 1, cv2.LINE_AA)
    # Sensor noise at a random strength; uniform uint8 noise is ~5x cheaper to draw than Gaussian.
    noise = rng.integers(0, 256, (h, w, 1 if night else 3), dtype=np.uint8).astype(np.float32)
    img += (noise - 127.5) * (rng.uniform(2, 14) / 73.9)
    if night:  # IR night shot: greyscale, dark, with vignetting
        g = img.mean(axis=2, keepdims=True) * rng.uniform(0.2, 0.5)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r2 = ((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2
        img = np.repeat(g * (1.0 - 1.2 * r2[..., None]), 3, axis=2)
    return img


def _draw_distractor(img: np.ndarray, rng: np.random.Generator, side: int, night: bool) -> None:
    """Draw an unlabelled rock or bush blob so that 'any blob' is not a valid detection rule."""
    h, w = img.shape[:2]
    r = side * rng.uniform(0.02, 0.12)
    c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
    axes = (max(2, int(r * rng.uniform(0.8, 1.6))), max(2, int(r * rng.uniform(0.5, 1.0))))
    colour = _colour(rng, night, float(img[c[1], c[0]].mean()))
    cv2.ellipse(img, c, axes, float(rng.uniform(-20, 20)), 0, 360, colour, -1, cv2.LINE_AA)


def _pt(x: float, y: float) -> tuple[int, int]:
    """Integer pixel point for cv2 drawing calls."""
    return int(x), int(y)


@dataclass(frozen=True)
class AnimalShape:
    """Proportion ranges of a quadruped (fractions of its box height) and its tail (dx of w, dy of body, width)."""

    legs: tuple[float, float] = (0.3, 0.45)
    head: tuple[float, float] = (0.16, 0.24)
    body: tuple[float, float] = (0.7, 0.95)
    lift: tuple[float, float] = (-0.2, 0.5)  # head centre above the body's top, in head radii
    tail: tuple[float, float, float] = (0.1, 0.3, 0.5)


# The demo species: kinds of `animal` that differ in what is drawn (legs, head carriage, tail, antlers,
# ears), so a classifier has a real task. `None` is the generic animal the detector was trained on.
ANIMAL_SHAPES: dict[str | None, AnimalShape] = {
    None: AnimalShape(),
    "roe_deer": AnimalShape(legs=(0.42, 0.45), head=(0.14, 0.17), body=(0.65, 0.75), lift=(1.0, 1.5),
                            tail=(0.03, -0.1, 0.6)),
    "wild_boar": AnimalShape(legs=(0.26, 0.31), head=(0.22, 0.26), body=(0.9, 0.97), lift=(-1.1, -0.8),
                             tail=(0.06, 0.45, 0.3)),
    "red_fox": AnimalShape(legs=(0.3, 0.34), head=(0.15, 0.18), body=(0.65, 0.75), lift=(0.1, 0.4),
                           tail=(0.3, 0.05, 2.2)),
    "grey_wolf": AnimalShape(legs=(0.4, 0.44), head=(0.18, 0.21), body=(0.75, 0.85), lift=(0.0, 0.3),
                             tail=(0.14, 0.6, 1.0)),
}
KINDS = tuple(k for k in ANIMAL_SHAPES if k is not None)


def _animal(
    canvas: np.ndarray, x: float, y: float, w: float, h: float, c: Colour, rng: np.random.Generator,
    kind: str | None = None,
) -> None:
    """Quadruped: horizontal body ellipse, head circle on one end, four legs, a tail (and a kind's extras).

    Eight parameters: a drawing primitive's box (x, y, w, h), colour and random source, as plain values."""
    s = ANIMAL_SHAPES[kind]
    face = 1 if rng.random() < 0.5 else -1
    leg_h = h * rng.uniform(*s.legs)
    head_r = h * rng.uniform(*s.head)
    body_w = w - 2.4 * head_r
    body_h = (h - leg_h) * rng.uniform(*s.body)
    bx = x + w / 2 - face * head_r
    by = y + h - leg_h - body_h / 2
    t = max(1, int(round(w * 0.05)))
    aa = cv2.LINE_AA
    for dx in (-0.38, -0.22, 0.22, 0.38):  # legs first, so the body covers their tops
        lx = bx + dx * body_w
        cv2.line(canvas, _pt(lx, by), _pt(lx + face * rng.uniform(-1, 1) * t, y + h - 1), c, t, aa)
    tail = (bx - face * body_w / 2, by - body_h * 0.2)
    tail_end = (tail[0] - face * w * s.tail[0], by + body_h * s.tail[1])
    cv2.line(canvas, _pt(*tail), _pt(*tail_end), c, max(1, int(t * s.tail[2])), aa)
    cv2.ellipse(canvas, _pt(bx, by), _pt(body_w / 2, body_h / 2), 0, 0, 360, c, -1, aa)
    hx = bx + face * (body_w / 2 + head_r * 0.6)
    hy = by - body_h / 2 - head_r * rng.uniform(*s.lift)
    cv2.line(canvas, _pt(bx + face * body_w * 0.35, by), _pt(hx, hy), c, max(1, int(head_r)), aa)  # neck
    cv2.circle(canvas, _pt(hx, hy), max(1, int(head_r)), c, -1, aa)
    if kind in ("red_fox", "grey_wolf"):  # pointed ears
        for ex in (-0.5, 0.4):
            ear = np.array([_pt(hx + (ex - 0.35) * head_r, hy - 0.6 * head_r), _pt(hx + ex * head_r, hy - 1.9 * head_r),
                            _pt(hx + (ex + 0.35) * head_r, hy - 0.6 * head_r)], np.int32)
            cv2.fillConvexPoly(canvas, ear, c, aa)
    if kind == "red_fox":  # the bushy tail's pale tip
        cv2.circle(canvas, _pt(*tail_end), max(1, int(t * s.tail[2] / 2)), _shade(c, 1.6) if sum(c) < 300
                   else _shade(c, 0.5), -1, aa)
    elif kind == "roe_deer":  # forked antlers
        for ex in (-0.3, 0.3):
            base, tip = _pt(hx + ex * head_r, hy - head_r), _pt(hx + ex * 2.2 * head_r, hy - 2.6 * head_r)
            cv2.line(canvas, base, tip, c, max(1, t // 2), aa)
            mid = _pt(hx + ex * 1.3 * head_r, hy - 1.8 * head_r)
            cv2.line(canvas, mid, _pt(hx + face * 0.9 * head_r + ex * head_r, hy - 2.4 * head_r), c, max(1, t // 2), aa)
    elif kind == "wild_boar":  # a long snout
        cv2.ellipse(canvas, _pt(hx + face * head_r, hy + 0.3 * head_r), _pt(head_r * 1.1, head_r * 0.55), 0, 0, 360,
                    c, -1, aa)


def _person(
    canvas: np.ndarray, x: float, y: float, w: float, h: float, c: Colour, rng: np.random.Generator
) -> None:
    """Upright figure: head circle, torso rectangle, two legs and two arms.

    Seven parameters: a drawing primitive's box (x, y, w, h), colour and random source, as plain values."""
    cx = x + w / 2
    head_r = min(w * 0.3, h * 0.09)
    torso_w, top, bot = w * rng.uniform(0.4, 0.55), y + 2 * head_r, y + h * rng.uniform(0.5, 0.58)
    t = max(1, int(round(torso_w * 0.4)))
    aa = cv2.LINE_AA
    cv2.circle(canvas, _pt(cx, y + head_r), max(1, int(head_r)), c, -1, aa)
    cv2.rectangle(canvas, _pt(cx - torso_w / 2, top), _pt(cx + torso_w / 2, bot), c, -1)
    for sx in (-1, 1):
        foot = _pt(cx + sx * w * rng.uniform(0.1, 0.35), y + h - 1)
        cv2.line(canvas, _pt(cx + sx * torso_w * 0.25, bot), foot, c, t, aa)
        hand = _pt(cx + sx * (w / 2 - t / 2), top + (bot - top) * rng.uniform(0.5, 1.1))
        cv2.line(canvas, _pt(cx + sx * torso_w / 2, top + t), hand, _shade(c, 0.85), max(1, t // 2 + 1))


def _vehicle(
    canvas: np.ndarray, x: float, y: float, w: float, h: float, c: Colour, rng: np.random.Generator
) -> None:
    """Wide body rectangle with a cabin on top, windows and two dark wheels.

    Seven parameters: a drawing primitive's box (x, y, w, h), colour and random source, as plain values."""
    wheel_r = h * rng.uniform(0.2, 0.27)
    body_top, body_bot = y + h * rng.uniform(0.35, 0.5), y + h - wheel_r
    cab_l, cab_r = x + w * rng.uniform(0.1, 0.35), x + w * rng.uniform(0.6, 0.85)
    cv2.rectangle(canvas, (int(cab_l), int(y)), (int(cab_r), int(body_top) + 1), c, -1)
    cv2.rectangle(canvas, (int(x), int(body_top)), (int(x + w - 1), int(body_bot)), c, -1)
    m = max(1, int(h * 0.06))
    win = _shade(c, 0.45) if sum(c) > 240 else _shade(c, 2.2)
    if cab_r - cab_l > 4 * m and body_top - y > 3 * m:
        cv2.rectangle(canvas, (int(cab_l) + m, int(y) + m), (int(cab_r) - m, int(body_top) - m), win, -1)
    tyre = (25, 25, 25) if sum(c) > 200 else (200, 200, 200)
    for fx in (0.22, 0.78):
        centre = (int(x + w * fx), int(y + h - wheel_r))
        cv2.circle(canvas, centre, max(1, int(wheel_r)), tyre, -1, cv2.LINE_AA)
        cv2.circle(canvas, centre, max(1, int(wheel_r * 0.4)), (128, 128, 128), -1, cv2.LINE_AA)


# Per class: drawing function and (width/height aspect range) of its bounding box.
_SHAPES: dict[int, tuple[Callable[..., None], tuple[float, float]]] = {
    ANIMAL: (_animal, (1.2, 1.9)),
    PERSON: (_person, (0.3, 0.45)),
    VEHICLE: (_vehicle, (1.6, 2.6)),
}


def _iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU and 'fraction of the other box covered' between one box and many."""
    ix = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    iy = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = ix * iy
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.maximum(inter / area, inter / ((box[2] - box[0]) * (box[3] - box[1])))


def render_scene(
    rng: np.random.Generator, width: int, height: int, max_objects: int = 4
) -> tuple[np.ndarray, np.ndarray]:
    """Render one RGB uint8 scene and its boxes float32 (K, 5) = [x1, y1, x2, y2, class_id] in pixels."""
    img, boxes, _ = render_scene_with_kinds(rng, width, height, max_objects, animal_kinds=False)
    return img, boxes


def render_scene_with_kinds(
    rng: np.random.Generator, width: int, height: int, max_objects: int = 4, animal_kinds: bool = True
) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
    """`render_scene` plus each box's animal kind (None for persons, vehicles and generic animals).

    The kind follows from each object's private shape seed, so a scene with kinds has the same
    layout, backgrounds and colours as the one without (the scene's own random stream is unchanged).
    """
    night = rng.random() < 0.25
    img = _background(rng, width, height, night)
    side = min(width, height)
    for _ in range(int(rng.integers(0, 4))):
        _draw_distractor(img, rng, side, night)
    n = int(rng.integers(0, max_objects + 1))
    boxes: list[list[float]] = []
    kinds: list[str | None] = []
    for _ in range(n):
        cls = int(rng.integers(0, len(LABELS)))
        draw, (lo, hi) = _SHAPES[cls]
        aspect = rng.uniform(lo, hi)
        size = side * np.exp(rng.uniform(np.log(MIN_SIZE_FRAC), np.log(MAX_SIZE_FRAC)))
        # `size` is the longer box side, so tall persons and wide vehicles share one size scale.
        w, h = (size, size / aspect) if aspect >= 1 else (size * aspect, size)
        w, h = max(w, 4.0), max(h, 6.0)
        if w >= width or h >= height:
            continue
        for _attempt in range(10):
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            cand = np.array([x, y, x + w, y + h], np.float32)
            if not boxes or _iou_one(cand, np.array(boxes, np.float32)[:, :4]).max() < MAX_OVERLAP:
                break
        else:
            continue
        # Draw inside a padded region of interest (limbs/tails may poke out of the nominal box), first on
        # a private mask so the label is the tight box of the pixels actually drawn.
        pad = 0.25 * max(w, h) + 3
        x0, y0 = int(max(0, x - pad)), int(max(0, y - pad))
        x1, y1 = int(min(width, x + w + pad)), int(min(height, y + h + pad))
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        shape_seed = int(rng.integers(2**31))
        kind = KINDS[shape_seed % len(KINDS)] if animal_kinds and cls == ANIMAL else None
        if kind is not None:
            draw = functools.partial(_animal, kind=kind)
        draw(mask, x - x0, y - y0, w, h, (255, 255, 255), np.random.default_rng(shape_seed))
        bx, by, bw, bh = cv2.boundingRect(mask)
        if bw < 3 or bh < 3:
            continue
        bg_luma = float(img[int(y + h / 2), int(x + w / 2)].mean())
        colour = _colour(rng, night, bg_luma)
        roi = img[y0:y1, x0:x1]
        layer = roi.copy()
        draw(layer, x - x0, y - y0, w, h, colour, np.random.default_rng(shape_seed))
        sel = mask > 0
        roi[sel] = layer[sel]
        bx, by = bx + x0, by + y0
        boxes.append([bx, by, bx + bw, by + bh, cls])
        kinds.append(kind)
    if rng.random() < 0.3:  # mild defocus/motion softness, as real trap cameras produce
        img = cv2.GaussianBlur(img, (3, 3), 0)
    out = np.clip(img, 0, 255).astype(np.uint8)
    return out, np.array(boxes, np.float32).reshape(-1, 5), kinds


def render_dataset(seed: int, n: int, width: int, height: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Render `n` scenes of one size from one seed (same seed, same scenes)."""
    rng = np.random.default_rng(seed)
    return [render_scene(rng, width, height) for _ in range(n)]


def write_samples(
    out_dir: str | Path, n: int = 8, seed: int = SAMPLES_SEED, size: tuple[int, int] = (960, 540)
) -> Path:
    """Write `n` JPEG sample scenes (animals of the demo kinds) and `ground_truth.json`; return the JSON path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth: dict[str, list[dict[str, object]]] = {}
    rng = np.random.default_rng(seed)
    for i in range(n):
        img, boxes, kinds = render_scene_with_kinds(rng, size[0], size[1])
        name = f"scene_{i:03d}.jpg"
        cv2.imwrite(str(out / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        truth[name] = [
            {"label": LABELS[int(b[4])], "class_id": int(b[4]), "box": [float(v) for v in b[:4]],
             **({"kind": kind} if kind else {})}
            for b, kind in zip(boxes, kinds, strict=True)
        ]
    path = out / "ground_truth.json"
    path.write_text(json.dumps({"labels": list(LABELS), "kinds": list(KINDS), "images": truth}, indent=2) + "\n")
    return path
