"""The crop/classify stage of the Ray Data plan: after the detector, before the writer.

    ... -> detect -> crop/classify (actor pool) -> write (classifications + snips, detections, images)

For every image with kept detections it reads the file once more (only those: blanks never are),
decodes it at full resolution (a clip: the frame of each track's best detection, `clip_crops.py`),
cuts the crops with the core's `crop_jobs` (in memory), runs each
classifier once over the batch's crops, and writes the JPEG snips when asked. The results ride
along as two extra nested columns that `write_stage_results` turns into the `classifications` and
`snips` files before `write_results` commits the part (model_store/tables/commit.py). Like the other stages it is a
plain callable over a batch, testable without Ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from batch.postprocessing.reclassify import camera_locations
from batch.reprocess.actor_settings import ClassifySettings
from batch.reprocess.clip_crops import best_frames
from model_store import CropOptions, FilterSet, ModelRunError, ModelStore
from model_store.core.crops import SnipSet
from model_store.core.imaging import ImageDecodeError
from model_store.core.pipeline import ClassifierRoute, Pipeline, ResolvedRoute, classify_jobs, crop_jobs, resolve_routes
from model_store.core.video import VideoDecodeError
from model_store.tables.archive import cached_location
from model_store.tables.codec import classification_row, ranked_from_rows
from model_store.tables.schema import (
    CLASSIFICATIONS,
    SNIPS,
    STAGE_SCHEMA,
)
from model_store.tables.snip_files import read_image, write_snips


@dataclass(frozen=True)
class StageSpec:
    """What the crop/classify stage needs, all picklable: pinned classifier routes, crop options, the result hash."""

    routes: list[dict] = field(default_factory=list)  # ClassifierRoute dumps, pinned NAME:VERSION
    crops: dict | None = None  # CropOptions dump, None: no snips
    result_hash: str = ""
    num_cpus: float = 0.5
    concurrency: int = 1


def resolve_stage(store: ModelStore, classify: Sequence[str], detector_labels: Sequence[str],
                  filters: FilterSet) -> list[ResolvedRoute]:
    """Pin the --classify routes (alias -> version) and check them against the detector's labels and the filters."""
    return resolve_routes(store, [ClassifierRoute.parse(text) for text in classify], detector_labels, filters)


def stage_spec(routes: Sequence[ResolvedRoute], crops: CropOptions | None, result_hash: str, num_cpus: float,
               concurrency: int = 1) -> StageSpec:
    pinned = [ClassifierRoute(model=r.ref, labels=list(r.labels), min_crop_px=r.min_crop_px).model_dump()
              for r in routes]
    return StageSpec(pinned, crops.model_dump() if crops else None, result_hash, num_cpus, concurrency)





class ClassifyActor:
    """Crops and classifies the kept detections of a batch of results (`--classify`, `--crops`).

    Lifecycle: Ray Data starts a small pool, each from the run's one `ClassifySettings` (actor_settings.py);
    `__init__` loads each pinned classifier once (sha256-verified); `__call__` then runs per batch of detector
    results (RESULT_SCHEMA rows) and returns them with `classifications` and `snips` columns added. An image whose
    file cannot be read again becomes a failed row (`read_error`, retried by the next run); a
    classifier that fails turns its images into failed rows (`model_error`). The job goes on.
    """

    def __init__(self, settings: ClassifySettings) -> None:
        s = settings
        store = ModelStore(s.store_url)
        self.filters = FilterSet.from_specs(s.filter_specs)
        # The driver checked the routes against the detector's labels; here they are only pinned and loaded.
        resolved = resolve_routes(store, [ClassifierRoute.model_validate(r) for r in s.routes], None)
        self.pipeline = Pipeline.load(store, resolved, threads=s.threads)
        self.crops = CropOptions.model_validate(s.crops) if s.crops else None
        self.archive_url, self.out_url, self.max_pixels = s.archive_url, s.out_url, s.max_pixels
        self.model_name, self.model_version, self.result_hash = s.model_name, s.model_version, s.result_hash
        # the species ensemble's geofence: each image's camera placed by the deployments beside the output tables
        self.placed = "species_ensemble" in dict(self.filters.filters)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        jobs = []
        for i, row in enumerate(rows):
            row[CLASSIFICATIONS], row[SNIPS] = [], []
            if row["status"] != "ok":
                continue  # failed, or no kept detection: nothing to crop
            mine = []
            try:
                for rgb, ranked in self._pictures(row):
                    if self.crops is not None:
                        row[SNIPS] += write_snips(cached_location(self.out_url), rgb, ranked, row,
                                                  SnipSet(self.model_name, self.model_version, self.result_hash,
                                                          self.crops))
                    mine += crop_jobs(rgb, ranked, self.pipeline.routes, i)
            except (OSError, ImageDecodeError, VideoDecodeError) as exc:
                _fail(row, "read_error", f"cannot read {row['uri']} again for cropping: {exc}")
                continue
            jobs += mine
        if jobs and self.placed:
            where = camera_locations(cached_location(self.out_url), batch)
            for job in jobs:
                job.location = where.get(rows[job.image]["uri"])
        if jobs:
            try:
                results = classify_jobs(self.pipeline.classifiers, jobs, self.filters)
            except ModelRunError as exc:
                for i in sorted({job.image for job in jobs}):
                    _fail(rows[i], "model_error", str(exc))
            else:
                for job, result in zip(jobs, results, strict=True):
                    if rows[job.image]["status"] == "ok":
                        rows[job.image][CLASSIFICATIONS].append(classification_row(job.detection, result))
        return pa.Table.from_pylist(rows, schema=STAGE_SCHEMA)


    def _pictures(self, row: dict):
        """(full-size RGB, ranked detections to crop) of a result row: a still once, with its kept detections; a
        clip once per frame that holds the best detection of one of its tracks, with only those (clip_crops.py)."""
        ranked = ranked_from_rows(row["detections"], row["width"], row["height"])
        if row.get("kind") == "video":
            yield from best_frames(row, ranked, self.archive_url, self.max_pixels)
        else:
            yield read_image(row["uri"], row.get("size_bytes"), self.archive_url, self.max_pixels), ranked


def _fail(row: dict, reason: str, message: str) -> None:
    row.update(status="failed", error_reason=reason, error=message, detections=[], detection_count=None,
               raw_detection_count=None, max_score=None, width=None, height=None)
    row[CLASSIFICATIONS], row[SNIPS] = [], []


def add_stage(ds, spec, remote: dict[str, Any]):
    """Append the crop/classify stage to a Ray Data plan (called by `pipeline.build_dataset`)."""
    # late: batch.cli imports the job for `trapline --help`; Ray loads when a job runs
    import ray.data

    stage: StageSpec = spec.stage
    return ds.map_batches(
        ClassifyActor, batch_size=spec.batch_size, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=stage.concurrency), num_cpus=stage.num_cpus, **remote,
        fn_constructor_kwargs={"settings": ClassifySettings(
            store_url=spec.store_url, routes=stage.routes, filter_specs=spec.filter_specs, crops=stage.crops,
            archive_url=spec.archive_url, out_url=spec.out_url, model_name=spec.model_name,
            model_version=spec.model_version, result_hash=stage.result_hash, max_pixels=spec.max_pixels,
            threads=max(1, round(stage.num_cpus)))},
    )
