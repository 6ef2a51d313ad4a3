"""Scenes of the blind split-box generator (issue 84, item 3): cameras, the split mistake, its twins, the truth.

How it was written and what it must not be tuned on: benchmarks/split_boxes_blind.py (a held-out check, written
blind from the issue's text). The class: one animal reported as two boxes of about the same size side by side,
overlapping a little or not at all, neither inside the other, moving together, the second shown in some frames only
(a deer's two halves behind a stem, a nest-box bird's head and body, a moth's two wings, a bird and its reflection
in a window). Its twins, which must stay two animals: two animals walking side by side at one pace (`pair`), a mother
with its young (`mother_young`). `clean`: the same cameras with neither. Every kind has plain detector noise (edge
jitter, a box missed now and then). Each camera is one call of the tracker: a night or a day of bursts.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

KINDS = ("split", "pair", "mother_young", "clean")
MAIN, SECOND = 0, 1  # a detection's role: the animal's (main) box, or the second box of a split animal
_STYLES = ("halves", "head", "reflection")


@dataclass(frozen=True)
class SplitMistake:
    """The detector's mistake: a share of the animals boxed as two parts side by side. Per split animal the layout is
    drawn once (it is one body: the parts move together); ranges are drawn uniformly per animal.

    style: `halves` (two halves of one body: the union is the animal; an occluder lies in the gap), `head` (a head
    beside a body: the head is smaller both ways), `reflection` (the animal and its mirror image beside it: the
    animal is the main part). In frames where the second box is not shown the detector boxes the animal whole."""

    share: float = 0.3  # share of the animals the detector splits
    shown: tuple[float, float] = (0.3, 0.8)  # share of a split animal's frames in which the second box shows
    gap: tuple[float, float] = (0.0, 0.3)  # space between the parts, share of the main part's length (< 0: overlap)
    ratio: tuple[float, float] = (0.6, 1.0)  # the second part's length over the main part's
    axis: str = "x"  # "x": side by side, "y": one above the other, "any": either, per animal
    side: str = "either"  # the second part "after" the main one (right / below), "before", or "either"
    style: str = "halves"

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"split share is a share of the animals, 0..1, got {self.share}")
        if not 0.0 < self.shown[0] <= self.shown[1] <= 1.0:
            raise ValueError(f"shown is a range of shares of frames within (0, 1], got {self.shown}")
        if not -0.3 <= self.gap[0] <= self.gap[1]:
            raise ValueError(f"gap is a range with an overlap of at most 0.3 (-0.3), got {self.gap}")
        if not 0.3 <= self.ratio[0] <= self.ratio[1] <= 1.5:
            raise ValueError(f"ratio is a range within 0.3..1.5 (about the same size), got {self.ratio}")
        if self.axis not in ("x", "y", "any") or self.side not in ("after", "before", "either"):
            raise ValueError(f"axis is x, y or any and side after, before or either, got {self.axis}, {self.side}")
        if self.style not in _STYLES:
            raise ValueError(f"style is one of {_STYLES}, got {self.style}")


@dataclass(frozen=True)
class Twins:
    """Two true animals that move together and must stay two: `share` of the visits hold such a couple."""

    share: float = 0.5
    ratio: tuple[float, float] = (0.85, 1.15)  # the partner's size over the leader's
    gap: tuple[float, float] = (-0.1, 0.3)  # space between them, share of the leader's length (< 0: overlap)
    drift: float = 0.02  # per-frame random walk of the partner's offset, share of the leader's width


PAIR = Twins()
MOTHER_YOUNG = Twins(share=0.5, ratio=(0.35, 0.65), gap=(-0.1, 0.5), drift=0.05)


@dataclass(frozen=True)
class Noise:
    """Plain detector noise."""

    jitter: float = 0.03  # sd of each box edge, share of the box's width / height
    missed: float = 0.06  # chance a box is missed in a frame
    score: tuple[float, float] = (0.5, 0.95)
    second_score: tuple[float, float] = (0.3, 0.8)


@dataclass(frozen=True)
class Camera:
    """One camera's night or day: `visits` bursts of `frames` frames `frame_s` apart, `pause_s` between bursts."""

    name: str
    ground: str  # backdrop drawing (split_boxes_looks.py): trail, nest, sheet, window
    body: str  # animal drawing: deer, bird, moth
    size_px: tuple[int, int]  # the frame drawn, width x height
    visits: int
    frames: tuple[int, int]
    frame_s: float
    start_s: float  # the first burst, seconds after midnight
    pause_s: tuple[float, float]
    animals: tuple[int, int]  # animals on their own per burst
    width: tuple[float, float]  # an animal's box width, frame widths
    aspect: float  # box height over width, in pixels
    speed: tuple[float, float]  # frame widths per frame
    heading: str  # "across" (left or right, near level) or "any"
    turn: float  # chance per frame of a new heading and pace (hops, crawls)
    split: SplitMistake = field(default_factory=SplitMistake)


