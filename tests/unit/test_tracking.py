"""The tracker (model_store/core/filters/tracking.py): bursts, crossings, gaps, unknown times, its config."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from model_store.core.filters.appearance import DESCRIPTOR_LENGTH, appearance_descriptor, appearance_separation
from model_store.core.filters.tracking import TrackConfig, confirmed_tracks, link_camera, link_camera_scored

CONFIG = TrackConfig()


def _box(cx: float, cy: float, w: float = 0.1, h: float = 0.08) -> list[float]:
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def _patch(rgb: tuple[int, int, int], stripes: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.empty((40, 48, 3), dtype=np.float64)
    img[:] = rgb
    if stripes:
        img[:, ::6] *= 0.4
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def test_a_deer_standing_in_a_burst_of_ten_frames_is_one_track():
    rng = np.random.default_rng(0)
    boxes = [_box(0.5 + rng.normal(0, 0.005), 0.5 + rng.normal(0, 0.005), 0.3, 0.25) for _ in range(10)]
    ids = link_camera(np.arange(10.0), np.arange(10), np.array(boxes), CONFIG)
    assert ids.tolist() == [0] * 10


def test_two_animals_that_cross_are_two_tracks_and_keep_their_ids():
    times, frames, boxes, truth, app = [], [], [], [], []
    looks = {0: appearance_descriptor(_patch((150, 90, 40), False, 1)),
             1: appearance_descriptor(_patch((90, 90, 95), True, 2))}
    for f in range(12):
        # one walks right, the other left, at the same height: their boxes overlap in the middle frames
        for animal, cx in ((0, 0.1 + 0.07 * f), (1, 0.9 - 0.07 * f)):
            times.append(float(f))
            frames.append(f)
            boxes.append(_box(cx, 0.5, 0.15, 0.12))
            truth.append(animal)
            app.append(looks[animal])
    order = np.random.default_rng(3).permutation(len(boxes))  # any order in
    ids = link_camera(np.array(times)[order], np.array(frames)[order], np.array(boxes)[order], CONFIG,
                      appearance=np.array(app)[order])
    truth = np.array(truth)[order]
    assert len(set(ids.tolist())) == 2
    for animal in (0, 1):
        assert len(set(ids[truth == animal].tolist())) == 1
    assert ids[truth == 0][0] != ids[truth == 1][0]


def test_a_missed_frame_relinks_but_a_gap_longer_than_max_gap_splits():
    boxes = np.array([_box(0.3, 0.3)] * 4)
    short = link_camera(np.array([0.0, 20.0, 60.0, 80.0]), np.array([0, 1, 3, 4]), boxes, CONFIG)
    assert short.tolist() == [0, 0, 0, 0]
    config = TrackConfig(max_gap_s=100.0)
    long = link_camera(np.array([0.0, 20.0, 500.0, 520.0]), np.array([0, 1, 2, 3]), boxes, config)
    assert long.tolist() == [0, 0, 1, 1]
    frames_only = TrackConfig(max_gap_frames=1)
    times = np.array([0.0, 1.0, 4.0])  # frames 2 and 3 hold only another animal
    frame_ids = np.array([0, 1, 4])
    ids = link_camera(np.concatenate([times, [2.0, 3.0]]), np.concatenate([frame_ids, [2, 3]]),
                      np.concatenate([boxes[:3], [_box(0.8, 0.8), _box(0.8, 0.8)]]), frames_only)
    assert ids[0] == ids[1] and ids[2] != ids[1]  # missed in 2 frames: more than max_gap_frames=1


def test_unknown_times_link_to_nothing():
    boxes = np.array([_box(0.3, 0.3)] * 4)
    ids = link_camera(np.array([0.0, np.nan, np.nan, 20.0]), np.array([0, 1, 2, 3]), boxes, CONFIG)
    assert ids[0] == ids[3]
    assert len({ids[0], ids[1], ids[2]}) == 3


def test_never_two_detections_of_one_frame_in_one_track():
    rng = np.random.default_rng(5)
    n = 400
    frames = rng.integers(0, 40, n)
    boxes = np.array([_box(*rng.uniform(0.3, 0.4, 2), 0.1, 0.1) for _ in range(n)])  # a crowded corner
    ids = link_camera(frames * 20.0, frames, boxes, CONFIG.model_copy(update={"fold": False}))
    pairs = np.unique(np.stack([ids, frames], axis=1), axis=0)
    assert len(pairs) == n
    assert sorted(set(ids.tolist())) == list(range(ids.max() + 1))
    # Folding (an animal's second box) is the one way two boxes of a frame share a track: one inside the other, or
    # (side folds, issue 84) one of them a folded box beside the other.
    linked = link_camera_scored(frames * 20.0, frames, boxes, CONFIG)
    ids, folded = linked.ids, ~np.isnan(linked.folds[:, 0])
    for i in range(n):
        for j in np.flatnonzero((ids == ids[i]) & (frames == frames[i]) & (np.arange(n) > i)):
            a, b = boxes[i], boxes[j]
            inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)
            nested = inter >= CONFIG.fold_inside * min(np.prod(a[2:] - a[:2]), np.prod(b[2:] - b[:2])) - 1e-12
            assert nested or folded[i] or folded[j]


def test_ids_are_in_first_seen_order():
    boxes = np.array([_box(0.8, 0.8), _box(0.2, 0.2), _box(0.2, 0.2)])
    ids = link_camera(np.array([40.0, 0.0, 20.0]), np.array([2, 0, 1]), boxes, CONFIG)
    assert ids.tolist() == [1, 0, 0]


def test_labels_link_across_unless_cross_label_is_off():
    boxes = np.array([_box(0.5, 0.5)] * 2)
    args = (np.array([0.0, 20.0]), np.array([0, 1]), boxes)
    assert link_camera(*args, CONFIG, labels=np.array(["moth", "beetle"])).tolist() == [0, 0]
    strict = TrackConfig(cross_label=False)
    assert link_camera(*args, strict, labels=np.array(["moth", "beetle"])).tolist() == [0, 1]
    assert link_camera(*args, strict, labels=np.array([None, None], dtype=object)).tolist() == [0, 0]


def test_appearance_keeps_apart_two_animals_at_one_place():
    red, grey = appearance_descriptor(_patch((200, 40, 40), False, 1)), appearance_descriptor(_patch((120,) * 3,
                                                                                                   True, 2))
    boxes = np.array([_box(0.5, 0.5)] * 2)
    ids = link_camera(np.array([0.0, 20.0]), np.array([0, 1]), boxes, CONFIG, appearance=np.stack([red, grey]))
    assert ids.tolist() == [0, 1]
    assert link_camera(np.array([0.0, 20.0]), np.array([0, 1]), boxes, TrackConfig(appearance="none"),
                       appearance=np.stack([red, grey])).tolist() == [0, 0]


def test_appearance_descriptor_is_fixed_length_normalised_and_stable_under_light():
    a = _patch((40, 120, 200), True, 1)
    vec = appearance_descriptor(a)
    assert vec.dtype == np.float32 and vec.shape == (DESCRIPTOR_LENGTH,)
    assert abs(float(np.linalg.norm(vec)) - 1) < 1e-5
    darker = appearance_descriptor((a * 0.7).astype(np.uint8)[:30, :35])
    other = appearance_descriptor(_patch((200, 160, 40), False, 2))
    assert float(vec @ darker) > float(vec @ other) + 0.2
    with pytest.raises(ValueError, match="shape"):
        appearance_descriptor(np.zeros((4, 4)))


def test_confirmed_tracks_drop_a_lone_unsure_box():
    ids = np.array([0, 0, 1, 2])
    two = TrackConfig(min_frames=2)  # the default is 3 since issue 48's fit
    assert confirmed_tracks(ids, two, scores=np.array([0.3, 0.3, 0.3, 0.9])).tolist() == [True, False, True]
    assert confirmed_tracks(ids, two).tolist() == [True, False, False]
    assert confirmed_tracks(ids, CONFIG, scores=np.array([0.3, 0.3, 0.3, 0.9])).tolist() == [False, False, True]


def test_empty_and_mismatched_inputs():
    assert link_camera(np.zeros(0), np.zeros(0), np.zeros((0, 4)), CONFIG).shape == (0,)
    with pytest.raises(ValueError, match="differ in length"):
        link_camera(np.zeros(2), np.zeros(3), np.zeros((3, 4)), CONFIG)
    with pytest.raises(ValueError, match="appearance"):
        link_camera(np.zeros(1), np.zeros(1), np.zeros((1, 4)), CONFIG, appearance=np.zeros((2, 5)))


@pytest.mark.parametrize(("field", "value"), [("max_gap_s", 0), ("max_gap_frames", -1), ("max_cost", -0.1),
                                              ("min_iou", 1.0), ("appearance", "sift"), ("min_size_ratio", 1.5),
                                              ("nonsense", 1)])
def test_bad_config_values_are_rejected_naming_the_field(field, value):
    with pytest.raises(ValidationError, match=field):
        TrackConfig(**{field: value})


def test_all_weights_zero_is_rejected():
    with pytest.raises(ValidationError, match="iou_weight"):
        TrackConfig(iou_weight=0, size_weight=0, distance_weight=0, appearance_weight=0)


def test_two_lookalikes_that_cross_keep_their_ids_by_their_motion():
    times, frames, boxes, truth = [], [], [], []
    for f in range(12):
        for animal, cx in ((0, 0.1 + 0.07 * f), (1, 0.9 - 0.07 * f)):
            times.append(float(f))
            frames.append(f)
            boxes.append(_box(cx, 0.5 + 0.01 * animal, 0.15, 0.12))
            truth.append(animal)
    ids = link_camera(np.array(times), np.array(frames), np.array(boxes), TrackConfig(appearance="none"))
    truth = np.array(truth)
    assert [len(set(ids[truth == a].tolist())) for a in (0, 1)] == [1, 1]
    assert ids[truth == 0][0] != ids[truth == 1][0]
    stopped = link_camera(np.array(times), np.array(frames), np.array(boxes),
                          TrackConfig(appearance="none", predict_motion=False))
    assert len(set(stopped[truth == 0].tolist())) > 1  # without the predicted box they swap where they meet


def test_a_moth_that_leaves_and_another_that_lands_nearby_are_two_tracks():
    # issue 48: one sits for five frames and leaves; a lookalike lands 1.5 box sizes away in the next frame
    boxes = [_box(0.5, 0.5, 0.05, 0.05)] * 5 + [_box(0.575, 0.5, 0.05, 0.05)] * 5
    ids = link_camera(np.arange(10) * 20.0, np.arange(10), np.array(boxes), CONFIG)
    assert ids.tolist() == [0] * 5 + [1] * 5
    # a crawler that moved as far at a steady pace all along is one track (its own motion widens its gate)
    crawl = [_box(0.3 + 0.025 * f, 0.5, 0.05, 0.05) for f in range(10)]  # half a body length a frame
    assert link_camera(np.arange(10) * 20.0, np.arange(10), np.array(crawl), CONFIG).tolist() == [0] * 10


def test_a_moth_of_another_size_on_the_spot_of_one_that_sat_is_another_moth():
    # issue 48, same-spot turnover: one sits for five frames and leaves; a smaller one lands on its very spot
    boxes = [_box(0.5, 0.5, 0.05, 0.05)] * 5 + [_box(0.5, 0.5, 0.035, 0.035)] * 5
    ids = link_camera(np.arange(10) * 20.0, np.arange(10), np.array(boxes), CONFIG)
    assert ids.tolist() == [0] * 5 + [1] * 5
    # one of its own size coming back there is the same moth, even after two missed frames
    back = [_box(0.5, 0.5, 0.05, 0.05)] * 5 + [_box(0.51, 0.5, 0.052, 0.05)] * 3
    frames = np.array([0, 1, 2, 3, 4, 7, 8, 9])
    assert link_camera(frames * 20.0, frames, np.array(back), CONFIG).tolist() == [0] * 8
    # a standing deer that the frame's edge cuts changes size without being another deer
    edge = [[0.0, 0.4, 0.2 - 0.015 * f, 0.6] for f in range(8)]
    assert link_camera(np.arange(8.0), np.arange(8), np.array(edge), CONFIG).tolist() == [0] * 8


def test_a_box_its_sitter_refused_for_one_frame_is_given_back_to_it():
    # a sitter's box in frame 5 is too small for the sitter gate; it starts a track of its own, and the sitter
    # goes on in frame 6: one moth, not two (and not two ID switches)
    boxes = [_box(0.5, 0.5, 0.05, 0.05)] * 5 + [_box(0.5, 0.5, 0.039, 0.039)] + [_box(0.5, 0.5, 0.05, 0.05)] * 4
    times, frames = np.arange(10) * 20.0, np.arange(10)
    unfilled = link_camera(times, frames, np.array(boxes), TrackConfig(fill_max_frames=0))
    assert unfilled.tolist() == [0] * 5 + [1] + [0] * 4
    linked = link_camera_scored(times, frames, np.array(boxes), CONFIG)
    assert linked.ids.tolist() == [0] * 10
    assert 0.0 < linked.link_confidence[5] <= 1.0
    # a newcomer a body length off while the sitter was missed is another moth
    beside = [_box(0.5, 0.5, 0.05, 0.05)] * 5 + [_box(0.55, 0.5, 0.05, 0.05)] + [_box(0.5, 0.5, 0.05, 0.05)] * 4
    assert link_camera(times, frames, np.array(beside), CONFIG).tolist() == [0] * 5 + [1] + [0] * 4


def test_a_short_track_two_tracks_could_take_is_left_alone():
    # two sitters side by side, both missed in frame 5; one box between them, of a size neither sitter takes:
    # either could own it, so neither is given it
    boxes, frames = [], []
    for f in range(10):
        if f == 5:
            boxes.append(_box(0.5, 0.5, 0.039, 0.039))
            frames.append(f)
            continue
        boxes += [_box(0.488, 0.5, 0.05, 0.05), _box(0.512, 0.5, 0.05, 0.05)]
        frames += [f, f]
    frames = np.array(frames)
    ids = link_camera(frames * 20.0, frames, np.array(boxes), CONFIG)
    assert len(set(ids.tolist())) == 3


def test_each_link_says_how_sure_it_is():
    # a sitter: sure links; then a second insect lands beside it and one of them leaves: the link after is unsure
    still = [_box(0.5, 0.5, 0.06, 0.06)] * 4
    times, frames = list(np.arange(4) * 20.0), list(range(4))
    boxes = still + [_box(0.5, 0.5, 0.06, 0.06), _box(0.53, 0.5, 0.06, 0.06), _box(0.515, 0.5, 0.06, 0.06)]
    times += [80.0, 80.0, 100.0]
    frames += [4, 4, 5]
    linked = link_camera_scored(np.array(times), np.array(frames), np.array(boxes), CONFIG)
    assert linked.ids.tolist()[:4] == [0] * 4 and linked.link_confidence[0] == 1.0
    assert (linked.link_confidence[1:4] > 0.8).all()
    assert linked.link_confidence[6] < 0.3  # equally near both: a coin toss, and it says so
    assert (linked.link_confidence >= 0).all() and (linked.link_confidence <= 1).all()


def test_appearance_counts_only_where_it_separates_the_animals():
    rng = np.random.default_rng(1)
    patches = [_patch(tuple(int(c) for c in rng.integers(30, 220, 3)), bool(k % 2), k) for k in range(6)]
    distinct = np.stack([appearance_descriptor(p) for p in patches])
    frame_rank = np.repeat(np.arange(10), 6)
    boxes = np.array([_box(0.1 + 0.15 * k, 0.5) for _ in range(10) for k in range(6)])
    apart = appearance_separation(np.tile(distinct, (10, 1)) + rng.normal(0, 0.01, (60, distinct.shape[1])),
                                  frame_rank, boxes)
    alike = np.tile(distinct[:1], (60, 1)) + rng.normal(0, 0.01, (60, distinct.shape[1]))
    assert apart > 0.9
    assert appearance_separation(alike, frame_rank, boxes) < 0.3
    constant = np.tile(distinct[:1], (60, 1))  # one vector for every snip (ties): it separates nothing
    assert appearance_separation(constant, frame_rank, boxes) < 0.1


def _sheet(looks: list[tuple[tuple[int, int, int], bool]], plan: list[tuple[int, list[int], tuple[float, float]]]):
    """Detections of sitting insects: plan[i] = (look index, frames on view, (cx, cy)); each frame's snip is its
    own draw of the insect's look."""
    times, frames, boxes, app, truth = [], [], [], [], []
    for animal, (look, on_view, (cx, cy)) in enumerate(plan):
        rgb, stripes = looks[look]
        for f in on_view:
            times.append(20.0 * f)
            frames.append(f)
            boxes.append(_box(cx + (0.03 if f > on_view[0] + 10 and animal == 0 else 0.0), cy, 0.05, 0.05))
            app.append(appearance_descriptor(_patch(rgb, stripes, 1000 * animal + f)))
            truth.append(animal)
    return np.array(times), np.array(frames), np.array(boxes), np.array(app), np.array(truth)


