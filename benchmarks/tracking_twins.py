"""The twins of issue 84's split boxes: camera-trap bursts of two animals beside each other that must stay two.

A detector that boxes one animal as two boxes side by side (tests/fixtures/detector_mistakes.py `split_share`)
gives the tracker a second box that keeps beside the animal and moves with it. Two real animals can do that too:
- `side_by_side`: one to three pairs of alike animals (one species, one size) walking side by side at one pace,
  a little apart (beside each other along the way or one behind the other), or standing so;
- `mother_young`: a mother with one or two young: smaller (0.45-0.7 of her sides), close beside her, moving with
  her, of her look.
Both are seen in nearly every frame (the scene's own misses only), unlike a second box that comes and goes.
Written from the issue's text, not from the tracker. Every scene is deterministic for its seed.
"""

from __future__ import annotations

import numpy as np

from tests.fixtures.tracking_scenes import BURST_LOOKS, Look, Sequence, coat_texture, observe, random_look

TWIN_KINDS = ["side-by-side", "mother-young"]


def _alike(rng: np.random.Generator, base: Look) -> np.ndarray:
    return coat_texture(Look(**{**base.__dict__, "val": float(np.clip(base.val + rng.normal(0, 12), 60, 240))}))


def _walk(rng: np.random.Generator, seq: Sequence, groups: list[list[tuple[float, float, float, float]]],
          velocity: list[tuple[float, float]], coats: dict[int, np.ndarray], frames: int) -> None:
    """Each group's animals (offset x, offset y from the group's start, w, h) move with the group's velocity."""
    for f in range(frames):
        light = float(np.clip(1 + rng.normal(0, 0.05), 0.8, 1.2))
        visible, a = {}, 0
        for group, (vx, vy) in zip(groups, velocity, strict=True):
            for cx0, cy0, w, h in group:
                cx = cx0 + vx * f + rng.normal(0, 0.004)
                cy = cy0 + vy * f + rng.normal(0, 0.004)
                box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
                clipped = np.clip(box, 0, 1)
                if (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) >= 0.4 * w * h:
                    visible[a] = clipped
                a += 1
        observe(rng, seq, f, float(f), visible, coats, light, p_miss=0.08, fp_rate=0.05, palette=BURST_LOOKS)
    seq.n_animals = len(set(seq.gt_id))


def _start(rng: np.random.Generator, pace: float) -> tuple[float, float, tuple[float, float]]:
    direction = 1 if rng.random() < 0.5 else -1
    speed = 0.0 if rng.random() < 0.25 else direction * pace
    cx = float(rng.uniform(0.15, 0.5) if direction > 0 else rng.uniform(0.5, 0.85)) if speed else rng.uniform(0.2, 0.8)
    return cx, float(rng.uniform(0.3, 0.7)), (speed, float(rng.normal(0, 0.003)))


def side_by_side(seed: int) -> Sequence:
    """One to three pairs of alike animals walking (or standing) side by side at one pace, 10-20 frames."""
    rng = np.random.default_rng(seed)
    frames = int(rng.integers(10, 21))
    groups, velocity, coats = [], [], {}
    for _ in range(int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2]))):
        base = random_look(rng, BURST_LOOKS)
        cx, cy, v = _start(rng, float(rng.uniform(0.02, 0.06)))
        w = float(rng.uniform(0.08, 0.2))
        h = w * float(rng.uniform(0.8, 1.1)) * 16 / 9 * 0.6
        w2, h2 = w * float(rng.uniform(0.85, 1.0)), h * float(rng.uniform(0.85, 1.0))
        gap = float(rng.uniform(-0.1, 0.3))  # box sides apart (negative: overlapping a little)
        if rng.random() < 0.5:  # along the way, one beside the other
            pair = [(cx, cy, w, h), (cx + (w + w2) / 2 + gap * w, cy + rng.normal(0, 0.1) * h, w2, h2)]
        else:  # one behind the other
            pair = [(cx, cy, w, h), (cx + rng.normal(0, 0.1) * w, cy + (h + h2) / 2 + gap * h, w2, h2)]
        for cx_, cy_, _, _ in pair:
            coats[len(coats)] = _alike(rng, base)
        groups.append(pair)
        velocity.append(v)
    seq = Sequence(name=f"side-by-side-{seed}", kind="side-by-side", n_animals=0)
    _walk(rng, seq, groups, velocity, coats, frames)
    return seq


def mother_young(seed: int) -> Sequence:
    """A mother with one or two young (0.45-0.7 of her sides) close beside her, moving with her, 10-20 frames."""
    rng = np.random.default_rng(seed)
    frames = int(rng.integers(10, 21))
    base = random_look(rng, BURST_LOOKS)
    cx, cy, v = _start(rng, float(rng.uniform(0.02, 0.05)))
    w = float(rng.uniform(0.12, 0.28))
    h = w * float(rng.uniform(0.8, 1.1)) * 16 / 9 * 0.6
    group = [(cx, cy, w, h)]
    for k in range(int(rng.choice([1, 2], p=[0.6, 0.4]))):
        s = float(rng.uniform(0.45, 0.7))
        gap = float(rng.uniform(-0.1, 0.3))
        side = -1 if k % 2 else 1
        group.append((cx + side * ((w + s * w) / 2 + gap * w), cy + (1 - s) * h / 2 + rng.normal(0, 0.05) * h,
                      s * w, s * h))
    coats = {a: _alike(rng, base) for a in range(len(group))}
    seq = Sequence(name=f"mother-young-{seed}", kind="mother-young", n_animals=0)
    _walk(rng, seq, [group], [v], coats, frames)
    return seq


def twin_scenes(seed: int, bursts: int = 20) -> list[Sequence]:
    """`bursts` bursts of each twin kind, from `seed`."""
    out = []
    for i in range(bursts):
        out.append(side_by_side(seed * 10_000 + 8_000 + i))
        out.append(mother_young(seed * 10_000 + 9_000 + i))
    return [s for s in out if s.n_animals > 0]
