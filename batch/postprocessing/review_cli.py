"""`trapline review confirm | reject | relabel | empty | add`, `trapline models accuracy` and the accuracy in
`trapline models show --tables`: the runners and printers of those registry entries (batch/commands.py,
batch/models_commands.py). The work is batch/postprocessing/detection_review.py and accuracy.py, as over HTTP."""

from __future__ import annotations

import json
from typing import Any

from batch.postprocessing import detection_review as review
from batch.postprocessing.accuracy import measure
from batch.postprocessing.accuracy_stats import shown
from batch.postprocessing.detection_review import Reviewing
from batch.postprocessing.occurrences import SetPlace
from batch.postprocessing.review_options import (
    AddBoxOptions,
    ConfirmOptions,
    DetectionReviewOptions,
    EmptyOptions,
    RejectOptions,
    RelabelOptions,
    VerdictOptions,
)
from ground.printed import Printed
from model_store.store.cli import show as card
from model_store.tables.decisions import DetectionKey, ImageKey
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables


def _place(o: Any) -> SetPlace:
    return SetPlace(Tables(open_location(o.tables)), o.model, o.filters_hash, o.store)


def _image(o: VerdictOptions) -> ImageKey:
    return Reviewing.open(_place(o)).image_named(o.image)


def _key(o: DetectionReviewOptions) -> DetectionKey:
    image = _image(o)
    return DetectionKey(uri=image.uri, content_id=image.content_id, detection_index=o.detection)


def _recorded(decision: dict[str, Any]) -> Printed:
    return Printed(decision, f"{json.dumps(decision)}\n{review.APPLIES}")


def confirm(o: ConfirmOptions, progress: Any = None) -> Printed:
    return _recorded(review.confirm(_place(o), _key(o), o.who, o.comment, o.label))


def reject(o: RejectOptions, progress: Any = None) -> Printed:
    return _recorded(review.reject(_place(o), _key(o), o.who, o.comment, o.reason))


def relabel(o: RelabelOptions, progress: Any = None) -> Printed:
    return _recorded(review.relabel(_place(o), _key(o), o.label, o.who, o.comment))


def empty(o: EmptyOptions, progress: Any = None) -> Printed:
    return _recorded(review.mark_empty(_place(o), _image(o), o.who, o.comment))


def add_box(o: AddBoxOptions, progress: Any = None) -> Printed:
    return _recorded(review.add_box(_place(o), _image(o), o.bbox, o.label, o.who, o.comment))


def accuracy_lines(a: dict[str, Any]) -> list[str]:
    """The accuracy for people: coverage, overall, per label, per camera, the confusion table."""
    cov, d = a["coverage"], a["detection"]
    lines = [f"accuracy of {a['model']} [filters {a['filters_hash']}] from people's decisions in {a['tables']} "
             f"(Wilson {a['confidence']:.0%} intervals; k/n is the evidence)",
             f"reviewed: {shown(cov['reviewed_images'])} images, {shown(cov['reviewed_detections'])} detections, "
             f"{cov['added_boxes']} box(es) added; " + ", ".join(f"{k} {n}" for k, n in cov["kinds"].items())]
    if not (d["tp"] or d["fp"] or d["fn"]):
        return [*lines, "no evidence yet: confirm, reject, relabel, mark empty or add boxes (`trapline review`, the "
                        "console's Review page) on this version's detections"]
    f1 = "-" if d["f1"] is None else f"{d['f1']:.2f}"
    lines += [f"detection: precision {shown(d['precision'])}  recall {shown(d['recall'])}  F1 {f1}  "
              f"(TP {d['tp']}, FP {d['fp']}, FN {d['fn']})", f"label agreement: {shown(d['label_agreement'])}",
              "per label (people's count, the model's):"]
    for r in a["per_label"]:
        f1 = "-" if r["f1"] is None else f"{r['f1']:.2f}"
        lines.append(f"  {r['label']:<20} {r['people']:>5} {r['model']:>5}  precision {shown(r['precision']):<26} "
                     f"recall {shown(r['recall']):<26} F1 {f1}")
    lines.append("per camera:")
    for c in a["per_camera"]:
        lines.append(f"  {str(c['camera_id']):<20} {c['reviewed_images']:>5} image(s)  precision "
                     f"{shown(c['precision']):<26} recall {shown(c['recall'])}")
    conf = a["confusion"]
    width = max(8, *(len(x) for x in conf["labels"])) + 1
    lines += ["confusion (people's label down, the model's across; (none): not an animal / no box):",
              "  " + " " * width + "".join(f"{x:>{width}}" for x in conf["labels"])]
    for label, row in zip(conf["labels"], conf["counts"], strict=True):
        if any(row):
            lines.append(f"  {label:<{width}}" + "".join(f"{n:>{width}}" for n in row))
    return lines


def accuracy(o: Any, progress: Any = None) -> Printed:
    a = measure(SetPlace(Tables(open_location(o.tables)), o.ref, o.filters_hash, o.store))
    return Printed(a, "\n".join(accuracy_lines(a)))


def show(o: Any, progress: Any = None) -> Printed:
    """`trapline models show`: the store's card, and with --tables the version's accuracy from people's decisions."""
    out = card(o)
    if o.tables is None:
        return out
    ref = f"{out.data['name']}:{out.data['version']}"
    a = measure(SetPlace(Tables(open_location(o.tables)), ref, o.filters_hash, o.store))
    return Printed({**out.data, "accuracy": a}, "\n".join([out.text, "", *accuracy_lines(a)]))
