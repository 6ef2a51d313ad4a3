"""Output heads: one small module per layout a detector's graph can end in, and the one registry of them.

`config.json`'s `output_layout` accepts exactly the names below; the detector decodes with the head its
`task` and `output_layout` name, runs NMS when the head asks for it, and publish picks the layout whose `fits`
matches the graph. A segmentation head (`task: segment`) is registered under the name of the detection form
it extends (`yolov8`: NMS form, `end2end`: the graph's top-K), and also reads the prototypes.
To add a layout: a module here with a `Head` subclass and its `HEAD`, and one line in `HEADS` (or `SEGMENT_HEADS`).
"""

from __future__ import annotations

from collections.abc import Sequence

from model_store.core.heads import detr, end2end, rtdetr, segment, yolov5, yolov8, yolox
from model_store.core.heads.base import DecodeSpec, Dim, Head, Raw, RawDetections, shapes_str
from model_store.core.heads.nms import nms

__all__ = ["HEADS", "LAYOUTS", "SEGMENT_HEADS", "TASKS", "DecodeSpec", "Head", "Raw", "RawDetections",
           "UnknownLayoutError", "fitting", "head_for", "layouts_table", "nms", "shapes_str"]

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
# Segmentation heads (boxes and masks), by the layout name of their detection form.
SEGMENT_HEADS: dict[str, Head] = {h.name: h for h in (segment.NMS_HEAD, segment.END2END_HEAD)}
TASKS: dict[str, dict[str, Head]] = {"detect": HEADS, "segment": SEGMENT_HEADS}


class UnknownLayoutError(ValueError):
    """A layout name that is not in the registry (or not for the task asked)."""


def head_for(layout: str, task: str = "detect") -> Head:
    """The head registered under `layout` for `task`; UnknownLayoutError listing the layouts that exist."""
    heads = TASKS.get(task)
    if heads is None:
        raise UnknownLayoutError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    try:
        return heads[layout]
    except KeyError:
        if task == "detect":
            raise UnknownLayoutError(f"unknown output layout {layout!r}; known: {', '.join(LAYOUTS)}") from None
        raise UnknownLayoutError(f"task {task} decodes the output layouts {', '.join(heads)}, not {layout!r}") from None


def fitting(shapes: Sequence[Sequence[Dim]], num_classes: int, task: str = "detect") -> list[str]:
    """The layouts of `task` whose shape the graph's outputs fit for `num_classes` classes, in registry order."""
    return [name for name, head in TASKS[task].items()
            if len(shapes) >= head.outputs and head.fits(shapes, num_classes)]


def layouts_table(num_classes: int, task: str = "detect") -> str:
    """Every layout of `task` with the output shape it means for `num_classes` classes, for error messages."""
    return "; ".join(f"{name} {head.shape(num_classes)}" for name, head in TASKS[task].items())
