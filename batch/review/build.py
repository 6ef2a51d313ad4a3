"""`trapline report`: a static HTML page to judge a run by looking at it, built from the tables.

Reads one model version and filter set through `model_store.tables.reader` (the current row per image and
its detections, kept and dropped) and writes `OUT/index.html` with `plots/` and `thumbs/` beside
it: relative paths only, no server, no network, so the directory can be zipped and mailed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from batch.deployments.observed import report_figures
from batch.export.base import subset_filter
from batch.postprocessing.people import agreement_with_people
from batch.review import plots
from batch.review.animals import set_animals, set_individuals
from batch.review.compare import DEFAULT_MIN_IOU, Comparison, Side, compare_versions
from batch.review.defaults import DEFAULT_EDGES
from batch.review.digest import Cell, Digest, Flagged
from batch.review.page import render_page
from batch.review.species import classifier_names, with_species
from batch.review.thumbs import DEFAULT_SIDE, DrawBox, ThumbJob, Thumbnails, label_colors, mask_key
from ground.errors import BatchError
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.slices import DEFAULT_SLICE_IMAGES, camera_counts, camera_slices, uri_span
from model_store.tables.table_set import TableSet, resolve_table_set

CLIP_STRIP = 8  # a clip card's frames at most (each a thumbnail decoded from the clip)
ONLY_A, ONLY_B, MATCHED = "#ff7b00", "#00c8ff", "#e0e0e0"


@dataclass
class ReportOptions:
    tables: str
    out: str
    model: str | None = None
    filters_hash: str | None = None
    compare: str | None = None  # another model version in the same tables: NAME:VERSION, NAME@ALIAS
    compare_filters_hash: str | None = None
    store: str | None = None
    cameras: list[str] | None = None
    since: Any = None
    until: Any = None
    edges: Sequence[float] = DEFAULT_EDGES  # score-band edges
    per_band: int = 12  # images shown per label and score band (and per filter, and of blanks)
    thumb_side: int = DEFAULT_SIDE
    min_iou: float = DEFAULT_MIN_IOU
    max_failed_listed: int = 1000
    slice_images: int = DEFAULT_SLICE_IMAGES  # image rows read at a time (whole cameras: a larger one alone)
    archive: str | None = None  # the archive's root now, when it moved since the run (model_store/tables/roots.py)


@dataclass
class ReportResult:
    index: str
    model: str
    filters_hash: str
    images: int
    failed: int
    thumbnails: int
    unreadable: int
    wall_s: float
    compared_with: str | None = None
    only_a: int = 0
    only_b: int = 0
    notes: list[str] = field(default_factory=list)
    occurrences: int | None = None  # confirmed occurrences (a tracked set), None otherwise
    disagreements: int = 0  # occurrences a person identified where the model's vote names another label
    agreement: float | None = None  # share of people's identifications this version's own boxes agree with
    individuals: int | None = None  # individuals seen (trapline identify has run on the set), None otherwise


def bands(edges: Sequence[float]) -> list[tuple[float, float]]:
    """Score bands from their edges: [0, e0), [e0, e1), ..., [en, 1]; the last one includes 1."""
    points = sorted({0.0, *(float(e) for e in edges), 1.0})
    if any(not 0.0 <= p <= 1.0 for p in points):
        raise BatchError(f"score-band edges must lie in [0, 1], got {list(edges)!r}")
    return list(zip(points[:-1], points[1:], strict=True))


def build_report(opts: ReportOptions, log: Callable[[str], None] = lambda line: None) -> ReportResult:
    """Write the report for one model version and filter set (and a comparison with another version)."""
    t0 = time.perf_counter()
    if opts.per_band < 1:
        raise BatchError(f"--per-band must be at least 1, got {opts.per_band}")
    all_bands = bands(opts.edges)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    tables = Tables(open_location(opts.tables))
    tset = resolve_table_set(tables, opts.model, opts.filters_hash, opts.store)
    other = _other(tables, tset, opts)
    digest = _read(tables, tset, other, opts, all_bands, log)
    log(f"report: {digest.images} image(s), {digest.kept} kept and {digest.dropped} dropped box(es) of "
        f"{tset.model_name}:{tset.model_version} [filters {tset.filters_hash}]")
    labels = tset.labels or sorted(digest.kept_labels)
    colors = label_colors(sorted(set(labels) | digest.det_labels))
    jobs: dict[str, ThumbJob] = {}

    def boxes_of(uri: str, frame: int | None = None) -> tuple[DrawBox, ...]:
        return tuple(DrawBox(d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h, box_caption(d), colors[d.label],
                             mask=mask_key(getattr(d, "mask", None)))
                     for d in digest.boxes.get(uri, ()) if frame is None or getattr(d, "frame_number", None) == frame)

    def card(uri: str, job: ThumbJob | None = None, note: str = "") -> dict:
        strip = []
        if job is None and digest.shown[uri].get("clip"):  # a clip: its poster frame, and a strip of its frames
            poster, frames = clip_frames(digest.boxes.get(uri, ()))
            job = ThumbJob(uri, boxes_of(uri, poster), f"frame-{poster}", poster)
            strip = [{"job": ThumbJob(uri, boxes_of(uri, f), f"frame-{f}", f), "frame": f} for f in frames]
            for s in strip:
                jobs[f"{uri}\0{s['job'].variant}"] = s["job"]
        job = job or ThumbJob(uri, boxes_of(uri))
        jobs[f"{uri}\0{job.variant}"] = job
        return {"job": job, **digest.shown[uri], "note": note, "strip": strip}

    gallery = _gallery(digest.gallery, digest.label_images, labels, all_bands, card)
    species = digest.species.result()
    species_gallery = _gallery(digest.species_gallery, Counter({r["species"]: r["images"] for r in species}),
                               [r["species"] for r in species], all_bands, card)
    blanks = {"total": digest.blanks.total, "cards": [card(u) for u in digest.blanks.uris]}
    flagged = _flagged(digest.flagged, colors, card, boxes_of)
    comparison, compare_cards = digest.comparison, []
    if other is not None and comparison is None:  # neither set has an image in the scope
        comparison = Comparison(f"{tset.model_name}:{tset.model_version}",
                                f"{other.model_name}:{other.model_version}", opts.min_iou)
    if comparison is not None:
        log(f"report: compared with {comparison.b}: {comparison.differing} image(s) differ")
        compare_cards = _compare_cards(comparison, opts.per_band * 2, card)

    log(f"report: drawing {len(jobs)} thumbnail(s)")
    thumbs = Thumbnails(out, side=opts.thumb_side, archive=opts.archive)
    rendered = thumbs.render_all(list(jobs.values()))
    for c in _all_cards(gallery + species_gallery, blanks, flagged, compare_cards):
        c["src"] = rendered.get(c["job"])
        for s in c.get("strip", ()):
            s["src"] = rendered.get(s["job"])

    charts = _charts(digest, colors, all_bands, out)
    species_colors = label_colors([r["species"] for r in species])
    if species:
        charts.insert(3, {"title": "Species", "src": plots.horizontal_bars(
            {r["species"]: r["images"] for r in species}, "Images with a classified box, per species", out,
            "per_species", species_colors)})
    counted = digest.animals.result() if digest.animals is not None else None
    seen = digest.individuals.result() if digest.individuals is not None else None
    people = agreement_with_people(tables, [tset, *([other] if other is not None else [])], opts.min_iou)
    effort = report_figures(tables, tset, opts.store)
    context = {
        "animals": counted, "effort": effort, "people": people, "individuals": seen,
        "title": f"{tset.model_name}:{tset.model_version} — trapline report",
        "tset": tset, "tables_url": shown_location(tables.url, out),
        "generated": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "classifiers": classifier_names(tset), "species": species, "species_gallery": species_gallery,
        "species_colors": species_colors,
        "summary": digest.summary(), "charts": charts, "colors": colors,
        "per_camera": digest.per_camera(), "gallery": gallery, "blanks": blanks, "flagged": flagged,
        "comparison": comparison, "compare_cards": compare_cards, "compare_colors": (ONLY_A, ONLY_B, MATCHED),
        "failed": digest.failed, "failed_total": digest.failed_total,
        "unreadable": sorted(thumbs.failures.items()),
        "threshold_data": digest.threshold_data(),
        "first_edge": all_bands[1][0] if len(all_bands) > 1 else 0.0,
    }
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(render_page(context), encoding="utf-8")
    tmp.replace(index)
    result = ReportResult(str(index), f"{tset.model_name}:{tset.model_version}", tset.filters_hash, digest.images,
                          digest.failed_total, sum(v is not None for v in rendered.values()), len(thumbs.failures),
                          round(time.perf_counter() - t0, 2))
    if people is not None:
        result.agreement = people["versions"][0]["agreement"]
    if seen is not None:
        result.individuals = seen["individuals"]
    if counted is not None:
        result.occurrences, result.disagreements = counted["occurrences"], len(counted["disagreements"])
    if comparison is not None:
        result.compared_with, result.only_a, result.only_b = (comparison.b, int(comparison.per_label["only_a"].sum()),
                                                              int(comparison.per_label["only_b"].sum()))
    return result


def _other(tables: Tables, tset: TableSet, opts: ReportOptions) -> TableSet | None:
    """The set to compare with (--compare), None without one."""
    if not opts.compare:
        return None
    other = resolve_table_set(tables, opts.compare, opts.compare_filters_hash, opts.store)
    if (other.model_name, other.model_version, other.filters_hash) == (tset.model_name, tset.model_version,
                                                                       tset.filters_hash):
        raise BatchError(f"--compare {opts.compare} is the set the report is about; name another version")
    return other


def _read(tables: Tables, tset: TableSet, other: TableSet | None, opts: ReportOptions,
          all_bands: list[tuple[float, float]], log: Callable[[str], None]) -> Digest:
    """The set read a slice of whole cameras at a time (model_store/tables/slices.py) into a `Digest`; with
    --compare, the slices are of both sets' cameras and each slice's images are compared with the other set's."""
    subset = subset_filter(opts.cameras, opts.since, opts.until)
    counts = camera_counts(tables, tset.model_name, tset.model_version, tset.filters_hash, subset)
    if not counts:
        raise BatchError(f"no image rows for {tset.model_name}:{tset.model_version} in {tables.url} with these options")
    if other is not None:
        counts = counts + camera_counts(tables, other.model_name, other.model_version, other.filters_hash, subset)
    digest = Digest(all_bands, opts.per_band, opts.max_failed_listed, set_animals(tables, tset, opts.store),
                    set_individuals(tables, tset))
    slices = camera_slices(counts, opts.slice_images)
    for n, part in enumerate(slices, 1):
        expr = part.expression(subset)
        images = tables.current_images(tset.model_name, tset.model_version, tset.filters_hash, expr)
        kept, dropped = _boxes(tables, tset, images) if not images.empty else (pd.DataFrame(), pd.DataFrame())
        comparison = None
        if other is not None:  # (no image rows: no detections read, which without a uri span would be all of them)
            images_b = tables.current_images(other.model_name, other.model_version, other.filters_hash, expr)
            kept_b = tables.committed_detections(images_b, other.model_name, other.model_version, other.filters_hash,
                                                 kept_only=True, filter=uri_span(images_b)) \
                if not images_b.empty else pd.DataFrame()
            comparison = compare_versions(Side(f"{tset.model_name}:{tset.model_version}", images, kept),
                                          Side(f"{other.model_name}:{other.model_version}", images_b, kept_b),
                                          opts.min_iou)
        if not images.empty:
            digest.add(images, kept, dropped, comparison)
        elif comparison is not None:  # cameras only the other set has images of
            digest.compared(comparison)
        if len(slices) > 1:
            log(f"report: slice {n}/{len(slices)}: {len(part.cameras)} camera(s), {len(images)} image(s)")
    return digest