CAMERAS = (
    Camera("deer_trail", "trail", "deer", (384, 216), 10, (3, 8), 1.0, 6 * 3600.0, (600.0, 5400.0), (1, 2),
           (0.14, 0.30), 0.75, (0.03, 0.08), "across", 0.05,
           SplitMistake(gap=(0.0, 0.35), ratio=(0.6, 1.0), axis="x", style="halves")),
    Camera("nest_box", "nest", "bird", (320, 240), 14, (6, 14), 0.5, 5 * 3600.0, (120.0, 2400.0), (1, 1),
           (0.16, 0.30), 0.8, (0.01, 0.04), "any", 0.3,
           SplitMistake(gap=(-0.2, 0.1), ratio=(0.45, 0.8), axis="any", style="head")),
    Camera("moth_sheet", "sheet", "moth", (480, 320), 8, (6, 12), 10.0, 21 * 3600.0, (900.0, 3600.0), (2, 4),
           (0.04, 0.09), 0.6, (0.002, 0.012), "any", 0.2,
           SplitMistake(gap=(-0.15, 0.1), ratio=(0.8, 1.0), axis="x", style="halves")),
    Camera("feeder_window", "window", "bird", (320, 200), 12, (4, 10), 0.5, 7 * 3600.0, (300.0, 3600.0), (1, 3),
           (0.08, 0.16), 0.8, (0.01, 0.05), "across", 0.4,
           SplitMistake(gap=(0.0, 0.25), ratio=(0.75, 1.0), axis="x", style="reflection")),
)


@dataclass
class Scene:
    """One camera's night with its truth. Per detection: times_s, frame_ids, boxes (jittered, as the detector gave
    them), clean (before jitter), scores, gt_id (the true animal), role (MAIN or SECOND), burst. `animals`: one dict
    per true animal (its split layout or twin partner); `sprites`: what each frame shows, for drawing."""

    camera: Camera
    kind: str
    times_s: np.ndarray
    frame_ids: np.ndarray
    boxes: np.ndarray
    clean: np.ndarray
    scores: np.ndarray
    gt_id: np.ndarray
    role: np.ndarray
    burst: np.ndarray
    animals: list[dict]
    sprites: list[dict]
    seed: int

    @property
    def visits(self) -> int:
        """True animal visits: the animals the detector boxed at least once (each animal passes once)."""
        return int(len(np.unique(self.gt_id)))


def _stable(name: str) -> int:
    return zlib.crc32(name.encode())


def _uniform(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(lo_hi[0], lo_hi[1]))


def _heading(rng: np.random.Generator, cam: Camera, aspect_frame: float) -> np.ndarray:
    angle = (rng.choice([0.0, np.pi]) + rng.normal(0.0, 0.2)) if cam.heading == "across" else rng.uniform(0, 2 * np.pi)
    speed = _uniform(rng, cam.speed)
    return speed * np.array([np.cos(angle), np.sin(angle) * aspect_frame])


def _in_view(c: np.ndarray, wh: np.ndarray) -> bool:
    """At least half the box inside the frame."""
    (x, y), (w, h) = c.tolist(), wh.tolist()
    seen_w = max(min(x + w / 2, 1.0) - max(x - w / 2, 0.0), 0.0)
    seen_h = max(min(y + h / 2, 1.0) - max(y - h / 2, 0.0), 0.0)
    return seen_w * seen_h >= 0.5 * w * h


