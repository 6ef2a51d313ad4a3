"""The console with personal tokens, in headless Chromium over the real app (no Ray): a reviewer signs in with their
own token and sees who they are; their identification is recorded under their name (the page sends none); the Audit
page shows an admin who did what, and is refused to the reviewer."""

from __future__ import annotations

import httpx
import pytest

from batch.review.browser import find_chromium
from model_store.tables.decisions import DecisionsLog, IdentifyOccurrence
from model_store.tables.locations import open_location
from serve.people import PeopleRegistry
from tests.fixtures.occurrences import serve_tracked_sheet

ADMIN = "people-console-admin"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("people-console")
    registry = PeopleRegistry(str(root / "store" / "_people"))  # the registry's default place: beside the models
    tokens = {"rita": registry.add("rita", "reviewer"), "ada": registry.add("ada", "admin")}
    with serve_tracked_sheet(root, ADMIN) as (url, tables):
        yield url, tables, tokens


def test_a_reviewer_signs_in_decides_as_themself_and_the_admin_reads_the_audit(served):
    from tests.fixtures.browser import Browser, console_url

    if find_chromium() is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    url, tables, tokens = served
    with Browser(1280, 800) as b:
        b.navigate(console_url(url, tables, "occurrences"))
        b.wait("document.getElementById('signed-in').textContent === 'not signed in'", what="the console started")
        b.eval(f"(() => {{ document.getElementById('token').value = {tokens['rita']!r};"
               "document.getElementById('token-form').requestSubmit(); })()")
        b.wait("document.getElementById('signed-in').textContent === 'rita (reviewer)'", what="signed in as rita")
        b.wait("document.querySelectorAll('.card.occurrence').length === 5", what="five occurrence cards")
        card = b.eval("document.querySelector('.card.occurrence').id")
        b.eval(f"(() => {{ const f = document.getElementById('{card}').querySelector('form.identify');"
               "f.querySelector('.identify-label').value = 'Meles meles'; f.requestSubmit(); })()")
        b.wait(f"document.getElementById('{card}').querySelector('.determination').dataset.how === 'human'",
               what="the human determination")
        [ident] = DecisionsLog(open_location(tables)).read()
        assert isinstance(ident, IdentifyOccurrence) and ident.who == "rita"
        b.eval("location.hash = '#/audit'")  # the same page: a hash change, no load
        b.wait("document.getElementById('page').textContent.includes('forbidden') || "
               "document.getElementById('page').textContent.includes('needs an admin')", what="the audit refused")
        # an admin's action, then the admin reads it on the Audit page
        added = httpx.post(f"{url}/v1/admin/people", json={"name": "otto", "role": "operator"},
                           headers={"Authorization": f"Bearer {tokens['ada']}"}, trust_env=False)
        assert added.status_code == 200, added.text
        b.eval(f"(() => {{ document.getElementById('token').value = {tokens['ada']!r};"
               "document.getElementById('token-form').requestSubmit(); })()")
        b.wait("document.getElementById('signed-in').textContent === 'ada (admin)'", what="signed in as ada")
        b.wait("[...document.querySelectorAll('table.audit tbody tr')].some(r => r.textContent.includes('ada') && "
               "r.textContent.includes('POST /v1/admin/people'))", what="ada's action in the audit")
        # the refusals asked for above (whoami before signing in, the reviewer's audit) and nothing else
        assert [e for e in b.errors() if "status of 401" not in e and "status of 403" not in e] == [], b.errors()
