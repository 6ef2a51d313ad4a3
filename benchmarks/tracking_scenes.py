"""Synthetic detection sequences with known truth, for the tracking benchmark (issue 32) and its small test.

Two kinds of scene, each deterministic for a seed:
- a light-trap sheet photographed every 20 s for hours: insects arrive over the night, sit with a small jitter
  and an occasional walk, some fly off and come back (mostly about where they were, sometimes elsewhere),
  some land on or beside another, and leave;
- a camera-trap burst (10 frames, 1 s apart) with one to three animals, standing or walking, often crossing.

What a detector would report is simulated: box jitter, missed detections (more often when two overlap),
occasional false positives with low scores, score noise, and for every detection a snip rendered from its
animal's look (a coloured, textured patch; the light and the crop change from frame to frame), turned into
the tracker's real `appearance_descriptor`. The generator knows nothing of the tracker.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from model_store.core.filters.appearance import appearance_descriptor

SHEET_FRAME_S = 20.0
BURST_FRAME_S = 1.0
# Species looks as (hue 0..180 OpenCV, saturation 0..255): many moths are brown or grey, so many look alike.
SHEET_LOOKS = [(12, 120), (15, 60), (20, 150), (0, 20), (30, 170), (60, 110), (100, 40), (170, 90)]
BURST_LOOKS = [(12, 140), (15, 90), (0, 15), (20, 60)]  # deer, boar, badger, fox-ish


@dataclass
class Sequence:
    """One camera's detections with their truth: `truth` is the animal of each detection (-1: a false
    positive); gt_* are where every animal really was in every frame it was on view (detected or not)."""

    name: str
    kind: str
    n_animals: int
    times_s: list[float] = field(default_factory=list)
    frame_ids: list[int] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    truth: list[int] = field(default_factory=list)
    appearance: list[np.ndarray] = field(default_factory=list)
    gt_frame: list[int] = field(default_factory=list)
    gt_id: list[int] = field(default_factory=list)
    gt_box: list[list[float]] = field(default_factory=list)

    def arrays(self) -> dict[str, np.ndarray]:
        """The sequence as arrays (appearance (N, D) float32)."""
        dim = len(self.appearance[0]) if self.appearance else 0
        return {"times_s": np.asarray(self.times_s, dtype=np.float64),
                "frame_ids": np.asarray(self.frame_ids, dtype=np.int64),
                "boxes": np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4),
                "scores": np.asarray(self.scores, dtype=np.float64),
                "truth": np.asarray(self.truth, dtype=np.int64),
                "appearance": np.asarray(self.appearance, dtype=np.float32).reshape(-1, dim),
                "gt_frame": np.asarray(self.gt_frame, dtype=np.int64),
                "gt_id": np.asarray(self.gt_id, dtype=np.int64),
                "gt_box": np.asarray(self.gt_box, dtype=np.float64).reshape(-1, 4)}


@dataclass
class Look:
    """How one animal looks: a colour, a pattern and its scale and angle."""

    hue: float
    sat: float
    val: float
    pattern: int  # 0 plain, 1 stripes, 2 spots
    period: float
    angle: float


def random_look(rng: np.random.Generator, palette: list[tuple[int, int]]) -> Look:
    hue, sat = palette[rng.integers(len(palette))]
    return Look(hue=float((hue + rng.normal(0, 4)) % 180), sat=float(np.clip(sat + rng.normal(0, 25), 0, 255)),
                val=float(rng.uniform(90, 220)), pattern=int(rng.integers(3)), period=float(rng.uniform(4, 10)),
                angle=float(rng.uniform(0, np.pi)))


def coat_texture(look: Look, side: int = 64) -> np.ndarray:
    """The animal's coat as an HSV float image, rendered once; each frame's snip is a crop of it."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    u = xx * np.cos(look.angle) + yy * np.sin(look.angle)
    if look.pattern == 1:
        shade = 0.6 + 0.4 * (np.sin(2 * np.pi * u / look.period) > 0)
    elif look.pattern == 2:
        v = -xx * np.sin(look.angle) + yy * np.cos(look.angle)
        shade = 1.0 - 0.45 * ((np.sin(2 * np.pi * u / look.period) * np.sin(2 * np.pi * v / look.period)) > 0.5)
    else:
        shade = np.ones_like(u)
    return np.stack([np.full_like(u, look.hue), np.full_like(u, look.sat), look.val * shade], axis=2)