def _path(rng: np.random.Generator, cam: Camera, n: int, wh: np.ndarray) -> np.ndarray:
    """Centres (n, 2) of one animal over a burst, NaN out of view: it appears in view and walks until it leaves or
    the burst ends; at least three frames when the burst has them (redrawn a few times otherwise)."""
    aspect_frame = cam.size_px[0] / cam.size_px[1]
    best = np.full((n, 2), np.nan)
    for _ in range(20):
        out = np.full((n, 2), np.nan)
        k0 = int(rng.integers(0, max(1, n - 2)))
        c = np.array([rng.uniform(wh[0] / 2, 1 - wh[0] / 2), rng.uniform(wh[1] / 2, 1 - wh[1] / 2)])
        v = _heading(rng, cam, aspect_frame)
        for k in range(k0, n):
            if k > k0:
                if rng.random() < cam.turn:
                    v = _heading(rng, cam, aspect_frame)
                c = c + v + rng.normal(0.0, 0.1 * np.abs(v).max(), 2)  # the gait's own wobble
            if not _in_view(c, wh):
                break
            out[k] = c
        if (~np.isnan(out[:, 0])).sum() >= min(3, n):
            return out
        best = out if (~np.isnan(out[:, 0])).sum() > (~np.isnan(best[:, 0])).sum() else best
    return best


def _box(c: np.ndarray, wh: np.ndarray) -> np.ndarray:
    return np.concatenate([c - wh / 2, c + wh / 2])


def split_layout(rng: np.random.Generator, mistake: SplitMistake) -> dict:
    """One split animal's layout, drawn once: axis, side, gap, ratio, the second part's offset across the axis, and
    the share of frames its second box shows."""
    axis = mistake.axis if mistake.axis != "any" else str(rng.choice(["x", "y"]))
    side = mistake.side if mistake.side != "either" else str(rng.choice(["after", "before"]))
    return {"axis": axis, "side": side, "gap": _uniform(rng, mistake.gap), "ratio": _uniform(rng, mistake.ratio),
            "across": float(rng.uniform(-1, 1)), "shown": _uniform(rng, mistake.shown), "style": mistake.style}


def split_parts(body: np.ndarray, lay: dict) -> tuple[np.ndarray, np.ndarray]:
    """The main and second parts' boxes of a split animal whose body box is `body` (x1, y1, x2, y2)."""
    a = 0 if lay["axis"] == "x" else 1  # along
    b = 1 - a  # across
    length, breadth = body[a + 2] - body[a], body[b + 2] - body[b]
    g, r = lay["gap"], lay["ratio"]
    # reflection: the body is the animal itself, its mirror image beside it; else the body is both parts' union
    main_len = length if lay["style"] == "reflection" else length / (1 + g + r)
    second_breadth = breadth * (1.0 if lay["style"] == "halves" else r)
    main, second = body.copy(), body.copy()
    main[a + 2] = body[a] + main_len
    second[a], second[a + 2] = body[a] + main_len * (1 + g), body[a] + main_len * (1 + g + r)
    if lay["side"] == "before":  # both mirrored about the body's middle: the second part on the other side
        pivot2 = body[a] + body[a + 2]
        main[a], main[a + 2] = pivot2 - main[a + 2], pivot2 - main[a]
        second[a], second[a + 2] = pivot2 - second[a + 2], pivot2 - second[a]
    mid = (body[b] + body[b + 2]) / 2 + lay["across"] * (breadth - second_breadth) / 2
    second[b], second[b + 2] = mid - second_breadth / 2, mid + second_breadth / 2
    return main, second


def _size(rng: np.random.Generator, cam: Camera, scale: float = 1.0) -> np.ndarray:
    w = _uniform(rng, cam.width) * scale
    return np.array([w, w * cam.aspect * cam.size_px[0] / cam.size_px[1]])


def _partner_path(rng: np.random.Generator, lead: np.ndarray, lead_wh: np.ndarray, wh: np.ndarray,
                  twins: Twins) -> np.ndarray:
    """The partner of a couple: beside the leader (either axis, either side), at the leader's pace, its offset
    wandering a little frame by frame but never so far in that one box would lie inside the other."""
    a = int(rng.integers(0, 2))
    sign = float(rng.choice([-1.0, 1.0]))
    least = (lead_wh[a] + wh[a]) / 2 - 0.15 * lead_wh[a]
    along = (lead_wh[a] + wh[a]) / 2 + _uniform(rng, twins.gap) * lead_wh[a]
    across = float(rng.uniform(-0.2, 0.2)) * lead_wh[1 - a]
    out = np.full_like(lead, np.nan)
    for k in range(len(lead)):
        along = max(least, along + rng.normal(0.0, twins.drift * lead_wh[0]))
        across += rng.normal(0.0, twins.drift * lead_wh[0])
        if np.isnan(lead[k, 0]):
            continue
        c = lead[k].copy()
        c[a] += sign * along
        c[1 - a] += across
        if _in_view(c, wh):
            out[k] = c
    return out