def _boxes(tables: Tables, tset: TableSet, images: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept boxes with what the classifiers said of each, dropped boxes) of one slice's image rows."""
    span = uri_span(images)  # the detections of these images' cameras: other row groups skipped by statistics
    dets = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash, filter=span)
    kept = dets[dets["kept"]] if not dets.empty else dets
    dropped = dets[~dets["kept"]] if not dets.empty else dets
    return with_species(tables, tset, images, kept, filter=span), dropped


def clip_frames(boxes: Any, most: int = CLIP_STRIP) -> tuple[int, list[int]]:
    """A clip's poster frame (that of its best kept box; its first without one) and the frames of its strip: those
    with a kept box, at most `most` (evenly spread), in time order."""
    framed = [d for d in boxes if getattr(d, "frame_number", None) is not None and not pd.isna(d.frame_number)]
    if not framed:
        return 0, []
    poster = int(max(framed, key=lambda d: d.score).frame_number)
    frames = sorted({int(d.frame_number) for d in framed})
    if len(frames) > most:
        frames = [frames[round(i * (len(frames) - 1) / (most - 1))] for i in range(most)]
    return poster, frames


def box_caption(d: Any) -> str:
    """A box's caption: the classifier's species (or rolled-up taxon), score and the rule that decided it (`source`)
    where it answered, else the label."""
    species = getattr(d, "species", None)
    if isinstance(species, str) and species:
        source = getattr(d, "species_source", None)  # the rule that decided it, where the table keeps one
        return f"{species} {d.species_score:.2f}" + (f" ({source})" if isinstance(source, str) and source else "")
    return f"{d.label} {d.score:.2f}"


