"""The console as ES modules, in headless Chromium over the real app served by uvicorn (no Ray): index.html loads one
module script and nothing else; every page module loads and every page draws without an error; no page shares a
global; and the one form-to-JSON (console/forms.js) on the post-processing and job forms: the tables and their
model version picked from those the service lists, the values sent typed (numbers, lists, booleans), defaults left
out."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from batch.review.browser import find_chromium
from batch.views.pages import CONSOLE_FILES
from tests.fixtures.occurrences import serve_tracked_sheet

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no Chromium (make browser installs Debian's)")

ADMIN = "modules-console-admin"
# What the page sent: every request body, recorded before it leaves (the requests still reach the service).
RECORD_BODIES = ("window.sent = []; const send = window.fetch;"
                 "window.fetch = (url, o) => { if (o && o.body) window.sent.push([String(url), JSON.parse(o.body)]);"
                 " return send(url, o); };")
# Answers the pages show as their message, which the browser logs too: the Ray jobs and the served models (5xx: no
# cluster here, no model loaded) and effort (404: no deployments recorded on these tables). The pages must still draw
# and throw nothing.
EXPECTED = re.compile(r"^log: Failed to load resource: the server responded with a status of "
                      r"(5\d\d .*/v1/(jobs|models)|404 .*/v1/deployments/effort)")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with serve_tracked_sheet(tmp_path_factory.mktemp("modules-console"), ADMIN) as served:
        yield served


def test_one_module_script_loads_every_page_without_an_error(served):
    from tests.fixtures.browser import Browser, console_session, console_url

    url, tables = served
    html = httpx.get(f"{url}/console", timeout=30, trust_env=False).text
    assert re.findall(r"<script[^>]*>", html) == ['<script type="module" src="/console/console.js">']
    modules = sorted(n for n in CONSOLE_FILES if n.endswith(".js"))
    for name in modules:  # a module script must come with a JavaScript type (nosniff)
        r = httpx.get(f"{url}/console/{name}", timeout=30, trust_env=False)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript"), name
    with Browser(1280, 800) as b:
        b.before_load(console_session(ADMIN))
        b.navigate(console_url(url, tables))  # the tables every page reads, as a link names them
        links = b.wait("document.querySelectorAll('header nav a').length >= 10 && "
                       "[...document.querySelectorAll('header nav a')].map(a => a.getAttribute('href'))", 30,
                       "the nav, built by the page modules")
        assert links[:3] == ["#/cameras", "#/captures", "#/jobs"] and "#/deployments" in links, links
        assert {"#/audit", "#/start", "#/postprocess"} <= set(links), links  # the admin's: every page
        for href in links:
            b.eval(f"document.querySelector('#page').replaceChildren(); location.hash = {json.dumps(href)}")
            b.wait("document.querySelector('#page h1') !== null", 30, f"the page {href}")
            assert b.eval("document.querySelector('header nav a.active').getAttribute('href')") == href
        # every file is a module that links (its imports exist) and runs; none is a classic script sharing globals
        for name in modules:
            b.eval(f"import('/console/{name}').then(m => Object.keys(m).length)")
        assert b.eval("[...document.scripts].every(s => s.type === 'module')")
        assert b.eval("['api', 'el', 'route', 'pages', 'fieldFor', 'tablesQuery', 'chosenTables', 'framed']"
                      ".every(n => !(n in window))")
        errors = [e for e in b.errors() if not EXPECTED.match(e)]
        assert errors == [], errors
        # Signed out (this service's reads are open: a reader), the pages that would only answer 403 leave the nav
        b.eval("document.getElementById('token').value = ''; "
               "document.getElementById('token-form').requestSubmit()")
        b.wait("document.getElementById('signed-in').textContent.includes('(reader)')", 30, "the reader signed in")
        reader = b.eval("[...document.querySelectorAll('header nav a')].map(a => a.getAttribute('href'))")
        assert set(links) - set(reader) == {"#/audit", "#/start", "#/postprocess"}, reader


def test_the_post_processing_and_job_forms_pick_the_table_set_and_send_typed_json(served):
    from tests.fixtures.browser import Browser, console_session

    url, tables = served
    sent = "window.sent.filter(([u]) => u.endsWith('/v1/postprocess/preview'))"
    with Browser(1280, 900) as b:
        b.before_load(console_session(ADMIN) + RECORD_BODIES)
        b.navigate(f"{url}/console#/postprocess")
        # the tables picked from those the service lists (with the versions each holds), the model from those versions
        b.wait(f"[...document.querySelectorAll('#tables option')].some(o => o.value === {json.dumps(tables)})", 30,
               "the tables among the known ones")
        assert b.eval("[document.getElementById('tables').tagName, document.getElementById('model').tagName]") == [
            "SELECT", "SELECT"]
        assert "sheetcam:1" in b.eval("[...document.querySelectorAll('#model option')].map(o => o.value)")
        # every option's value is printable (a NUL one is invalid HTML, and makes tools read the page as binary)
        assert b.eval("[...document.querySelectorAll('option')].filter(o => /[\\x00-\\x1f]/.test(o.value)).length") == 0
        assert b.eval("document.getElementById('tables').options[document.getElementById('tables').options.length - 1]"
                      ".textContent") == "another… (type it)"

        def preview(filter_name: str, fields: str) -> dict:
            before = b.eval(f"{sent}.length")
            b.eval(f"""(() => {{ const f = document.getElementById('filter');
                f.value = {json.dumps(filter_name)}; f.dispatchEvent(new Event('change'));
                const set = (id, v) => {{ document.getElementById(id).value = v; }};
                set('tables', {json.dumps(tables)}); set('model', 'sheetcam:1'); set('image', 'sheet/007.jpg');
                {fields}
                document.getElementById('preview').click(); }})()""")
            return b.wait(f"{sent}.length > {before} && {sent}.at(-1)[1]", 30, f"the {filter_name} preview's request")

        # a table-level filter: a box unticked and an integer sent as such; defaults (the other 25 fields) left out
        body = preview("track", "document.getElementById('cfg-predict_motion').checked = false;"
                                "set('cfg-min_frames', '4'); set('cfg-appearance', 'none');")
        assert body == {"tables": tables, "model": "sheetcam:1", "filter": "track", "image": "sheet/007.jpg",
                        "config": {"predict_motion": False, "min_frames": 4, "appearance": "none"}}, body
        # a list from a comma-separated field, an enum away from its default; the preview shows what it would change
        b.wait("document.querySelector('#preview-result .card') !== null || document.getElementById('message')"
               ".textContent !== ''", 30, "the track preview")
        body = preview("class_mask", "set('cfg-allowed_labels', ' deer, '); set('cfg-action', 'flag');")
        assert body["config"] == {"allowed_labels": ["deer"], "action": "flag"}, body
        result = b.wait("document.querySelector('#preview-result .card')?.textContent", 30, "the class_mask preview")
        assert "3 of 3 detection(s); 3 flagged" in result, result  # frame 7 holds three moths, no deer
        assert b.eval("document.getElementById('run').disabled") is False
        # a bad value: the service's 422 names config.min_score, and that field is marked
        preview("score", "set('cfg-min_score', '5');")
        b.wait("document.getElementById('cfg-min_score').getAttribute('aria-invalid') === 'true'", 30,
               "the refused field marked")
        assert "min_score" in b.eval("document.getElementById('message').textContent")
        # a path the service did not list: "another…" turns the picker into a text field the same form reads
        b.eval("(() => { const t = document.getElementById('tables'); t.value = t.options[t.options.length - 1].value;"
               "t.dispatchEvent(new Event('change')); })()")
        assert b.eval("document.getElementById('tables').tagName") == "INPUT"
        body = preview("score", "set('cfg-min_score', '0.5');")
        assert body["tables"] == tables and body["config"] == {"min_score": 0.5}, body
        # a nested config (species_ensemble's smoothing_options) is a JSON field; the list defaults are left out
        nested = json.dumps(json.dumps({"min_detections_to_overwrite_other": 3}))
        body = preview("species_ensemble", f"set('cfg-country', 'DEU'); set('cfg-smoothing_options', {nested});")
        assert body["config"] == {"country": "DEU", "smoothing_options": {"min_detections_to_overwrite_other": 3}}, body

        # Start a job, export: the tables and the model version picked, the format from its registry; the same
        # form-to-JSON builds the job (no cluster here to take it: the request is what is checked)
        b.eval("location.hash = '#/start/export'")
        b.wait(f"[...document.querySelectorAll('#cfg-tables option')].some(o => o.value === {json.dumps(tables)})", 30,
               "the export form's tables")
        assert b.eval("['cfg-tables', 'cfg-model', 'cfg-format'].map(id => document.getElementById(id).tagName)") == [
            "SELECT", "SELECT", "SELECT"]
        assert "sheetcam:1" in b.eval("[...document.querySelectorAll('#cfg-model option')].map(o => o.value)")
        # the chosen format's options only: Camtrap DP's timezone is shown with camtrap-dp, hidden (and not sent,
        # though typed in) with coco
        pick = ("(f => { const s = document.getElementById('cfg-format'); s.value = f; "
                "s.dispatchEvent(new Event('change')); })")
        shown = "['cfg-timezone', 'cfg-out'].map(id => !document.getElementById(id).hidden)"
        b.eval(f"{pick}('camtrap-dp')")
        assert b.eval(shown) == [True, True]
        b.eval("document.getElementById('cfg-timezone').value = '+02:00'")
        b.eval(f"{pick}('coco')")
        assert b.eval(shown) == [False, True]
        assert b.eval("document.querySelector('label[for=cfg-timezone]').hidden") is True
        b.eval(f"""(() => {{ window.confirm = () => true;
            const set = (id, v) => {{ document.getElementById(id).value = v; }};
            set('cfg-tables', {json.dumps(tables)}); set('cfg-model', 'sheetcam:1'); set('cfg-format', 'coco');
            set('cfg-out', {json.dumps(tables + "-coco")});
            document.getElementById('job-run').click(); }})()""")
        job = b.wait("window.sent.filter(([u]) => u.endsWith('/v1/jobs')).at(-1)?.[1]", 30, "the export job's request")
        assert job == {"kind": "export", "options": {"tables": tables, "model": "sheetcam:1", "format": "coco",
                                                     "out": tables + "-coco"}}, job
        errors = [e for e in b.errors() if not re.search(r"status of (422|5\d\d)", e)]
        assert errors == [], errors


def test_an_occurrence_page_reruns_post_processing_on_that_occurrence_alone(served):
    """The occurrence's "Re-run post-processing" opens the form scoped to it: the preview on its first frame, the job
    sent with `occurrences: [its id]` (the option every door shares: CLI --occurrence, POST /v1/jobs)."""
    from tests.fixtures.browser import Browser, console_session, console_url

    url, tables = served
    first = httpx.get(f"{url}/v1/occurrences", params={"tables": tables}, headers={"Authorization": f"Bearer {ADMIN}"},
                      timeout=30, trust_env=False).json()["occurrences"][0]["occurrence_id"]
    with Browser(1280, 900) as b:
        b.before_load(console_session(ADMIN) + RECORD_BODIES)
        b.navigate(console_url(url, tables, f"occurrence/{first}"))
        b.wait("document.getElementById('rerun-occurrence') !== null", 30, "the occurrence page's re-run link")
        b.eval("document.getElementById('rerun-occurrence').click()")
        b.wait("document.getElementById('scope-occurrence')?.textContent", 30, "the form scoped to the occurrence")
        assert first in b.eval("document.querySelector('#page h1').textContent")
        assert b.eval("document.getElementById('image').value") != ""
        b.eval("""(() => { window.confirm = () => true; const f = document.getElementById('filter');
            f.value = 'score'; f.dispatchEvent(new Event('change'));
            document.getElementById('cfg-min_score').value = '0.5'; document.getElementById('preview').click(); })()""")
        b.wait("document.getElementById('run').disabled === false", 30, "the preview")
        preview = b.eval("window.sent.filter(([u]) => u.endsWith('/v1/postprocess/preview')).at(-1)[1]")
        assert "occurrences" not in preview and preview["image"]
        b.eval("document.getElementById('run').click()")
        job = b.wait("window.sent.filter(([u]) => u.endsWith('/v1/jobs')).at(-1)?.[1]", 30, "the job's request")
        assert job["kind"] == "postprocess" and job["options"]["occurrences"] == [first], job
        assert job["options"]["tables"] == tables and job["options"]["config"] == {"min_score": 0.5}, job
