"""`trapline report` reads a table set a slice of whole cameras at a time: built with one camera per slice, the
page is the one a single read of the whole set gives (the same numbers, the same sampled cards, the same charts)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from PIL import Image

from batch.identify.options import IdentifyOptions
from batch.identify.run import record_decision, run_identify
from batch.postprocessing import occurrences
from batch.review import ReportOptions, build_report
from model_store.store.store import ModelStore
from model_store.tables.archive import open_location
from model_store.tables.commit import write_stage_results
from model_store.tables.decisions import NameIndividual, make
from model_store.tables.identities import SIGHTINGS, read_result
from model_store.tables.reader import Tables
from model_store.tables.schema import STAGE_SCHEMA
from tests.fixtures.occurrences import write_sheet_tables
from tests.fixtures.postprocess import postprocess
from tests.fixtures.reid_tables import write_identity_tables
from tests.fixtures.review import two_version_tables


def two_versions(d: Path) -> Path:
    """trapcam:1 and :2 over the fixture archive, a repeat filter run on :1 (boxes filtered out)."""
    _, _, out, _ = two_version_tables(d)
    postprocess(str(out), "repeat", {"min_images": 3, "min_score": 0.5}, model="trapcam:1")
    return out


def one_sided(d: Path) -> Path:
    """As `two_versions`, with cam01 processed by trapcam:2 only and cam03 by trapcam:1 only."""
    import pyarrow.parquet as pq

    out = two_versions(d)
    for version, camera in (("1", "cam01"), ("2", "cam03")):
        for path in (out / "images" / "model_name=trapcam" / f"model_version={version}").glob("*.parquet"):
            table = pq.read_table(path)
            pq.write_table(table.filter(pc.not_equal(table["camera_id"], camera)), path)
    return out


def tracked(d: Path) -> Path:
    """A tracked set (occurrences, one a person identified differently) and a second version to compare with."""
    root = d / "sheet"
    write_sheet_tables(root)
    out = write_sheet_tables(root, version="2", relabel={"deer": "moth"})
    postprocess(str(out), "track", {}, model="sheetcam:1")
    occ = occurrences.load(Tables(open_location(str(out))), "sheetcam:1").rows
    deer = occ[occ.camera_id == "burst"].iloc[0]["occurrence_id"]
    moth = occ[(occ.camera_id == "sheet") & (occ.frames == 3)].iloc[0]["occurrence_id"]
    occurrences.identify(
        occurrences.SetPlace(Tables(open_location(str(out))), model="sheetcam:1"), deer, "Capreolus capreolus", "ann"
    )
    occurrences.identify(
        occurrences.SetPlace(Tables(open_location(str(out))), model="sheetcam:1"), moth, "beetle", "ann"
    )
    return out


def identified(d: Path) -> Path:
    """A set `trapline identify` ran on: individuals over several cameras, one of them named."""
    url, _ = write_identity_tables(d / "reid", individuals=5, views=3, tiny=True)
    store = str(d / "models")
    ModelStore(store).publish(None, "coats", "1", {"backend": "keypoints", "applies_to": ["zebra"]})
    run_identify(IdentifyOptions(tables=str(url), identifier="coats:1", store=str(store)))
    some = read_result(open_location(url), SIGHTINGS)["individual_id"].dropna().iloc[-1]
    record_decision(open_location(url), make(NameIndividual, "ana", individual_id=some, name="Zed"))
    return Path(url)


def classified(d: Path) -> Path:
    """A set with a classifier: boxes of five cameras answered with species (some rolled up to a family, some not
    answered), blanks, a failed file and a box a filter dropped."""
    rng = np.random.default_rng(7)
    species = [("Vulpes vulpes", ["Mammalia", "Canidae", "Vulpes vulpes"], None),
               ("Canidae", ["Mammalia", "Canidae"], "family"), ("Capreolus capreolus", ["Mammalia", "Cervidae",
                                                                                         "Capreolus capreolus"], None)]
    rows = []
    for n in range(30):
        camera = f"cam{n % 5}"
        path = d / "archive" / camera / f"{n:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48), (40 + 6 * n, 90, 60)).save(path)
        status = "failed" if n == 7 else "empty" if n % 4 == 3 else "ok"
        dets, answers = [], []
        for i in range(int(rng.integers(1, 4)) if status == "ok" else 0):
            label = ["animal", "person"][int(rng.integers(0, 2))]
            kept = not (n == 5 and i == 0)
            dets.append({"detection_index": i, "label": label, "class_id": int(label == "person"),
                         "score": round(float(rng.uniform(0.1, 1.0)), 3), "bbox_x": 0.1 * i, "bbox_y": 0.2,
                         "bbox_w": 0.3, "bbox_h": 0.3, "kept": kept, "flags": [] if kept else ["edge"]})
            if label == "animal" and kept and rng.uniform() < 0.8:
                name, taxon, rank = species[int(rng.integers(0, 3))]
                answers.append({"detection_index": i, "classifier_name": "colour", "classifier_version": "1",
                                "classifier_sha256": "0" * 64, "label": name, "rank": rank, "taxon_path": taxon,
                                "score": round(float(rng.uniform(0.2, 1.0)), 3), "top_labels": [name],
                                "top_scores": [0.5], "scores": [0.5], "flags": []})
        rows.append({"uri": str(path), "rel_path": f"{camera}/{path.name}", "content_id": f"c{n}",
                     "size_bytes": path.stat().st_size, "camera_id": camera, "width": 64, "height": 48,
                     "capture_time": dt.datetime(2026, 5, 1) + dt.timedelta(hours=7 * n),
                     "capture_time_source": "path", "status": status,
                     "error_reason": "decode" if status == "failed" else None,
                     "error": "broken file" if status == "failed" else None,
                     "detection_count": sum(x["kept"] for x in dets), "raw_detection_count": len(dets),
                     "max_score": max((x["score"] for x in dets), default=None), "detections": dets,
                     "classifications": answers, "snips": []})
    out = d / "tables"
    write_stage_results(pa.Table.from_pylist(rows, schema=STAGE_SCHEMA), out_url=str(out), model_name="md",
                        model_version="5", model_sha256="0" * 64, filters_hash="c1", run_id="20260501T000000Z-c",
                        metadata={"model": {"labels": ["animal", "person"]},
                                  "filters": {"hash": "c1", "classifiers": [{"name": "colour", "version": "1"}]}})
    return out


CASES = {  # name -> (tables builder, report options besides tables/out)
    "compare": (two_versions, {"model": "trapcam:1", "compare": "trapcam:2", "per_band": 1}),
    "compare-more": (two_versions, {"model": "trapcam:1", "compare": "trapcam:2", "per_band": 4,
                                    "max_failed_listed": 1}),
    "one-sided": (one_sided, {"model": "trapcam:1", "compare": "trapcam:2", "per_band": 2}),
    "filtered": (two_versions, {"model": "trapcam:1", "per_band": 2}),
    "tracked": (tracked, {"model": "sheetcam:1", "compare": "sheetcam:2", "compare_filters_hash": "0000000000000000",
                          "per_band": 2}),
    "individuals": (identified, {"per_band": 2}),
    "species": (classified, {"per_band": 2, "max_failed_listed": 0}),
}


def build(tables: Path, out: Path, log=lambda line: None, **options) -> tuple[dict, str, dict[str, bytes], set[str]]:
    """(the result's numbers, the page without its generation time, the chart files, the thumbnail names)."""
    result = build_report(ReportOptions(str(tables), str(out), **options), log=log)
    numbers = {k: v for k, v in dataclasses.asdict(result).items() if k not in ("index", "wall_s")}
    html = re.sub(r"generated \d{4}-\d\d-\d\d \d\d:\d\d", "generated -", (out / "index.html").read_text())
    charts = {p.name: p.read_bytes() for p in sorted((out / "plots").glob("*.svg"))}
    thumbs = {p.name for p in (out / "thumbs").glob("*")} if (out / "thumbs").exists() else set()
    return numbers, html, charts, thumbs


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    made: dict = {}

    def tables_of(builder):
        if builder not in made:
            made[builder] = builder(tmp_path_factory.mktemp(builder.__name__))
        return made[builder]
    return tables_of


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_camera_per_slice_builds_the_page_one_read_of_the_whole_set_builds(case, sets, tmp_path):
    builder, options = CASES[case]
    tables = sets(builder)
    lines: list[str] = []
    whole = build(tables, tmp_path / "whole", log=lines.append, **options)
    assert not any("slice" in line for line in lines)  # the fixtures' sets are read at once by default
    sliced = build(tables, tmp_path / "sliced", log=lines.append, slice_images=1, **options)
    assert sum("report: slice" in line for line in lines) >= 2  # a camera at a time
    assert sliced[0] == whole[0]
    assert sliced[1] == whole[1]
    assert "per_camera.svg" in whole[2] and sliced[2].keys() == whole[2].keys() and sliced[2] == whole[2]
    assert sliced[3] == whole[3]
    shutil.rmtree(tmp_path)
