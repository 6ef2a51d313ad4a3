"""Many kinds of night (issue 48): synthetic light-trap sheets and camera-trap bursts that differ in what makes
tracking hard, so that a tracker is measured across kinds rather than tuned on one generator's nights.

A tracker tuned on one kind of night agrees with that kind. Each `NightKind` here sets one thing that varies in
the field: how many insects sit on the sheet at once (5 to 60), how they arrive (steadily or in waves), how long
they sit (one frame to the whole night), whether they crawl and how fast, whether they look alike (one species,
one size, one tone: appearance says nothing), how often one lands within a body length of another, how often a
new arrival takes the spot one has just left, and how often the detector misses an insect or reports a leaf.
Camera-trap kinds: deer crossing (tests/fixtures/tracking_scenes.py's bursts) and a herd (four to twelve alike
animals walking together). Issue 58's kinds are a sheet that turns over fast with no insect coming back
(`turnover`, ~11 at once), the same with a detector that draws one fixed-size box around each insect
(`fixed-boxes`: its snip shows the sheet around the insect), with insects of one hue that differ only in tone and
size (`one-hue`), all three at once (`field-night`, the issue's night), and a mix where three insects in ten fly
off once for 1-10 frames and come back among newcomers (`returns-and-newcomers`).
Issue 32's nights (insects that fly off and come back) are drawn too. Every kind is
deterministic for a seed; `kind_scenes(seed)` draws `per_kind` sequences of every kind, and the benchmark fits
on one seed and reports on another.

What the detector reports (jitter, misses, false positives, the snip's real `appearance_descriptor`) is
tests/fixtures/tracking_scenes.py's `observe`; the generator knows nothing of the tracker.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tests.fixtures.tracking_scenes import (
    BURST_LOOKS,
    SHEET_FRAME_S,
    SHEET_LOOKS,
    Look,
    Sequence,
    camera_burst,
    coat_texture,
    light_trap_sheet,
    observe,
    random_look,
    shift_box,
)


@dataclass(frozen=True)
class NightKind:
    """One kind of light-trap night: the knobs the field varies."""

    name: str
    on_sheet: float  # mean insects on the sheet at once
    stay_frames: float  # median sitting time in frames (lognormal); 0: the whole night
    stay_spread: float = 0.8  # lognormal sigma of the sitting time
    waves: bool = False  # arrivals come in waves (a warm spell, a change of wind) rather than steadily
    crawlers: float = 0.0  # share of insects that crawl steadily instead of sitting
    crawl_sides: float = 0.3  # a crawler's speed, in body lengths per frame
    lookalike: bool = False  # one species, one size, one tone: appearance cannot tell them apart
    neighbour: float = 0.15  # share of arrivals that land within a body length of an insect already there
    same_spot: float = 0.0  # share of arrivals that land where an insect left in the last few frames
    p_miss: float = 0.06  # the detector misses an insect in a frame
    fp_rate: float = 0.05  # false detections per frame (leaves, reflections)
    frames: int = 150  # a frame every 20 s: 50 minutes
    fixed_box: bool = False  # the detector draws one fixed-size box around each insect (a blob detector)
    one_hue: bool = False  # the insects share one hue and differ only in brightness (tone) and size
    returns: float = 0.0  # share of insects that fly off once for 1-10 frames and come back (one animal)


NIGHT_KINDS = [
    NightKind("sparse", on_sheet=5, stay_frames=30),
    NightKind("busy", on_sheet=30, stay_frames=20, waves=True),
    NightKind("crowded", on_sheet=60, stay_frames=15),
    NightKind("quick-visits", on_sheet=12, stay_frames=2, stay_spread=0.9),
    NightKind("whole-night", on_sheet=20, stay_frames=0),
    NightKind("crawlers", on_sheet=15, stay_frames=20, crawlers=0.6, crawl_sides=0.4),
    NightKind("lookalike", on_sheet=20, stay_frames=6, lookalike=True),
    NightKind("neighbours", on_sheet=20, stay_frames=10, neighbour=0.7),
    NightKind("same-spot", on_sheet=15, stay_frames=5, same_spot=0.5),
    NightKind("noisy-detector", on_sheet=15, stay_frames=10, p_miss=0.25, fp_rate=1.0),
    # Issue 58's kinds: a sheet that turns over fast (~11 insects at once, most arrivals within a few frames of a
    # departure) where no insect comes back, one thing at a time and all at once (its field night), and a mix of
    # returns and newcomers.
    NightKind("turnover", on_sheet=11, stay_frames=25),
    NightKind("fixed-boxes", on_sheet=11, stay_frames=25, fixed_box=True),
    NightKind("one-hue", on_sheet=11, stay_frames=25, one_hue=True),
    NightKind("field-night", on_sheet=11, stay_frames=25, fixed_box=True, one_hue=True),
    NightKind("returns-and-newcomers", on_sheet=11, stay_frames=25, returns=0.3),
]
# Also drawn: issue 32's nights (tests/fixtures/tracking_scenes.py, one hour), where insects fly off for a few frames
# and come back about where they were, so that a gate tight enough for turnover does not split those.
OTHER_KINDS = ["fly-off-and-back", "deer-crossing", "herd"]


FIXED_BOX = (0.08, 0.08 * 16 / 9)  # the blob detector's one box size (normalised w, h): every insect fits in it


def _size(rng: np.random.Generator, lookalike: bool) -> tuple[float, float]:
    w = 0.04 * float(rng.normal(1, 0.04)) if lookalike else float(rng.uniform(0.025, 0.07))
    return w, w * (0.8 if lookalike else float(rng.uniform(0.6, 1.1))) * 16 / 9


def _place(rng: np.random.Generator, size: tuple[float, float], near: np.ndarray | None) -> np.ndarray:
    """A box of `size` anywhere on the sheet, or within a body length of `near`'s centre."""
    w, h = size
    if near is None:
        cx, cy = rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95)
    else:
        angle, reach = rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 1.0)
        cx = (near[0] + near[2]) / 2 + reach * w * np.cos(angle)
        cy = (near[1] + near[3]) / 2 + reach * h * np.sin(angle)
    cx, cy = float(np.clip(cx, w / 2, 1 - w / 2)), float(np.clip(cy, h / 2, 1 - h / 2))
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _arrivals(rng: np.random.Generator, kind: NightKind) -> tuple[np.ndarray, np.ndarray]:
    """Arrival frame and sitting time (frames) of every insect of the night; the night starts in progress."""
    if kind.stay_frames == 0:
        n = int(rng.poisson(kind.on_sheet))
        return np.zeros(n, dtype=int), np.full(n, kind.frames, dtype=int)
    mean_stay = kind.stay_frames * np.exp(kind.stay_spread ** 2 / 2)
    rate = np.full(kind.frames, kind.on_sheet / mean_stay)
    if kind.waves:  # two to four waves: the same insects a night, arriving in bursts of a few frames
        rate *= 0.3
        for centre in rng.uniform(0, kind.frames, int(rng.integers(2, 5))):
            rate += (kind.on_sheet / mean_stay) * 2.0 * np.exp(-0.5 * ((np.arange(kind.frames) - centre) / 6) ** 2)
    arrive = np.repeat(np.arange(kind.frames), rng.poisson(rate))
    already = rng.poisson(kind.on_sheet)  # on the sheet when the camera starts
    arrive = np.concatenate([np.zeros(already, dtype=int), arrive])
    stay = np.maximum(1, np.round(rng.lognormal(np.log(kind.stay_frames), kind.stay_spread, len(arrive))))
    return arrive, stay.astype(int)


