"""`trapline crops --tables DST`: JPEG snips of stored detections, later, without the model.

It reads the kept detections of one model version and result set (the same selection as
`export` / `report`: --model, --filters-hash, a camera or capture-time scope), reads each source
image once, cuts with the shared crop code (`model_store.core.crops`) and writes the snips under the
same deterministic names and as the same `snips` rows as `reprocess --crops` would have. The rows
are added to the snips file of the part that holds the image row (same part name, same run id),
so readers join them like any other, the orphan clean-up keeps them, and a later rerun, or a
`reprocess --crops` that skips these images as done, neither duplicates nor misses one.

A snip counts as done when its row exists and its file is there: a rerun writes nothing. An
image that cannot be read (gone, changed since the run, not decodable) is a failure listed in the
summary; the command goes on with the others.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from batch.postprocessing.options import CropsOptions
from model_store.core.crops import SnipSet, big_enough, crop_region, snip_path
from model_store.core.imaging import DEFAULT_MAX_PIXELS, ImageDecodeError, decode_image
from model_store.tables.archive import cached_location, is_web, read_web
from model_store.tables.codec import ranked_from_rows
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import IMAGES, SNIPS, SNIPS_SCHEMA
from model_store.tables.snip_files import write_snips
from model_store.tables.table_set import resolve_table_set
from model_store.tables.writer import parquet_bytes, partition_parts, write_file

KEY = ["uri", "content_id", "run_id"]


@dataclass
class CropsReport:
    model: str
    filters_hash: str
    crops: dict[str, Any]
    scope: dict[str, Any]
    images: int = 0  # images of the set in scope with kept detections
    snips: int = 0  # kept detections big enough for a snip
    already: int = 0  # of those, row and file already there
    written: int = 0  # JPEG files written
    rows_added: int = 0  # snips rows added (a file present without its row gets only the row)
    images_read: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)  # {"uri", "error"}
    wall_s: float = 0.0
    destination: str = ""


def run_crops(o: CropsOptions, progress: Callable[[str], None] | None = None,
              max_pixels: int = DEFAULT_MAX_PIXELS) -> CropsReport:
    """Write the missing snips (and their rows) of one result set's kept detections (`o`: `trapline crops`' options);
    see the module docstring."""
    t0 = time.perf_counter()
    log = progress or (lambda line: None)
    options, progress_interval = o.crop_options(), o.progress_interval
    scope = o.scope()
    tables = Tables(open_location(o.tables))
    tset = resolve_table_set(tables, o.model, o.filters_hash, o.store)
    name, version, set_hash = tset.model_name, tset.model_version, tset.filters_hash
    snips = SnipSet(name, version, set_hash, options)
    report = CropsReport(f"{name}:{version}", set_hash, options.model_dump(), scope.as_dict(),
                         destination=tables.storage.url(*snips.folder))
    images = tables.current_images(name, version, set_hash, filter=scope.expression())
    images = images[images["status"] == "ok"] if not images.empty else images
    if images.empty:
        log(f"no image with kept detections in {report.model} [filters {set_hash}] ({scope.describe()})")
        report.wall_s = round(time.perf_counter() - t0, 3)
        return report
    dets = tables.committed_detections(images, name, version, set_hash)
    existing = tables.committed_detections(images, name, version, set_hash, table=SNIPS)
    have_rows = set(existing["crop_uri"]) if not existing.empty else set()
    have_files = _existing_files(tables, snips)
    part_of = _parts_of(tables, name, version, set_hash)
    log(f"{len(images)} image(s) with kept detections in {report.model} [filters {set_hash}] "
        f"({scope.describe()}); snips under {report.destination}")
    new_rows: dict[str, list[dict]] = defaultdict(list)
    det_groups = {k: g for k, g in dets.groupby(KEY, sort=False)} if not dets.empty else {}
    last = time.monotonic()
    for n, img in enumerate(images.to_dict("records"), 1):
        key = tuple(img[k] for k in KEY)
        rows = det_groups.get(key)
        if rows is None:
            continue
        report.images += 1
        missing_files, missing_rows = _missing(img, rows, snips, tables, have_rows, have_files, report)
        if missing_files:
            try:
                rgb = read_source(img, max_pixels)
            except (OSError, ImageDecodeError) as exc:
                report.failed.append({"uri": img["uri"], "error": str(exc)})
                log(f"  cannot read {img['uri']}: {exc}")
                continue
            report.images_read += 1
            ranked = [(d, kept and j in missing_files)
                      for j, (d, kept) in enumerate(ranked_from_rows(_records(rows), img["width"], img["height"]))]
            written = write_snips(tables.storage, rgb, ranked, img, snips)
            report.written += len(written)
            missing_rows += [r for r in written if r["crop_uri"] not in have_rows]
        for r in missing_rows:
            new_rows[part_of[key]].append({"uri": img["uri"], "content_id": img["content_id"], **r,
                                           "filters_hash": set_hash, "run_id": img["run_id"]})
        if time.monotonic() - last >= progress_interval:
            last = time.monotonic()
            log(f"  {n}/{len(images)} image(s): {report.written} snip(s) written, {len(report.failed)} failed")
    for part, rows in new_rows.items():
        _append_rows(tables, name, version, part, rows, tset.metadata)
        report.rows_added += len(rows)
    report.wall_s = round(time.perf_counter() - t0, 3)
    return report


def _missing(img: dict, rows: pd.DataFrame, snips: SnipSet, tables: Tables, have_rows: set[str],
             have_files: set[str], report: CropsReport) -> tuple[set[int], list[dict]]:
    """(detection indices whose file is missing, snips rows to add for files already there).

    Seven parameters: the image and its detection rows, whose snips, where (tables), what is there already (rows and
    files) and the report it counts into."""
    options = snips.options
    missing_files: set[int] = set()
    rows_only: list[dict] = []
    w, h = int(img["width"]), int(img["height"])
    # All of an image's detections, kept and dropped, in index order: a position is its detection_index,
    # as in the reprocess path (write_snips names snips by position).
    for j, (det, kept) in enumerate(ranked_from_rows(_records(rows), w, h)):
        if not kept or not big_enough(det.box_px, options.min_side_px):
            continue
        report.snips += 1
        parts = snip_path(img.get("rel_path"), img["uri"], img["content_id"], snips, j)
        uri = tables.storage.url(*parts)
        on_disk = tables.storage.path(*parts) in have_files
        if on_disk and uri in have_rows:
            report.already += 1
        elif on_disk:
            x0, y0, x1, y1 = crop_region(det.box_px, w, h, options.padding, options.square)
            rows_only.append({"detection_index": j, "crop_uri": uri, "crop_width": x1 - x0,
                              "crop_height": y1 - y0})
        else:
            missing_files.add(j)
    return missing_files, rows_only


def _records(rows: pd.DataFrame) -> list[dict]:
    """Detection rows as dicts, with pandas' numpy arrays of flags back as lists."""
    return [{**r, "flags": list(r["flags"]) if r["flags"] is not None else []} for r in rows.to_dict("records")]