def _snip(rng: np.random.Generator, coat: np.ndarray, box: np.ndarray, light: float) -> np.ndarray:
    """The animal as the detector's crop shows it: a shifted crop of its coat in the box's shape, under this
    frame's light, with sensor noise."""
    aspect = float(np.clip((box[3] - box[1]) * 9 / max((box[2] - box[0]) * 16, 1e-6), 0.4, 2.5))
    h = int(np.clip(32 * np.sqrt(aspect), 12, 48))
    w = int(np.clip(32 / np.sqrt(aspect), 12, 48))
    y0, x0 = rng.integers(0, coat.shape[0] - h + 1), rng.integers(0, coat.shape[1] - w + 1)
    hsv = coat[y0:y0 + h, x0:x0 + w] * np.array([1, rng.uniform(0.85, 1.1), light], dtype=np.float32)
    hsv[..., 0] += rng.normal(0, 2)
    hsv += rng.normal(0, 6, hsv.shape).astype(np.float32) * np.array([0.3, 1, 1], dtype=np.float32)
    return cv2.cvtColor(np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8), cv2.COLOR_HSV2RGB)


def _iou_one(a: np.ndarray, others: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[2], others[:, 2]) - np.maximum(a[0], others[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], others[:, 3]) - np.maximum(a[1], others[:, 1]), 0, None)
    inter = ix * iy
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(others) - inter, 1e-12)


def observe(rng: np.random.Generator, seq: Sequence, frame: int, t: float, boxes: dict[int, np.ndarray],
             coats: dict[int, np.ndarray], light: float, p_miss: float, fp_rate: float, palette) -> None:
    """Record the truth of one frame and what the detector reports of it."""
    ids = list(boxes)
    stacked = np.array([boxes[i] for i in ids]).reshape(-1, 4)
    for k, animal in enumerate(ids):
        box = boxes[animal]
        seq.gt_frame.append(frame)
        seq.gt_id.append(animal)
        seq.gt_box.append(box.tolist())
        overlap = _iou_one(box, np.delete(stacked, k, axis=0)).max(initial=0.0)
        if rng.random() < (p_miss + (0.25 if overlap > 0.3 else 0.0)):
            continue
        w, h = box[2] - box[0], box[3] - box[1]
        noisy = np.clip(box + rng.normal(0, 0.04, 4) * np.array([w, h, w, h]), 0, 1)
        if noisy[2] - noisy[0] < 1e-3 or noisy[3] - noisy[1] < 1e-3:
            continue
        _emit(rng, seq, frame, t, noisy, float(np.clip(rng.normal(0.78, 0.12), 0.2, 0.99)), animal,
              _snip(rng, coats[animal], noisy, light))
    for _ in range(rng.poisson(fp_rate)):  # a leaf, a shadow, a reflection: low scores, random looks
        cx, cy, s = rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95), rng.uniform(0.02, 0.15)
        box = np.clip(np.array([cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2]), 0, 1)
        look = coat_texture(random_look(rng, palette))
        _emit(rng, seq, frame, t, box, float(rng.uniform(0.15, 0.55)), -1, _snip(rng, look, box, light))


def _emit(rng, seq: Sequence, frame: int, t: float, box: np.ndarray, score: float, animal: int,
          snip: np.ndarray) -> None:
    seq.times_s.append(t)
    seq.frame_ids.append(frame)
    seq.boxes.append(box.tolist())
    seq.scores.append(score)
    seq.truth.append(animal)
    seq.appearance.append(appearance_descriptor(snip))


def light_trap_sheet(seed: int, hours: float = 3.0, arrivals_per_hour: float = 40.0,
                     mean_stay_min: float = 25.0) -> Sequence:
    """A night on a light-trap sheet, a frame every 20 s (see the module docstring)."""
    rng = np.random.default_rng(seed)
    n_frames = int(hours * 3600 / SHEET_FRAME_S)
    n = int(rng.poisson(arrivals_per_hour * hours))
    arrive = np.sort(rng.integers(0, n_frames, n))
    stay = np.maximum(2, (rng.lognormal(np.log(mean_stay_min * 3), 0.9, n))).astype(int)  # frames
    coats = {a: coat_texture(random_look(rng, SHEET_LOOKS)) for a in range(n)}
    seq = Sequence(name=f"sheet-{seed}", kind="sheet", n_animals=n)
    # Each insect's plan: present frames, and where it sits (it may walk, fly off and come back).
    place: dict[int, np.ndarray] = {}
    away_until = {a: -1 for a in range(n)}
    for f in range(n_frames):
        t = f * SHEET_FRAME_S + rng.normal(0, 0.5)
        light = float(np.clip(1 + rng.normal(0, 0.06), 0.7, 1.3))
        visible: dict[int, np.ndarray] = {}
        for a in np.flatnonzero((arrive <= f) & (f < arrive + stay)):
            a = int(a)
            if a not in place:
                place[a] = _landing(rng, visible)
            elif f < away_until[a]:
                continue
            elif f == away_until[a]:  # back: usually about where it was, sometimes elsewhere on the sheet
                place[a] = (_landing(rng, visible, place[a]) if rng.random() < 0.2 else
                            shift_box(place[a], rng.normal(0, 0.6, 2)))
            elif rng.random() < 0.004 and f + 1 < arrive[a] + stay[a]:  # flies off for 1 to 10 frames
                away_until[a] = f + int(rng.integers(1, 11))
                continue
            elif rng.random() < 0.02:  # walks a little
                place[a] = shift_box(place[a], rng.normal(0, 0.5, 2))
            visible[a] = shift_box(place[a], rng.normal(0, 0.03, 2))  # wings, antennae: small jitter
        observe(rng, seq, f, t, visible, coats, light, p_miss=0.06, fp_rate=0.05, palette=SHEET_LOOKS)
    seq.n_animals = len(place)  # arrivals in the night's last frames that were never on view do not count
    return seq


