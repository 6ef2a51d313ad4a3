"""Folding an animal's second boxes, flagging what never moves, and flicker (issue 69), on small constructed
scenes: the tracker alone, no Ray, no tables."""

from __future__ import annotations

import numpy as np

from model_store.core.filters.track_folds import _co_frames
from model_store.core.filters.track_hosts import clear_host
from model_store.core.filters.track_rows import TrackRows
from model_store.core.filters.tracking import TrackConfig, confirmed_tracks, link_camera_scored

CONFIG = TrackConfig()


def _box(cx: float, cy: float, w: float, h: float) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


class Scene:
    """One camera's detections, frame by frame, with each one's true animal."""

    def __init__(self) -> None:
        self.frames: list[int] = []
        self.boxes: list[list[float]] = []
        self.truth: list[int] = []
        self.scores: list[float] = []

    def add(self, frame: int, box: list[float], animal: int, score: float = 0.8, look: int | None = None) -> None:
        """`look`: the box's appearance, one of a few colours (None: the scene has no appearances)."""
        if look is not None:
            self.looks = getattr(self, "looks", [0] * len(self.frames))
        if hasattr(self, "looks"):
            self.looks.append(look or 0)
        self.frames.append(frame)
        self.boxes.append(box)
        self.truth.append(animal)
        self.scores.append(score)

    def link(self, config: TrackConfig = CONFIG, seconds_per_frame: float = 20.0):
        frames = np.array(self.frames)
        scores = np.array(self.scores)
        app = np.eye(4)[self.looks] + 0.1 if hasattr(self, "looks") else None
        linked = link_camera_scored(frames * seconds_per_frame, frames, np.array(self.boxes), config, scores=scores,
                                    appearance=app)
        counted = confirmed_tracks(linked.ids, config, scores, static=linked.static)
        return linked, counted


def _sitter(scene: Scene, animal: int, cx: float, cy: float, w: float, h: float, frames: range,
            rng: np.random.Generator, jitter: float = 0.05) -> None:
    for f in frames:
        scene.add(f, _box(cx + rng.normal(0, jitter) * w, cy + rng.normal(0, jitter) * h, w, h), animal)


def test_a_walking_animals_head_box_is_folded_into_its_track_with_the_evidence():
    rng = np.random.default_rng(1)
    scene = Scene()
    heads = [f for f in range(20) if f % 5 != 4]  # a beetle walks; its head is boxed apart in most frames
    for f in range(20):
        cx = 0.1 + 0.01 * f
        scene.add(f, _box(cx, 0.5, 0.08, 0.06), 0)
        if f in heads:
            scene.add(f, _box(cx + 0.025 + rng.normal(0, 0.001), 0.5, 0.025, 0.03), 0, score=0.7)
    linked, counted = scene.link()
    assert counted.sum() == 1 and len(np.unique(linked.ids)) == 1
    folded = ~np.isnan(linked.folds[:, 0])
    assert folded.sum() == len(heads) and (np.array(scene.boxes)[folded, 2] - np.array(scene.boxes)[folded, 0]
                                           < 0.03).all()  # the head boxes, each kept, none of the body's
    share, spread, moved = linked.folds[folded, 1:].T
    assert (share == 1.0).all() and (spread < 0.1).all() and (moved >= CONFIG.fold_move).all()
    assert (linked.link_confidence[folded] > 0.5).all()  # rode along: a strong fold, not for the review queue
    # Without folding, the head boxes are a track of their own: the count doubles.
    _, before = scene.link(CONFIG.model_copy(update={"fold": False}))
    assert before.sum() == 2


def test_a_head_box_now_and_then_is_folded_too():
    scene = Scene()
    for f in range(20):  # the head boxed apart in every third frame only: each box a piece of its own
        cx = 0.1 + 0.03 * f
        scene.add(f, _box(cx, 0.5, 0.08, 0.06), 0)
        if f % 3 == 0:
            scene.add(f, _box(cx + 0.025, 0.5, 0.025, 0.03), 0, score=0.7)
    linked, counted = scene.link()
    assert counted.sum() == 1 and (~np.isnan(linked.folds[:, 0])).sum() == 7


def test_a_sitters_part_box_is_a_weak_fold_and_sorts_to_the_review_queue():
    rng = np.random.default_rng(2)
    scene = Scene()
    _sitter(scene, 0, 0.4, 0.4, 0.06, 0.1, range(40), rng)
    for f in range(40):  # its head boxed apart now and then, always at the top of its box
        if rng.random() < 0.2:
            scene.add(f, _box(0.4 + rng.normal(0, 0.002), 0.37, 0.03, 0.03), 0, score=0.65)
    linked, counted = scene.link()
    assert counted.sum() == 1
    folded = ~np.isnan(linked.folds[:, 0])
    assert folded.any() and (linked.link_confidence[folded] <= 0.5).all()


