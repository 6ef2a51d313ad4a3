"""The determination's `source` shown to people (issue 57, second pass): the pictures and occurrence routes answer it
beside each classification's label and score, the console's capture and occurrence pages show it (headless
Chromium), and the static report captions and counts it — over tables a species_ensemble postprocess wrote."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from urllib.parse import urlencode

import numpy as np
import pytest
from PIL import Image

from batch.review.browser import find_chromium
from batch.review.build import ReportOptions, build_report
from tests.fixtures.pictures import ADMIN, API, app_for, served, site_config
from tests.fixtures.postprocess import postprocess
from tests.unit.test_species_files import store, write_species_tables  # noqa: F401 (a fixture)

with warnings.catch_warnings():  # starlette's TestClient warns about httpx; it is still what FastAPI ships
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

SOURCE = "classifier+geofence+rollup_to_family"  # a lion where the camera stands in Germany


def test_the_source_is_shown_beside_label_and_score(store, tmp_path) -> None:  # noqa: F811
    archive = tmp_path / "archive"
    (archive / "cam1").mkdir(parents=True)
    for n in range(3):
        Image.fromarray(np.full((48, 64, 3), 90 + 20 * n, np.uint8)).save(archive / "cam1" / f"{n}.jpg")
    lion = [0.97, 0.02, 0.01]
    out = write_species_tables(store, tmp_path, [(dt.datetime(2026, 5, 1, 12, 0, n), "animal", 0.9, lion)
                                                 for n in range(3)], archive=str(archive))
    decided = postprocess(str(out), "species_ensemble", {"country": "DEU"}, store=store.root)
    tracked = postprocess(str(out), "track", {}, filters_hash=decided.filters_hash, store=store.root)
    config = {**site_config(store.root, [str(tmp_path)], [("site", out, archive)]), "models": [{"name": "md"}]}
    uri = f"{archive}/cam1/0.jpg"
    auth = {"Authorization": f"Bearer {API}"}

    with TestClient(app_for(config)) as client:
        r = client.get("/v1/pictures/capture", params={"uri": uri, "tables": str(out)}, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["filter_set"]["hash"] == tracked.filters_hash
        [box] = r.json()["detections"]
        [c] = box["classifications"]
        assert (c["label"].rsplit(";", 1)[1], round(c["score"], 2), c["source"]) == ("felidae family", 0.97, SOURCE)
        page = client.get("/v1/occurrences", params={"tables": str(out)}, headers=auth).json()
        [occ] = page["occurrences"]
        shown = client.get(f"/v1/occurrences/{occ['occurrence_id']}", params={"tables": str(out)}, headers=auth)
        assert shown.status_code == 200, shown.text
        sources = [c["source"] for f in shown.json()["frames_shown"] for c in f["classifications"]]
        assert sources == [SOURCE] * 3

    report = build_report(ReportOptions(tables=str(out), out=str(tmp_path / "report"), store=store.root))
    html = open(report.index).read()
    assert "decided by (boxes)" in html and f"{SOURCE} (3)" in html

    if find_chromium() is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    from tests.fixtures.browser import Browser

    with served(config) as url, Browser(1280, 800) as b:
        b.before_load(f"sessionStorage.setItem('trapline-token', {json.dumps(ADMIN)})")
        # a bookmark from before every page took `tables`: the source's tables become the ones picked, in the URL
        b.navigate(f"{url}/console#/capture/" + urlencode({"source": "site", "uri": uri}).replace("&", "%26")
                   .replace("=", "%3D"))
        b.wait(f"document.querySelector('#page').textContent.includes('by {SOURCE}')", 30, "the capture's source")
        assert b.eval("new URLSearchParams(location.search).get('tables')") == str(out)
        assert b.eval("new URLSearchParams(decodeURIComponent(location.hash.split('/')[2])).has('source')") is False
        b.eval(f"location.hash = '#/occurrence/{occ['occurrence_id']}'")
        b.wait(f"document.querySelectorAll('#frames tbody tr').length === 3 && "
               f"document.querySelector('#frames').textContent.split('by {SOURCE}').length === 4", 30,
               "each frame's source")
        # the frames' snip links answer 404 on these hand-written tables (snips are not what is tested here)
        assert [e for e in b.errors() if "/snips/" not in e] == []
