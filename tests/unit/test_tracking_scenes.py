"""The tracking benchmark at a tiny size: on synthetic scenes with known truth (tests/fixtures/tracking_scenes.py),
trapline's tracker meets issue 32's targets where counting per frame fails."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.tracking import run_trapline, score
from benchmarks.tracking_metrics import count_errors, max_per_frame
from model_store.core.filters.tracking import TrackConfig
from tests.fixtures.tracking_scenes import camera_burst, light_trap_sheet


@pytest.fixture(scope="module")
def scenes():
    seqs = [light_trap_sheet(101 + i, hours=1.0) for i in range(3)] + [camera_burst(200 + i) for i in range(30)]
    return [{"name": s.name, "kind": s.kind, "n_animals": s.n_animals, **s.arrays()} for s in seqs]


def test_the_generator_is_deterministic_and_knows_its_truth():
    a, b = light_trap_sheet(5, hours=0.3).arrays(), light_trap_sheet(5, hours=0.3).arrays()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert (a["truth"] >= 0).any() and (a["truth"] == -1).any()  # real animals and false positives
    assert set(a["truth"][a["truth"] >= 0]) <= set(a["gt_id"])


def test_tracking_counts_the_sheets_where_max_per_frame_is_far_off(scenes):
    sheets = [s for s in scenes if s["kind"] == "sheet"]
    per_frame = count_errors([max_per_frame(s) for s in sheets], [s["n_animals"] for s in sheets])
    assert (per_frame >= 0.3).all()  # the case the issue is about
    ids, _ = run_trapline(sheets, TrackConfig())
    result = score(sheets, ids)["sheet"]
    # Three one-hour nights are ~120 animals: one far return or one merge moves the mean by ~1 %. Insects fly off
    # for up to 10 frames and come back (one in five elsewhere): the frame-by-frame pass, strict so that newcomers
    # do not take the tracks of insects that left, splits them, and stitching joins them back by the whole tracks'
    # size and look (issue 48; 4.5 % here with gap filling, 5.5 % without, 14.5 % without stitching either).
    assert result["count_error_mean_pct"] <= 10.0
    assert result["count_error_mean_pct"] <= 100 * per_frame.mean() / 3
    assert result["id_switches_per_100"] <= 25.0


def test_bursts_keep_their_ids(scenes):
    bursts = [s for s in scenes if s["kind"] == "burst"]
    ids, _ = run_trapline(bursts, TrackConfig())
    result = score(bursts, ids)["burst"]
    assert result["true_tracks"] >= 45
    assert result["id_switches_per_100"] <= 2.0
    assert result["count_error_mean_pct"] <= 5.0