def test_two_sitters_one_inside_the_others_box_stay_two_animals():
    rng = np.random.default_rng(3)
    scene = Scene()
    _sitter(scene, 0, 0.5, 0.5, 0.12, 0.2, range(30), rng)  # a large moth
    _sitter(scene, 1, 0.52, 0.48, 0.03, 0.05, range(8, 25), rng)  # a small one that lands on it and stays
    linked, counted = scene.link()
    assert counted.sum() == 2
    assert np.isnan(linked.folds[:, 0]).all()
    truth = np.array(scene.truth)
    assert len(np.unique(linked.ids[truth == 1])) == 1 and not set(linked.ids[truth == 1]) & set(linked.ids[truth == 0])


def test_two_animals_walking_side_by_side_are_not_folded():
    scene = Scene()
    for f in range(15):  # two deer, one a little ahead, boxes overlapping but neither inside the other
        scene.add(f, _box(0.1 + 0.04 * f, 0.5, 0.15, 0.2), 0, score=0.9)
        scene.add(f, _box(0.2 + 0.04 * f, 0.55, 0.15, 0.2), 1, score=0.9)
    linked, counted = scene.link(seconds_per_frame=1.0)
    assert counted.sum() == 2 and np.isnan(linked.folds[:, 0]).all()


def test_a_box_that_never_moves_is_flagged_and_not_counted():
    rng = np.random.default_rng(4)
    scene = Scene()
    for f in range(30):  # a mark on the sheet: the detector's box moves by a pixel or two
        scene.add(f, _box(0.7 + rng.normal(0, 0.0005), 0.2 + rng.normal(0, 0.0005), 0.05, 0.08), -1, score=0.6)
    _sitter(scene, 0, 0.3, 0.6, 0.05, 0.08, range(30), rng)  # a moth sits as long, wings and antennae moving
    linked, counted = scene.link()
    truth = np.array(scene.truth)
    assert linked.static[truth == -1].all() and not linked.static[truth == 0].any()
    assert counted.sum() == 1 and counted[linked.ids[truth == 0][0]]
    # The rule's thresholds are the user's: fewer frames than static_min_frames (short runs off), or 0, flags
    # nothing.
    long_only = CONFIG.model_copy(update={"static_min_frames": 31, "static_burst_share": 0.0})
    assert not scene.link(long_only)[0].static.any()
    assert not scene.link(CONFIG.model_copy(update={"static_min_frames": 0}))[0].static.any()


def test_flicker_of_up_to_three_frames_does_not_split_a_track():
    rng = np.random.default_rng(5)
    scene = Scene()
    gone = {5, 6, 7, 15, 16, 24}
    _sitter(scene, 0, 0.3, 0.3, 0.05, 0.08, [f for f in range(30) if f not in gone], rng)
    for f in (f for f in range(30) if f not in {10, 11, 12}):  # a crawler missed for three frames
        scene.add(f, _box(0.1 + 0.01 * f, 0.8, 0.04, 0.06), 1)
    linked, counted = scene.link()
    truth = np.array(scene.truth)
    assert counted.sum() == 2
    assert len(np.unique(linked.ids[truth == 0])) == 1 and len(np.unique(linked.ids[truth == 1])) == 1


def test_confirmed_tracks_leaves_out_only_wholly_flagged_tracks():
    ids = np.array([0, 0, 0, 1, 1, 1])
    static = np.array([True, True, True, True, False, False])
    assert confirmed_tracks(ids, CONFIG, static=static).tolist() == [False, True]
    assert confirmed_tracks(ids, CONFIG).tolist() == [True, True]


def _stump_and_deer(frames: int, missed: tuple[int, ...], seed: int) -> Scene:
    """A burst of `frames` frames, 1 s apart: a stump boxed in all but the `missed` ones, a deer walking past."""
    rng = np.random.default_rng(seed)
    scene = Scene()
    for f in range(frames):
        if f not in missed:
            scene.add(f, _box(0.7 + rng.normal(0, 0.0005), 0.2 + rng.normal(0, 0.0005), 0.1, 0.15), -1, score=0.7)
        scene.add(f, _box(0.1 + 0.05 * f, 0.6, 0.15, 0.2), 0, score=0.9)
    return scene


def _stump_flagged_deer_counted(scene: Scene) -> None:
    linked, counted = scene.link(seconds_per_frame=1.0)
    truth = np.array(scene.truth)
    assert linked.static[truth == -1].all() and not linked.static[truth == 0].any()
    assert counted.sum() == 1