def shown_location(url: str, out: Path) -> str:
    """The tables as the header shows them: an object-store URL whole; a local directory relative to the report
    when it is near it, else by its name (no machine's directory layout in a page people share)."""
    if "://" in url and not url.startswith("file://"):
        return url
    path = Path(url.removeprefix("file://")).resolve()
    rel = os.path.relpath(path, out.resolve())
    return rel if rel.count("..") <= 2 else path.name


def _gallery(cells: dict[tuple[str, int], Cell], images: Counter[str], labels: list[str],
             all_bands: list[tuple[float, float]], card: Callable[..., dict]) -> list[dict]:
    """Per label, per score band (highest first): how many images, and a sample of them as cards."""
    out = []
    for label in labels:
        bands_out = []
        for i in reversed(range(len(all_bands))):
            cell = cells.get((label, i))
            lo, hi = all_bands[i]
            bands_out.append({"lo": lo, "hi": hi, "total": cell.total if cell else 0,
                              "cards": [card(u) for u in cell.uris] if cell else []})
        out.append({"label": label, "images": images[label], "bands": bands_out})
    return out


def _flagged(flagged: dict[str, Flagged], colors: dict[str, str], card: Callable[..., dict],
             boxes_of: Callable[[str], tuple[DrawBox, ...]]) -> list[dict]:
    """Per filter that dropped boxes: how many, and sample images with those boxes dashed."""
    out = []
    for name in sorted(flagged):
        f = flagged[name]
        cards = []
        for uri in f.cell.uris:
            extra = tuple(DrawBox(d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h, f"{name}: {d.label} {d.score:.2f}",
                                  colors.get(d.label, "#ffffff"), dashed=True) for d in f.dropped[uri])
            cards.append(card(uri, ThumbJob(uri, boxes_of(uri) + extra, variant=f"flag:{name}")))
        out.append({"filter": name, "boxes": f.boxes, "images": f.cell.total, "cards": cards})
    return out


