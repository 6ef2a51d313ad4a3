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
import sys
import uuid
from pathlib import Path
from typing import Any

from batch.train.architectures import build
from batch.train.crops import open_crops, split_inputs
from batch.train.loop import fine_tune, load_state, read_checkpoint
from batch.train.publish import publish_fine_tuned
from batch.train.record import RunRecord
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


def check_options(o: Any) -> dict[str, Any]:
    """Everything checked before Ray starts (and before a job of it is submitted: the kind's `check`): the source
    version, its trainable weights, the crops; a BatchError (exit 2, a 422 over HTTP) names what is wrong."""
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
    check_fits_cluster(o)
    return {"models": models, "source": source, "trainable": trainable, "state": state, "crops": crops}


def check_fits_cluster(o: Any) -> None:
    """On a connected Ray (a job's door: the service's replica), the workers fit the cluster's CPUs and GPUs at all;
    Ray Train would otherwise wait for them forever. What the replicas and other jobs hold now is not counted: they
    end, and the job waits its turn."""
    ray = sys.modules.get("ray")  # not imported here: the command line checks before any Ray
    if ray is None or not ray.is_initialized():
        return
    total = ray.cluster_resources()
    cpus, gpus = o.workers * o.cpus_per_worker, o.workers * (1 if o.gpu else 0)
    if cpus > total.get("CPU", 0) + 1e-9:
        raise BatchError(f"--workers {o.workers} x --cpus-per-worker {o.cpus_per_worker:g} is {cpus:g} CPUs, more "
                         f"than the cluster's {total.get('CPU', 0):g}: give a fraction (e.g. --cpus-per-worker 0.25)")
    if gpus > total.get("GPU", 0):
        raise BatchError(f"--gpu: {gpus} GPU(s) for --workers {o.workers}, the cluster has {total.get('GPU', 0):g}")


def plan(o: Any) -> dict[str, Any]:
    """The checks, and the crops as the classifier's inputs: the train split, and the val split that measures each
    epoch (None when the set has none)."""
    p = check_options(o)
    crops, cfg = p["crops"], p["source"].config
    x, y = split_inputs(crops, "train", cfg)
    val = split_inputs(crops, "val", cfg) if crops.count("val") else None
    return {**p, "x": x, "y": y, "val": val}


def run_trainer(p: dict[str, Any], o: Any, storage: str, name: str, callbacks: list[Any] | None = None) -> Any:
    """The Ray Train run (Ray already connected): its Result."""
    # Ray and Ray Train load on first use: `trapline models train --help` and its checks never need them
    import ray
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    per_worker = {"GPU": 1.0, "CPU": o.cpus_per_worker} if o.gpu else {"CPU": o.cpus_per_worker}
    config = {"architecture": p["trainable"].architecture, "labels": list(p["trainable"].labels),
              "initial": ray.put(p["state"]), "x": ray.put(p["x"]), "y": ray.put(p["y"]),
              "val": [ray.put(a) for a in p["val"]] if p["val"] is not None else None, "epochs": o.epochs,
              "batch_size": o.batch_size, "lr": o.lr, "seed": o.seed, "threads": max(1, int(o.cpus_per_worker)),
              "fault": fault_hook()}
    trainer = TorchTrainer(
        fine_tune, train_loop_config=config,
        scaling_config=ScalingConfig(num_workers=o.workers, use_gpu=o.gpu, resources_per_worker=per_worker),
        run_config=RunConfig(name=name, storage_path=storage,
                             failure_config=FailureConfig(max_failures=o.max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=2), callbacks=callbacks or None))
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
    record = RunRecord(o.tables, o, p) if o.tables else None
    try:
        done = fit_and_publish(p, o, storage, name, [record.callback()] if record else [])
    except BaseException as exc:
        if record:
            interrupted = isinstance(exc, KeyboardInterrupt | SystemExit)
            record.end("interrupted" if interrupted else "failed", str(exc) or type(exc).__name__)
        raise
    if record:
        record.end("succeeded", published=done["published"])
    if "://" not in storage:
        shutil.rmtree(os.path.join(storage, name), ignore_errors=True)  # published: the checkpoints are spent
    return Printed(done, "\n".join(done["lines"]))


def fit_and_publish(p: dict[str, Any], o: Any, storage: str, name: str, callbacks: list[Any]) -> dict[str, Any]:
    """The Ray Train run on the same Ray (the job's cluster: $RAY_ADDRESS; else --address or a private local one),
    then the new version published from its last checkpoint."""
    started = ensure_ray(o.address)
    try:
        result = run_trainer(p, o, storage, name, callbacks)
    finally:
        if started:
            shutdown_ray()
    if result.checkpoint is None:
        raise BatchError(f"the training run of {p['source'].ref} ended without a checkpoint (no epoch finished)")
    state = read_checkpoint(result.checkpoint)["model"]
    summary = {**(result.return_value or {}), "final_loss": result.metrics.get("loss"),
               "final_val_top1": result.metrics.get("val_top1"), "epochs": o.epochs, "workers": o.workers,
               "cpus_per_worker": o.cpus_per_worker, "gpu": o.gpu, "batch_size": o.batch_size, "lr": o.lr,
               "seed": o.seed, "max_failures": o.max_failures, "train_crops": int(len(p["y"]))}
    return publish_fine_tuned(p, o.version, state, summary)
