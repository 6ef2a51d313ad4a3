"""A deterministic synthetic identity set: one species whose individuals each have a unique coat.

Each individual's flank is a coat pattern (wavy forking stripes, spots, or blotches, from its own
seed) on a body-shaped silhouette. A sighting is that flank seen again: another pose (a random affine
map: rotation, shear, stretch), scale (the snip's size), light (gain, gamma, colour cast), blur, sensor
noise and partial occlusion (a branch or a grass band across it), on a background. The same seed always
gives the same pixels, so benchmark figures and tests can be compared across runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FLANK_W, FLANK_H = 320, 200
PATTERNS = ("stripes", "spots", "blotches")


@dataclass(frozen=True)
class Sighting:
    """One snip of one individual (`individual` is the truth; `view` counts its sightings from 0)."""

    individual: int
    view: int
    snip: np.ndarray  # RGB uint8


def _smooth_field(rng: np.random.Generator, w: int, h: int, cells: int) -> np.ndarray:
    small = rng.standard_normal((cells, max(2, cells * h // w))).T.astype(np.float32)
    field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return (field - field.mean()) / max(float(field.std()), 1e-6)


def coat(individual: int, seed: int = 0, pattern: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(flank RGB uint8, body mask uint8) of one individual; its pattern kind cycles through PATTERNS."""
    rng = np.random.default_rng([seed, individual, 7])
    pattern = pattern or PATTERNS[individual % len(PATTERNS)]
    w, h = FLANK_W, FLANK_H
    base = np.array([150, 110, 60], np.float32) + rng.uniform(-25, 25, 3)  # one species: a tawny base
    dark = base * 0.18
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if pattern == "stripes":
        warp = 3.0 * _smooth_field(rng, w, h, 5) + 1.2 * _smooth_field(rng, w, h, 11)
        freq = rng.uniform(0.13, 0.19)
        ink = np.sin(freq * xx + warp + 0.02 * yy * rng.uniform(-1, 1)) > rng.uniform(0.1, 0.4)
    elif pattern == "spots":
        ink = np.zeros((h, w), np.uint8)
        for _ in range(int(rng.integers(45, 75))):
            c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            axes = (int(rng.integers(4, 13)), int(rng.integers(4, 11)))
            cv2.ellipse(ink, c, axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        ink = ink > 0
    else:  # blotches: irregular patches with pale lines between them (giraffe-like)
        field = _smooth_field(rng, w, h, 13) + 0.4 * _smooth_field(rng, w, h, 25)
        ink = field > rng.uniform(-0.2, 0.3)
    img = np.where(ink[..., None], dark, base).astype(np.float32)
    img += 10 * _smooth_field(rng, w, h, 4)[..., None]  # uneven fur shading
    mask = np.zeros((h, w), np.uint8)
    cv2.ellipse(mask, (w // 2, h // 2), (w // 2 - 6, h // 2 - 8), 0, 0, 360, 255, -1)
    return np.clip(img, 0, 255).astype(np.uint8), mask


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    colour = np.array([70, 95, 55], np.float32) + rng.uniform(-30, 30, 3)
    img = colour + 18 * _smooth_field(rng, w, h, 6)[..., None]
    return np.clip(img, 0, 255).astype(np.float32)


def view(flank: np.ndarray, mask: np.ndarray, rng: np.random.Generator, hard: float = 1.0) -> np.ndarray:
    """The flank seen once more: pose, scale, light, blur, noise and occlusion, cut to its box (RGB uint8)."""
    h, w = mask.shape
    angle = rng.uniform(-15, 15) * hard
    shear = rng.uniform(-0.15, 0.15) * hard
    sx, sy = rng.uniform(1 - 0.15 * hard, 1 + 0.15 * hard, 2)
    a = cv2.getRotationMatrix2D((0, 0), angle, 1.0)[:, :2] @ np.array([[sx, shear], [0, sy]])
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float32) @ a.T
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    pad = 0.08 * (hi - lo)
    out_w, out_h = (hi - lo + 2 * pad).astype(int)
    m = np.hstack([a, (pad - lo)[:, None]]).astype(np.float32)
    warped = cv2.warpAffine(flank, m, (int(out_w), int(out_h)), flags=cv2.INTER_LINEAR)
    wmask = cv2.warpAffine(mask, m, (int(out_w), int(out_h)), flags=cv2.INTER_LINEAR).astype(np.float32)[..., None]
    img = _background(rng, int(out_w), int(out_h)) * (1 - wmask / 255) + warped.astype(np.float32) * wmask / 255
    # light: gain, gamma and a colour cast (dawn, flash, shade)
    img = 255 * (np.clip(img * rng.uniform(1 - 0.4 * hard, 1 + 0.3 * hard), 0, 255) / 255) \
        ** rng.uniform(1 - 0.3 * hard, 1 + 0.3 * hard)
    img *= 1 + rng.uniform(-0.08, 0.08, 3) * hard
    if rng.random() < 0.5 * hard:  # occlusion: a branch or a grass band across up to a quarter of the body
        band = int(rng.uniform(0.08, 0.25) * out_h)
        y0 = int(rng.integers(0, max(1, int(out_h) - band)))
        img[y0:y0 + band] = _background(rng, int(out_w), band) * 0.8
    # scale: the snip's longer side, as a camera trap sees animals far and near
    longer = int(rng.uniform(110, 260))
    s = longer / max(out_w, out_h)
    img = cv2.resize(np.clip(img, 0, 255).astype(np.uint8), (max(8, int(out_w * s)), max(8, int(out_h * s))),
                     interpolation=cv2.INTER_AREA)
    sigma = rng.uniform(0, 1.2) * hard
    if sigma > 0.3:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    noisy = img.astype(np.float32) + rng.normal(0, rng.uniform(0, 8) * hard, img.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def sightings(individuals: range | list[int], views: int, seed: int = 0, first_view: int = 0,
              hard: float = 1.0) -> list[Sighting]:
    """`views` sightings of each individual (views numbered from `first_view`, each with its own seed)."""
    out = []
    for ind in individuals:
        flank, mask = coat(ind, seed)
        for v in range(first_view, first_view + views):
            out.append(Sighting(ind, v, view(flank, mask, np.random.default_rng([seed, ind, v, 11]), hard)))
    return out


def protocol(known: int, unseen: int, db_views: int = 2, query_views: int = 2, seed: int = 0
             ) -> tuple[list[Sighting], list[Sighting], list[Sighting]]:
    """The query/database protocol: (database of known individuals, queries of known ones, queries of
    unseen ones). Individuals 0..known-1 are known; the next `unseen` are never in the database."""
    database = sightings(range(known), db_views, seed)
    known_q = sightings(range(known), query_views, seed, first_view=db_views)
    unseen_q = sightings(range(known, known + unseen), query_views, seed)
    return database, known_q, unseen_q