def test_a_box_that_never_moves_in_a_short_burst_is_flagged_and_a_walking_animal_is_not():
    scene = _stump_and_deer(8, (3,), seed=9)  # the stump boxed in 7 of 8 frames
    _stump_flagged_deer_counted(scene)
    # Below static_min_burst boxes, or with short runs off, nothing is flagged.
    assert not scene.link(CONFIG.model_copy(update={"static_min_burst": 8}), seconds_per_frame=1.0)[0].static.any()
    assert not scene.link(CONFIG.model_copy(update={"static_burst_share": 0.0}),
                          seconds_per_frame=1.0)[0].static.any()


def test_a_neighbour_that_looks_different_is_not_folded_into_a_sitter():
    rng = np.random.default_rng(11)
    scene = Scene()
    _sitter(scene, 0, 0.4, 0.4, 0.12, 0.16, range(20), rng)
    for f in (6, 7):  # a small visitor of another look lands on the sitter's box for two frames
        scene.add(f, _box(0.42, 0.42, 0.04, 0.05), 1, score=0.9, look=1)
    linked, counted = scene.link()
    truth = np.array(scene.truth)
    assert np.isnan(linked.folds[truth == 1, 0]).all()
    assert not set(linked.ids[truth == 1]) & set(linked.ids[truth == 0])


def test_a_pieces_share_counts_only_the_frames_its_host_is_seen_in():
    # Track 0 (a host) in frames 0-9 but 4-5; track 1 (a piece) in frames 2-7; track 2 alone in frames 20-23.
    track_of = np.array([0] * 8 + [1] * 6 + [2] * 4)
    key = np.array([0, 1, 2, 3, 6, 7, 8, 9, 2, 3, 4, 5, 6, 7, 20, 21, 22, 23])
    rows = TrackRows(None, track_of, key, key, np.arange(len(key)), 3)  # the frame keys are the steps (one segment)
    got = _co_frames(rows, np.array([1, 2, 1]), np.array([0, 0, 2]))
    assert got.tolist() == [4, 0, 0]


def test_a_duplicate_that_takes_turns_with_the_animals_own_box_is_folded():
    rng = np.random.default_rng(12)
    scene = Scene()
    for f in range(30):  # a sitter; in every other frame NMS keeps a second box of it, shifted a fifth of a side
        cx, cy = 0.4 + rng.normal(0, 0.004), 0.4 + rng.normal(0, 0.005)  # its wings and antennae move
        scene.add(f, _box(cx, cy, 0.08, 0.1), 0, score=0.8, look=0)
        if f % 2:
            scene.add(f, _box(cx + 0.016 * rng.choice([-1, 1]), cy + 0.02 * rng.choice([-1, 1]), 0.08, 0.1), 0,
                      score=0.65, look=0)
    linked, counted = scene.link()
    truth = np.array(scene.truth)
    assert counted.sum() == 1 and len(np.unique(linked.ids[truth == 0])) == 1
    folded = ~np.isnan(linked.folds[:, 0])
    assert folded.sum() == 15 and (np.array(scene.scores)[folded] < 0.8).all()  # the duplicates, kept and linked
    # With nothing set aside and no folding, the duplicates are animals of their own.
    _, before = scene.link(CONFIG.model_copy(update={"fold": False}))
    assert before.sum() > 1


def test_two_lookalike_sitters_whose_boxes_overlap_stay_two_animals():
    rng = np.random.default_rng(13)
    scene = Scene()
    # Two moths of one look side by side, their boxes overlapping (IoU about 0.3) in every frame: neither is set
    # aside or folded. (Pressed together at an IoU of fold_set_aside or more, lookalikes are taken for a duplicate
    # in those frames: docs/guide/fixing-tracks.md.)
    _sitter(scene, 0, 0.40, 0.40, 0.08, 0.1, range(30), rng)
    _sitter(scene, 1, 0.43, 0.42, 0.08, 0.1, range(30), rng)
    scene.looks = [0] * len(scene.frames)
    linked, counted = scene.link()
    truth = np.array(scene.truth)
    assert counted.sum() == 2 and np.isnan(linked.folds[:, 0]).all()
    assert len(np.unique(linked.ids[truth == 1])) == 1 and not set(linked.ids[truth == 1]) & set(linked.ids[truth == 0])


