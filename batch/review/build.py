"""`trapline report`: a static HTML page to judge a run by looking at it, built from the tables.

Reads one model version and filter set through `model_store.tables.reader` (the current row per image and
its detections, kept and dropped) and writes `OUT/index.html` with `plots/` and `thumbs/` beside
it: relative paths only, no server, no network, so the directory can be zipped and mailed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from batch.export.base import subset_filter
from batch.refilter.people import agreement_with_people
from batch.review import plots
from batch.review.animals import animals, individuals
from batch.review.compare import DEFAULT_MIN_IOU, Comparison, compare_versions
from batch.review.page import render_page
from batch.review.species import classifier_names, species_counts, species_frame, with_species
from batch.review.thumbs import DEFAULT_SIDE, DrawBox, ThumbJob, Thumbnails, label_colors
from model_store.tables.cameras import DEFAULT_CAMERA_ID
from model_store.tables.reader import Tables, TableSet, current_kept, resolve_table_set
from trapline.errors import BatchError

DEFAULT_EDGES = (0.2, 0.4, 0.6, 0.8)
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


def band_of(score: float, all_bands: Sequence[tuple[float, float]]) -> int:
    for i, (lo, hi) in enumerate(all_bands):
        if lo <= score < hi or (hi == 1.0 and score >= 1.0):
            return i
    return 0


def sample(uris: Sequence[str], n: int) -> list[str]:
    """A stable sample: the same tables give the same report (order by a hash of the uri)."""
    return sorted(uris, key=lambda u: hashlib.sha1(u.encode()).hexdigest())[:n]


def _name(row: Any) -> str:
    return str(row.get("rel_path") or row.get("uri"))


def _when(value: Any) -> str:
    return "" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S")


def build_report(opts: ReportOptions, log: Callable[[str], None] = lambda line: None) -> ReportResult:
    """Write the report for one model version and filter set (and a comparison with another version)."""
    t0 = time.perf_counter()
    if opts.per_band < 1:
        raise BatchError(f"--per-band must be at least 1, got {opts.per_band}")
    all_bands = bands(opts.edges)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    tables = Tables(opts.tables)
    tset = resolve_table_set(tables, opts.model, opts.filters_hash, opts.store)
    expr = subset_filter(opts.cameras, opts.since, opts.until)
    images = tables.current_images(tset.model_name, tset.model_version, tset.filters_hash, expr)
    if images.empty:
        raise BatchError(f"no image rows for {tset.model_name}:{tset.model_version} in {tables.url} with these options")
    dets = tables.committed_detections(images, tset.model_name, tset.model_version, tset.filters_hash)
    kept = dets[dets["kept"]] if not dets.empty else dets
    dropped = dets[~dets["kept"]] if not dets.empty else dets
    kept = with_species(tables, tset, images, kept)  # what the classifiers said about each kept box
    log(f"report: {len(images)} image(s), {len(kept)} kept and {len(dropped)} dropped box(es) of "
        f"{tset.model_name}:{tset.model_version} [filters {tset.filters_hash}]")
    labels = tset.labels or sorted(set(kept.get("label", [])))
    colors = label_colors(sorted(set(labels) | set(dets.get("label", []))))
    by_uri = {uri: g for uri, g in kept.groupby("uri", sort=False)} if not kept.empty else {}
    rows = images.set_index("uri", drop=False)

    def boxes_of(uri: str) -> tuple[DrawBox, ...]:
        g = by_uri.get(uri)
        return () if g is None else tuple(
            DrawBox(d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h, box_caption(d), colors[d.label])
            for d in g.itertuples(index=False))

    jobs: dict[str, ThumbJob] = {}

    def card(uri: str, job: ThumbJob | None = None, note: str = "") -> dict:
        job = job or ThumbJob(uri, boxes_of(uri))
        jobs[f"{uri}\0{job.variant}"] = job
        r = rows.loc[uri]
        camera = r["camera_id"] if isinstance(r["camera_id"], str) else ""
        return {"job": job, "name": _name(r), "uri": uri, "camera": camera,
                "time": _when(r["capture_time"]), "note": note}

    gallery = _gallery(kept, labels, all_bands, opts.per_band, card)
    species = species_counts(kept)
    species_gallery = _gallery(species_frame(kept), [r["species"] for r in species], all_bands, opts.per_band, card)
    blank_uris = images.loc[images["status"] == "empty", "uri"].tolist()
    blanks = {"total": len(blank_uris), "cards": [card(u) for u in sample(blank_uris, opts.per_band)]}
    flagged = _flagged(dropped, opts.per_band, colors, card, boxes_of)
    comparison, compare_cards = None, []
    if opts.compare:
        comparison, compare_cards = _compare(tables, tset, images, kept, opts, card, log)

    log(f"report: drawing {len(jobs)} thumbnail(s)")
    thumbs = Thumbnails(out, side=opts.thumb_side)
    rendered = thumbs.render_all(list(jobs.values()))
    for c in _all_cards(gallery + species_gallery, blanks, flagged, compare_cards):
        c["src"] = rendered.get(c["job"])

    charts = _charts(images, kept, colors, all_bands, out)
    species_colors = label_colors([r["species"] for r in species])
    if species:
        charts.insert(3, {"title": "Species", "src": plots.horizontal_bars(
            {r["species"]: r["images"] for r in species}, "Images with a classified box, per species", out,
            "per_species", species_colors)})
    failed = images[images["status"] == "failed"]
    counted = animals(opts.tables, tset, images, kept, opts.store)
    seen = individuals(opts.tables, tset, images)
    compared = [resolve_table_set(tables, opts.compare, opts.compare_filters_hash, opts.store)] if opts.compare else []
    people = agreement_with_people(tables, [tset, *compared], opts.min_iou)
    context = {
        "animals": counted, "people": people, "individuals": seen,
        "title": f"{tset.model_name}:{tset.model_version} — trapline report",
        "tset": tset, "tables_url": shown_location(tables.url, out),
        "generated": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "classifiers": classifier_names(tset), "species": species, "species_gallery": species_gallery,
        "species_colors": species_colors,
        "summary": _summary(images, kept, dropped), "charts": charts, "colors": colors,
        "per_camera": _per_camera(images, kept), "gallery": gallery, "blanks": blanks, "flagged": flagged,
        "comparison": comparison, "compare_cards": compare_cards, "compare_colors": (ONLY_A, ONLY_B, MATCHED),
        "failed": failed.head(opts.max_failed_listed).to_dict("records"), "failed_total": len(failed),
        "unreadable": sorted(thumbs.failures.items()),
        "threshold_data": {label: sorted(g.groupby("uri")["score"].max().round(4).tolist(), reverse=True)
                           for label, g in kept.groupby("label")} if not kept.empty else {},
        "first_edge": all_bands[1][0] if len(all_bands) > 1 else 0.0,
    }
    index = out / "index.html"
    tmp = out / ".index.html.tmp"
    tmp.write_text(render_page(context), encoding="utf-8")
    tmp.replace(index)
    result = ReportResult(str(index), f"{tset.model_name}:{tset.model_version}", tset.filters_hash, len(images),
                          len(failed), sum(v is not None for v in rendered.values()), len(thumbs.failures),
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


def box_caption(d: Any) -> str:
    """A box's caption: the classifier's species (or rolled-up taxon) and score where it answered, else the label."""
    species = getattr(d, "species", None)
    if isinstance(species, str) and species:
        return f"{species} {d.species_score:.2f}"
    return f"{d.label} {d.score:.2f}"


def shown_location(url: str, out: Path) -> str:
    """The tables as the header shows them: an object-store URL whole; a local directory relative to the report
    when it is near it, else by its name (no machine's directory layout in a page people share)."""
    if "://" in url and not url.startswith("file://"):
        return url
    path = Path(url.removeprefix("file://")).resolve()
    rel = os.path.relpath(path, out.resolve())
    return rel if rel.count("..") <= 2 else path.name


def _gallery(kept: pd.DataFrame, labels: list[str], all_bands: list[tuple[float, float]], per_band: int,
             card: Callable[..., dict]) -> list[dict]:
    """Per label, per score band (highest first): how many images, and a sample of them as cards."""
    out = []
    top = kept.groupby(["label", "uri"], as_index=False)["score"].max() if not kept.empty else None
    for label in labels:
        mine = top[top["label"] == label] if top is not None else pd.DataFrame(columns=["uri", "score"])
        which = [band_of(s, all_bands) for s in mine["score"]]
        cells = []
        for i in reversed(range(len(all_bands))):
            uris = [u for u, b in zip(mine["uri"], which, strict=True) if b == i]
            lo, hi = all_bands[i]
            cells.append({"lo": lo, "hi": hi, "total": len(uris), "cards": [card(u) for u in sample(uris, per_band)]})
        out.append({"label": label, "images": len(mine), "bands": cells})
    return out


def _flagged(dropped: pd.DataFrame, per_band: int, colors: dict[str, str], card: Callable[..., dict],
             boxes_of: Callable[[str], tuple[DrawBox, ...]]) -> list[dict]:
    """Per filter that dropped boxes: how many, and sample images with those boxes dashed."""
    if dropped.empty:
        return []
    out = []
    exploded = dropped.explode("flags").dropna(subset=["flags"])
    for name, g in exploded.groupby("flags"):
        by_uri = {u: d for u, d in g.groupby("uri")}
        cards = []
        for uri in sample(list(by_uri), per_band):
            base = boxes_of(uri)
            extra = tuple(DrawBox(d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h, f"{name}: {d.label} {d.score:.2f}",
                                  colors.get(d.label, "#ffffff"), dashed=True) for d in by_uri[uri].itertuples())
            cards.append(card(uri, ThumbJob(uri, base + extra, variant=f"flag:{name}")))
        out.append({"filter": name, "boxes": len(g), "images": len(by_uri), "cards": cards})
    return out


def _compare(tables: Tables, tset: TableSet, images: pd.DataFrame, kept: pd.DataFrame, opts: ReportOptions,
             card: Callable[..., dict], log: Callable[[str], None]) -> tuple[Comparison, list[dict]]:
    other = resolve_table_set(tables, opts.compare, opts.compare_filters_hash, opts.store)
    if (other.model_name, other.model_version, other.filters_hash) == (tset.model_name, tset.model_version,
                                                                       tset.filters_hash):
        raise BatchError(f"--compare {opts.compare} is the set the report is about; name another version")
    images_b, kept_b = current_kept(tables, other, subset_filter(opts.cameras, opts.since, opts.until))
    a = f"{tset.model_name}:{tset.model_version}"
    b = f"{other.model_name}:{other.model_version}"
    comparison = compare_versions(images, kept, images_b, kept_b, a, b, opts.min_iou)
    log(f"report: compared with {b}: {len(comparison.diffs)} image(s) differ")
    cards = []
    for diff in comparison.diffs[: opts.per_band * 2]:
        boxes = tuple(DrawBox(d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h, f"{a} only: {d.label} {d.score:.2f}", ONLY_A)
                      for d in diff.only_a)
        boxes += tuple(DrawBox(d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h, f"{b} only: {d.label} {d.score:.2f}", ONLY_B)
                       for d in diff.only_b)
        boxes += tuple(DrawBox(da.bbox_x, da.bbox_y, da.bbox_w, da.bbox_h, "", MATCHED, dashed=True)
                       for da, _ in diff.matched)
        note = f"{len(diff.only_a)} only in {a}, {len(diff.only_b)} only in {b}, {len(diff.matched)} in both"
        cards.append(card(diff.uri, ThumbJob(diff.uri, boxes, variant="compare"), note))
    return comparison, cards


def _all_cards(gallery: list[dict], blanks: dict, flagged: list[dict], compare_cards: list[dict]) -> list[dict]:
    cards = [c for g in gallery for b in g["bands"] for c in b["cards"]]
    return cards + blanks["cards"] + [c for f in flagged for c in f["cards"]] + compare_cards


def _summary(images: pd.DataFrame, kept: pd.DataFrame, dropped: pd.DataFrame) -> dict[str, int]:
    status = images["status"].value_counts()
    return {"images": len(images), "ok": int(status.get("ok", 0)), "empty": int(status.get("empty", 0)),
            "failed": int(status.get("failed", 0)), "kept": len(kept), "dropped": len(dropped),
            "cameras": int(images["camera_id"].nunique(dropna=False))}


def _per_camera(images: pd.DataFrame, kept: pd.DataFrame) -> list[dict]:
    table = pd.crosstab(images["camera_id"].fillna(DEFAULT_CAMERA_ID), images["status"])
    for s in ("ok", "empty", "failed"):
        if s not in table:
            table[s] = 0
    if not kept.empty:
        cams = kept.merge(images[["uri", "camera_id"]], on="uri")
        labels = pd.crosstab(cams["camera_id"].fillna(DEFAULT_CAMERA_ID), cams["label"])
        table = table.join(labels, how="left").fillna(0)
    return [{"camera": cam, **{k: int(v) for k, v in r.items()}} for cam, r in table.iterrows()]


def _charts(images: pd.DataFrame, kept: pd.DataFrame, colors: dict[str, str], all_bands: list[tuple[float, float]],
            out: Path) -> list[dict]:
    status_cols = [s for s in ("ok", "empty", "failed") if s in set(images["status"])]
    per_camera = pd.crosstab(images["camera_id"].fillna(DEFAULT_CAMERA_ID), images["status"])[status_cols]
    charts = [{"title": "Images per camera", "src": plots.stacked_bars(
        per_camera, "Images per camera, by outcome", out, "per_camera", plots.STATUS_COLORS)}]
    timed = images[images["capture_time"].notna()]
    if not timed.empty:
        per_day = pd.crosstab(pd.to_datetime(timed["capture_time"]).dt.date, timed["status"])
        per_day = per_day[[s for s in status_cols if s in per_day]]
        charts.append({"title": "Images per day", "src": plots.stacked_bars(
            per_day, "Images per capture day, by outcome", out, "per_day", plots.STATUS_COLORS)})
    if not kept.empty:
        per_label = kept.groupby("label").agg(boxes=("score", "size"), images=("uri", "nunique"))
        charts.append({"title": "Detections per label", "src": plots.stacked_bars(
            per_label[["images"]], "Images with a kept box, per label", out, "per_label")})
        scores = {label: g["score"].tolist() for label, g in kept.groupby("label")}
        edges = [lo for lo, _ in all_bands[1:]]
        charts.append({"title": "Scores", "src": plots.score_histograms(scores, edges, out, colors)})
    return charts


def result_json(result: ReportResult) -> str:
    import dataclasses

    return json.dumps(dataclasses.asdict(result), indent=2)
