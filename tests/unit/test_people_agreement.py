"""Models measured against people: each version's precision and recall per label against the occurrences a person
identified, in the report and in the comparison beside promote (the real app's route)."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest

from batch.postprocessing import occurrences
from batch.postprocessing.people import agreement_with_people
from batch.reprocess.job import _check_people
from batch.reprocess.summary import RunReport, format_report
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.table_set import resolve_table_set
from serve.ingress import IngressCore, token_digest
from tests.fixtures.occurrences import write_sheet_tables
from tests.fixtures.postprocess import postprocess
from trapline.cli import main
from trapline.service import service_features

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("people") / "sheet"
    write_sheet_tables(root)
    out = write_sheet_tables(root, version="2", relabel={"deer": "moth"})  # version 2 calls the deer a moth
    postprocess(str(out), "track", {}, model="sheetcam:1")
    occ = occurrences.load(Tables(open_location(str(out))), "sheetcam:1").rows
    deer = occ[occ.camera_id == "burst"].iloc[0]["occurrence_id"]
    moth_a = occ[(occ.camera_id == "sheet") & (occ.frames == 12)].iloc[0]["occurrence_id"]
    moth_c = occ[(occ.camera_id == "sheet") & (occ.frames == 3)].iloc[0]["occurrence_id"]
    for oid, label in ((deer, "deer"), (moth_a, "moth"), (moth_c, "beetle")):
        occurrences.identify(
            occurrences.SetPlace(Tables(open_location(str(out))), model="sheetcam:1"), oid, label, "ann"
        )
    return out


def by_label(version: dict) -> dict[str, tuple]:
    return {r["label"]: (r["people"], r["model"], r["precision"], r["recall"]) for r in version["per_label"]}


def test_each_version_is_measured_against_the_identifications(tables):
    t = Tables(open_location(str(tables)))
    sets = [resolve_table_set(t, f"sheetcam:{v}", "0000000000000000") for v in ("1", "2")]
    people = agreement_with_people(t, sets)
    assert people["identifications"] == 3 and people["unplaced"] == 0
    one, two = people["versions"]
    assert (one["model"], one["agreed"], one["missed"]) == ("sheetcam:1", 2, 0)
    # the person says beetle where the model says moth: moth's precision suffers, beetle's recall is 0
    assert by_label(one) == {"beetle": (1, 0, None, 0.0), "deer": (1, 1, 1.0, 1.0), "moth": (1, 2, 0.5, 1.0)}
    assert two["agreed"] == 1 and by_label(two)["deer"] == (1, 0, None, 0.0)
    assert by_label(two)["moth"] == (1, 3, pytest.approx(1 / 3, abs=1e-4), 1.0)


def test_the_report_and_the_comparison_beside_promote_show_it(tables, tmp_path, capsys):
    code = main(["report", "--tables", str(tables), "--model", "sheetcam:1", "--out", str(tmp_path / "r"),
                 "--compare", "sheetcam:2", "--compare-filters-hash", "0000000000000000"])
    said = capsys.readouterr().out
    assert code == 0 and "agreement with people's identifications: 67%" in said
    html = (tmp_path / "r" / "index.html").read_text()
    assert 'id="people"' in html and "sheetcam:2 (1/3 agreed)" in html
    core = IngressCore({"models": [{"name": "sheetcam"}], "store": str(tmp_path / "store"),
                        "jobs": {"roots": [str(tables.parent)], "working_dir_allowed": False}}, {}, token_digest("a"),
                        features=service_features())
    with TestClient(core.__serve_build_asgi_app__()) as client:
        r = client.get("/v1/models/sheetcam/compare", params={"a": "1", "b": "2", "tables": str(tables)},
                       headers={"Authorization": "Bearer a"})
    assert r.status_code == 200, r.text
    people = r.json()["people"]
    assert [v["agreement"] for v in people["versions"]] == [pytest.approx(2 / 3, abs=1e-4), pytest.approx(1 / 3,
                                                                                                          abs=1e-4)]


def test_a_reprocess_summary_says_where_the_new_version_disagrees_with_people(tables):
    # the step a reprocess (or a backfill on promote) runs after its last part, on the plan's own tables and set
    plan = SimpleNamespace(
        tables=Tables(open_location(str(tables))),
        model=SimpleNamespace(name="sheetcam", version="2"),
        result_hash="0000000000000000",
    )
    report = RunReport(run_id="r", status="succeeded", model="sheetcam:2", filters_hash="0000000000000000",
                       archive="a", out=str(tables))
    _check_people(plan, report)
    assert (report.identified, report.agrees_with_people) == (3, 1)
    assert "people    agrees with 1 of 3 occurrence(s) people identified; 2 disagree" in format_report(report)


def test_a_log_that_cannot_be_read_is_a_warning_not_a_failed_run(tmp_path):
    (tmp_path / "_decisions").mkdir()
    (tmp_path / "_decisions" / "x.json").write_text('{"action": "explode"}')
    plan = SimpleNamespace(
        tables=Tables(open_location(str(tmp_path))), model=SimpleNamespace(name="m", version="1"), result_hash="h"
    )
    report = RunReport(run_id="r", status="succeeded", model="m:1", filters_hash="h", archive="a", out=str(tmp_path))
    _check_people(plan, report)
    assert report.status == "succeeded" and report.identified == 0
    assert report.warnings and "x.json is not a decision" in report.warnings[0]