def test_a_box_still_for_part_of_the_night_is_not_flagged_and_one_there_all_night_is():
    scene = Scene()
    for f in range(60):  # a mark on the sheet, all night; a blob detector's fixed box on a moth for 15 frames
        scene.add(f, _box(0.7, 0.2, 0.05, 0.08), -1, score=0.6)
        if 20 <= f < 35:
            scene.add(f, _box(0.3, 0.6, 0.05, 0.08), 0)
    linked, counted = scene.link()
    truth = np.array(scene.truth)
    assert linked.static[truth == -1].all() and not linked.static[truth == 0].any()
    assert counted.sum() == 1
    # static_run_share is the user's: 0 flags the still moth too.
    assert scene.link(CONFIG.model_copy(update={"static_run_share": 0.0}))[0].static[truth == 0].all()


def test_a_sitters_part_box_seen_in_short_runs_is_folded_where_its_runs_agree():
    rng = np.random.default_rng(21)
    scene = Scene()
    _sitter(scene, 0, 0.4, 0.4, 0.06, 0.1, range(60), rng)
    # Its head boxed apart in runs of 3-4 frames with no gap of their own, far apart (each run a track of its own),
    # always at the top of its box: each run alone is a sitter's run, together they come and go (issue 69).
    runs = [range(5, 9), range(24, 27), range(44, 48)]
    for f in (f for run in runs for f in run):
        scene.add(f, _box(0.4 + rng.normal(0, 0.002), 0.37, 0.03, 0.03), 0, score=0.65)
    linked, counted = scene.link()
    folded = ~np.isnan(linked.folds[:, 0])
    assert counted.sum() == 1 and folded.sum() == sum(len(run) for run in runs)
    assert (linked.link_confidence[folded] <= 0.5).all()  # weak folds: to the review queue


def test_a_part_box_inside_two_animals_boxes_goes_to_the_one_it_clearly_is_of():
    # Two walkers of close looks side by side, their boxes overlapping; animal 0's head is boxed in the overlap
    # now and then. Inside both boxes, it looks clearly more like animal 0 and overlaps its box as much.
    frames, boxes, looks, truth = [], [], [], []
    look = {0: [1.0, 0.3, 0.0, 0.0], 1: [1.0, 0.0, 0.3, 0.0]}  # 1 - cosine 0.08 apart: both within fold_look
    for f in range(20):
        cx = 0.2 + 0.01 * f
        for animal, cy in ((0, 0.5), (1, 0.56)):
            frames.append(f), boxes.append(_box(cx, cy, 0.1, 0.1)), looks.append(look[animal]), truth.append(animal)
        if f in (4, 13):
            frames.append(f), boxes.append(_box(cx, 0.53, 0.03, 0.03)), looks.append(look[0]), truth.append(0)
    frames_a, truth_a = np.array(frames), np.array(truth)
    linked = link_camera_scored(frames_a * 20.0, frames_a, np.array(boxes), CONFIG, appearance=np.array(looks),
                                scores=np.full(len(frames), 0.8))
    counted = confirmed_tracks(linked.ids, CONFIG, np.full(len(frames), 0.8), static=linked.static)
    assert counted.sum() == 2
    assert set(linked.ids[truth_a == 0]) == {linked.ids[0]} and (~np.isnan(linked.folds[:, 0])).sum() == 2


def test_duplicates_of_two_neighbours_linked_into_one_track_go_each_to_its_own_animal():
    rng = np.random.default_rng(31)
    scene = Scene()
    # Two moths of one look side by side under a blob detector's one-size boxes; NMS keeps a shifted duplicate of
    # the first in frames 4 and 5, of the second in 6 and 7. Set aside, the four duplicates are the only boxes
    # near each other and link into one track, nested in each moth in half its frames (issue 69, fixed-boxes).
    for f in range(30):
        for animal, cx in ((0, 0.30), (1, 0.40)):
            scene.add(f, _box(cx + rng.normal(0, 0.004), 0.4 + rng.normal(0, 0.005), 0.1, 0.1), animal, look=0)
        if f in (4, 5):
            scene.add(f, _box(0.32, 0.4, 0.1, 0.1), 0, score=0.7, look=0)
        if f in (6, 7):
            scene.add(f, _box(0.38, 0.4, 0.1, 0.1), 1, score=0.7, look=0)
    linked, counted = scene.link()
    truth, dup = np.array(scene.truth), np.array(scene.scores) == 0.7
    assert counted.sum() == 2
    for animal in (0, 1):  # each duplicate folded into its own moth's track
        assert len(np.unique(linked.ids[truth == animal])) == 1
    assert (~np.isnan(linked.folds[:, 0]))[dup].all()


