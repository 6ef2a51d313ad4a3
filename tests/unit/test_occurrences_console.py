"""The console's Occurrences page in headless Chromium, over the real app served by uvicorn (no Ray: these routes
read the tables and the decisions log only): strips of snips, the determination, Identify, and one occurrence's
frames with a corrected classification."""

from __future__ import annotations

import pytest

from batch.review.browser import find_chromium
from model_store.tables.decisions import ClassifyDetection, DecisionsLog, IdentifyOccurrence, SplitOccurrence
from model_store.tables.locations import open_location
from tests.fixtures.occurrences import serve_tracked_sheet

ADMIN = "occ-console-admin"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with serve_tracked_sheet(tmp_path_factory.mktemp("occ-console"), ADMIN) as served:
        yield served


def test_the_occurrences_page_shows_strips_and_records_an_identification(served):
    from tests.fixtures.browser import Browser, console_session, console_url

    if find_chromium() is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    url, tables = served
    with Browser(1280, 800) as b:
        b.before_load(console_session(ADMIN, who="Ann"))  # as typed into the page's name field
        b.navigate(console_url(url, tables, "occurrences"))
        b.wait("document.querySelectorAll('.card.occurrence').length === 5", what="five occurrence cards")
        # every strip fills with real JPEG snips (cut from the frames), at most six per occurrence
        b.wait("[...document.querySelectorAll('.strip')].every(s => s.children.length > 0) && "
               "[...document.querySelectorAll('img.snip')].every(i => i.src.startsWith('data:image/jpeg') "
               "&& i.naturalWidth > 0)", what="snips")
        assert b.eval("document.querySelectorAll('img.snip').length") == 6 + 6 + 3 + 5 + 1
        assert b.eval("document.querySelector('header nav a.active').textContent") == "Occurrences"
        # the table set picked, not typed: the tables among those the service lists, a model version among theirs
        assert b.eval("document.querySelector('form.occ-filters [name=tables]').tagName") == "SELECT"
        assert b.eval("document.querySelector('form.occ-filters [name=tables]').value") == tables
        assert b.eval("[...document.querySelectorAll('form.occ-filters [name=model] option')].map(o => o.value)"
                      ".includes('sheetcam:1')")
        deer = b.eval("[...document.querySelectorAll('.card.occurrence')].find(c => c.textContent.includes('camera "
                      "burst')).id")
        assert "deer" in b.eval(f"document.getElementById('{deer}').querySelector('.determination').textContent")
        b.eval(f"(() => {{ const f = document.getElementById('{deer}').querySelector('form.identify');"
               "f.querySelector('.identify-label').value = 'Capreolus capreolus';"
               "f.requestSubmit(); })()")
        b.wait(f"(document.getElementById('{deer}') || {{}}).querySelector && document.getElementById('{deer}')"
               ".querySelector('.determination').dataset.how === 'human'", what="the human determination")
        text = b.eval(f"document.getElementById('{deer}').querySelector('.determination').textContent")
        assert "Capreolus capreolus" in text and "the model says deer" in text
        [ident] = DecisionsLog(open_location(tables)).read()
        assert isinstance(ident, IdentifyOccurrence) and ident.label == "Capreolus capreolus" and ident.who == "Ann"
        # click through to its frames and correct one detection's label
        b.eval(f"document.getElementById('{deer}').querySelector('a').click()")
        b.wait("document.querySelectorAll('#frames tbody tr').length === 5", what="the frames table")
        b.wait("[...document.querySelectorAll('#frames img.snip')].every(i => i.naturalWidth > 0)", what="frames")
        b.eval("(() => { const f = document.querySelector('#frames form.classify');"
               "f.querySelector('input').value = 'Cervus elaphus'; f.requestSubmit(); })()")
        b.wait("document.querySelectorAll('#history li').length === 2", what="the history")
        assert isinstance(DecisionsLog(open_location(tables)).read()[-1], ClassifyDetection)
        assert b.errors() == []


def test_least_certain_first_and_a_cut_marked_on_the_strip(served):
    from tests.fixtures.browser import Browser, console_session, console_url

    if find_chromium() is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    url, tables = served
    with Browser(1280, 800) as b:
        b.before_load(console_session(ADMIN, kept={"occurrences": {"order": "least_certain"}}))
        b.navigate(console_url(url, tables, "occurrences"))
        # moth A, moth B and the walking deer; moth C sat without a pixel's jitter: certain, not in the queue
        b.wait("document.querySelectorAll('.card.occurrence').length === 3", what="the three uncertain occurrences")
        shown = b.eval("[...document.querySelectorAll('.link-confidence')].map(s => parseFloat(s.textContent"
                       ".split('link ')[1]))")
        assert len(shown) == 3 and shown == sorted(shown) and shown[-1] < 1  # least certain first
        b.eval("document.querySelector('.card.occurrence a').click()")
        b.wait("document.querySelectorAll('#frames tr.weakest-link').length === 1", what="the weakest link marked")
        b.eval("document.querySelector('#frames tr.weakest-link button.cut').click()")
        b.wait("[...document.querySelectorAll('#history li')].some(li => li.textContent.includes('split_occurrence'))",
               what="the cut in the history")
        assert isinstance(DecisionsLog(open_location(tables)).read()[-1], SplitOccurrence)
        assert b.errors() == []
