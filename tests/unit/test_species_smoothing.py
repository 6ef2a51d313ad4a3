"""trapline's smoothing against MegaDetector's own, label by label (issue 57).

tests/fixtures/reference/build_smoothing.py ran megadetector's `smooth_classification_results_image_level` and
`..._sequence_level` on 400 generated sequences (1 to 6 images of 0 to 7 detections over the species fixture's
taxonomy: a dominant species with its kin, its ancestors and "other"-type labels) under five option variants; every
detection's label after trapline's `smooth` must be MegaDetector's, and every image's pre-smoothing description.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from model_store.core.species.smoothing import Item, SmoothingConfig, description, smooth

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "speciesnet"
DETECTOR = {"1": "animal", "2": "person", "3": "vehicle"}


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(gzip.decompress((HERE / "smoothing_expected.json.gz").read_bytes()))


def items_of(reference: dict) -> list[list[list[Item]]]:
    labels = reference["labels"]
    return [[[Item(DETECTOR[c], conf, labels[idx[0]] if idx else None, scores[0] if idx else 0.0)
              for c, conf, idx, scores in image] for image in seq] for seq in reference["sequences"]]


def labels_after(sequences: list[list[list[Item]]], labels: list[str]) -> list[list[int | None]]:
    index = {label: i for i, label in enumerate(labels)}
    return [[index[it.label] if it.label is not None else None for it in image] for seq in sequences for image in seq]


@pytest.mark.parametrize("variant", ["default", "overwrite_rare", "same_family", "no_propagation", "every_box"])
def test_smoothing_is_megadetectors(reference: dict, variant: str) -> None:
    config = SmoothingConfig(**reference["variants"][variant])
    expected = reference["expected"][variant]
    before = labels_after(items_of(reference), reference["labels"])

    per_image = items_of(reference)
    descriptions = [description(image, config) or None for seq in per_image for image in seq]
    for seq in per_image:
        for image in seq:
            smooth(image, config)
    got = labels_after(per_image, reference["labels"])
    wrong = [(i, a, b) for i, (a, b) in enumerate(zip(got, expected["image"], strict=True)) if a != b]
    assert not wrong, f"image-level: {len(wrong)} images differ, e.g. {wrong[:3]}"
    # MegaDetector describes an image with detections (an empty description when none counts), none without.
    images = [image for seq in reference["sequences"] for image in seq]
    want = [d if d else None for d in expected["descriptions"]]
    assert [d if image else None for d, image in zip(descriptions, images, strict=True)] == want

    per_sequence = items_of(reference)
    for seq in per_sequence:
        smooth([it for image in seq for it in image], config)
    got = labels_after(per_sequence, reference["labels"])
    wrong = [(i, a, b) for i, (a, b) in enumerate(zip(got, expected["sequence"], strict=True)) if a != b]
    assert not wrong, f"sequence-level: {len(wrong)} images differ, e.g. {wrong[:3]}"
    # The generated set makes smoothing change labels (else agreement would say nothing).
    assert sum(a != b for x, y in zip(before, expected["sequence"]) for a, b in zip(x, y)) > 50