def night(kind: NightKind, seed: int) -> Sequence:
    """One night of `kind` on one camera (deterministic for the seed)."""
    rng = np.random.default_rng(seed)
    arrive, stay = _arrivals(rng, kind)
    n = len(arrive)
    if kind.lookalike:
        base = random_look(rng, SHEET_LOOKS)
        looks = [Look(**{**base.__dict__, "val": float(base.val + rng.normal(0, 5))}) for _ in range(n)]
    elif kind.one_hue:  # one hue and saturation, plain: only the tone (and the size, below) differs
        base = random_look(rng, SHEET_LOOKS)
        looks = [Look(hue=float(base.hue + rng.normal(0, 2)), sat=float(np.clip(base.sat + rng.normal(0, 10), 0, 255)),
                      val=float(rng.uniform(70, 230)), pattern=0, period=base.period, angle=base.angle)
                 for _ in range(n)]
    else:
        looks = [random_look(rng, SHEET_LOOKS) for _ in range(n)]
    coats = {a: coat_texture(looks[a]) for a in range(n)}
    sizes = [_size(rng, kind.lookalike) for _ in range(n)]
    crawl = rng.random(n) < kind.crawlers
    heading = rng.uniform(0, 2 * np.pi, n)
    away_from, away_until = np.full(n, -1), np.full(n, -1)  # the frames an insect that comes back is off
    if kind.returns > 0:
        goes = np.flatnonzero((rng.random(n) < kind.returns) & (stay >= 4))
        away_from[goes] = arrive[goes] + 1 + (rng.random(len(goes)) * (stay[goes] - 2)).astype(int)
        away_until[goes] = away_from[goes] + rng.integers(1, 11, len(goes))
        stay[goes] += away_until[goes] - away_from[goes]  # the time off does not shorten its visit
    seq = Sequence(name=f"{kind.name}-{seed}", kind=kind.name, n_animals=0)
    place: dict[int, np.ndarray] = {}
    left: list[tuple[int, np.ndarray]] = []  # (frame, box) of recent departures
    for f in range(kind.frames):
        t = f * SHEET_FRAME_S + rng.normal(0, 0.5)
        light = float(np.clip(1 + rng.normal(0, 0.06), 0.7, 1.3))
        for a in [a for a in place if not (arrive[a] <= f < arrive[a] + stay[a])]:
            left.append((f, place.pop(a)))
        left = [(g, b) for g, b in left if f - g <= 3]
        visible: dict[int, np.ndarray] = {}
        for a in np.flatnonzero((arrive <= f) & (f < arrive + stay)):
            a = int(a)
            if away_from[a] <= f < away_until[a]:
                continue  # off the sheet for a while (it keeps its place in `place` until it lands again)
            if f == away_until[a] and a in place:  # back: four times in five about where it was, else anywhere
                place[a] = (_place(rng, sizes[a], None) if rng.random() < 0.2
                            else shift_box(place[a], rng.normal(0, 0.6, 2)))
                visible[a] = shift_box(place[a], rng.normal(0, 0.03, 2))
                continue
            if a not in place:
                near = None
                if left and rng.random() < kind.same_spot:  # takes the spot of one that just left
                    spot = left.pop(int(rng.integers(len(left))))[1]
                    place[a] = _centred(spot, sizes[a], rng)
                    visible[a] = place[a]
                    continue
                if place and rng.random() < kind.neighbour:
                    keys = list(place)
                    near = place[keys[int(rng.integers(len(keys)))]]
                place[a] = _place(rng, sizes[a], near)
            elif crawl[a]:
                heading[a] += rng.normal(0, 0.3)
                step = np.array([np.cos(heading[a]), np.sin(heading[a])]) * kind.crawl_sides * rng.uniform(0.6, 1.4)
                moved = shift_box(place[a], step)
                if moved[0] <= 0 or moved[2] >= 1 or moved[1] <= 0 or moved[3] >= 1:
                    heading[a] += np.pi  # at the sheet's edge: turn back
                place[a] = moved
            elif rng.random() < 0.02:  # a sitter shuffles a little
                place[a] = shift_box(place[a], rng.normal(0, 0.3, 2))
            visible[a] = shift_box(place[a], rng.normal(0, 0.03, 2))
        extents = None
        if kind.fixed_box:  # the detector's box: one size, centred on the insect; the insect's own size inside it
            extents = {a: (b[2] - b[0], b[3] - b[1], (b[:2] + b[2:]) / 2) for a, b in visible.items()}
            visible = {a: np.concatenate([c - np.array(FIXED_BOX) / 2, c + np.array(FIXED_BOX) / 2])
                       for a, (_, _, c) in extents.items()}
        observe(rng, seq, f, t, visible, coats, light, kind.p_miss, kind.fp_rate, SHEET_LOOKS, extents)
    seq.n_animals = len(set(seq.gt_id))
    return seq


