"""What an ONNX detector says about itself: its input/output tensors and its producer's metadata.

Read once at publish (and shown by `trapline models show`), so a config that contradicts the
graph is refused before any replica tries to run it, and an Ultralytics or YOLOv5 export can be
published with no config at all: the labels, input size, stride and output layout are in the file.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ground.errors import ModelLoadError

Dim = int | str  # a fixed size, or the symbolic name of a dynamic one

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8"}


class TensorFacts(BaseModel):
    """One graph input or output: name, shape (ints fixed, strings symbolic) and element type."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    shape: list[Dim]
    dtype: str

    def describe(self) -> str:
        dims = ", ".join(str(d) if isinstance(d, int) else f"{d}?" for d in self.shape)
        return f"{self.name} [{dims}] {self.dtype}"


class GraphFacts(BaseModel):
    """The inspected facts of one ONNX graph (stored in config.json under `graph`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: TensorFacts
    outputs: list[TensorFacts] = Field(min_length=1)
    producer: Literal["ultralytics", "yolov5", "unknown"] = "unknown"
    metadata: dict[str, str] = Field(default_factory=dict, description="the graph's metadata_props, less `names`")

    probed_outputs: list[list[int]] | None = Field(None, description=(
        "output shapes from one forward pass at the model's input size, when the graph declares symbolic dims"))

    def output_shapes(self) -> list[list[Dim]]:
        """The output shapes to judge a layout by: the probed ones when the graph left dims symbolic."""
        return [list(s) for s in self.probed_outputs] if self.probed_outputs else [o.shape for o in self.outputs]

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the graph was exported with, or None when the batch dim is dynamic."""
        dim = self.input.shape[0] if self.input.shape else None
        return dim if isinstance(dim, int) and dim > 0 else None

    @property
    def static_hw(self) -> tuple[int, int] | None:
        """(width, height) of a graph with fixed spatial input dims, else None."""
        if len(self.input.shape) != 4:
            return None
        h, w = self.input.shape[2], self.input.shape[3]
        return (w, h) if isinstance(w, int) and isinstance(h, int) else None

    def expects(self) -> str:
        """One phrase for error messages: what input the graph takes."""
        batch = f"batch {self.fixed_batch}" if self.fixed_batch else "any batch"
        hw = f"{self.static_hw[0]}x{self.static_hw[1]}" if self.static_hw else "any size"
        return f"{self.input.describe()} ({batch}, {hw})"


def inspect_onnx(path: str | Path) -> tuple[GraphFacts, dict[str, Any]]:
    """Read an ONNX file's tensors and metadata; returns (facts, producer metadata parsed into values)."""
    import onnxruntime as ort  # here: the store's other commands need no runtime

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # only reading, not running
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises several unrelated types for a file that is not ONNX
        raise ModelLoadError(f"{Path(path).name} is not a loadable ONNX model: {_last_line(exc)}") from None

    def facts(arg) -> TensorFacts:
        shape = [d if isinstance(d, int) else str(d or "?") for d in (arg.shape or [])]
        return TensorFacts(name=arg.name, shape=shape, dtype=_ORT_DTYPES.get(arg.type, arg.type))

    raw_meta = dict(session.get_modelmeta().custom_metadata_map)
    parsed = {k: _literal(v) for k, v in raw_meta.items()}
    producer = "unknown"
    if "ultralytics" in str(raw_meta.get("author", "")).lower() or {"task", "imgsz"} <= raw_meta.keys():
        producer = "ultralytics"
    elif "names" in raw_meta and "stride" in raw_meta:
        producer = "yolov5"  # yolov5's export.py writes exactly stride + names
    graph = GraphFacts(
        input=facts(session.get_inputs()[0]), outputs=[facts(o) for o in session.get_outputs()], producer=producer,
        metadata={k: v for k, v in raw_meta.items() if k != "names"},
    )
    return graph, parsed


def _literal(text: str) -> Any:
    # Ultralytics and YOLOv5 write Python reprs (`{0: 'person', ...}`, `[640, 640]`); literal_eval
    # reads those without executing anything. JSON is tried for other producers.
    for parse in (ast.literal_eval, json.loads):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return text


def _last_line(exc: BaseException) -> str:
    # ORT puts its verdict last ("... failed:Protobuf parsing failed."), after any context lines.
    text = str(exc).strip()
    return text.splitlines()[-1] if text else type(exc).__name__


def labels_from_names(names: Any) -> list[str] | None:
    """Class names in id order from a `names` metadata value (a {id: name} dict or a list)."""
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            return None
        if ids != list(range(len(ids))):
            return None
        return [str(names[k] if k in names else names[str(k)]) for k in ids]
    if isinstance(names, list | tuple):
        return [str(n) for n in names]
    return None


def has_symbolic_outputs(graph: GraphFacts) -> bool:
    """Whether any output dim past the batch is symbolic (its layout cannot be judged from the declaration)."""
    return any(not isinstance(d, int) for o in graph.outputs for d in o.shape[1:])


def probe_outputs(path: str | Path, graph: GraphFacts, input_size: tuple[int, int]) -> list[list[int]]:
    """Output shapes of one forward pass on a blank input of `input_size` (width, height): what a graph that
    declares symbolic output dims really gives, checked at publish rather than at the first batch."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    w, h = input_size
    dtype = {"float16": np.float16, "uint8": np.uint8}.get(graph.input.dtype, np.float32)
    blank = np.zeros((graph.fixed_batch or 1, 3, h, w), dtype)
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        outs = session.run(None, {graph.input.name: blank})
    except Exception as exc:  # noqa: BLE001 - ORT raises many types; the user needs the model and the input
        raise ModelLoadError(f"{Path(path).name} declares symbolic output dims and fails on a blank input "
                             f"{list(blank.shape)}: {_last_line(exc)}") from None
    return [list(np.shape(o)) for o in outs]
