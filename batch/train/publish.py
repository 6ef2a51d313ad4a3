"""A fine-tune's result as a new version of its classifier: the fine-tuned weights exported to ONNX (what serves),
their state_dict beside it (model_store/store/trainable.py: what the next fine-tune starts from), `training.json`
(the provenance: the source version, the training set's manifest, the run, the held-out accuracy) and a model card
that says the same, so `trapline models show` carries it.

Held-out accuracy is top-1 on the set's test split (cameras the fine-tune never saw), run through the ONNX graphs as
they are served, for the new version and for its source on the same crops, each with its Wilson 95 % interval
(batch/postprocessing/accuracy_stats.py).
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from batch.postprocessing.accuracy_stats import rate, shown
from batch.train.architectures import build
from batch.train.crops import split_inputs
from batch.train.loop import state_bytes
from model_store.store.trainable import trainable_extras

PROVENANCE_FILE = "training.json"


def top1(onnx_path: Path, x: np.ndarray, y: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Top-1 on (x, y), overall and per label (of the crops people gave that label), each a `rate`."""
    from model_store.demo.species import run_onnx  # onnxruntime, loaded late as every backend loads it

    right = run_onnx(onnx_path, x).argmax(axis=1) == y if len(y) else np.zeros(0, bool)
    per = {label: rate(int(right[y == i].sum()), int((y == i).sum())) for i, label in enumerate(labels)
           if (y == i).any()}
    return {"top1": rate(int(right.sum()), int(len(y))), "per_label": per}


def _card(name: str, version: str, t: dict[str, Any]) -> str:
    s, h = t["training_set"], t["heldout"]
    lines = [f"# {name} {version}", "",
             f"{t['source']} fine-tuned with Ray Train on {s['crops']['train']} crop(s) of people's verified boxes "
             f"(`trapline models train`); {PROVENANCE_FILE} holds the whole record, and {name}:{version} is itself "
             "trainable (its torch weights are beside the ONNX).", "",
             "## Training set", "",
             f"- manifest: {s['path']}/manifest.json (sha256 {s['id']})",
             f"- from: {s.get('model')} [filters {s.get('filters_hash')}], tables {s.get('tables')}",
             f"- decisions: {s.get('decisions', {}).get('count')} (sha256 {s.get('decisions', {}).get('sha256')})",
             f"- split: seed {s.get('seed')}, {(s.get('split') or {}).get('rule')}; crops "
             + ", ".join(f"{k} {v}" for k, v in s["crops"].items()), "",
             "## Held-out accuracy (the test split's cameras, Wilson 95 %)", ""]
    if h["top1"]["n"]:
        lines += [f"- top-1: {shown(h['top1'])}", f"- {t['source']} on the same crops: {shown(h['source_top1'])}"]
        lines += [f"  - {label}: {shown(r)}" for label, r in h["per_label"].items()]
    else:
        lines.append("- not measured: the set's test split has no crop")
    r = t["run"]
    lines += ["", "## Run", "",
              f"- {r['epochs']} epoch(s), {r['workers']} worker(s) x {r['cpus_per_worker']:g} CPU"
              + (" + 1 GPU" if r["gpu"] else "") + f", batch {r['batch_size']}, lr {r['lr']:g}, seed {r['seed']}",
              f"- final loss {r['final_loss']:.4f}" if r.get("final_loss") is not None else "- final loss: -",
              f"- {r.get('crops_per_s')} crops/s in the training loop (its last attempt)",
              f"- resumed from the checkpoint of epoch(s) {r['resumed_from']}" if r.get("resumed_from")
              else "- no restart"]
    return "\n".join(lines) + "\n"


def publish_fine_tuned(p: dict[str, Any], version: str, state: dict[str, Any], run: dict[str, Any]
                       ) -> dict[str, Any]:
    """Publish the fine-tuned `state` as `version` of the plan's source classifier (batch/train/run.py `plan`)."""
    from model_store.demo.species import export  # torch, loaded late: the registry imports this room light

    models, source, trainable, crops = p["models"], p["source"], p["trainable"], p["crops"]
    labels = list(source.config.labels)
    model = build(trainable.architecture, labels)
    model.load_state_dict(state)
    model.eval()
    x, y = split_inputs(crops, "test", source.config)
    _, source_onnx = models.fetch(source.ref)
    body = source.config.model_dump(mode="json", exclude={"graph", "species"})
    body["weights"] = {"file": "model.onnx"}
    body["description"] = (f"{source.ref} fine-tuned on {crops.count('train')} verified crop(s) (set "
                           f"{crops.manifest_id[:12]})")
    with tempfile.TemporaryDirectory() as d:
        onnx_path = Path(d) / "model.onnx"
        export(model, onnx_path, tuple(source.config.input_size))
        heldout = {"split": "test", **top1(onnx_path, x, y, labels),
                   "source_top1": top1(source_onnx, x, y, labels)["top1"]}
        training = {"source": str(source.ref), "source_sha256": source.sha256, "architecture": trainable.architecture,
                    "source_trainable_sha256": trainable.sha256, "training_set": crops.provenance(), "run": run,
                    "heldout": heldout, "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        card = Path(d) / "README.md"
        card.write_text(_card(source.name, version, training))
        extras = {**trainable_extras(trainable.architecture, state_bytes(state), labels),
                  PROVENANCE_FILE: json.dumps(training, indent=2).encode()}
        mv = models.publish(onnx_path, source.name, version, body, card=card, extras=extras)
    ref = f"{mv.name}:{mv.version}"
    lines = [f"published {ref} (weights sha256 {mv.sha256[:12]}…), fine-tuned from {source.ref} on set "
             f"{crops.manifest_id[:12]} ({crops.count('train')} train crop(s))",
             f"held-out top-1 on the test split: {shown(heldout['top1'])}; {source.ref}: "
             f"{shown(heldout['source_top1'])}",
             f"promote it with `trapline models promote {ref}`"]
    if source.config.species is not None:
        lines.append(f"note: {source.ref}'s taxonomy and geofence files are not carried over; publish them with it")
    return {"published": ref, "sha256": mv.sha256, "source": str(source.ref), "training": training, "lines": lines}
