"""The console's Deployments page in headless Chromium, over the real app served by uvicorn (no Ray: these routes read
and append beside the tables), on a tracked set with known animals (tests/fixtures/occurrences.py): the tables picked
from the known ones, a Camtrap DP CSV imported from the page, a clock correction given in the form moves what the page
lists and finds, and revoking it moves it back."""

from __future__ import annotations

import json

import pytest

from batch.review.browser import find_chromium
from model_store.tables.decisions import CorrectClock, DecisionsLog, RevokeDecision
from model_store.tables.locations import open_location
from tests.fixtures.occurrences import serve_tracked_sheet

ADMIN = "dep-console-admin"
CSV = ("deploymentID,cameraID,locationName,latitude,longitude,deploymentStart,deploymentEnd\n"
       "sheet-a,sheet,lamp,52.0,5.0,2026-06-01T20:00:00,2026-06-02T08:00:00\n"
       "burst-a,burst,trail,52.1,5.1,2026-06-01T21:59:00,2026-06-03T21:59:00\n")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with serve_tracked_sheet(tmp_path_factory.mktemp("dep-console"), ADMIN) as served:
        yield served


def cell(deployment: str, column: str) -> str:
    return f"(document.querySelector('#deployments tr[data-deployment={deployment}] td.{column}') || {{}}).textContent"