def scene(camera: Camera, kind: str, seed: int, *, split: SplitMistake | None = None, twins: Twins | None = None,
          noise: Noise | None = None) -> Scene:
    """One camera's night of `kind` (KINDS), deterministic by seed."""
    if kind not in KINDS:
        raise ValueError(f"kind is one of {KINDS}, got {kind!r}")
    mistake = split or camera.split
    couple = twins or (MOTHER_YOUNG if kind == "mother_young" else PAIR)
    noise = noise or Noise()
    rng = np.random.default_rng([seed, _stable(camera.name), _stable(kind)])
    animals: list[dict] = []
    sprites: list[dict] = []
    det: dict[str, list] = {k: [] for k in ("t", "f", "clean", "score", "gt", "role", "burst")}
    t0, frame0 = camera.start_s, 0

    def new_animal(burst: int, role: str, partner: int = -1, young: bool = False) -> dict:
        a = {"id": len(animals), "burst": burst, "role": role, "partner": partner, "young": young, "split": None,
             "tint": rng.uniform(-25, 25, 3).round().tolist(), "facing": float(rng.choice([-1.0, 1.0])),
             "frames": 0, "second_frames": 0}
        animals.append(a)
        return a

    for b in range(camera.visits):
        if b:
            t0 += _uniform(rng, camera.pause_s)
        n = int(rng.integers(camera.frames[0], camera.frames[1] + 1))
        m = int(rng.integers(camera.animals[0], camera.animals[1] + 1))
        tracks: list[tuple[dict, np.ndarray, np.ndarray]] = []
        if kind in ("pair", "mother_young") and rng.random() < couple.share:
            m -= 1
            lead_wh = _size(rng, camera)
            wh = lead_wh * _uniform(rng, couple.ratio)
            lead = _path(rng, camera, n, np.maximum(lead_wh, wh))
            leader = new_animal(b, "leader")
            partner = new_animal(b, "partner", leader["id"], young=kind == "mother_young")
            leader["partner"] = partner["id"]
            tracks += [(leader, lead, lead_wh), (partner, _partner_path(rng, lead, lead_wh, wh, couple), wh)]
        for _ in range(m):
            wh = _size(rng, camera)
            a = new_animal(b, "single")
            if kind == "split" and rng.random() < mistake.share:
                a["split"] = split_layout(rng, mistake)
            tracks.append((a, _path(rng, camera, n, wh), wh))
        for a, centres, wh in tracks:
            for k in np.flatnonzero(~np.isnan(centres[:, 0])):
                body = _box(centres[k], wh)
                sprite = {"frame": frame0 + int(k), "animal": a["id"], "body": body, "main": None, "second": None}
                sprites.append(sprite)
                a["frames"] += 1
                boxes = [(body, MAIN)]
                if a["split"] is not None:
                    sprite["main"], sprite["second"] = split_parts(body, a["split"])
                    second = sprite["second"]
                    if rng.random() < a["split"]["shown"] and _in_view((second[:2] + second[2:]) / 2,
                                                                       second[2:] - second[:2]):
                        a["second_frames"] += 1
                        boxes = [(sprite["main"], MAIN), (sprite["second"], SECOND)]
                for box, role in boxes:
                    if rng.random() < noise.missed:
                        continue
                    det["t"].append(t0 + k * camera.frame_s)
                    det["f"].append(frame0 + int(k))
                    det["clean"].append(box)
                    det["score"].append(_uniform(rng, noise.score if role == MAIN else noise.second_score))
                    det["gt"].append(a["id"])
                    det["role"].append(role)
                    det["burst"].append(b)
        frame0 += n
    clean = np.asarray(det["clean"], dtype=np.float64).reshape(-1, 4)
    size = np.tile(clean[:, 2:] - clean[:, :2], 2)
    boxes = np.clip(clean + rng.normal(0.0, noise.jitter, clean.shape) * size, 0.0, 1.0)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1e-3)
    # the detector lists a frame's boxes in no particular order
    order = np.lexsort((rng.random(len(clean)), np.asarray(det["f"])))
    return Scene(camera, kind, np.asarray(det["t"], np.float64)[order], np.asarray(det["f"], np.int64)[order],
                 boxes[order], clean[order], np.asarray(det["score"], np.float64)[order],
                 np.asarray(det["gt"], np.int64)[order], np.asarray(det["role"], np.int64)[order],
                 np.asarray(det["burst"], np.int64)[order], animals, sprites, seed)
