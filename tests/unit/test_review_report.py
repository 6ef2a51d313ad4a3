"""`trapline report` without a browser: what the page holds, comparison by IoU, unreadable images, options."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pandas as pd
import pytest

from batch.review import ReportOptions, build_report
from batch.review.build import bands
from batch.review.compare import Side, compare_versions
from batch.review.digest import band_of
from ground.errors import BatchError
from tests.fixtures.postprocess import postprocess
from tests.fixtures.review import two_version_tables


class Page(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.srcs, self.ids, self.classes, self.scripts = [], set(), [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a["src"])
        if tag == "script" and "src" in a:
            self.scripts.append(a["src"])
        if "id" in a:
            self.ids.add(a["id"])
        self.classes += (a.get("class") or "").split()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("review")
    spec, archive, out, store = two_version_tables(d)
    return {"spec": spec, "archive": archive, "out": out, "dir": d}


def test_report_shows_counts_galleries_blanks_failures_and_what_v1_found_that_v2_did_not(env, tmp_path):
    spec = env["spec"]
    lines = []
    result = build_report(ReportOptions(str(env["out"]), str(tmp_path / "rep"), model="trapcam:1",
                                        compare="trapcam:2", per_band=4), log=lines.append)
    html = (tmp_path / "rep" / "index.html").read_text()
    page = Page(html)
    # self-contained: every picture is a file next to index.html, no network, no external script
    assert page.srcs and all(not re.match(r"\w+://|//", s) and (tmp_path / "rep" / s).is_file() for s in page.srcs)
    assert not page.scripts and "http://" not in html.replace("http://www.w3.org", "")
    charts = [s for s in page.srcs if s.startswith("plots/")]  # SVG files that parse, and load nothing from elsewhere
    assert {"plots/per_camera.svg", "plots/per_label.svg", "plots/scores.svg"} <= set(charts)
    for rel in charts:
        text = (tmp_path / "rep" / rel).read_text()
        assert ET.fromstring(text).tag == "{http://www.w3.org/2000/svg}svg" and "href" not in text
    assert {"overview", "gallery", "blanks", "compare", "failed", "per-camera", "threshold"} <= page.ids
    assert page.classes.count("band") == 2 * 5  # two labels x five score bands
    ok = [r for r in spec.good if r not in spec.blank]
    assert result.images == len(spec.images) and result.failed == len(spec.failed) and result.unreadable == 0
    for rel, reason in spec.failed.items():  # failed files listed with their reasons
        assert rel in html and reason in html
    assert f"{len(spec.blank)} images with no kept box" in html
    # The deer boxes scoring ~0.26 are below version 2's threshold: found by version 1 only, one per frame.
    assert (result.only_a, result.only_b) == (len(ok), 0)
    assert f"{len(ok)} image(s) where they disagree" in html
    assert any("compared with trapcam:2" in line for line in lines)
    # every kept box's band is in the gallery header counts: deer has frames in 0.80-1.00 and 0.20-0.40
    assert re.search(r"score 0\.80&ndash;1\.00: \d+ image\(s\)", html)


def test_a_missing_image_becomes_a_placeholder_and_is_listed(env, tmp_path):
    archive = tmp_path / "archive"
    shutil.copytree(env["archive"], archive)
    tables = tmp_path / "tables"
    shutil.copytree(env["out"], tables)
    # point the tables at the copy, then remove one day frame from it
    for path in tables.rglob("*.parquet"):
        frame = pd.read_parquet(path)
        frame["uri"] = frame["uri"].str.replace(str(env["archive"]), str(archive), regex=False)
        import pyarrow as pa
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(meta), path)
    gone = archive / "cam02" / "DSC_0001.JPG"
    gone.unlink()
    result = build_report(ReportOptions(str(tables), str(tmp_path / "rep"), model="trapcam:1", per_band=50))
    html = (tmp_path / "rep" / "index.html").read_text()
    assert result.unreadable == 1 and "image unavailable" in html and str(gone) in html


def test_filtered_out_boxes_get_their_own_section(env, tmp_path):
    tables = tmp_path / "tables"
    shutil.copytree(env["out"], tables)
    postprocess(str(tables), "repeat", {"min_images": 3, "min_score": 0.5}, model="trapcam:1")
    build_report(ReportOptions(str(tables), str(tmp_path / "rep"), model="trapcam:1"))
    html = (tmp_path / "rep" / "index.html").read_text()
    assert 'id="flagged"' in html and re.search(r"<h3>repeat <span class=\"muted\">\(\d+ boxes in \d+ images\)", html)


def test_options_are_checked(env, tmp_path):
    with pytest.raises(BatchError, match="several model versions"):
        build_report(ReportOptions(str(env["out"]), str(tmp_path / "r")))
    with pytest.raises(BatchError, match="is the set the report is about"):
        build_report(ReportOptions(str(env["out"]), str(tmp_path / "r"), model="trapcam:1", compare="trapcam:1"))
    with pytest.raises(BatchError, match="edges"):
        bands([0.5, 1.5])
    b = bands([0.2, 0.4, 0.6, 0.8])
    assert b[0] == (0.0, 0.2) and b[-1] == (0.8, 1.0)
    assert [band_of(s, b) for s in (0.0, 0.2, 0.39, 0.8, 1.0)] == [0, 1, 1, 4, 4]


def test_compare_matches_by_iou_and_label():
    def rows(*dets):
        return pd.DataFrame([{"uri": "u", "label": lab, "score": s, "bbox_x": x, "bbox_y": 0.1, "bbox_w": 0.2,
                              "bbox_h": 0.2} for lab, s, x in dets])

    images = pd.DataFrame([{"uri": "u", "status": "ok", "width": 100, "height": 100}])
    a = rows(("deer", 0.9, 0.10), ("deer", 0.8, 0.60), ("fox", 0.7, 0.30))
    b = rows(("deer", 0.4, 0.12), ("person", 0.7, 0.30))  # deer moved a little: IoU ~0.82; fox -> person
    a, b = Side("m:1", images, a), Side("m:2", images, b)
    c = compare_versions(a, b, min_iou=0.5)
    assert c.per_label.loc["deer"].tolist() == [1, 1, 0]
    assert c.per_label.loc["fox"].tolist() == [0, 1, 0] and c.per_label.loc["person"].tolist() == [0, 0, 1]
    assert len(c.diffs) == 1 and c.diffs[0].top_unmatched == 0.8
    assert compare_versions(a, b, min_iou=0.9).per_label.loc["deer"].tolist() == [0, 2, 1]
