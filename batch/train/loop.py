"""What each Ray Train worker runs (`TorchTrainer(train_loop_per_worker=fine_tune, ...)`): the classifier's network
built and loaded with the version's trainable weights, or with the run's last checkpoint when Ray Train restarted
the workers after a failure; one data-parallel epoch after another over the train split (each worker takes its share
of every global batch; DDP averages the gradients); after each epoch a report with a checkpoint (rank 0 writes it),
so that a killed worker costs at most the epoch it was in.

The config (plain values and object refs, as `train_loop_config`):
`architecture`, `labels`, `initial` (ref: the trainable state_dict's bytes), `x`, `y` (refs: the train split's
inputs and labels), `val` ([x, y] refs of the val split, whose top-1 rank 0 measures after each epoch, or None),
`epochs`, `batch_size`, `lr`, `seed`, `threads`, `fault` ({"epoch", "marker"} or None: the test
hook of `TRAPLINE_TRAIN_FAULT`).
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

STATE_FILE = "state.pt"


def state_bytes(state: dict[str, Any]) -> bytes:
    """A state_dict as `torch.save` writes it (what trainable.pt holds)."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def load_state(data: bytes) -> dict[str, Any]:
    import torch

    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def read_checkpoint(checkpoint: Any) -> dict[str, Any]:
    """A checkpoint's {"model", "optimizer", "epoch", "resumed_from"}."""
    import torch

    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=True)


def _maybe_fail(fault: dict[str, Any] | None, epoch: int, rank: int) -> None:
    """The test hook: the first worker exits at the start of `fault["epoch"]` unless the marker exists (made
    first, so the restarted run goes on)."""
    if not fault or rank != 0 or epoch != fault["epoch"]:
        return
    marker = Path(fault["marker"])
    if marker.exists():
        return
    import ray.train  # the worker's own Ray Train session (this runs only inside a worker)

    # Killed once the last epoch's checkpoint is registered (a report is processed by Ray Train's controller after
    # the call returns): the test sees the resume from it, not a race with its bookkeeping.
    ray.train.get_all_reported_checkpoints(timeout_s=120)
    marker.write_text(f"worker killed at the start of epoch {epoch}\n")
    os._exit(1)


def val_top1(model: Any, x: Any, y: Any, device: Any, batch: int = 256) -> dict[str, Any]:
    """Top-1 of `model` on the val split's inputs `x` and labels `y` (torch tensors)."""
    import torch

    model.eval()
    with torch.no_grad():
        right = sum(int((model(x[i:i + batch].to(device)).argmax(1).cpu() == y[i:i + batch]).sum())
                    for i in range(0, len(y), batch))
    return {"val_top1": right / len(y) if len(y) else None, "val_crops": int(len(y))}


def fine_tune(config: dict[str, Any]) -> dict[str, Any]:
    """One worker's part of the run (see the module docstring); rank 0 returns the run's summary."""
    # Imported in the worker: the module is pickled by reference, and the CLI imports it without starting Ray
    import numpy as np
    import ray
    import ray.train
    import torch
    import torch.nn.functional as F  # noqa: N812 - the conventional alias
    from ray.train import Checkpoint
    from ray.train.torch import prepare_model

    from batch.train.architectures import build  # torch behind it: in the worker, as above

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(config["threads"])
    torch.manual_seed(config["seed"] + rank)
    model = build(config["architecture"], config["labels"])
    checkpoint = ray.train.get_checkpoint()
    saved = read_checkpoint(checkpoint) if checkpoint else None
    model.load_state_dict(saved["model"] if saved else load_state(ray.get(config["initial"])))
    model = prepare_model(model)
    opt = torch.optim.AdamW(model.parameters(), lr=config["lr"], weight_decay=5e-4)
    if saved:
        opt.load_state_dict(saved["optimizer"])
    start = saved["epoch"] + 1 if saved else 1
    resumed = [*saved["resumed_from"], saved["epoch"]] if saved else []
    x_all, y_all = torch.from_numpy(ray.get(config["x"])), torch.from_numpy(ray.get(config["y"]))
    val = [torch.from_numpy(ray.get(r)) for r in config["val"]] if config.get("val") and rank == 0 else None
    n, batch = len(y_all), min(config["batch_size"], len(y_all))
    steps = max(1, n // batch)
    device = next(model.parameters()).device
    seconds, trained = 0.0, 0
    for epoch in range(start, config["epochs"] + 1):
        _maybe_fail(config["fault"], epoch, rank)
        began = time.perf_counter()
        gen = torch.Generator().manual_seed(config["seed"] * 1000 + epoch)  # the same order on every worker
        order = torch.randperm(n, generator=gen)
        model.train()
        losses = []
        for i in range(steps):
            idx = order[i * batch:(i + 1) * batch][rank::world]  # this worker's share of the global batch
            x = x_all[idx]
            flip = torch.rand(len(idx), generator=gen) < 0.5  # animals face either way
            x = torch.where(flip[:, None, None, None], x.flip(3), x).to(device)
            loss = F.cross_entropy(model(x), y_all[idx].to(device), label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss))
        took = time.perf_counter() - began
        seconds, trained = seconds + took, trained + steps * batch
        metrics = {"epoch": epoch, "loss": float(np.mean(losses)), "crops": steps * batch, "seconds": took,
                   "crops_per_s": steps * batch / took if took > 0 else None, "resumed_from": resumed}
        unwrapped = model.module if hasattr(model, "module") else model
        if val is not None:
            metrics.update(val_top1(unwrapped, *val, device))
        if rank == 0:
            with tempfile.TemporaryDirectory() as d:
                torch.save({"model": unwrapped.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch,
                            "resumed_from": resumed}, Path(d) / STATE_FILE)
                ray.train.report(metrics, checkpoint=Checkpoint.from_directory(d))
        else:
            ray.train.report(metrics)
        if rank == 0:
            val_text = f", val top-1 {metrics['val_top1']:.3f}" if metrics.get("val_top1") is not None else ""
            print(f"epoch {epoch}/{config['epochs']}: loss {metrics['loss']:.4f}{val_text}, {metrics['crops']} crops "
                  f"in {took:.1f} s", flush=True)
    return {"epochs_run": config["epochs"] - start + 1, "resumed_from": resumed, "seconds": round(seconds, 3),
            "crops_per_s": round(trained / seconds, 1) if seconds > 0 else None, "workers": world}