def test_a_clock_correction_given_on_the_deployments_page_moves_what_it_lists(served):
    from tests.fixtures.browser import Browser, console_session

    if find_chromium() is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    url, tables = served
    with Browser(1280, 900) as b:
        b.before_load(console_session(ADMIN, who="Ann") + "window.confirm = () => true;"
                      # the detection history handed to the browser as a file: kept here instead of saved
                      "const made = URL.createObjectURL; URL.createObjectURL = b => {"
                      " b.text().then(t => { window.savedCsv = t; }); return made(b); };"
                      "const click = HTMLAnchorElement.prototype.click;"
                      "HTMLAnchorElement.prototype.click = function () {"
                      " if (this.download) window.savedName = this.download; else click.call(this); }")
        b.navigate(f"{url}/console#/deployments")
        # the tables are picked from those the service knows, never typed
        b.wait(f"[...document.querySelectorAll('#dep-tables option')].some(o => o.value === {json.dumps(tables)})",
               what="the tables among the known ones")
        b.eval(f"(() => {{ document.getElementById('dep-tables').value = {json.dumps(tables)};"
               "document.querySelector('form.occ-filters').requestSubmit(); })()")
        b.wait("document.querySelector('#deployments td[colspan]') !== null", what="no deployments yet")
        # a Camtrap DP CSV picked in the file input, recorded in the Europe/Amsterdam zone
        b.eval(f"(() => {{ const f = document.getElementById('import-form'); const t = new DataTransfer();"
               f"t.items.add(new File([{json.dumps(CSV)}], 'deployments.csv', {{type: 'text/csv'}}));"
               "f.querySelector('input[type=file]').files = t.files;"
               "f.querySelector('input[type=text]').value = 'Europe/Amsterdam'; f.requestSubmit(); })()")
        b.wait("document.querySelectorAll('#deployments tbody tr[data-deployment]').length === 2",
               what="the two deployments")
        assert b.eval(cell("burst-a", "pictures")) == "5" and b.eval(cell("sheet-a", "pictures")) == "15"
        assert b.eval(cell("burst-a", "first")) == "2026-06-01 20:00:00"  # 22:00 summer time in Amsterdam
        assert b.eval("document.getElementById('clock-problems').textContent") == "no clock problems found"
        b.wait("document.querySelectorAll('#trap-rates tbody tr').length >= 2", what="the trap rates")
        deer = "[...document.querySelectorAll('#trap-rates tbody tr')].find(r => r.textContent.includes('deer'))"
        assert b.eval(f"[...{deer}.children].map(td => td.textContent)") == ["burst-a", "2", "deer", "1", "50", "1"]
        assert b.eval("[...document.querySelectorAll('#activity tbody tr')].find(r => r.firstChild.textContent === "
                      "'deer').children[23].textContent") == "1"  # 22:00 local (column 0 is the species)
        # a longer independence interval: the settings recompute the rates (the moth visits an hour apart: one)
        moth = ("[...document.querySelectorAll('#trap-rates tbody tr')].find(r => r.textContent.includes('sheet-a') "
                "&& r.textContent.includes('moth'))")
        assert b.eval(f"{moth}.children[3].textContent") == "2"
        b.eval("(() => { const f = document.getElementById('effort-settings');"
               "f.querySelector('[name=independence_min]').value = '120'; f.requestSubmit(); })()")
        b.wait(f"{moth}.children[3].textContent === '1'", what="the rates with 120 min independence")

        # burst's clock was an hour fast that night: its pictures move an hour earlier, 21:00 local, before burst-a
        # started: the deployment holds none of them now, and the page says so and why
        b.eval("(() => { const set = (id, v) => { document.getElementById(id).value = v; };"
               "set('clock-camera', 'burst'); set('clock-from', '2026-06-01T00:00:00');"
               "set('clock-until', '2026-06-02T00:00:00'); set('clock-offset', '3600');"
               "set('clock-comment', 'an hour fast'); document.getElementById('clock-form').requestSubmit(); })()")
        b.wait("document.querySelectorAll('#corrections tr[data-decision]').length === 1", what="the correction")
        assert b.eval(cell("burst-a", "pictures")) == "0" and b.eval(cell("sheet-a", "pictures")) == "15"
        assert b.eval("document.getElementById('unplaced').textContent").startswith("5 picture(s) without a deployment")
        problems = b.eval("document.getElementById('clock-problems').textContent")
        assert "outside burst: pictures outside every deployment" in problems
        fix = DecisionsLog(open_location(tables)).read()[-1]
        assert isinstance(fix, CorrectClock) and (fix.camera_id, fix.offset_s, fix.who) == ("burst", 3600, "Ann")
        assert fix.comment == "an hour fast"

        b.eval("document.querySelector('#corrections button.revoke').click()")
        b.wait("document.querySelectorAll('#corrections tr[data-decision]').length === 0", what="the revoke")
        assert b.eval(cell("burst-a", "first")) == "2026-06-01 20:00:00" and b.eval(cell("burst-a", "pictures")) == "5"
        assert b.eval("document.getElementById('unplaced')") is None
        undo = DecisionsLog(open_location(tables)).read()[-1]
        assert isinstance(undo, RevokeDecision) and undo.revoked_id == fix.decision_id

        # a clock nobody can fix: marked, listed so, and the mark is a decision too
        b.eval("document.querySelector('#deployments tr[data-deployment=sheet-a] button.mark-issues').click()")
        b.wait("!!document.querySelector('#deployments tr[data-deployment=sheet-a] button.clear-issues')",
               what="timestampIssues marked")
        assert DecisionsLog(open_location(tables)).read()[-1].action == "timestamp_issues"
        # the deer's detection history by 1-day occasions, as the service computes it, saved as a file
        b.eval("(() => { document.getElementById('history-species').value = 'deer';"
               "document.querySelector('#history-download').form.querySelector('input[type=number]').value = '1';"
               "document.getElementById('history-download').click(); })()")
        b.wait("!!window.savedCsv", what="the detection history")
        assert b.eval("window.savedName") == "detection-history-deer.csv"
        assert b.eval("window.savedCsv").splitlines()[:2] == ["deploymentID,o1,o2,o3", "burst-a,1,0,0"]
        # the browser logs the refused reads: the three before tables were picked (no recorder here to default to)
        # and the effort before any deployment was recorded (a 404 the page shows); nothing else went wrong
        errors = b.errors()
        assert len(errors) == 4 and all("status of 422" in e for e in errors[:3]), errors
        assert "status of 404" in errors[3] and "/v1/deployments/effort?tables=" in errors[3], errors