def test_an_insect_that_flies_off_for_minutes_and_comes_back_is_stitched_back_to_its_track():
    # issue 48: ten insects of ten looks sit on a sheet; the first flies off for eight frames (more than
    # max_gap_frames) and lands back half a body length off; the second leaves and a newcomer of another look
    # takes its spot. Issue 58: the stitch rests on this camera's own evidence (its insects seen together are
    # far apart; one insect's halves are close), so the sheet holds enough insects to calibrate on.
    rng = np.random.default_rng(4)
    looks = [(tuple(int(c) for c in rng.integers(30, 220, 3)), bool(k % 2)) for k in range(11)]
    plan = [(0, [f for f in range(30) if not 10 <= f < 18], (0.2, 0.3)),
            (1, list(range(12)), (0.5, 0.3)), (6, list(range(15, 30)), (0.5, 0.3))]
    plan += [(k, list(range(30)), (0.2 + 0.25 * (k - 2), 0.7)) for k in range(2, 6)]
    plan += [(k, list(range(30)), (0.15 + 0.2 * (k - 7), 0.5)) for k in range(7, 11)]
    times, frames, boxes, app, truth = _sheet(looks, plan)
    ids = link_camera(times, frames, boxes, CONFIG, appearance=app)
    assert [len(set(ids[truth == a].tolist())) for a in range(len(plan))] == [1] * len(plan)
    assert len(set(ids.tolist())) == len(plan)  # the newcomer on the second's spot is not stitched to it
    unstitched = link_camera(times, frames, boxes, TrackConfig(stitch_gap_frames=0), appearance=app)
    assert len(set(unstitched[truth == 0].tolist())) == 2
    linked = link_camera_scored(times, frames, boxes, CONFIG, appearance=app)
    back = np.flatnonzero((truth == 0) & (frames == 18))
    assert 0.0 < linked.link_confidence[back][0] <= 1.0  # the stitch's calibrated probability
    distance, gap, probability = linked.stitches[back][0]
    assert gap == 8 and 0 <= distance < 0.05 and probability == linked.link_confidence[back][0]
    assert np.isnan(linked.stitches[truth != 0]).all()  # only the stitched detection carries a join's evidence
    # a sheet of one look: appearance cannot tell a return from a newcomer, so nothing is stitched
    times, frames, boxes, app, truth = _sheet([looks[0]] * 11, plan)
    alike = link_camera(times, frames, boxes, CONFIG, appearance=app)
    assert len(set(alike[truth == 0].tolist())) == 2


def test_sitters_side_by_side_are_linked_with_the_margin_they_have():
    # three sitters whose boxes overlap: each frame's links go to the Hungarian solver together. Each link is its
    # track's and its box's cheapest pair by far, so none is unsure; the link cost read back from the solver's
    # matrix ((cost - max_cost) + max_cost) rounded above the cost and made some of them 0 (the review queue's top)
    rng = np.random.default_rng(3)
    boxes, frames = [], []
    for f in range(10):
        for x in (0.40, 0.43, 0.46):
            boxes.append(_box(x + rng.normal(0, 0.002), 0.5 + rng.normal(0, 0.002), 0.05, 0.05))
            frames.append(f)
    frames = np.array(frames)
    linked = link_camera_scored(frames * 20.0, frames, np.array(boxes), CONFIG)
    assert linked.ids.reshape(10, 3).T.tolist() == [[0] * 10, [1] * 10, [2] * 10]
    assert (linked.link_confidence[3:] > 0.4).all()
