"""The gate before promote (issue 82, item 6): a candidate version is judged against the alias's current one on what
people verified in the held-out cameras, and refused when it is worse beyond the intervals.

- The evidence: the current version's reviewed set in `tables`, else (the current version never ran over them) the
  set of the model's highest version there: people's decisions, folded as a training set folds them
  (batch/export/training_set.py): confirmed and relabelled boxes with the person's label, boxes people
  added, images marked empty as negatives; only whole-reviewed images (a box nobody judged could be an animal either
  version rightly finds).
- Held out: the `test` split of the same split a training set draws (whole cameras, the seed, the default fractions
  0.7 / 0.15 / 0.15, drawn over every reviewed image as `--format crops` draws it), so a version fine-tuned on the
  train split is judged on cameras it never saw.
- Both versions run in-process over the same held-out pictures (the store's detector, and the set's classifiers
  where the set had some, so a box's label is the one people judged): the candidate need not have run over the
  archive, and neither version is judged on rows of another run.
- Matching: per image, each version's kept boxes, by score, each claims the free verified box of its label it
  overlaps most if the IoU is at least 0.5 (one-to-one, greedy by score: model_store/core/metrics.py). A claimed box
  is a true positive, an unclaimed kept box a false positive, an unclaimed verified box a false negative.
- The figures: detection precision and recall (box and label right) with Wilson 95 % intervals and their k of n,
  and F1 (no interval of its own). A classifier (two versions of one, e.g. a fine-tuned one against the served one)
  is judged by its top-1 on the crops of the held-out verified boxes whose person's label either version knows (every
  reviewed image of the test cameras, each box judged on its own, as `--format crops` takes them), cut as its config
  cuts them; the evidence is a set in `tables` that ran it (`--classify`).
- The rule (RULE): the candidate is worse beyond the intervals when its precision's or its recall's (a classifier:
  its top-1's) upper Wilson bound is below the current's point estimate; better when none is worse and one's lower
  bound is above the current's point estimate; else no worse within the intervals. Fewer than `min_boxes` verified
  boxes in the held-out images: not enough evidence (and the gate lets the promote through, saying so).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from batch.export.base import ExportJob, export_slices
from batch.export.training_options import TrainingSetOptions
from batch.export.training_set import Item, gather, split
from batch.postprocessing.accuracy_stats import CONFIDENCE, f1, rate, shown
from batch.postprocessing.events import set_occurrences
from batch.postprocessing.snips import source_bytes
from ground.errors import TraplineError
from model_store import ModelStore
from model_store.core.crops import crop_box
from model_store.core.imaging import decode_image
from model_store.core.metrics import greedy_match
from model_store.core.pipeline import ClassifierRoute, Pipeline, resolve_routes
from model_store.core.refs import ModelRef, check_segment
from model_store.store.store import NotFoundError
from model_store.tables.reader import Tables
from model_store.tables.table_set import TableSet, resolve_table_set

IOU = 0.5
MIN_BOXES = 10  # also batch/models_commands.py GATE_MIN_BOXES, the flag's default
HELD_OUT = "test"
RULE = ("worse beyond the intervals: the candidate's upper Wilson 95 % bound of a judged rate (a detector's precision "
        "or recall, a classifier's top-1) below the current's point estimate; better: none worse, and one with its "
        "lower bound above the current's")
VERDICTS = ("better", "no worse within the intervals", "worse beyond the intervals", "not enough evidence")


class PromoteRefusedError(TraplineError):
    """The gate refused a candidate worse beyond the intervals (the comparison in the body)."""

    code, status = "promote_refused", 409


@dataclass(frozen=True)
class HeldOut:
    """The held-out reviewed images and where they came from."""

    items: list[Item]
    evidence: str  # the version whose reviewed set gives the verified boxes
    filters_hash: str
    classifiers: list[dict]
    cameras: list[str]
    reviewed_images: int  # whole-reviewed images in every split


def _evidence_set(t: Tables, evidence: str, store: str | None) -> TableSet:
    """`evidence`'s set in `t`; else (it never ran over these tables) the set of the highest version of the same
    model there, or, for a classifier, of a detector version whose set ran it."""
    try:
        return resolve_table_set(t, evidence, None, store)
    except TraplineError:
        name = evidence.partition(":")[0]
        sets = [resolve_table_set(t, f"{n}:{v}", None, store) for n, v in t.versions()]
        mine = [s for s in sets if s.model_name == name or any(c["name"] == name for c in s.classifiers)]
        if not mine:
            raise
        return max(mine, key=lambda s: (s.model_name == name, s.model_version))


def held_out(tables: Tables, evidence: str, store: str | None, seed: int = 0, whole: bool = True) -> HeldOut:
    """The test split of `evidence`'s reviewed set in `tables` (else as `_evidence_set` finds one: people's verified
    boxes are the truth whichever version they reviewed). `whole`: only images every box of which was judged (boxes
    are counted against the whole image); a classifier takes every verified box, each judged on its own."""
    tset = _evidence_set(tables, evidence, store)
    occurrences = set_occurrences(tables, tset, store)
    job = ExportJob(tables, tset, "", SimpleNamespace(),  # type: ignore[arg-type]
                    lambda: export_slices(tables, tset, None, occurrences))
    found = gather(job)  # type: ignore[arg-type]
    split(found.items, TrainingSetOptions.model_construct().fractions(), seed, found.sites)
    items = [it for it in found.items if (it.whole or not whole) and it.split == HELD_OUT]
    return HeldOut(items, f"{tset.model_name}:{tset.model_version}", tset.filters_hash, tset.classifiers,
                   sorted({it.camera_id for it in items}), sum(it.whole or not whole for it in found.items))


class Runner:
    """One version as the gate runs it: the store's detector, then the set's classifiers (the label a box gets is its
    first classifier's, as people saw it in review)."""

    def __init__(self, models: ModelStore, ref: str, classifiers: list[dict]) -> None:
        self.detector = models.load_detector(ref, threads=1)
        routes = [ClassifierRoute(model=f"{c['name']}:{c['version']}", labels=list(c.get("labels") or []),
                                  min_crop_px=int(c.get("min_crop_px") or 8)) for c in classifiers]
        self.pipeline = Pipeline.load(models, resolve_routes(models, routes, None), threads=1) if routes else None

    def boxes(self, rgb: np.ndarray) -> list[tuple[str, float, tuple[float, float, float, float]]]:
        """(label, score, x y w h normalised) of each kept box, highest score first."""
        records = self.detector.predict_batch([rgb])
        if self.pipeline is not None:
            self.pipeline.classify([rgb], records)
        out = [(d.classifications[0].label if d.classifications else d.label, float(d.score), d.bbox)
               for d in records[0].detections]
        return sorted(out, key=lambda b: -b[1])


def _xyxy(bbox: tuple[float, float, float, float]) -> list[float]:
    x, y, w, h = bbox
    return [x, y, x + w, y + h]


def count(found: list[tuple[str, float, tuple]], truth: list[tuple[str, tuple]]) -> tuple[int, int, int]:
    """(TP, FP, FN) of one image: each label's boxes, by score, greedily claim the verified boxes of that label."""
    tp = 0
    for label in {b[0] for b in found}:
        mine = [_xyxy(b[2]) for b in found if b[0] == label]
        theirs = [_xyxy(b[1]) for b in truth if b[0] == label]
        tp += int((greedy_match(np.array(mine), np.array(theirs), IOU) >= 0).sum()) if theirs else 0
    return tp, len(found) - tp, len(truth) - tp


def figures(tp: int, fp: int, fn: int) -> dict[str, Any]:
    return {"tp": tp, "fp": fp, "fn": fn, "precision": rate(tp, tp + fp), "recall": rate(tp, tp + fn),
            "f1": f1(tp, fp, fn)}


def judge(runners: dict[str, Runner], items: list[Item]) -> dict[str, dict[str, Any]]:
    """Each version's figures over the same pictures."""
    totals = {ref: [0, 0, 0] for ref in runners}
    for it in items:
        rgb = decode_image(source_bytes({"uri": it.uri, "size_bytes": it.size_bytes}))
        truth = [(b.label, b.bbox) for b in it.boxes]
        for ref, runner in runners.items():
            for i, n in enumerate(count(runner.boxes(rgb), truth)):
                totals[ref][i] += n
    return {ref: figures(*t) for ref, t in totals.items()}


def judge_classifiers(models: ModelStore, refs: tuple[str, str], items: list[Item]) -> dict[str, dict[str, Any]]:
    """Each classifier's top-1 over the same crops: every verified box whose person's label one of them knows, cut
    as the classifier's config cuts its crops; right where its top answer is the person's label."""
    loaded = {ref: models.load_classifier(ref, threads=1) for ref in refs}
    known = set().union(*(c.config.labels for c in loaded.values()))
    totals = dict.fromkeys(refs, 0)
    n = 0
    for it in items:
        boxes = [b for b in it.boxes if b.label in known]
        if not boxes:
            continue
        rgb = decode_image(source_bytes({"uri": it.uri, "size_bytes": it.size_bytes}))
        h, w = rgb.shape[:2]
        px = [(x * w, y * h, (x + bw) * w, (y + bh) * h) for x, y, bw, bh in (b.bbox for b in boxes)]
        n += len(boxes)
        for ref, clf in loaded.items():
            p = clf.config.preprocess
            said = clf.classify([crop_box(rgb, box, p.crop_padding, p.crop_square) for box in px])
            totals[ref] += sum(a.label == b.label for a, b in zip(said, boxes, strict=True))
    return {ref: {"top1": rate(k, n)} for ref, k in totals.items()}


def _worse(cand: dict[str, Any], cur: dict[str, Any]) -> bool:
    return cand["high"] is not None and cur["value"] is not None and cand["high"] < cur["value"]


def _better(cand: dict[str, Any], cur: dict[str, Any]) -> bool:
    return cand["low"] is not None and cur["value"] is not None and cand["low"] > cur["value"]


def verdict(candidate: dict[str, Any], current: dict[str, Any], keys: tuple[str, ...] = ("precision", "recall")
            ) -> str:
    """RULE, over `keys` (a detector's precision and recall, a classifier's top-1)."""
    if any(_worse(candidate[k], current[k]) for k in keys):
        return VERDICTS[2]
    if any(_better(candidate[k], current[k]) for k in keys):
        return VERDICTS[0]
    return VERDICTS[1]


METRICS = {"detector": ("detection precision and recall (box IoU >= 0.5 and label right)", ("precision", "recall")),
           "classifier": ("classifier top-1 on the crops of verified boxes whose label either version knows",
                          ("top1",))}


def compare(tables: Tables, current: str, candidate: str, models: ModelStore, seed: int = 0,
            min_boxes: int = MIN_BOXES) -> dict[str, Any]:
    """The comparison the gate prints and decides on (`current`, `candidate`: NAME:VERSION of two detectors or two
    classifiers), over the tables and the model store the door opened."""
    kind = "classifier" if models.get(candidate).is_classifier else "detector"
    metric, keys = METRICS[kind]
    h = held_out(tables, current, models.root, seed, whole=kind == "detector")
    got = judge_classifiers(models, (current, candidate), h.items) if kind == "classifier" else None
    boxes = got[current]["top1"]["n"] if got else sum(len(it.boxes) for it in h.items)
    out: dict[str, Any] = {"ran": True, "kind": kind, "tables": tables.url, "evidence": h.evidence,
                           "filters_hash": h.filters_hash, "seed": seed, "split": HELD_OUT,
                           "held_out": {"cameras": h.cameras, "images": len(h.items), "boxes": boxes,
                                        "negatives": sum(it.negative for it in h.items),
                                        "reviewed_images": h.reviewed_images},
                           "metric": metric, "confidence": CONFIDENCE, "interval": "wilson", "rule": RULE,
                           "current": current, "candidate": candidate}
    if boxes < min_boxes:
        out |= {"verdict": VERDICTS[3], "refused": False,
                "reason": f"{boxes} verified box(es) in the held-out cameras, fewer than {min_boxes}: review more "
                          "of the season (or lower --min-boxes)"}
        return out
    if got is None:
        got = judge({ref: Runner(models, ref, h.classifiers) for ref in (current, candidate)}, h.items)
    v = verdict(got[candidate], got[current], keys)
    return out | {"figures": {"current": got[current], "candidate": got[candidate]}, "verdict": v,
                  "refused": v == VERDICTS[2]}


def not_run(why: str, current: str | None, candidate: str) -> dict[str, Any]:
    return {"ran": False, "reason": why, "current": current, "candidate": candidate, "refused": False}


def table(c: dict[str, Any]) -> str:
    """The comparison for people."""
    if not c["ran"]:
        return f"gate: not run: {c['reason']}"
    h = c["held_out"]
    lines = [f"gate: {c['candidate']} against {c['current']} on people's verified held-out data: the {c['split']} "
             f"split (seed {c['seed']}) of {c['evidence']}'s reviews in {c['tables']}: {h['images']} image(s), "
             f"{h['boxes']} box(es), {h['negatives']} empty, camera(s) {', '.join(h['cameras']) or '-'}"]
    if "figures" in c:
        keys = METRICS[c["kind"]][1]
        heads = ["precision (95 % Wilson, k/n)", "recall"] if c["kind"] == "detector" else ["top-1 (95 % Wilson, k/n)"]
        lines.append(f"  {'version':<36} " + " ".join(f"{x:<30}" for x in heads) + (" F1" if len(keys) > 1 else ""))
        for who in ("current", "candidate"):
            f = c["figures"][who]
            f1_ = "" if "f1" not in f else " -" if f["f1"] is None else f" {f['f1']:.2f}"
            lines.append(f"  {who + ' ' + c[who]:<36} " + " ".join(f"{shown(f[k]):<30}" for k in keys) + f1_)
    lines.append(f"  verdict: {c['verdict']}" + (f" ({c['reason']})" if c.get("reason") else ""))
    lines.append(f"  rule: {c['rule']}")
    return "\n".join(lines)


NO_TABLES = ("no tables of people's reviews named (--tables; over HTTP `tables`, else the model's on_promote backfill "
             "tables or the recorder's): the gate compares versions on people's verified held-out data, and none "
             "was given")


def gate(models: ModelStore, ref: str, alias: str, tables: Tables | None, seed: int = 0,
         min_boxes: int = MIN_BOXES) -> dict[str, Any]:
    """The comparison of `ref` with the version `alias` points at now (or why the gate was not run), over the tables
    and the model store the door opened (`tables`: None when no tables hold people's decisions)."""
    check_segment("alias", alias)  # as the store's promote does, before anything is read
    mv = models.get(ModelRef.parse(ref))
    candidate = f"{mv.name}:{mv.version}"
    try:
        now = models.resolve(ModelRef(mv.name, alias=alias))
    except NotFoundError:
        return not_run(f"{mv.name}@{alias} points at no version yet: nothing to compare against", None, candidate)
    current = f"{now.name}:{now.version}"
    if current == candidate:
        return not_run(f"{mv.name}@{alias} is {candidate} already", current, candidate)
    if mv.kind not in ("detector", "classifier"):
        return not_run(f"{candidate} is a {mv.kind}: the gate judges detectors and classifiers", current, candidate)
    if tables is None:
        return not_run(NO_TABLES, current, candidate)
    return compare(tables, current, candidate, models, seed, min_boxes)


def decide(c: dict[str, Any], force: bool, reason: str | None) -> dict[str, Any]:
    """What goes into the answer and the audit: the verdict, whether the promote was forced, and why."""
    out = {"ran": c["ran"], "verdict": c.get("verdict"), "reason": c.get("reason"),
           "forced": bool(force and c["refused"]), "why": reason}
    if c["refused"] and not force:
        raise PromoteRefusedError(
            f"promote refused: {c['candidate']} against {c['current']} on people's verified held-out data: "
            f"{c['verdict']} ({c['rule']}); --force (HTTP: force=true) promotes it all the same, audited", comparison=c)
    return out
