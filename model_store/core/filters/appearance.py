"""Appearance for the tracker: a snip's colour/texture descriptor, and how well such vectors tell one camera's
animals apart.

`appearance_descriptor` is the tracker's default appearance: a colour (hue-saturation) and texture (gradient
orientation) histogram of the snip, cheap enough for 100,000 snips. `animal_descriptor` reads the animal rather than
the box, for stitching (issue 58): its own pixels (the model's mask, else what stands out from a plain border), at
the crop's own resolution, with their tone as well as their colour, and the animal's extent and shape in the box.
`appearance_separation` measures, on a camera's own detections, whether the vectors (these or an identifier's)
separate two animals of one frame better than one animal from itself in the next frame: on a sheet of one species
they do not, and the tracker then lets them count for nothing (model_store/core/filters/tracking.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from model_store.core.filters.repeat import pairwise_iou

# Hue x saturation bins of the colour part; orientation bins of the texture part of the descriptor.
HUE_BINS, SAT_BINS, ORIENT_BINS = 12, 4, 12
DESCRIPTOR_LENGTH = HUE_BINS * SAT_BINS + ORIENT_BINS
_SNIP_SIDE = 32  # snips are compared at this size: enough for a histogram, cheap for 100,000 snips
_SEPARATION_FRAMES = 200  # frame pairs sampled to measure how well the appearance separates a camera's animals
_SEPARATION_MIN_PAIRS = 20  # fewer same/different pairs than this: too few to measure, the config is trusted


def appearance_descriptor(snip_rgb: np.ndarray) -> np.ndarray:
    """A colour/texture descriptor of one snip (H, W, 3 uint8 RGB): float32, L2-normalised, fixed length."""
    snip = np.asarray(snip_rgb)
    if snip.ndim != 3 or snip.shape[2] != 3 or snip.shape[0] < 1 or snip.shape[1] < 1:
        raise ValueError(f"a snip is (H, W, 3) RGB, got shape {snip.shape}")
    small = cv2.resize(np.ascontiguousarray(snip, dtype=np.uint8), (_SNIP_SIDE, _SNIP_SIDE),
                       interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    # Hue x saturation only: brightness changes with the light (flash, dusk, lamp) while the colour does not.
    colour = cv2.calcHist([hsv], [0, 1], None, [HUE_BINS, SAT_BINS], [0, 180, 0, 256]).ravel()
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    magnitude, angle = cv2.cartToPolar(gx, gy)
    # Orientation modulo 180 degrees, weighted by gradient strength: stripes vs spots vs plain.
    bins = (np.mod(angle.ravel(), np.pi) / np.pi * ORIENT_BINS).astype(np.int64) % ORIENT_BINS
    texture = np.bincount(bins, weights=magnitude.ravel(), minlength=ORIENT_BINS)
    # Square roots (Hellinger) so that one dominant bin does not swamp the rest; each part has equal say.
    parts = [np.sqrt(colour / max(colour.sum(), 1e-9)), np.sqrt(texture / max(texture.sum(), 1e-9))]
    vec = np.concatenate([p / max(np.linalg.norm(p), 1e-9) for p in parts]).astype(np.float32)
    return vec / max(float(np.linalg.norm(vec)), 1e-9)


# The animal descriptor's parts: hue x saturation and tone (value) of the animal's pixels, gradient orientation,
# and its extent (share of the box) and elongation, each a soft one-hot over bins so that it compares by cosine.
TONE_BINS, EXTENT_BINS, ELONGATION_BINS = 16, 10, 6
ANIMAL_DESCRIPTOR_LENGTH = HUE_BINS * SAT_BINS + TONE_BINS + ORIENT_BINS + EXTENT_BINS + ELONGATION_BINS
_BORDER_SPREAD = 14.0  # a border whose colours spread more than this (RGB units) is the animal's coat, not a sheet
_FOREGROUND_DISTANCE = 30.0  # a pixel this far (RGB) from the border's colour stands out as the animal
_MIN_EXTENT = 0.03  # fewer standing-out pixels than this share: the animal fills the crop
ANIMAL_SIDE = 96  # animal_descriptor reads a crop at its own resolution up to this many pixels a side


def animal_mask(snip_rgb: np.ndarray) -> np.ndarray:
    """The animal's pixels of a crop (H, W) bool: those that stand out from a plain border (a sheet, a wall), or
    every pixel when the border is not plain (the animal fills the crop) or nothing stands out."""
    rgb = np.asarray(snip_rgb, dtype=np.float32)
    h, w = rgb.shape[:2]
    whole = np.ones((h, w), dtype=bool)
    if h < 4 or w < 4:
        return whole
    ring = max(1, min(h, w) // 10)
    border = np.concatenate([rgb[:ring].reshape(-1, 3), rgb[-ring:].reshape(-1, 3), rgb[:, :ring].reshape(-1, 3),
                             rgb[:, -ring:].reshape(-1, 3)])
    # The border's mean colour and spread (a median costs twice the whole descriptor; an animal that touches the
    # border raises the spread, and the crop is then read whole, as it should be)
    ground = border.mean(axis=0)
    spread = float(np.sqrt(((border - ground) ** 2).sum(axis=1)).mean())
    if spread > _BORDER_SPREAD:
        return whole
    fg = ((rgb - ground) ** 2).sum(axis=2) > max(_FOREGROUND_DISTANCE, 3 * spread) ** 2
    return fg if fg.mean() >= _MIN_EXTENT else whole


def _soft_bins(value: float, bins: int) -> np.ndarray:
    """A value in 0..1 as a soft one-hot over `bins` bins (linear between the two nearest centres)."""
    pos = float(np.clip(value, 0.0, 1.0)) * (bins - 1)
    out = np.zeros(bins)
    lo = int(np.floor(pos))
    out[lo] = 1.0 - (pos - lo)
    if lo + 1 < bins:
        out[lo + 1] = pos - lo
    return out


def animal_descriptor(snip_rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The animal in one crop (H, W, 3 uint8 RGB), at the crop's own resolution up to ANIMAL_SIDE pixels a side
    (a larger crop is shrunk to that): float32, L2-normalised, fixed length (ANIMAL_DESCRIPTOR_LENGTH). `mask`
    (H, W) bool: the model's mask of the animal, else `animal_mask`. Brightness counts here (unlike
    `appearance_descriptor`): two moths of one hue differ by their tone, and the stitcher calibrates what a
    distance means on the camera's own animals."""
    snip = np.ascontiguousarray(np.asarray(snip_rgb), dtype=np.uint8)
    if snip.ndim != 3 or snip.shape[2] != 3 or snip.shape[0] < 1 or snip.shape[1] < 1:
        raise ValueError(f"a snip is (H, W, 3) RGB, got shape {snip.shape}")
    fg = None if mask is None else np.asarray(mask, dtype=bool)
    if fg is not None and fg.shape != snip.shape[:2]:
        raise ValueError(f"the mask is {fg.shape}, the snip {snip.shape[:2]}")
    scale = ANIMAL_SIDE / max(snip.shape[:2])
    if scale < 1:  # the cost grows with the pixels; an insect's crop is mostly smaller than this already
        size = (max(1, round(snip.shape[1] * scale)), max(1, round(snip.shape[0] * scale)))
        snip = cv2.resize(snip, size, interpolation=cv2.INTER_AREA)
        if fg is not None:
            fg = cv2.resize(fg.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    if fg is None:
        fg = animal_mask(snip)
    if not fg.any():
        fg = np.ones(snip.shape[:2], dtype=bool)
    m8 = fg.astype(np.uint8)
    hsv = cv2.cvtColor(snip, cv2.COLOR_RGB2HSV)
    colour = cv2.calcHist([hsv], [0, 1], m8, [HUE_BINS, SAT_BINS], [0, 180, 0, 256]).ravel()
    tone = cv2.calcHist([hsv], [2], m8, [TONE_BINS], [0, 256]).ravel()
    grey = cv2.cvtColor(snip, cv2.COLOR_RGB2GRAY).astype(np.float32)
    magnitude, angle = cv2.cartToPolar(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    bins = (np.mod(angle.ravel(), np.pi) / np.pi * ORIENT_BINS).astype(np.int64) % ORIENT_BINS
    texture = np.bincount(bins, weights=(magnitude * m8).ravel(), minlength=ORIENT_BINS)
    # Extent: the share of the box the animal covers (a fixed-size box hides the animal's size; this does not).
    # Elongation: the ratio of its second moments' axes, in the box's own frame (wings spread vs folded).
    mo = cv2.moments(m8, binaryImage=True)
    h, w = fg.shape
    a, c, b = mo["mu20"] / max(w * w, 1), mo["mu02"] / max(h * h, 1), mo["mu11"] / max(w * h, 1)
    root = np.sqrt(max((a - c) ** 2 + 4 * b * b, 0.0))
    elongation = float(np.sqrt(max(a + c - root, 0.0) / max(a + c + root, 1e-12)))
    parts = [np.sqrt(colour / max(colour.sum(), 1e-9)), np.sqrt(tone / max(tone.sum(), 1e-9)),
             np.sqrt(texture / max(texture.sum(), 1e-9)), np.sqrt(_soft_bins(np.sqrt(fg.mean()), EXTENT_BINS)),
             np.sqrt(_soft_bins(elongation, ELONGATION_BINS))]
    vec = np.concatenate([p / max(np.linalg.norm(p), 1e-9) for p in parts]).astype(np.float32)
    return vec / max(float(np.linalg.norm(vec)), 1e-9)


def appearance_separation(app: np.ndarray, frame_rank: np.ndarray, boxes: np.ndarray) -> float:
    """How well the appearance vectors tell this camera's animals apart, 0 (not at all) .. 1 (always): 2 AUC - 1
    of the appearance distance between detections of one frame (surely two animals) against that of detections
    in consecutive frames whose boxes overlap at IoU >= 0.7 (almost surely one animal sitting or standing).
    Measured on up to _SEPARATION_FRAMES frame pairs; 1.0 when there are too few pairs to tell."""
    order = np.argsort(frame_rank, kind="stable")
    ranks = frame_rank[order]
    bounds = np.searchsorted(ranks, np.arange(int(ranks.max(initial=-1)) + 2))
    frames = np.flatnonzero(np.diff(bounds) > 0)
    if len(frames) > _SEPARATION_FRAMES:
        frames = frames[np.linspace(0, len(frames) - 1, _SEPARATION_FRAMES).astype(np.int64)]
    same, apart = [], []
    for f in frames:
        here = order[bounds[f]:bounds[f + 1]]
        if len(here) > 1:
            d = 1.0 - app[here] @ app[here].T
            apart.append(d[np.triu_indices(len(here), 1)])
        after = order[bounds[f + 1]:bounds[f + 2]] if f + 2 < len(bounds) else order[:0]
        if len(after):
            a, b = np.nonzero(pairwise_iou(boxes[here], boxes[after]) >= 0.7)
            same.append(1.0 - np.einsum("ij,ij->i", app[here[a]], app[after[b]]))
    same_d = np.concatenate(same) if same else np.zeros(0)
    apart_d = np.concatenate(apart) if apart else np.zeros(0)
    if len(same_d) < _SEPARATION_MIN_PAIRS or len(apart_d) < _SEPARATION_MIN_PAIRS:
        return 1.0
    # AUC by ranks (Mann-Whitney): the chance that two animals are further apart than one animal from itself.
    joint = np.concatenate([same_d, apart_d])
    # Tied distances share their mean rank: vectors that are all alike (a constant descriptor) separate nothing.
    ordered = np.sort(joint)
    rank = (np.searchsorted(ordered, joint, side="left") + np.searchsorted(ordered, joint, side="right") + 1) / 2
    auc = (rank[len(same_d):].sum() - len(apart_d) * (len(apart_d) + 1) / 2) / (len(same_d) * len(apart_d))
    return float(np.clip(2 * auc - 1, 0.0, 1.0))
