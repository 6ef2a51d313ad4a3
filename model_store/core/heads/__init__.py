"""Output heads: one small module per layout a detector's graph can end in, and the one registry of them.

`config.json`'s `output_layout` accepts exactly the names below; the detector decodes with the head it
names, runs NMS when the head asks for it, and publish picks the layout whose `fits` matches the graph.
To add a layout: a module here with a `Head` subclass and its `HEAD`, and one line in `HEADS`.
"""

from __future__ import annotations

from collections.abc import Sequence

from model_store.core.heads import detr, end2end, rtdetr, yolov5, yolov8, yolox
from model_store.core.heads.base import DecodeSpec, Dim, Head, Raw, RawDetections, shapes_str
from model_store.core.heads.nms import nms

__all__ = ["HEADS", "LAYOUTS", "DecodeSpec", "Head", "Raw", "RawDetections", "UnknownLayoutError", "fitting",
           "head_for", "layouts_table", "nms", "shapes_str"]

# The registry: layout name -> its head. Order matters only for messages (the list users read).
HEADS: dict[str, Head] = {h.name: h for h in (
    yolov8.HEAD,
    yolov5.HEAD,
    yolox.HEAD,
    end2end.HEAD,
    rtdetr.HEAD,
    detr.HEAD,
)}
LAYOUTS: tuple[str, ...] = tuple(HEADS)


class UnknownLayoutError(ValueError):
    """A layout name that is not in the registry."""


def head_for(layout: str) -> Head:
    """The head registered under `layout`; UnknownLayoutError listing the layouts that exist."""
    try:
        return HEADS[layout]
    except KeyError:
        raise UnknownLayoutError(f"unknown output layout {layout!r}; known: {', '.join(LAYOUTS)}") from None


def fitting(shapes: Sequence[Sequence[Dim]], num_classes: int) -> list[str]:
    """The layouts whose shape the graph's outputs fit for `num_classes` classes, in registry order."""
    return [name for name, head in HEADS.items() if len(shapes) >= head.outputs and head.fits(shapes, num_classes)]


def layouts_table(num_classes: int) -> str:
    """Every layout with the output shape it means for `num_classes` classes, for error messages."""
    return "; ".join(f"{name} {head.shape(num_classes)}" for name, head in HEADS.items())