def _compare_cards(comparison: Comparison, n: int, card: Callable[..., dict]) -> list[dict]:
    """The first `n` images where the versions disagree, each version's unmatched boxes in its colour."""
    a, b = comparison.a, comparison.b
    cards = []
    for diff in comparison.diffs[:n]:
        boxes = tuple(DrawBox(d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h, f"{a} only: {d.label} {d.score:.2f}", ONLY_A)
                      for d in diff.only_a)
        boxes += tuple(DrawBox(d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h, f"{b} only: {d.label} {d.score:.2f}", ONLY_B)
                       for d in diff.only_b)
        boxes += tuple(DrawBox(da.bbox_x, da.bbox_y, da.bbox_w, da.bbox_h, "", MATCHED, dashed=True)
                       for da, _ in diff.matched)
        note = f"{len(diff.only_a)} only in {a}, {len(diff.only_b)} only in {b}, {len(diff.matched)} in both"
        cards.append(card(diff.uri, ThumbJob(diff.uri, boxes, variant="compare"), note))
    return cards


def _all_cards(gallery: list[dict], blanks: dict, flagged: list[dict], compare_cards: list[dict]) -> list[dict]:
    cards = [c for g in gallery for b in g["bands"] for c in b["cards"]]
    return cards + blanks["cards"] + [c for f in flagged for c in f["cards"]] + compare_cards


def _charts(digest: Digest, colors: dict[str, str], all_bands: list[tuple[float, float]], out: Path) -> list[dict]:
    status_cols = digest.status_columns()
    charts = [{"title": "Images per camera", "src": plots.stacked_bars(
        digest.camera_status_table()[status_cols], "Images per camera, by outcome", out, "per_camera",
        plots.STATUS_COLORS)}]
    if digest.per_day:
        per_day = digest.per_day_table()
        per_day = per_day[[s for s in status_cols if s in per_day]]
        charts.append({"title": "Images per day", "src": plots.stacked_bars(
            per_day, "Images per capture day, by outcome", out, "per_day", plots.STATUS_COLORS)})
    if digest.kept:
        charts.append({"title": "Detections per label", "src": plots.stacked_bars(
            digest.per_label_images(), "Images with a kept box, per label", out, "per_label")})
        edges = [lo for lo, _ in all_bands[1:]]
        scores = {label: digest.scores[label] for label in sorted(digest.scores)}
        charts.append({"title": "Scores", "src": plots.score_histograms(scores, edges, out, colors)})
    return charts


def result_json(result: ReportResult) -> str:
    import dataclasses

    return json.dumps(dataclasses.asdict(result), indent=2)
