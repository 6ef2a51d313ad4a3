"""What the demo species classifier is (its config and taxonomy), apart from how it is trained (species.py, torch):
publishing it needs no torch, so the container image, which has none, seeds it too."""

from __future__ import annotations

from typing import Any

from model_store.demo.scenes import KINDS

INPUT_SIZE = 64
HELD_OUT_SEED = 54321  # the held-out crops' scenes (species.py measures top-1 on them; the model card quotes it)

TAXONOMY = {
    "roe_deer": ["Mammalia", "Cervidae", "Capreolus capreolus"],
    "wild_boar": ["Mammalia", "Suidae", "Sus scrofa"],
    "red_fox": ["Mammalia", "Canidae", "Vulpes vulpes"],
    "grey_wolf": ["Mammalia", "Canidae", "Canis lupus"],
}
TAXONOMY_RANKS = ["class", "family", "species"]
PREPROCESS = {"crop_padding": 0.1, "crop_square": True, "resize": "stretch", "interpolation": "area"}


def species_config() -> dict[str, Any]:
    """config.json of the demo classifier (weights.sha256 and the graph's facts are filled in at publish)."""
    return {
        "backend": "onnx-classifier", "weights": {"file": "model.onnx"}, "input_size": INPUT_SIZE,
        "labels": list(KINDS), "output": "logits", "top_k": len(KINDS), "applies_to": ["animal"],
        "taxonomy": TAXONOMY, "taxonomy_ranks": TAXONOMY_RANKS, "preprocess": PREPROCESS,
        "description": "trapline demo species classifier: a small CNN trained on crops of rendered animals.",
    }