def _centred(spot: np.ndarray, size: tuple[float, float], rng: np.random.Generator) -> np.ndarray:
    """A box of `size` centred within a fifth of a body length of `spot`'s centre."""
    w, h = size
    cx = float(np.clip((spot[0] + spot[2]) / 2 + rng.normal(0, 0.2) * w, w / 2, 1 - w / 2))
    cy = float(np.clip((spot[1] + spot[3]) / 2 + rng.normal(0, 0.2) * h, h / 2, 1 - h / 2))
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def herd(seed: int) -> Sequence:
    """A camera-trap burst of a herd: four to twelve alike animals walking one way at about one pace, some
    grazing on the spot, 10-20 frames a second apart."""
    rng = np.random.default_rng(seed)
    n, frames = int(rng.integers(4, 13)), int(rng.integers(10, 21))
    base = random_look(rng, BURST_LOOKS)
    coats = {a: coat_texture(Look(**{**base.__dict__, "val": float(np.clip(base.val + rng.normal(0, 12), 60, 240))}))
             for a in range(n)}
    direction = 1 if rng.random() < 0.5 else -1
    pace = float(rng.uniform(0.02, 0.05))
    boxes = []
    for _ in range(n):
        w = float(rng.uniform(0.08, 0.16))
        h = w * 16 / 9 * 0.6
        cx = float(rng.uniform(-0.3, 0.7) if direction > 0 else rng.uniform(0.3, 1.3))
        cy = float(np.clip(0.6 + rng.normal(0, 0.1), h / 2, 1 - h / 2))
        speed = direction * (0.0 if rng.random() < 0.25 else pace * rng.uniform(0.7, 1.3))
        boxes.append((cx, cy, w, h, speed))
    seq = Sequence(name=f"herd-{seed}", kind="herd", n_animals=0)
    for f in range(frames):
        light = float(np.clip(1 + rng.normal(0, 0.05), 0.8, 1.2))
        visible = {}
        for a, (cx0, cy0, w, h, v) in enumerate(boxes):
            cx = cx0 + v * f + rng.normal(0, 0.004)
            cy = cy0 + rng.normal(0, 0.004)
            box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            clipped = np.clip(box, 0, 1)
            if (clipped[2] - clipped[0]) * (clipped[3] - clipped[1]) >= 0.4 * w * h:
                visible[a] = clipped
        observe(rng, seq, f, float(f), visible, coats, light, p_miss=0.08, fp_rate=0.05, palette=BURST_LOOKS)
    seq.n_animals = len(set(seq.gt_id))
    return seq


def kind_scenes(seed: int, per_kind: int = 3, bursts_per_kind: int = 40) -> list[Sequence]:
    """`per_kind` nights of every NightKind and of issue 32's nights, `bursts_per_kind` bursts of every burst kind,
    from `seed`."""
    out = [night(kind, seed * 10_000 + 100 * k + i) for k, kind in enumerate(NIGHT_KINDS) for i in range(per_kind)]
    for i in range(per_kind):
        back = light_trap_sheet(seed * 10_000 + 3_000 + i, hours=1.0)
        back.kind, back.name = "fly-off-and-back", f"fly-off-and-back-{seed}-{i}"
        out.append(back)
    for i in range(bursts_per_kind):
        crossing = camera_burst(seed * 10_000 + 5_000 + i)
        crossing.kind, crossing.name = "deer-crossing", f"deer-crossing-{seed}-{i}"
        out.append(crossing)
        out.append(herd(seed * 10_000 + 7_000 + i))
    return [s for s in out if s.n_animals > 0]
