"""benchmarks/finetune_shift.py's season: its scenes (animals of the demo kinds only, through a look, by seed), its
arguments, and the simulated reviewers' share and kind errors (tests/fixtures/gate_season.py)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from benchmarks.finetune_shift import arguments, season_scenes
from model_store import ModelStore
from model_store.demo.publish import publish_demo
from model_store.demo.scenes import KINDS
from model_store.tables.decisions import DecisionsLog
from model_store.tables.locations import open_location
from tests.fixtures.gate_season import HEIGHT, WIDTH, _named, write_season


def test_the_season_holds_only_animals_of_the_kinds_by_seed():
    scenes = season_scenes(3, 12, "stretch")
    again = season_scenes(3, 12, "stretch")
    assert len(scenes) == 12 and all(np.array_equal(a[0], b[0]) for a, b in zip(scenes, again, strict=True))
    assert sum(len(s[1]) for s in scenes) > 0
    for rgb, boxes, kinds in scenes:
        assert rgb.shape == (HEIGHT, WIDTH, 3) and len(boxes) == len(kinds) and all(k in KINDS for k in kinds)
        assert (boxes[:, :4] >= 0).all() and (boxes[:, 2] <= WIDTH).all() and (boxes[:, 3] <= HEIGHT).all()
    plain = season_scenes(3, 12, "none")  # the base's look: animals 1.2-1.9 times as wide as high

    def aspect(season):
        return np.mean([(b[2] - b[0]) / (b[3] - b[1]) for s in season for b in s[1]])

    assert aspect(scenes) > 1.4 * aspect(plain)


@pytest.mark.parametrize("bad", [["--share", "0"], ["--label-error", "1.5"], ["--cameras", "3"], ["--look", "x"]])
def test_bad_arguments_exit_2(bad, capsys):
    with pytest.raises(SystemExit) as e:
        arguments(bad)
    assert e.value.code == 2 and "error:" in capsys.readouterr().err


def test_a_reviewer_names_another_kind_at_the_error_rate():
    rng = random.Random(1)
    assert all(_named("red_fox", rng, 0.0) == "red_fox" for _ in range(50))
    assert all(_named("red_fox", rng, 1.0) in set(KINDS) - {"red_fox"} for _ in range(50))
    assert _named("person", rng, 1.0) == "person"
    wrong = sum(_named("wild_boar", rng, 0.2) != "wild_boar" for _ in range(2000))
    assert 300 < wrong < 500


def test_only_the_share_of_pictures_is_reviewed(tmp_path):
    models = ModelStore(str(tmp_path / "store"))
    publish_demo(models, with_torch=False)
    scenes = season_scenes(5, 20, "none")
    tables = write_season(tmp_path / "s", models, "demo-detector:2", 2, 10, 5, kinds=True, scenes=scenes,
                          classifier="species:1", share=0.5)
    said = DecisionsLog(open_location(tables)).read()
    images = {d.detection.uri if hasattr(d, "detection") else d.image.uri for d in said}
    assert 4 <= len(images) <= 16  # about half of the 20 pictures
