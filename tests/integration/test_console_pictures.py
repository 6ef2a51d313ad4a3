"""The console's pictures in headless Chromium (Debian's package), over the real ingress app served by uvicorn (no Ray:
the pictures routes read the tables, which the reprocess stages wrote in this process).

Checked: the Cameras page is the default page, its pictures load (naturalWidth > 0), the boxes of a capture whose
boxes are known (the detections table) are drawn where they belong; the Captures filters change what is listed; a
broken picture, an unknown camera and empty tables give a clear message; the pages fit 1280 px and a phone's width;
no console error. `make screenshots` saves its screenshots to docs/ (console-cameras.png is linked from the README).
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from batch.review.browser import find_chromium
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS
from tests.fixtures.pictures import build_site, served, set_token_script, site_config

pytestmark = pytest.mark.skipif(find_chromium() is None, reason="no Chromium (make browser installs Debian's)")

ALL_LOADED = """(() => { const imgs = [...document.querySelectorAll('%s img')];
  return imgs.length > 0 && imgs.every(i => i.complete) ? imgs.map(i => i.naturalWidth) : null; })()"""
BOX_PLACES = """(() => { const f = document.querySelector('%s'); const img = f && f.querySelector('img');
  if (!img || !img.complete || !img.naturalWidth) return null;
  const r = img.getBoundingClientRect();
  return {img: [r.left, r.top, r.width, r.height], boxes: [...f.querySelectorAll('.box')].map(b => {
    const q = b.getBoundingClientRect();
    return [Number(b.dataset.index), q.left, q.top, q.width, q.height]; })}; })()"""
FITS = "document.documentElement.scrollWidth <= window.innerWidth + 1"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    site = build_site(tmp_path_factory.mktemp("console-pictures"))
    # a source whose tables are empty, for the message
    empty = site["dir"] / "empty-tables"
    empty.mkdir()
    site["config"] = site_config(site["store"].root, [str(site["dir"])],
                                 [("site-a", site["tables"], site["archive"]), ("empty", empty, site["archive"])])
    return site


def go(b, hash: str) -> None:
    """Another page of the console already open: a hash change (Page.navigate to the same document fires no load)."""
    b.eval(f"document.querySelector('#page').replaceChildren(); location.hash = {hash!r}")


def kept_boxes(site: dict, uri: str) -> dict[int, list[float]]:
    dets = Tables(open_location(str(site["tables"]))).read(DETECTIONS, "trapcam", "1").to_pandas()
    dets = dets[(dets["uri"] == uri) & dets["kept"]]
    return {int(d.detection_index): [d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h] for d in dets.itertuples()}


def assert_boxes_placed(placed: dict, known: dict[int, list[float]]) -> None:
    left, top, width, height = placed["img"]
    assert {b[0] for b in placed["boxes"]} == set(known) and known
    for index, x, y, w, h in placed["boxes"]:
        bx, by, bw, bh = known[index]
        # the box's border box: its top-left at the bbox corner, its size the bbox's, within a pixel or two
        assert abs(x - (left + bx * width)) <= 1.5 and abs(y - (top + by * height)) <= 1.5, (index, x, y)
        assert abs(w - bw * width) <= 1.5 and abs(h - bh * height) <= 1.5, (index, w, h)


def test_cameras_and_captures_pages_in_chromium(site, screenshots):
    from tests.fixtures.browser import Browser

    docs = screenshots
    spec, archive = site["spec"], site["archive"]
    # cam01's oldest good picture, moved away after it was processed (not the newest: the tiles must all load)
    moved = min((p for p in spec.cameras["cam01"] if p in spec.good and p not in spec.blank), key=spec.times.get)
    moved_day = spec.times[moved].date().isoformat()
    (archive / moved).rename(site["dir"] / "moved.jpg")
    with served(site["config"]) as url, Browser(1280, 900) as b:
        b.before_load(set_token_script())
        b.navigate(f"{url}/console")
        b.wait("document.querySelector('#camera-tiles') !== null", 30, "the Cameras page (the default page)")
        assert b.eval("document.querySelector('header nav a.active').textContent") == "Cameras"
        widths = b.wait(ALL_LOADED % "#camera-tiles", 30, "every tile's pictures to load")
        assert all(w > 0 for w in widths), widths
        assert b.eval("document.querySelectorAll('.tile').length") == 3
        # cam02's tile: its newest capture, its kept boxes where the detections table says they are
        newest = str(archive / spec.latest_per_camera()["cam02"])
        placed = b.wait(BOX_PLACES % ".tile[data-camera=cam02] .framed", 30, "cam02's boxes")
        assert_boxes_placed(placed, kept_boxes(site, newest))
        assert b.eval(FITS)
        b.screenshot(docs / "console-cameras.png")
        b.viewport(390, 844, mobile=True)
        b.wait(ALL_LOADED % "#camera-tiles", 30, "the pictures at a phone's width")
        assert b.eval(FITS), "the Cameras page is wider than a phone"
        placed = b.wait(BOX_PLACES % ".tile[data-camera=cam02] .framed", 30, "cam02's boxes on a phone")
        assert_boxes_placed(placed, kept_boxes(site, newest))
        b.screenshot(docs / "console-cameras-phone.png")
        b.viewport(1280, 900)

        # Captures: every capture, then the filters change what is listed
        go(b, "#/captures")
        b.wait("document.querySelector('#captures-count') !== null", 30, "the Captures page")
        total = b.eval("parseInt(document.querySelector('#captures-count').textContent)")
        assert total == len(spec.images)
        b.eval("document.querySelector('#camera').value = 'cam02';"
               "document.querySelector('#capture-filters').requestSubmit()")
        b.wait("location.hash.includes('cam02') && document.querySelector('#captures-count') !== null && "
               f"parseInt(document.querySelector('#captures-count').textContent) === {len(spec.cameras['cam02'])}",
               30, "only cam02's captures")
        uris = b.eval("[...document.querySelectorAll('#captures .capture')].map(a => a.dataset.uri)")
        assert uris and all("/cam02/" in u for u in uris)
        b.eval("document.querySelector('#state').value = 'failed';"
               "document.querySelector('#capture-filters').requestSubmit()")
        b.wait("document.querySelectorAll('#captures .capture').length === 1", 30, "cam02's one failed capture")
        assert "could not be read" in b.eval("document.querySelector('#captures .picture-missing').textContent")
        # a file moved away after it was processed: its card says so instead of an empty box
        go(b, "#/captures/" + quote(f"camera=cam01&until={moved_day}", safe=""))
        b.wait("[...document.querySelectorAll('#captures .picture-missing')].some(m => "
               "m.textContent.startsWith('picture not available'))", 30, "the moved picture's message")
        go(b, "#/captures/camera%3Dnosuch")
        assert "No camera nosuch" in b.wait("document.querySelector('.empty-state')?.textContent", 30)
        # an old bookmark naming a source: its tables become the ones every page reads, in the console's URL
        go(b, "#/cameras/source%3Dempty")
        assert "tables are empty" in b.wait("document.querySelector('.empty-state')?.textContent", 30)
        assert b.eval("new URLSearchParams(location.search).get('tables')").endswith("/empty-tables")
        # and site-a's picked again in the page's tables field
        b.eval("(() => { const s = document.querySelector('#tables');"
               " s.value = [...s.options].find(o => o.value.endsWith('/tables')).value; s.form.requestSubmit(); })()")
        b.wait("document.querySelectorAll('#camera-tiles .tile').length === 3", 30, "site-a's cameras again")

        # one capture, large, with every box where it belongs
        go(b, "#/captures/camera%3Dcam02%26state%3Dnonempty")
        b.wait("document.querySelector('#captures .capture') !== null", 30)
        first = b.eval("document.querySelector('#captures .capture').dataset.uri")
        b.eval("document.querySelector('#captures .capture').click()")
        placed = b.wait(BOX_PLACES % ".framed.large", 30, "the large capture's boxes")
        dets = Tables(open_location(str(site["tables"]))).read(DETECTIONS, "trapcam", "1").to_pandas()
        every = {int(d.detection_index): [d.bbox_x, d.bbox_y, d.bbox_w, d.bbox_h]
                 for d in dets[dets["uri"] == first].itertuples()}
        assert_boxes_placed(placed, every)  # kept and dropped
        assert b.eval("document.querySelectorAll('#capture-boxes tbody tr').length") == len(every)
        assert b.eval(FITS)
        b.screenshot(docs / "console-capture.png")
        b.viewport(390, 844, mobile=True)
        assert b.wait(FITS, 10), "one capture is wider than a phone"
        go(b, "#/captures")
        b.wait("document.querySelector('#captures img')?.naturalWidth > 0", 30, "the captures at a phone's width")
        assert b.eval(FITS), "the Captures page is wider than a phone"
        unexpected = [e for e in b.errors() if quote(moved, safe="") not in e]
        assert unexpected == [], json.dumps(unexpected)
