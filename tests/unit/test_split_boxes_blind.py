"""The blind split-box generator's own properties (benchmarks/split_boxes_scenes.py, issue 84 item 3): the split
share, the frames the second box shows, the gaps, size ratios and sides of the parts, the twins apart in truth, the
detector noise, determinism by seed. Nothing here runs or asserts anything about the tracker: the generator is a
held-out check of it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from benchmarks.split_boxes_blind import main, score_scene, summarise
from benchmarks.split_boxes_looks import frames
from benchmarks.split_boxes_scenes import (
    CAMERAS,
    KINDS,
    MAIN,
    MOTHER_YOUNG,
    PAIR,
    SECOND,
    Noise,
    SplitMistake,
    Twins,
    scene,
    split_layout,
    split_parts,
)

MOTHS = replace(CAMERAS[2], visits=70)  # several animals a burst: many animals, cheaply


def _pairs(sc):
    """(main, second, animal) clean boxes of the frames where a split animal shows both boxes."""
    out = []
    for a in (a for a in sc.animals if a["split"] is not None):
        for f in np.unique(sc.frame_ids[(sc.gt_id == a["id"]) & (sc.role == SECOND)]):
            rows = (sc.gt_id == a["id"]) & (sc.frame_ids == f)
            if (sc.role[rows] == MAIN).any():
                out.append((sc.clean[rows & (sc.role == MAIN)][0], sc.clean[rows & (sc.role == SECOND)][0], a))
    return out


def _inside(a, b):
    return bool(np.all(a[:2] >= b[:2] - 1e-12) and np.all(a[2:] <= b[2:] + 1e-12))


def test_the_split_share_is_the_mistakes_and_only_in_the_split_kind():
    for share in (0.2, 0.6):
        sc = scene(MOTHS, "split", 5, split=replace(MOTHS.split, share=share))
        split = np.array([a["split"] is not None for a in sc.animals])
        n = len(split)
        assert n > 150
        assert abs(split.mean() - share) < 4 * np.sqrt(share * (1 - share) / n)
    for kind in ("pair", "mother_young", "clean"):
        sc = scene(MOTHS, kind, 5)
        assert all(a["split"] is None for a in sc.animals) and not (sc.role == SECOND).any()


def test_the_second_box_shows_in_its_share_of_frames():
    always = scene(MOTHS, "split", 2, split=replace(MOTHS.split, share=1.0, shown=(1.0, 1.0)), noise=Noise(missed=0))
    half = scene(MOTHS, "split", 2, split=replace(MOTHS.split, share=1.0, shown=(0.5, 0.5)), noise=Noise(missed=0))
    assert sum(a["second_frames"] for a in always.animals) >= 0.9 * sum(a["frames"] for a in always.animals)
    shown = sum(a["second_frames"] for a in half.animals) / sum(a["frames"] for a in half.animals)
    assert 0.4 < shown < 0.55
    for sc in (always, half):  # no box missed: each shown frame gives exactly one second box
        assert (sc.role == SECOND).sum() == sum(a["second_frames"] for a in sc.animals)
    sc = scene(MOTHS, "split", 3)
    lo, hi = MOTHS.split.shown
    assert all(lo <= a["split"]["shown"] <= hi for a in sc.animals if a["split"] is not None)
    assert all(a["second_frames"] <= a["frames"] for a in sc.animals)


@pytest.mark.parametrize("camera", CAMERAS, ids=lambda c: c.name)
def test_the_parts_keep_their_gap_ratio_and_neither_lies_inside_the_other(camera):
    sc = scene(replace(camera, visits=60), "split", 11, split=replace(camera.split, share=0.8))
    pairs = _pairs(sc)
    assert len(pairs) > 20
    for main_box, second, a in pairs:
        lay = a["split"]
        ax = 0 if lay["axis"] == "x" else 1
        main_len, second_len = main_box[ax + 2] - main_box[ax], second[ax + 2] - second[ax]
        gap = (second[ax] - main_box[ax + 2]) if lay["side"] == "after" else (main_box[ax] - second[ax + 2])
        assert camera.split.gap[0] - 1e-9 <= gap / main_len <= camera.split.gap[1] + 1e-9
        assert camera.split.ratio[0] - 1e-9 <= second_len / main_len <= camera.split.ratio[1] + 1e-9
        assert not _inside(main_box, second) and not _inside(second, main_box)


def test_split_parts_follow_axis_side_gap_and_ratio_for_every_style():
    rng = np.random.default_rng(0)
    body = np.array([0.2, 0.3, 0.5, 0.5])
    for style in ("halves", "head", "reflection"):
        for axis in ("x", "y"):
            for side in ("after", "before"):
                mistake = SplitMistake(gap=(-0.2, 0.3), ratio=(0.5, 1.0), axis=axis, side=side, style=style)
                lay = split_layout(rng, mistake)
                main_box, second = split_parts(body, lay)
                ax = 0 if axis == "x" else 1
                if side == "after":
                    assert second[ax + 2] > main_box[ax + 2] and second[ax] > main_box[ax]
                    gap = second[ax] - main_box[ax + 2]
                else:
                    assert second[ax] < main_box[ax] and second[ax + 2] < main_box[ax + 2]
                    gap = main_box[ax] - second[ax + 2]
                main_len = main_box[ax + 2] - main_box[ax]
                assert gap / main_len == pytest.approx(lay["gap"])
                assert (second[ax + 2] - second[ax]) / main_len == pytest.approx(lay["ratio"])
                if style == "reflection":  # the animal itself is the main box
                    np.testing.assert_allclose(main_box, body)
                else:  # the two parts make up the body along the axis
                    assert min(main_box[ax], second[ax]) == pytest.approx(body[ax])
                    assert max(main_box[ax + 2], second[ax + 2]) == pytest.approx(body[ax + 2])


@pytest.mark.parametrize("kind,twins", [("pair", PAIR), ("mother_young", MOTHER_YOUNG)])
def test_twins_are_two_true_animals_beside_each_other(kind, twins):
    sc = scene(replace(CAMERAS[0], visits=60), kind, 4, noise=Noise(missed=0))
    couples = [(a, sc.animals[a["partner"]]) for a in sc.animals if a["role"] == "leader"]
    assert abs(len(couples) / 60 - twins.share) < 0.25
    near = 0
    for lead, partner in couples:
        assert lead["id"] != partner["id"] and partner["partner"] == lead["id"]
        assert partner["young"] == (kind == "mother_young")
        both = np.intersect1d(sc.frame_ids[sc.gt_id == lead["id"]], sc.frame_ids[sc.gt_id == partner["id"]])
        for f in both:
            a = sc.clean[(sc.gt_id == lead["id"]) & (sc.frame_ids == f)][0]
            b = sc.clean[(sc.gt_id == partner["id"]) & (sc.frame_ids == f)][0]
            assert not _inside(a, b) and not _inside(b, a)
            size = (b[2] - b[0]) / (a[2] - a[0])
            assert twins.ratio[0] - 1e-9 <= size <= twins.ratio[1] + 1e-9
            # beside each other: the centres within two leader lengths (the offset wanders only a little)
            near += bool(np.all(np.abs((a[:2] + a[2:]) - (b[:2] + b[2:])) / 2 < 2 * (a[2:] - a[:2])))
        assert len(both) > 0 or not lead["frames"] or not partner["frames"]
    assert near > 0.9 * sum(len(np.intersect1d(sc.frame_ids[sc.gt_id == a["id"]], sc.frame_ids[sc.gt_id == b["id"]]))
                            for a, b in couples)


def test_detector_noise_jitters_edges_and_misses_a_share_of_boxes():
    sc = scene(MOTHS, "clean", 8, noise=Noise(jitter=0.05, missed=0.2))
    expected = sum(a["frames"] for a in sc.animals)
    assert abs(len(sc.boxes) / expected - 0.8) < 0.04
    size = np.tile(sc.clean[:, 2:] - sc.clean[:, :2], 2)
    inside = np.all((sc.clean > 0.01) & (sc.clean < 0.99), axis=1)  # edges not clipped at the frame
    assert np.std(((sc.boxes - sc.clean) / size)[inside]) == pytest.approx(0.05, rel=0.15)
    assert np.all(sc.boxes[:, 2:] > sc.boxes[:, :2]) and sc.boxes.min() >= 0 and sc.boxes.max() <= 1


def test_a_night_is_ordered_in_frames_and_time():
    for kind in KINDS:
        sc = scene(CAMERAS[3], kind, 9)
        assert np.all(np.diff(sc.frame_ids) >= 0) and np.all(np.diff(sc.times_s) >= 0)
        for f in np.unique(sc.frame_ids)[:20]:
            assert len(np.unique(sc.times_s[sc.frame_ids == f])) == 1
        pauses = np.diff(np.unique(sc.times_s))
        assert pauses.max() >= CAMERAS[3].pause_s[0] and sc.visits == len(np.unique(sc.gt_id))


def test_scenes_and_pictures_are_deterministic_by_seed():
    for cam in CAMERAS:
        a, b, c = scene(cam, "split", 21), scene(cam, "split", 21), scene(cam, "split", 22)
        for field in ("times_s", "frame_ids", "boxes", "scores", "gt_id", "role"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert len(a.boxes) != len(c.boxes) or not np.array_equal(a.boxes, c.boxes)
    small = replace(CAMERAS[3], visits=2)
    one, two = frames(scene(small, "split", 1)), frames(scene(small, "split", 1))
    assert one.keys() == two.keys() and all(np.array_equal(one[f], two[f]) for f in one)


def test_bad_mistakes_and_kinds_are_refused():
    with pytest.raises(ValueError, match="split share"):
        SplitMistake(share=1.5)
    with pytest.raises(ValueError, match="ratio"):
        SplitMistake(ratio=(0.1, 0.2))
    with pytest.raises(ValueError, match="kind"):
        scene(CAMERAS[0], "herd", 1)


def test_the_scoring_reads_folds_and_merges_from_the_ids_given():
    """The benchmark's own scoring, on ids written here (no tracker): the truth folds every second box; one id per
    couple merges them all; an id per box counts every second box as an animal."""
    split, pair = scene(CAMERAS[1], "split", 3), scene(CAMERAS[1], "pair", 3)
    truth = score_scene(split, split.gt_id, np.ones(split.gt_id.max() + 1, bool))
    assert truth["count"] == truth["visits"] and truth["folded"] == truth["seconds"] > 0
    apart = np.arange(len(split.gt_id))
    assert score_scene(split, apart, np.ones(len(apart), bool))["folded"] == 0
    joined = np.array([min(g, pair.animals[g]["partner"]) if pair.animals[g]["partner"] >= 0 else g
                       for g in pair.gt_id])
    merged = score_scene(pair, joined, np.ones(joined.max() + 1, bool))
    assert merged["merged"] == merged["couples"] > 0
    rows = [{"draw": 0, **truth}]
    assert summarise(rows, 1)[0]["count error %"] == 0.0


def test_the_command_refuses_no_draws(capsys):
    assert main(["--draws", "0"]) == 2
    assert "error: --draws" in capsys.readouterr().err


def test_a_wandering_partner_never_lies_inside_its_leader():
    wander = Twins(share=1.0, ratio=(0.35, 0.5), gap=(-0.1, 0.0), drift=0.3)
    sc = scene(replace(CAMERAS[1], visits=40), "mother_young", 6, twins=wander, noise=Noise(missed=0))
    checked = 0
    for lead in (a for a in sc.animals if a["role"] == "leader"):
        for f in np.intersect1d(sc.frame_ids[sc.gt_id == lead["id"]], sc.frame_ids[sc.gt_id == lead["partner"]]):
            a = sc.clean[(sc.gt_id == lead["id"]) & (sc.frame_ids == f)][0]
            b = sc.clean[(sc.gt_id == lead["partner"]) & (sc.frame_ids == f)][0]
            assert not _inside(b, a)
            checked += 1
    assert checked > 50