def _existing_files(tables: Tables, snips: SnipSet) -> set[str]:
    """Paths of the snip files already under this set and geometry: one listing, not one request per snip."""
    root = tables.storage.path(*snips.folder)
    try:
        return {_strip(p) for p in tables.storage.fs.find(root)}
    except FileNotFoundError:
        return set()


def _strip(path: str) -> str:
    return path.removeprefix("file://")


def _parts_of(tables: Tables, name: str, version: str, set_hash: str) -> dict[tuple, str]:
    """(uri, content_id, run_id) of each image row of the set -> the part file that holds it."""
    import pyarrow.dataset as ds

    out = {}
    for part in tables.parts(IMAGES, name, version):
        t = tables.read(IMAGES, name, version, KEY, filter=ds.field("filters_hash") == set_hash, parts=[part])
        for key in zip(*(t[k].to_pylist() for k in KEY), strict=True):
            out[key] = part
    return out


def _source(bucket: str):
    """One storage per bucket (or the local file system) for reading source images by their full URI."""
    return cached_location(f"s3://{bucket}" if bucket else "/")


def source_bytes(img: dict) -> bytes:
    """The file of a table row, as it is in the archive (OSError when it is gone or changed since the run)."""
    uri = img["uri"]
    if is_web(uri):  # a source recorded by its URL (an Antenna capture)
        data = read_web(uri)
    else:
        data = _source(uri.split("/", 3)[2] if uri.startswith("s3://") else "").fs.cat_file(uri)
    size = img.get("size_bytes")
    if size is not None and not pd.isna(size) and size >= 0 and len(data) != size:
        raise OSError(f"{uri} changed since the run ({len(data)} bytes, the table has {int(size)})")
    return data


def read_source(img: dict, max_pixels: int):
    """The full-resolution RGB image of a table row (OSError when it is gone or changed since the run)."""
    return decode_image(source_bytes(img), max_pixels)


def _append_rows(tables: Tables, name: str, version: str, part: str, rows: list[dict], metadata: dict) -> None:
    """Rewrite one part's snips file with `rows` added (one atomic write; it is created when the part had none)."""
    old = tables.read(SNIPS, name, version, columns=SNIPS_SCHEMA.names, parts=[part]) \
        if tables.storage.exists(SNIPS, *partition_parts(name, version), part) else SNIPS_SCHEMA.empty_table()
    table = pa.concat_tables([old, pa.Table.from_pylist(rows, schema=SNIPS_SCHEMA)])
    write_file(tables.storage, parquet_bytes(table, metadata), SNIPS, *partition_parts(name, version), part)


def format_report(r: CropsReport) -> str:
    lines = [f"snips of {r.model} [filters {r.filters_hash}] ({r.scope.get('description')}): {r.images} image(s), "
             f"{r.snips} kept detection(s) big enough",
             f"  written {r.written} new snip(s), {r.already} already there, {r.rows_added} snips row(s) added; "
             f"{r.images_read} image(s) read in {r.wall_s:.1f}s",
             f"  under {r.destination}"]
    if r.failed:
        lines.append(f"  failed: {len(r.failed)} image(s) could not be read:")
        lines += [f"    {f['uri']}: {f['error']}" for f in r.failed]
    return "\n".join(lines)
