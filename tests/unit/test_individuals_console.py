"""The console's Individuals pages in headless Chromium, over the real app served by uvicorn (no Ray: these routes
read the identify tables and the decisions log only), after a real `trapline identify` run: strips of snips, a name,
one individual's sightings beside the closest others, a merge, and the review queue."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from batch.identify.options import IdentifyOptions
from batch.identify.run import run_identify
from batch.review.browser import find_chromium
from model_store.store.store import ModelStore
from model_store.tables.decisions import DecisionsLog, MergeIndividuals, NameIndividual
from model_store.tables.locations import open_location
from serve.ingress import IngressCore, token_digest
from tests.fixtures.browser import console_session, console_url
from tests.fixtures.pictures import serve_asgi
from tests.fixtures.reid_tables import write_identity_tables
from trapline.service import service_features

ADMIN = "ind-console-admin"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("ind-console")
    tables, _ = write_identity_tables(root, individuals=4, views=3)
    store = str(root / "models")
    ModelStore(store).publish(None, "coats", "1", {"backend": "keypoints", "applies_to": ["zebra"]})
    run_identify(IdentifyOptions(tables=str(tables), identifier="coats:1", store=str(store)))
    core = IngressCore({"models": [{"name": "det"}], "store": store,
                        "jobs": {"roots": [str(root)], "working_dir_allowed": False}}, {}, token_digest(ADMIN),
                        features=service_features())
    with serve_asgi(core.__serve_build_asgi_app__()) as url:
        yield url, tables


def test_the_individuals_pages_show_sightings_and_record_a_name_and_a_merge(served):
    from tests.fixtures.browser import Browser

    if find_chromium() is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    url, tables = served
    with Browser(1280, 800) as b:
        b.before_load(console_session(ADMIN, who="Ann"))
        b.navigate(console_url(url, tables, "individuals"))
        b.wait("document.querySelectorAll('.card.individual').length === 4", what="four individual cards")
        b.wait("document.querySelectorAll('img.snip').length === 12 && [...document.querySelectorAll('img.snip')]"
               ".every(i => i.src.startsWith('data:image/jpeg') && i.naturalWidth > 0)", what="three snips each")
        assert b.eval("document.querySelector('header nav a.active').textContent") == "Individuals"
        # the weekly figures: twelve sightings in one week, all assigned; one week is not yet stable enough to name
        assert b.eval("[...document.querySelectorAll('#weekly tbody td')].map(td => td.textContent)") == [
            "2026-04-27", "12", "12 (100.0%)", "4", "4", "4", "-"]
        assert b.eval("document.getElementById('readiness').textContent") == "Not ready to name yet"
        assert "not yet: new profiles a week over the last 2 week(s)" in b.eval(
            "document.querySelector('#weekly ul').textContent")
        first = b.eval("document.querySelector('.card.individual').id").removeprefix("ind-")
        b.eval("(() => { const f = document.querySelector('.card.individual form.name');"
               "f.querySelector('input').value = 'Stripey'; f.requestSubmit(); })()")
        b.wait(f"(document.getElementById('ind-{first}') || {{textContent: ''}}).textContent.includes('Stripey')",
               what="the name shown")
        [named] = DecisionsLog(open_location(tables)).read()
        assert isinstance(named, NameIndividual) and named.name == "Stripey" and named.who == "Ann"

        # one individual: its sightings, the closest others; merge the first candidate into it
        b.eval(f"document.getElementById('ind-{first}').querySelector('a').click()")
        b.wait("document.querySelectorAll('#sightings tbody tr').length === 3", what="the sightings table")
        b.wait("[...document.querySelectorAll('#sightings img.snip')].every(i => i.naturalWidth > 0)", what="snips")
        b.wait("document.querySelectorAll('.card.candidate').length > 0", what="the closest individuals")
        other = b.eval("document.querySelector('.card.candidate').id").removeprefix("cand-")
        b.eval("document.querySelector('.card.candidate button.merge').click()")
        b.wait("document.querySelectorAll('#sightings tbody tr').length === 6", what="the merged sightings")
        merge = DecisionsLog(open_location(tables)).read()[-1]
        assert isinstance(merge, MergeIndividuals) and (merge.individual_id, merge.other_id) == (first, other)
        assert b.eval("document.querySelectorAll('#history li').length") == 2

        b.eval("location.hash = '#/review-individuals'")  # a hash change: no page load to wait for
        b.wait("document.querySelector('main h1') && document.querySelector('main h1').textContent"
               ".startsWith('Uncertain matches')", what="the review queue")
        b.eval("location.hash = '#/individuals'")
        b.wait("document.querySelectorAll('.card.individual').length === 3", what="three individuals after the merge")
        # no tables named and no recorder: the page says so and keeps its form, where the tables are named; the
        # tables picked are every page's (the occurrences page reads none either), and the console's URL says so
        b.eval("(() => { const f = document.querySelector('form.occ-filters');"
               "f.querySelector('[name=tables]').value = ''; f.requestSubmit(); })()")
        b.wait("(document.querySelector('main .problem') || {textContent: ''}).textContent.includes('name the tables')",
               what="why nothing is listed")
        assert b.eval("location.search") == ""
        b.eval("location.hash = '#/occurrences'")
        b.wait("document.querySelector('main h1').textContent.startsWith('Occurrences') && "
               "!!document.querySelector('main .problem')", what="the occurrences page's message")
        b.eval("location.hash = '#/individuals'")
        b.wait("document.querySelector('main h1').textContent.startsWith('Individuals') && (document.querySelector("
               "'main .problem') || {textContent: ''}).textContent.includes('name the tables')",
               what="why nothing is listed")
        assert b.eval("document.querySelectorAll('.card.individual').length") == 0
        b.eval(f"(() => {{ const f = document.querySelector('form.occ-filters');"
               f"f.querySelector('[name=tables]').value = {json.dumps(tables)}; f.requestSubmit(); }})()")
        b.wait("document.querySelectorAll('.card.individual').length === 3", what="the individuals of the named tables")
        # the browser logs the refused reads (the 422 naming the field); nothing else went wrong
        errors = b.errors()
        assert len(errors) == 5 and all("status of 422" in e for e in errors), errors
        refused = [e.split("?")[0].rsplit("/", 1)[-1] for e in errors]  # individuals twice, occurrences between
        assert Counter(refused) == {"individuals": 2, "weekly": 2, "occurrences": 1}, errors
