"""`trapline models train REF --crops DIR --version V`: fine-tune a published classifier on a crops export as a Ray
Train job, and publish the result as a new version of it.

1. The source version (a classifier) and its trainable weights (model_store/store/trainable.py; a version published
   as ONNX only has none: exit 2 saying so); the crops set (batch/train/crops.py) checked against its labels and cut
   into its input.
2. A `TorchTrainer` on the same Ray (a private local Ray, or the cluster `--address` names): `--workers` workers of
   `--cpus-per-worker` CPUs each (or one GPU each with `--gpu`), `FailureConfig(max_failures=--max-failures)`, a
   checkpoint each epoch under `--checkpoints` (RunConfig's storage_path; on a cluster, storage every node reaches,
   e.g. s3://). A killed worker restarts the workers from the last checkpoint (batch/train/loop.py).
3. The fine-tuned weights exported to ONNX, both versions measured on the set's test split, and the new version
   published (batch/train/publish.py) with its card and training.json naming the set's manifest.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from batch.train.architectures import build
from batch.train.crops import open_crops, split_inputs
from batch.train.loop import fine_tune, load_state, read_checkpoint
from batch.train.publish import publish_fine_tuned
from ground import env
from ground.errors import BatchError
from ground.printed import Printed
from ground.ray_runtime import ensure_ray, shutdown_ray
from model_store import ModelStore


def fault_hook() -> dict[str, Any] | None:
    """`TRAPLINE_TRAIN_FAULT=EPOCH:MARKER` (tests only), parsed; None when unset."""
    value = env.TRAIN_FAULT.get()
    if not value:
        return None
    epoch, sep, marker = value.partition(":")
    if not sep or not epoch.isdigit() or not marker:
        raise BatchError(f"${env.TRAIN_FAULT.name} is {value!r}: give EPOCH:MARKER (e.g. 2:/tmp/killed)")
    return {"epoch": int(epoch), "marker": marker}


def checkpoints_root(given: str | None) -> str:
    """Where Ray Train keeps the runs' checkpoints: --checkpoints, else ~/.cache/trapline/train."""
    if given:
        return given if "://" in given else str(Path(given).expanduser().resolve())
    return str(Path.home() / ".cache" / "trapline" / "train")


def check_fits(trainable: Any, state: bytes, where: str) -> None:
    """The trainable weights load into their architecture (here, before Ray: not as a worker's traceback)."""
    model = build(trainable.architecture, list(trainable.labels))
    try:
        model.load_state_dict(load_state(state))
    except Exception as exc:  # noqa: BLE001 - torch's unpickler raises whatever the bytes provoke (struct.error, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BatchError(f"{where}: its trainable weights do not fit a {trainable.architecture} network ({first}); "
                         "re-publish them") from None


def plan(o: Any) -> dict[str, Any]:
    """Everything checked before Ray starts: the source version, its trainable weights, the crops (as inputs)."""
    models = ModelStore(o.store)
    source = models.get(o.ref)
    if source.kind != "classifier":
        raise BatchError(f"{source.ref} is a {source.kind}: `trapline models train` fine-tunes classifiers")
    if o.version in models.list_versions(source.name):
        raise BatchError(f"{source.name}:{o.version} already exists; versions are immutable, name a new one")
    trainable, state = models.trainable(source)
    labels = list(source.config.labels)
    if list(trainable.labels) != labels:
        raise BatchError(f"{source.ref}: its trainable weights' labels {list(trainable.labels)} are not its "
                         f"config's {labels}; re-publish the version")
    check_fits(trainable, state, str(source.ref))
    crops = open_crops(o.crops, labels)
    if crops.count("train") < o.workers:
        raise BatchError(f"--crops has {crops.count('train')} train crop(s), fewer than --workers {o.workers}")
    x, y = split_inputs(crops, "train", source.config)
    return {"models": models, "source": source, "trainable": trainable, "state": state, "crops": crops, "x": x,
            "y": y}


def run_trainer(p: dict[str, Any], o: Any, storage: str, name: str) -> Any:
    """The Ray Train run (Ray already connected): its Result."""
    # Ray and Ray Train load on first use: `trapline models train --help` and its checks never need them
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    per_worker = {"GPU": 1.0, "CPU": o.cpus_per_worker} if o.gpu else {"CPU": o.cpus_per_worker}
    config = {"architecture": p["trainable"].architecture, "labels": list(p["trainable"].labels),
              "initial": ray.put(p["state"]), "x": ray.put(p["x"]), "y": ray.put(p["y"]), "epochs": o.epochs,
              "batch_size": o.batch_size, "lr": o.lr, "seed": o.seed, "threads": max(1, int(o.cpus_per_worker)),
              "fault": fault_hook()}
    trainer = TorchTrainer(
        fine_tune, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=o.workers, use_gpu=o.gpu, resources_per_worker=per_worker),
        run_config=RunConfig(name=name, storage_path=storage,
                             failure_config=FailureConfig(max_failures=o.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2)))
    try:
        return trainer.fit()
    except Exception as exc:  # TrainingFailedError: the workers failed more often than --max-failures allows
        raise BatchError(f"the training run failed ({type(exc).__name__}: {str(exc).strip().splitlines()[-1]}); "
                         f"its checkpoints are under {storage}/{name}") from None


def train(o: Any, progress: Any = None) -> Printed:
    """The runner of `trapline models train` (batch/models_commands.py)."""
    p = plan(o)
    source, crops = p["source"], p["crops"]
    say = progress or (lambda line: None)
    say(f"fine-tuning {source.ref} on {crops.count('train')} crop(s) of {crops.root} with {o.workers} Ray Train "
        f"worker(s), {o.epochs} epoch(s)")
    storage, name = checkpoints_root(o.checkpoints), f"{source.name}-{o.version}-{uuid.uuid4().hex[:8]}"
    started = ensure_ray(o.address)
    try:
        result = run_trainer(p, o, storage, name)
    finally:
        if started:
            shutdown_ray()
    if result.checkpoint is None:
        raise BatchError(f"the training run of {source.ref} ended without a checkpoint (no epoch finished)")
    state = read_checkpoint(result.checkpoint)["model"]
    summary = {**(result.return_value or {}), "final_loss": result.metrics.get("loss"), "epochs": o.epochs,
               "workers": o.workers, "cpus_per_worker": o.cpus_per_worker, "gpu": o.gpu, "batch_size": o.batch_size,
               "lr": o.lr, "seed": o.seed, "max_failures": o.max_failures, "train_crops": int(len(p["y"]))}
    done = publish_fine_tuned(p, o.version, state, summary)
    if "://" not in storage:
        shutil.rmtree(os.path.join(storage, name), ignore_errors=True)  # published: the checkpoints are spent
    return Printed(done, "\n".join(done["lines"]))
