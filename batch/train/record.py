"""A fine-tune's record in tables' `_runs/`: one run manifest of kind `train` (model_store/tables/manifest.py), so that
the jobs view follows a train job as it follows a reprocess (batch/jobs/control.py reads the manifest this job wrote).

Written by the driver when the run starts (`running`, epoch 0 of n) and when it ends (`succeeded` with the version it
published, or `failed` / `interrupted` with the error); after every epoch by a Ray Train callback on the run's
controller (`EpochRecord`, called once every worker has reported the epoch and its checkpoint is kept): the epoch, the
train loss, the validation top-1 and the crops per second. Its counts:
`epoch`, `epochs`, `train_crops`, `val_crops`, `loss`, `val_top1`, `crops_per_s`.

Where: `--tables`; a job submitted without it records into the tables the crops were exported from, as the crops'
manifest names them (`record_tables`, the kind's `fill`), those the console's user picked the crops from.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ground.errors import BatchError, TraplineError
from model_store.tables.archive import open_location
from model_store.tables.manifest import RunManifest, new_run_id, write_manifest
from model_store.tables.schema import RUNS_DIR

logger = logging.getLogger(__name__)
EPOCH_KEYS = ("epoch", "loss", "val_top1", "val_crops", "crops_per_s")  # what each epoch's report adds


def record_tables(o: Any) -> dict[str, Any]:
    """A job's `tables` when it names none: the tables the crops were exported from (their manifest's `tables`)."""
    if o.tables is not None:
        return {}
    path = Path(str(o.crops).removeprefix("file://")) / "manifest.json"
    try:
        manifest = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}  # not a crops set: the kind's check says why
    if not isinstance(manifest, dict) or manifest.get("format") != "crops":
        return {}
    tables = manifest.get("tables")
    if not tables:
        raise BatchError(f"{path} names no tables the crops came from: give tables, where the job's record goes")
    return {"tables": tables}


def write_epoch(tables: str, manifest: RunManifest, metrics: dict[str, Any]) -> None:
    """One epoch into the record; a record that cannot be written is logged, not the run's failure (its checkpoint
    is kept, and the end writes the record again)."""
    manifest.counts.update({k: metrics[k] for k in EPOCH_KEYS if metrics.get(k) is not None})
    manifest.touch()
    try:
        write_manifest(open_location(tables), manifest)
    except (OSError, TraplineError) as exc:
        logger.warning("train: the record in %s could not be written after epoch %s: %s", tables,
                       metrics.get("epoch"), exc)


def epoch_callback(tables: str, manifest: RunManifest) -> Any:
    """The Ray Train callback that writes each epoch into the record (runs on the run's controller)."""
    from ray.train import UserCallback  # late: Ray Train loads only for a run

    class EpochRecord(UserCallback):
        def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
            if metrics:
                write_epoch(tables, manifest, metrics[0])  # rank 0's: it measures validation top-1

    return EpochRecord()


class RunRecord:
    """The driver's side of the record (see the module docstring)."""

    def __init__(self, tables: str, o: Any, p: dict[str, Any]) -> None:
        self.tables = tables
        source, crops = p["source"], p["crops"]
        self.manifest = RunManifest.start(
            new_run_id(), "train", arguments=o.model_dump(mode="json", exclude={"address"}),
            model={"name": source.name, "version": source.version, "ref": str(source.ref), "sha256": source.sha256},
            source=str(crops.root), counts={"epoch": 0, "epochs": o.epochs, "train_crops": crops.count("train"),
                                            "val_crops": crops.count("val")})
        self.storage = open_location(tables)  # the driver's: opened once for the start and the end
        write_manifest(self.storage, self.manifest)

    def callback(self) -> Any:
        return epoch_callback(self.tables, self.manifest)

    def end(self, status: str, error: str | None = None, published: str | None = None) -> None:
        """The run's end, over the newest epoch the callback wrote."""
        try:
            m = RunManifest.model_validate_json(self.storage.read_bytes(RUNS_DIR, f"{self.manifest.run_id}.json"))
        except (OSError, ValueError):
            m = self.manifest
        m.published = published
        m.finish(status, error)  # type: ignore[arg-type]
        write_manifest(self.storage, m)
