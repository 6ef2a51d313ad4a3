"""`trapline models quantize`: an int8 version of an ONNX detector, published beside its parent if it agrees.

Static quantization with ONNX Runtime (`quant_pre_process`, then `quantize_static`: QDQ format,
per-channel int8 weights, activation ranges calibrated on images from a directory). The images are
split deterministically into a calibration set and a held-out set; both go through the product's
own decode and letterbox (`Detector.prepare_bytes`, `preprocess.to_tensor`). On the held-out set
the parent and the int8 graph run through `Detector` and `quantize_report` measures what a user of
the int8 version loses: recall and precision of the parent's boxes at IoU 0.5, per class and overall,
and mAP@0.5 with the parent as truth. Below the gate's minimums nothing is published unless forced,
and with too few of the parent's boxes to judge the command says so instead of deciding.

The box-decoding tail of a YOLO graph (everything after the head's feature maps are reshaped into
anchor rows: DFL, grid arithmetic, the final concat of pixel coordinates with 0..1 scores) stays in
float: one int8 scale cannot hold both, and quantizing it zeroes every score.
"""

from __future__ import annotations

import json
import logging
import platform
import shlex
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ground.errors import QuantizeError, QuantizeRefusedError, StoreError
from model_store.core.backends import create_backend
from model_store.core.config import WeightsConfig
from model_store.core.detector import Detector
from model_store.core.imaging import DEFAULT_MAX_PIXELS, ImageDecodeError
from model_store.core.preprocess import to_tensor
from model_store.core.records import ModelInfo
from model_store.core.refs import ModelRef, check_segment
from model_store.store.quantize_report import Gate, Prepared, QuantizeReport, agree, compare_detectors
from model_store.store.store import QUANTIZATION_FILE, ModelStore, sha256_file

logger = logging.getLogger("trapline.models")

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


def find_images(directory: str | Path) -> list[Path]:
    """Image files under `directory` (recursively, hidden entries skipped), sorted by relative path."""
    root = Path(directory)
    if not root.is_dir():
        raise QuantizeError(f"calibration directory not found: {root}")
    return sorted((p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts)),
                  key=lambda p: p.relative_to(root).as_posix())


def split_images(paths: Sequence[Path], holdout_fraction: float) -> tuple[list[Path], list[Path]]:
    """(calibration, held-out): held-out images spread evenly over the sorted list, at least one of each."""
    if not 0 < holdout_fraction < 1:
        raise QuantizeError(f"--holdout-fraction must be between 0 and 1, got {holdout_fraction}")
    if len(paths) < 2:
        raise QuantizeError(f"need at least 2 images (calibration + held-out), found {len(paths)}")
    held = {i for i in range(len(paths)) if int((i + 1) * holdout_fraction) > int(i * holdout_fraction)}
    held = held or {len(paths) - 1}
    if len(held) == len(paths):
        held.discard(0)
    return [p for i, p in enumerate(paths) if i not in held], [p for i, p in enumerate(paths) if i in held]


def calibration_batches(prepared: Iterator[np.ndarray], batch: int) -> Iterator[list[np.ndarray]]:
    """Group letterboxed inputs by shape (rect letterbox gives several) into batches of exactly `batch`.

    A static-batch graph takes only that size, so a short last batch of a shape is filled with
    repeats of its own images (which moves no min/max range).
    """
    buckets: dict[tuple[int, ...], list[np.ndarray]] = {}
    for item in prepared:
        bucket = buckets.setdefault(item.shape, [])
        bucket.append(item)
        if len(bucket) == batch:
            yield buckets.pop(item.shape)
    for bucket in buckets.values():
        yield [bucket[i % len(bucket)] for i in range(batch)]


def decode_tail(model) -> list[str]:
    """Names of the nodes downstream of the first 4-D -> other-rank float reshape (the YOLO box decoding)."""
    from onnx import TensorProto

    floats = {TensorProto.FLOAT, TensorProto.FLOAT16}
    g = model.graph
    info: dict[str, tuple[int, int | None]] = {}
    for vi in [*g.input, *g.value_info, *g.output]:
        t = vi.type.tensor_type
        info[vi.name] = (t.elem_type, len(t.shape.dim) if t.HasField("shape") else None)

    def is_float(name: str, rank: int | None = None) -> bool:
        elem, r = info.get(name, (None, None))
        return elem in floats and (rank is None or r == rank)

    consumers: dict[str, list] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    # Shape computations (int64) neither start nor carry the tail: a backbone that reads a shape stays int8.
    todo = [n for n in g.node if n.input and n.output and is_float(n.input[0], 4) and is_float(n.output[0])
            and info[n.output[0]][1] not in (None, 4)]
    tail: dict[str, None] = {}
    while todo:
        node = todo.pop()
        if node.name in tail:
            continue
        tail[node.name] = None
        for out in node.output:
            if is_float(out) or out not in info:
                todo.extend(consumers.get(out, []))
    return list(tail)


