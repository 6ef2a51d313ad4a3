"""Repeat-detection elimination: the recurrence rule, its typed config, and `trapline postprocess --filter repeat`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from batch.reprocess.options import ReprocessOptions
from batch.reprocess.plan import plan_run
from model_store import FilterConfigError, FilterSet
from model_store.core.filters import DetectionArrays
from model_store.core.filters.repeat import recurring
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS
from model_store.tables.scope import Scope, ScopeError
from tests.fixtures.archive import PATH_PATTERN
from tests.fixtures.postprocess import postprocess
from tests.fixtures.review import two_version_tables
from trapline.cli import main

STICK = [0.40, 0.40, 0.50, 0.50]


def boxes(*rows):
    return np.array(rows, dtype=np.float64)


def test_a_box_fires_when_it_recurs_in_min_images_distinct_images():
    shifted = [0.405, 0.40, 0.505, 0.50]  # IoU ~0.9 with STICK
    elsewhere = [0.0, 0.0, 0.1, 0.1]
    b = boxes(STICK, shifted, STICK, STICK, elsewhere)
    images = np.array([0, 1, 2, 2, 3])  # image 2 holds the stick twice: one image, counted once
    assert recurring(b, images, None, iou=0.85, min_images=3).tolist() == [True, True, True, True, False]
    assert not recurring(b, images, None, iou=0.85, min_images=4).any()
    # at IoU 0.95 the shifted box stands alone; the exact ones still meet in images 0 and 2
    assert recurring(b, images, None, iou=0.95, min_images=2).tolist() == [True, False, True, True, False]


def test_the_window_limits_which_images_count():
    b = boxes(STICK, STICK, STICK, STICK)
    images = np.arange(4)
    hours = np.array([0.0, 1.0, 2.0, 100.0]) * 3600
    got = recurring(b, images, hours, iou=0.85, min_images=3, window_s=2 * 3600)
    assert got.tolist() == [True, True, True, False]
    # unknown times are compared with nothing but their own image when a window is set
    got = recurring(b, images, np.array([0.0, 1.0, np.nan, np.nan]) * 3600, iou=0.85, min_images=2, window_s=3600)
    assert got.tolist() == [True, True, False, False]
    # many boxes: the blocked computation gives what the direct rule gives
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 0.9, (400, 2)).round(1)
    many = np.concatenate([xy, xy + 0.1], axis=1)
    ids, t = np.arange(400), rng.uniform(0, 50 * 3600, 400)
    got = recurring(many, ids, t, iou=0.85, min_images=3, window_s=6 * 3600)
    same = (np.abs(many[:, None] - many[None]).max(axis=2) < 1e-9) & (np.abs(t[:, None] - t[None]) <= 6 * 3600)
    assert got.tolist() == (same.sum(axis=1) >= 3).tolist() and got.any() and not got.all()


def test_repeat_config_is_typed_and_cannot_run_per_image():
    with pytest.raises(FilterConfigError, match="min_images"):
        FilterSet.from_specs([{"name": "repeat", "config": {"min_images": 1}}])
    with pytest.raises(FilterConfigError, match="iou"):
        FilterSet.from_specs([{"name": "repeat", "config": {"iou": 1.5}}])
    fs = FilterSet.from_specs([{"name": "score", "config": {"min_score": 0.5}},
                               {"name": "repeat", "config": {"window_hours": 24, "action": "flag"}}])
    assert fs.table_level == ["repeat"]
    with pytest.raises(FilterConfigError, match="table-level filter"):
        fs.require_per_image()
    dets = DetectionArrays(boxes([0, 0, 10, 10], [0, 0, 5, 5]), np.array([0.9, 0.4]), np.array([0, 0]), ["deer"],
                           100, 100)
    with pytest.raises(FilterConfigError, match="stored tables"):
        fs.apply(dets)
    kept, flags = fs.apply(dets, {"repeat": np.array([True, False])})
    assert kept.tolist() == [True, False] and flags == [["repeat"], ["score"]]  # flag: annotated, still kept


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("repeat")
    spec, archive, out, store = two_version_tables(d)
    return {"spec": spec, "archive": archive, "out": out, "store": store}


@pytest.fixture
def tables(env, tmp_path):
    shutil.copytree(env["out"], tmp_path / "tables")
    return tmp_path / "tables"


def flags_by_uri(out, filters_hash, name="repeat"):
    det = Tables(open_location(str(out))).read(DETECTIONS, "trapcam", "1").to_pandas()
    det = det[det.filters_hash == filters_hash]
    return {u: tuple(sorted(int(i) for i, f in zip(g["detection_index"], g["flags"], strict=True) if name in list(f)))
            for u, g in det.groupby("uri")}


def test_postprocess_repeat_drops_recurring_boxes_and_reports_stage_metrics(env, tables):
    lines = []
    report = postprocess(str(tables), "repeat", {"min_images": 3, "min_score": 0.5}, model="trapcam:1",
                             progress=lines.append, progress_interval=0)
    ok = [r for r in env["spec"].good if r not in env["spec"].blank]
    # Every landscape day frame holds the same three boxes scoring >= 0.5 at the same normalised place:
    # with >= 3 such frames per camera, each recurs. cam01's one portrait frame (the PNG) has its
    # boxes elsewhere in normalised terms, so nothing recurs there.
    landscape = [r for r in ok if not r.endswith(".png")]
    assert report.in_scope == len(env["spec"].images)
    assert report.detections_checked == 4 * len(ok)
    assert report.flagged == report.kept_before - report.kept_after == 3 * len(landscape)
    assert report.images_changed == len(landscape) and report.became_empty == 0
    assert any(line.startswith("repeat: comparing") for line in lines)
    assert any(f"{len(env['spec'].images)}/{len(env['spec'].images)} image(s) (100%)" in line for line in lines)
    manifest = json.loads(open(report.manifest).read())
    assert manifest["arguments"]["scope"]["kind"] == "table"
    assert manifest["counts"]["flagged"] == report.flagged
    assert manifest["counts"]["images_changed"] == len(landscape)
    # the three boxes >= 0.5 (0.81, 0.64, 0.55) of each landscape frame; nothing on the portrait one
    assert set(flags_by_uri(tables, report.filters_hash).values()) == {(), (0, 1, 2)}


def test_scoped_runs_flag_what_a_whole_table_run_flags(env, tables):
    config = {"min_images": 3, "window_hours": 5}  # cam01 frames are 2 h apart: 3 frames within +-5 h
    whole = postprocess(str(tables), "repeat", config, model="trapcam:1", dry_run=False)
    expected = flags_by_uri(tables, whole.filters_hash)
    cam01 = sorted(u for u in expected if "/cam01/" in u)
    # A window holding just the first cam01 frame: its evidence is widened by the filter's window.
    spec_path = sorted(r for r in env["spec"].good if r.startswith("cam01/2024-05-01"))[1]
    for kw in ({"since": "2024-05-01T07:00", "until": "2024-05-01T08:30"}, {"image": spec_path},
               {"cameras": ["cam01"]}):
        fresh = tables.parent / f"scoped-{len(kw)}-{sorted(kw)[0]}"
        shutil.copytree(env["out"], fresh)
        report = postprocess(str(fresh), "repeat", config, model="trapcam:1", **kw)
        got = flags_by_uri(fresh, report.filters_hash)
        assert any(got.values()) and all(got[u] == expected[u] for u in got), kw
        if "image" in kw:
            assert report.images == report.in_scope == 1 and list(got) == [str(env["archive"] / spec_path)]
        if "cameras" in kw:
            assert sorted(got) == cam01


def test_scope_flags_intersect_and_an_unknown_image_is_an_error(env, tables, capsys):
    """--camera, --since/--until and --image mean the same in every command: given together they intersect."""
    both = postprocess(str(tables), "score", {"min_score": 0.5}, model="trapcam:1", cameras=["cam01"],
                           since="2024-05-01T07:00", dry_run=True)
    cam01 = [r for r in env["spec"].images if r.startswith("cam01/")]
    later = [r for r in cam01 if r.startswith("cam01/2024-05-01/") and r.split("_")[-1][:4] >= "0700"]
    assert 0 < both.in_scope < len(cam01), (both.in_scope, len(cam01))
    assert both.in_scope >= len(later)
    assert Scope.of(["cam01"], "2024-05-01").describe().startswith("camera cam01, captured 2024-05-01")
    with pytest.raises(ScopeError, match="no image"):
        postprocess(str(tables), "score", {"min_score": 0.5}, model="trapcam:1", image="cam09/nope.jpg")
    with pytest.raises(ScopeError, match="after --until"):
        Scope.of(since="2024-05-02", until="2024-05-01")
    code = main(["postprocess", "--tables", str(tables), "--model", "trapcam:1", "--filter", "score", "--config",
                 '{"min_score": 0.5}', "--camera", "cam02", "--image", str(env["archive"] / cam01[0]), "--dry-run"])
    assert code == 2 and "no image" in capsys.readouterr().err  # cam01's image is not in cam02: nothing selected


def test_reprocess_refuses_a_table_level_filter(env, tmp_path):
    options = ReprocessOptions(archive=str(env["archive"]), out=str(tmp_path / "t"), model="trapcam:1",
                               store=env["store"].root, path_pattern=PATH_PATTERN, filters={"repeat": {}})
    with pytest.raises(FilterConfigError, match="trapline postprocess --filter repeat"):
        plan_run(options)