def shift_box(box: np.ndarray, by_sides: np.ndarray) -> np.ndarray:
    w, h = box[2] - box[0], box[3] - box[1]
    dx = float(np.clip(by_sides[0] * w, -box[0], 1 - box[2]))
    dy = float(np.clip(by_sides[1] * h, -box[1], 1 - box[3]))
    return box + np.array([dx, dy, dx, dy])


def _landing(rng: np.random.Generator, visible: dict[int, np.ndarray], box: np.ndarray | None = None) -> np.ndarray:
    """Where an insect settles: anywhere on the sheet, or (one in six) right beside one already there. `box`:
    the insect's box when it sat before (it keeps its size); None: a new insect, of a new size."""
    if box is None:
        w = float(rng.uniform(0.025, 0.07))
        h = w * float(rng.uniform(0.6, 1.1)) * 16 / 9
    else:
        w, h = float(box[2] - box[0]), float(box[3] - box[1])
    if visible and rng.random() < 1 / 6:
        other = list(visible.values())[int(rng.integers(len(visible)))]
        cx = (other[0] + other[2]) / 2 + rng.normal(0, 0.5) * w
        cy = (other[1] + other[3]) / 2 + rng.normal(0, 0.5) * h
    else:
        cx, cy = rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95)
    cx, cy = float(np.clip(cx, w / 2, 1 - w / 2)), float(np.clip(cy, h / 2, 1 - h / 2))
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def camera_burst(seed: int, frames: int = 10) -> Sequence:
    """A camera-trap burst, 1 s between frames, with one to three animals standing or walking (often across
    each other's path)."""
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 2, 3], p=[0.4, 0.35, 0.25]))
    looks = {a: random_look(rng, BURST_LOOKS) for a in range(n)}
    same_species = rng.random() < 0.5  # a group of deer looks alike: only their paths tell them apart
    if same_species:
        for a in range(1, n):
            looks[a] = Look(**{**looks[0].__dict__, "val": float(np.clip(looks[0].val + rng.normal(0, 15), 60,
                                                                                                    240))})
    coats = {a: coat_texture(look) for a, look in looks.items()}
    starts, velocities, sizes = [], [], []
    for a in range(n):
        w = float(rng.uniform(0.12, 0.35))
        h = w * float(rng.uniform(0.7, 1.2)) * 16 / 9 * 0.6
        walking = rng.random() < 0.7
        direction = 1 if a % 2 == 0 else -1  # alternate directions: paths cross
        speed = float(rng.uniform(0.03, 0.09)) if walking else 0.0
        cx0 = float(rng.uniform(0.1, 0.35)) if direction > 0 else float(rng.uniform(0.65, 0.9))
        if not walking:
            cx0 = float(rng.uniform(0.2, 0.8))
        cy0 = float(np.clip(0.55 + rng.normal(0, 0.08), h / 2, 1 - h / 2))
        starts.append((cx0, cy0))
        velocities.append((direction * speed, float(rng.normal(0, 0.005))))
        sizes.append((w, h))
    seq = Sequence(name=f"burst-{seed}", kind="burst", n_animals=0)
    seen: set[int] = set()
    for f in range(frames):
        t = f * BURST_FRAME_S
        light = float(np.clip(1 + rng.normal(0, 0.05), 0.8, 1.2))
        visible = {}
        for a in range(n):
            cx = starts[a][0] + velocities[a][0] * f + rng.normal(0, 0.004)
            cy = starts[a][1] + velocities[a][1] * f + rng.normal(0, 0.004)
            w, h = sizes[a]
            box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            clipped = np.clip(box, 0, 1)
            if (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) >= 0.4 * w * h:  # mostly on view
                visible[a] = clipped
                seen.add(a)
        observe(rng, seq, f, t, visible, coats, light, p_miss=0.05, fp_rate=0.02, palette=BURST_LOOKS)
    seq.n_animals = len(seen)
    return seq


def scenes(n_sheets: int, n_bursts: int, *, seed: int = 32, hours: float = 3.0) -> list[Sequence]:
    """The benchmark's set: `n_sheets` nights and `n_bursts` bursts, each with its own derived seed."""
    sheets = [light_trap_sheet(seed * 1000 + i, hours=hours) for i in range(n_sheets)]
    bursts = [camera_burst(seed * 100_000 + i) for i in range(n_bursts)]
    return sheets + bursts
