"""The shipped demo species classifier really classifies: held-out top-1 through the product's classifier."""

from __future__ import annotations

import numpy as np
import pytest

from model_store import ModelStore
from model_store.core.crops import crop_box
from model_store.demo.publish import SPECIES_NAME, publish_demo
from model_store.demo.scenes import KINDS, render_scene_with_kinds
from model_store.demo.species import HELD_OUT_SEED, MIN_SIDE, SCENE_SIZE


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ModelStore:
    store = ModelStore(str(tmp_path_factory.mktemp("species-store")))
    publish_demo(store)
    return store


def test_published_with_taxonomy_and_card(store):
    mv = store.get(f"{SPECIES_NAME}@production")
    assert mv.is_classifier and mv.config.labels == list(KINDS) and mv.config.applies_to == ["animal"]
    families = {path[1] for path in mv.config.taxonomy.values()}
    assert len(families) < len(KINDS)  # two kinds share a family, so a rank rollup has something to sum
    assert "held-out top-1 accuracy" in store.card(f"{SPECIES_NAME}:1")


def test_heldout_top1_well_above_chance(store):
    """Crops of separately rendered scenes, cut and classified by the product's crop code and `Classifier`."""
    clf = store.load_classifier(f"{SPECIES_NAME}:1", threads=2)
    p = clf.config.preprocess
    rng = np.random.default_rng(HELD_OUT_SEED + 1)
    crops, truth = [], []
    while len(truth) < 120:
        img, boxes, kinds = render_scene_with_kinds(rng, *SCENE_SIZE)
        for box, kind in zip(boxes, kinds, strict=True):
            if kind and min(box[2] - box[0], box[3] - box[1]) >= MIN_SIDE:
                crops.append(crop_box(img, box[:4], p.crop_padding, p.crop_square))
                truth.append(kind)
    answers = [c.label for c in clf.classify(crops)]
    top1 = float(np.mean([a == t for a, t in zip(answers, truth, strict=True)]))
    print(f"{SPECIES_NAME}:1 top-1 on {len(truth)} held-out crops: {top1:.3f}")
    assert top1 >= 0.7  # chance is 0.25