def cpu_settings() -> tuple[str, bool]:
    """(activation type, reduce_range) as ORT recommends for this CPU: U8S8; 7-bit weights without VNNI."""
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return "QInt8", False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        flags = ""
    return "QUInt8", not any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))


def quantize_onnx(source: Path, target: Path, batches: Iterator[list[np.ndarray]], input_name: str,
                  preprocess, workdir: Path) -> tuple[int, str]:
    """Write the int8 QDQ graph of `source` to `target`; returns (float tail nodes, settings for people)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def get_next(self) -> dict[str, np.ndarray] | None:
            chunk = next(batches, None)
            return None if chunk is None else {input_name: to_tensor(chunk, preprocess)}

    parent = onnx.load(str(source))
    if any(t.data_type == onnx.TensorProto.FLOAT16 for t in parent.graph.initializer):
        # ORT's quantizer inserts float32-only QuantizeLinear nodes after float16 tensors: an invalid graph.
        raise QuantizeError(f"{source.name} computes in float16; quantize the float32 export it was made from")
    pre = workdir / "preprocessed.onnx"
    activations, reduce_range = cpu_settings()
    try:
        # ORT's advice: optimise (fold BatchNorm into Conv) and infer shapes first; symbolic shape inference
        # is for transformers and fails on YOLO heads, ONNX shape inference is what CNNs need.
        quant_pre_process(str(source), str(pre), skip_symbolic_shape=True)
        tail = decode_tail(onnx.load(str(pre)))
        quantize_static(str(pre), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        weight_type=QuantType.QInt8, activation_type=getattr(QuantType, activations),
                        reduce_range=reduce_range, nodes_to_exclude=tail)
    except QuantizeError:  # raised by our own calibration reader
        raise
    except Exception as exc:  # noqa: BLE001 - ORT and onnx raise many types; the user needs one, with the reason
        raise QuantizeError(f"ONNX Runtime could not quantize {source.name}: {str(exc).strip().splitlines()[-1]}") \
            from None
    # Keep the producer's metadata (class names, stride, imgsz) so the int8 file describes itself too.
    quantized = onnx.load(str(target))
    have = {p.key for p in quantized.metadata_props}
    quantized.metadata_props.extend(p for p in parent.metadata_props if p.key not in have)
    onnx.save(quantized, str(target))
    settings = (f"ONNX Runtime static quantization, QDQ, per-channel {QuantType.QInt8.name} weights"
                f"{' (7-bit, reduce_range)' if reduce_range else ''}, {activations} activations, MinMax calibration")
    return len(tail), settings


def quantize_version(store: ModelStore, ref: ModelRef | str, calibrate_dir: str | Path, new_version: str,
                     holdout_fraction: float = 0.3, gate: Gate | None = None, force: bool = False,
                     timing_repeats: int = 3) -> QuantizeReport:
    """Publish an int8 version of `ref` as `new_version` if it keeps `ref`'s boxes on held-out images.

    Raises QuantizeRefusedError (nothing published) when the verdict is not a pass (below the gate, or
    too few boxes to judge) and `force` is false. Aliases are never moved.

    Eight parameters: the store, the parent, the calibration images and the new version, then four keyword defaults
    (holdout_fraction, gate, force, timing_repeats); the CLI sets the first three from its QuantizeOptions
    (batch/models_commands.py, a layer above model_store, which cannot import it), the tests and a benchmark the one
    or two they need (a small gate, force, one timing repeat)."""
    gate = gate or Gate()
    parent_mv = store.get(ref)
    name = parent_mv.name
    check_segment("version", new_version)
    if new_version in store.list_versions(name):
        raise StoreError(f"{name}:{new_version} already exists in {store.root}; versions are immutable, "
                         "choose another --version")
    if parent_mv.config.backend != "onnx-yolo":
        raise QuantizeError(f"{parent_mv.ref} is a {parent_mv.config.backend} model; quantize takes ONNX models "
                            "(backend onnx-yolo)")
    calib_paths, held_paths = split_images(find_images(calibrate_dir), holdout_fraction)
    parent = store.load_detector(parent_mv.ref, threads=1)
    skipped = [0]

    def prepared(paths: Sequence[Path]) -> Iterator[Prepared]:
        for path in paths:
            try:
                yield parent.prepare_bytes(path.read_bytes(), DEFAULT_MAX_PIXELS)
            except ImageDecodeError:
                skipped[0] += 1  # a bad file in a folder of images is not a reason to stop

    heldout = list(prepared(held_paths))
    if not heldout:
        raise QuantizeError(f"none of the {len(held_paths)} held-out images in {calibrate_dir} decodes")
    n_calib = [0]

    def counted() -> Iterator[np.ndarray]:
        for item, _ in prepared(calib_paths):
            n_calib[0] += 1
            yield item
        if not n_calib[0]:
            raise QuantizeError(f"none of the {len(calib_paths)} calibration images in {calibrate_dir} decodes")

    parent_ref = f"{name}:{parent_mv.version}"
    with tempfile.TemporaryDirectory(prefix="trapline-quantize-") as tmp:
        work = Path(tmp)
        weights = work / "model.onnx"
        _, source = store.fetch(parent_mv.ref)
        batches = calibration_batches(counted(), parent.backend.fixed_batch or 1)
        tail_nodes, settings = quantize_onnx(source, weights, batches, parent.backend.input_name,
                                             parent.config.preprocess, work)
        candidate = _detector(weights, parent, name, new_version)
        result = compare_detectors(parent, candidate, heldout, repeats=timing_repeats)
        agreement = agree(result.parent_boxes, result.int8_boxes, parent.config.labels, gate.min_score)
        dscores = agreement.dscores
        report = QuantizeReport(
            parent=parent_ref, candidate=f"{name}:{new_version}", calibration_images=n_calib[0],
            heldout_images=len(heldout), skipped_images=skipped[0], holdout_fraction=holdout_fraction,
            classes=agreement.classes, total=agreement.total, map50=agreement.map50,
            mean_abs_dscore=sum(dscores) / len(dscores) if dscores else 0.0,
            max_abs_dscore=max(dscores, default=0.0), parent_ms=result.parent_ms, int8_ms=result.int8_ms,
            gate=gate, tail_nodes_float=tail_nodes, settings=settings,
            command=_command(parent_ref, calibrate_dir, new_version, holdout_fraction, gate, force, store))
        if not report.passed and not force:
            refused = QuantizeRefusedError(report)
            try:
                store.record_refusal(name, new_version, report.as_dict(), str(refused))
            except (OSError, StoreError) as exc:  # a read-only store: the refusal itself is what the user needs
                logger.warning("could not file the refusal of %s:%s in the store: %s", name, new_version, exc)
            raise refused
        description = f"int8 of {parent_ref} (static quantization, QDQ, per-channel int8 weights)"
        config = parent_mv.config.model_dump(mode="json", exclude={"weights", "graph"})
        config["description"] = description
        card = work / "README.md"
        card.write_text(report.card(description))
        store.publish(weights, name, new_version, config, card=card,
                      extras={QUANTIZATION_FILE: json.dumps(report.as_dict(), indent=2).encode()})
    return report


def _detector(weights: Path, parent, name: str, version: str):
    """The unpublished int8 graph behind the parent's config: the same core as any loaded version."""
    config = parent.config.model_copy(update={"weights": WeightsConfig(file=weights.name,
                                                                       sha256=sha256_file(weights))})
    info = ModelInfo(name=name, version=version, sha256=config.weights.sha256)
    return Detector(info, config, create_backend(config, weights, threads=1))


def _command(parent_ref: str, calibrate_dir: str | Path, version: str, holdout_fraction: float,
             gate: Gate, force: bool, store: ModelStore) -> str:
    """The command that reproduces this run, with every option spelled out and absolute paths.

    Seven parameters: one per part of the command it spells out (the parent ref, --calibrate, --version,
    --holdout-fraction, the gate's flags, --force, --store), as quantize_version received them."""
    args = ["trapline", "models", "quantize", parent_ref, "--calibrate", str(Path(calibrate_dir).resolve()),
            "--version", version, "--holdout-fraction", f"{holdout_fraction:g}", *gate.flags(),
            *(["--force"] if force else []), "--store", store.root]
    return shlex.join(args)
