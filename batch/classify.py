"""The crop/classify stage of the Ray Data plan: after the detector, before the writer.

    ... -> detect -> crop/classify (actor pool) -> write (classifications + snips, detections, images)

For every image with kept detections it reads the file once more (only those: blanks never are),
decodes it at full resolution, cuts the crops with the core's `crop_jobs` (in memory), runs each
classifier once over the batch's crops, and writes the JPEG snips when asked. The results ride
along as two extra nested columns that `write_stage_results` turns into the `classifications` and
`snips` parts before `pipeline.write_results` commits the part. Like the other stages it is a
plain callable over a batch, testable without Ray.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from model_store import CropOptions, FilterSet, ModelRunError, ModelStore
from model_store.crops import big_enough, crop_region, snip_jpeg, snip_path
from model_store.imaging import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image
from model_store.pipeline import ClassifierRoute, Pipeline, ResolvedRoute, classify_jobs, crop_jobs, resolve_routes
from model_store.records import Classification, Detection

from .archive import open_location
from .schema import (
    CLASSIFICATION_FIELDS,
    CLASSIFICATIONS,
    CLASSIFICATIONS_SCHEMA,
    RESULT_SCHEMA,
    SNIP_FIELDS,
    SNIPS,
    SNIPS_SCHEMA,
)
from .writer import parquet_bytes, part_name, partition_parts, write_file

EXTRA_COLUMNS = {CLASSIFICATIONS: pa.list_(pa.struct(CLASSIFICATION_FIELDS)), SNIPS: pa.list_(pa.struct(SNIP_FIELDS))}
STAGE_SCHEMA = pa.schema(list(RESULT_SCHEMA) + [pa.field(k, t) for k, t in EXTRA_COLUMNS.items()])


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


@functools.lru_cache(maxsize=8)
def _storage(url: str):
    return open_location(url)


def ranked_from_rows(detections: Sequence[dict], width: int, height: int) -> list[tuple[Detection, bool]]:
    """A table's (or a result batch's) detection rows back as `(Detection, kept)` in detection_index order."""
    out = []
    for d in sorted(detections, key=lambda d: d["detection_index"]):
        x, y, w, h = d["bbox_x"], d["bbox_y"], d["bbox_w"], d["bbox_h"]
        box = (x * width, y * height, (x + w) * width, (y + h) * height)
        out.append((Detection(label=d["label"], class_id=d["class_id"], score=d["score"], bbox=(x, y, w, h),
                              box_px=box, flags=list(d.get("flags") or [])), bool(d["kept"])))
    return out


def classification_row(detection_index: int, c: Classification) -> dict[str, Any]:
    return {"detection_index": detection_index, "classifier_name": c.model.name,
            "classifier_version": c.model.version, "classifier_sha256": c.model.sha256, "label": c.label,
            "score": c.score, "rank": c.rank, "taxon_path": c.taxon_path, "top_labels": [t.label for t in c.top],
            "top_scores": [t.score for t in c.top], "scores": c.scores, "flags": c.flags}


def write_snips(storage, rgb, ranked: Sequence[tuple[Detection, bool]], row: dict, options: CropOptions,
                model_name: str, model_version: str, result_hash: str) -> list[dict[str, Any]]:
    """Write the JPEG snip of each kept detection (deterministic names: a rerun overwrites); returns snip rows."""
    out = []
    h, w = rgb.shape[:2]
    for j, (det, kept) in enumerate(ranked):
        if not kept or not big_enough(det.box_px, options.min_size):
            continue
        parts = snip_path(row.get("rel_path"), row["uri"], row["content_id"], model_name, model_version,
                          result_hash, options, j)
        storage.write_atomic(snip_jpeg(rgb, det.box_px, options), *parts)
        x0, y0, x1, y1 = crop_region(det.box_px, w, h, options.padding, options.square)
        out.append({"detection_index": j, "crop_uri": storage.url(*parts), "crop_width": x1 - x0,
                    "crop_height": y1 - y0})
    return out


def read_image(uri: str, size_bytes: int | None, archive_url: str, max_pixels: int):
    """The full-resolution RGB image of a file the read stage saw (ImageDecodeError / OSError when it changed)."""
    fs = _storage(archive_url).fs
    data = fs.cat_file(uri)
    if size_bytes is not None and size_bytes >= 0 and len(data) != size_bytes:
        raise OSError(f"{uri} changed during the run ({len(data)} bytes, listed with {size_bytes})")
    return decode_image(data, max_pixels)


class ClassifyActor:
    """Crops and classifies the kept detections of a batch of results (`--classify`, `--crops`).

    Lifecycle: Ray Data starts a small pool; `__init__` loads each pinned classifier once
    (sha256-verified); `__call__` then runs per batch of detector results (RESULT_SCHEMA rows)
    and returns them with `classifications` and `snips` columns added. An image whose file
    cannot be read again becomes a failed row (`read_error`, retried by the next run); a
    classifier that fails turns its images into failed rows (`model_error`). The job goes on.
    """

    def __init__(self, store_url: str, routes: list[dict], filter_specs: list[dict], crops: dict | None,
                 archive_url: str, out_url: str, model_name: str, model_version: str, result_hash: str,
                 max_pixels: int = DEFAULT_MAX_PIXELS, threads: int = 1) -> None:
        store = ModelStore(store_url)
        self.filters = FilterSet.from_specs(filter_specs)
        # The driver checked the routes against the detector's labels; here they are only pinned and loaded.
        resolved = resolve_routes(store, [ClassifierRoute.model_validate(r) for r in routes], None)
        self.pipeline = Pipeline.load(store, resolved, threads=threads)
        self.crops = CropOptions.model_validate(crops) if crops else None
        self.archive_url, self.out_url, self.max_pixels = archive_url, out_url, max_pixels
        self.model_name, self.model_version, self.result_hash = model_name, model_version, result_hash

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        jobs = []
        for i, row in enumerate(rows):
            row[CLASSIFICATIONS], row[SNIPS] = [], []
            if row["status"] != "ok":
                continue  # failed, or no kept detection: nothing to crop
            try:
                rgb = read_image(row["uri"], row.get("size_bytes"), self.archive_url, self.max_pixels)
                ranked = ranked_from_rows(row["detections"], row["width"], row["height"])
                if self.crops is not None:
                    row[SNIPS] = write_snips(_storage(self.out_url), rgb, ranked, row, self.crops, self.model_name,
                                             self.model_version, self.result_hash)
            except (OSError, ImageDecodeError) as exc:
                _fail(row, "read_error", f"cannot read {row['uri']} again for cropping: {exc}")
                continue
            jobs += crop_jobs(rgb, ranked, self.pipeline.routes, i)
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


def _fail(row: dict, reason: str, message: str) -> None:
    row.update(status="failed", error_reason=reason, error=message, detections=[], detection_count=None,
               raw_detection_count=None, max_score=None, width=None, height=None)
    row[CLASSIFICATIONS], row[SNIPS] = [], []


def add_stage(ds, spec, remote: dict[str, Any]):
    """Append the crop/classify stage to a Ray Data plan (called by `pipeline.build_dataset`)."""
    import ray.data

    stage: StageSpec = spec.stage
    return ds.map_batches(
        ClassifyActor, batch_size=spec.batch_size, batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=stage.concurrency), num_cpus=stage.num_cpus, **remote,
        fn_constructor_kwargs={
            "store_url": spec.store_url, "routes": stage.routes, "filter_specs": spec.filter_specs,
            "crops": stage.crops, "archive_url": spec.archive_url, "out_url": spec.out_url,
            "model_name": spec.model_name, "model_version": spec.model_version, "result_hash": stage.result_hash,
            "max_pixels": spec.max_pixels, "threads": max(1, round(stage.num_cpus)),
        },
    )


def flatten_extra(batch: pa.Table, column: str, schema: pa.Schema, result_hash: str, run_id: str) -> pa.Table:
    """One `schema` row per nested entry of `column` (classifications or snips) of a result batch."""
    import pyarrow.compute as pc

    nested = batch[column].combine_chunks()
    parents = pc.list_parent_indices(nested)
    flat = pc.list_flatten(nested)
    n = len(flat)
    cols = {"uri": pc.take(batch["uri"], parents), "content_id": pc.take(batch["content_id"], parents),
            "filters_hash": pa.array([result_hash] * n, pa.string()), "run_id": pa.array([run_id] * n, pa.string())}
    return pa.Table.from_arrays([cols[f.name] if f.name in cols else flat.field(f.name) for f in schema],
                                schema=schema)


def write_stage_results(batch: pa.Table, *, out_url: str, model_name: str, model_version: str, model_sha256: str,
                        filters_hash: str, run_id: str, metadata: dict, fenced: bool = False) -> pa.Table:
    """The sink of a run with a crop/classify stage: its two extra files, then the part as `write_results` does."""
    from .lease import check_held
    from .pipeline import write_results

    storage = open_location(out_url)
    keys = list(zip(batch["uri"].to_pylist(), batch["content_id"].to_pylist(), strict=True))
    name = part_name(run_id, keys)
    if fenced:
        check_held(storage, model_name, model_version, run_id)
    for table, schema in ((CLASSIFICATIONS, CLASSIFICATIONS_SCHEMA), (SNIPS, SNIPS_SCHEMA)):
        rows = flatten_extra(batch, table, schema, filters_hash, run_id)
        if rows.num_rows:  # before the images file, which commits the part
            write_file(storage, parquet_bytes(rows, metadata), table, *partition_parts(model_name, model_version), name)
    stats = write_results(batch.drop_columns(list(EXTRA_COLUMNS)), out_url=out_url, model_name=model_name,
                          model_version=model_version, model_sha256=model_sha256, filters_hash=filters_hash,
                          run_id=run_id, metadata=metadata)  # fenced above, before the first file
    n_cls = sum(len(v) for v in batch[CLASSIFICATIONS].to_pylist())
    return stats.append_column("classifications", pa.array([n_cls], pa.int64()))