def test_a_lone_part_box_inside_two_lookalike_walkers_goes_to_the_tighter_box():
    # A herd of lookalikes pressed together (issue 69, herd): a calf walks beside a larger animal, their boxes
    # overlapping, and the calf's head is boxed once, in the overlap. It lies inside both boxes and looks as much
    # like either; the calf's box, the tightest around it, overlaps it 2.6 x as much as the larger one's.
    frames, boxes, looks, truth = [], [], [], []
    look = {0: [1.0, 0.3, 0.0, 0.0], 1: [1.0, 0.0, 0.3, 0.0], 2: [1.0, 0.15, 0.15, 0.0]}  # 2: halfway
    for f in range(12):
        cx = 0.2 + 0.02 * f
        for animal, cy, side in ((0, 0.5, 0.1), (1, 0.6, 0.16)):
            frames.append(f), boxes.append(_box(cx, cy, side, side)), looks.append(look[animal]), truth.append(animal)
        if f == 6:
            frames.append(f), boxes.append(_box(cx, 0.535, 0.03, 0.03)), looks.append(look[2]), truth.append(0)
    frames_a, truth_a, scores = np.array(frames), np.array(truth), np.full(len(frames), 0.9)
    linked = link_camera_scored(frames_a * 20.0, frames_a, np.array(boxes), CONFIG, appearance=np.array(looks),
                                scores=scores)
    counted = confirmed_tracks(linked.ids, CONFIG, scores, static=linked.static)
    assert counted.sum() == 2
    assert set(linked.ids[truth_a == 0]) == {linked.ids[0]} and (~np.isnan(linked.folds[:, 0])).sum() == 1
    assert linked.link_confidence[~np.isnan(linked.folds[:, 0])][0] <= 0.5  # a weak fold: to the review queue


def test_part_boxes_of_two_neighbours_linked_into_one_track_go_each_to_its_own_animal():
    # Two moths of close looks pressed together under a blob detector's one-size boxes, creeping along; the
    # detector boxes a part of each now and then, in the overlap of their boxes: of the first in frames 4 and 8, of
    # the second in frame 6. Parts are not set aside (track_seconds.py): the three link into one track, nested in
    # each moth's box, so no moth holds it in fold_min_share of its frames as its own part (issue 69, fixed-boxes:
    # NOTES.md §28h). Cut by the boxes they lie in, each part goes to the moth it looks like.
    frames, boxes, looks, truth = [], [], [], []
    look = {0: [1.0, 0.3, 0.0, 0.0], 1: [1.0, 0.0, 0.3, 0.0]}  # 1 - cosine 0.08 apart: both within fold_look
    for f in range(30):
        x = 0.003 * f
        for animal, cx in ((0, 0.30), (1, 0.36)):
            frames.append(f), boxes.append(_box(x + cx, 0.4, 0.1, 0.1))
            looks.append(look[animal]), truth.append(animal)
        if f in (4, 6, 8):
            animal = int(f == 6)
            frames.append(f), boxes.append(_box(x + 0.30 + 0.05 * animal, 0.41, 0.05, 0.05))
            looks.append(look[animal]), truth.append(animal)
    frames_a, truth_a, scores = np.array(frames), np.array(truth), np.full(len(frames), 0.8)
    part = np.array([i > 0 and frames[i] == frames[i - 2] for i in range(len(frames))])
    linked = link_camera_scored(frames_a * 20.0, frames_a, np.array(boxes), CONFIG, appearance=np.array(looks),
                                scores=scores)
    counted = confirmed_tracks(linked.ids, CONFIG, scores, static=linked.static)
    assert counted.sum() == 2
    for animal in (0, 1):  # each part folded into its own moth's track
        assert len(np.unique(linked.ids[truth_a == animal])) == 1
    assert (~np.isnan(linked.folds[:, 0]))[part].all() and part.sum() == 3


def test_clear_host_keeps_both_hosts_of_a_long_piece_that_neither_look_nor_overlap_places():
    # A piece of three boxes or more in two hosts (none short): the overlap rule is for lone boxes only, and with
    # no short piece it has nothing to rank (it raised an IndexError on an empty candidate list).
    keep = clear_host(np.array([True, True]), np.array([2, 2]), np.array([0.03, 0.05]), np.array([0.09, 0.09]), 3,
                      np.array([False, False]))
    assert keep.tolist() == [True, True]


def test_a_box_that_never_moves_missed_in_three_of_a_bursts_ten_frames_is_still_flagged():
    scene = _stump_and_deer(10, (0, 2, 7), seed=12)
    _stump_flagged_deer_counted(scene)
    # static_burst_share 0.8 (the default before) asks for 8 of the 10 frames: the stump then counts.
    assert not scene.link(CONFIG.model_copy(update={"static_burst_share": 0.8}),
                          seconds_per_frame=1.0)[0].static.any()
