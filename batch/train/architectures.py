"""The networks `trapline models train` knows how to build, by the name a version's trainable.json gives
(model_store/store/trainable.py): name -> a builder of the untrained network for a list of labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ground.errors import BatchError


def _demo_tiny_classifier(labels: list[str]) -> Any:
    from model_store.demo.species import TinyClassifier  # torch, loaded late: models publish lists these names

    return TinyClassifier(num_classes=len(labels))


ARCHITECTURES: dict[str, Callable[[list[str]], Any]] = {"demo-tiny-classifier": _demo_tiny_classifier}


def build(architecture: str, labels: list[str]) -> Any:
    """The untrained torch module of `architecture` with one output per label; a BatchError for a name trapline
    does not know."""
    try:
        make = ARCHITECTURES[architecture]
    except KeyError:
        raise BatchError(f"trainable weights of architecture {architecture!r}, which trapline cannot build (it "
                         f"builds: {sorted(ARCHITECTURES)})") from None
    return make(labels)
