"""The review commands as a user runs them: `trapline postprocess --filter repeat`, `trapline events` and
`trapline report`, then the report opened in a real headless Chromium (Debian's `chromium`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from batch.review.browser import find_chromium, visit
from tests.fixtures.review import two_version_tables

REPO = Path(__file__).resolve().parents[2]
TRAPLINE = str(Path(sys.executable).parent / "trapline")
# What a person needs to see: the gallery's pictures all loaded, the failed files listed.
PAGE_FACTS = """(() => {
  const cards = [...document.querySelectorAll('#gallery .card img')];
  return {cards: cards.length, loaded: cards.filter(i => i.complete && i.naturalWidth > 0).length,
          allImages: [...document.images].every(i => i.complete && i.naturalWidth > 0),
          failedRows: document.querySelectorAll('#failed-table tbody tr').length,
          thresholdRows: document.querySelectorAll('#threshold-table tbody tr').length,
          compareRows: document.querySelectorAll('#compare-table tbody tr').length};
})()"""


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([TRAPLINE, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("review-cli")
    spec, archive, out, store = two_version_tables(d)
    return {"spec": spec, "out": str(out), "dir": d}


def test_postprocess_repeat_then_events_then_report_from_the_command_line(env):
    out, d = env["out"], env["dir"]
    post = run("postprocess", "--tables", out, "--model", "trapcam:1", "--filter", "repeat", "--config",
               '{"min_images": 3, "window_hours": 5}', "--camera", "cam01", "--progress-interval", "0")
    assert post.returncode == 0, post.stderr
    assert "scope     camera cam01" in post.stdout and "flagged by the filter" in post.stdout
    assert "repeat: comparing" in post.stderr and "(100%)" in post.stderr  # progress lines while it runs
    both = run("postprocess", "--tables", out, "--model", "trapcam:1", "--filter", "repeat", "--config", "{}",
               "--camera", "cam01", "--since", "2024-05-01", "--dry-run")  # the scope flags intersect
    assert both.returncode == 0 and "scope     camera cam01, captured 2024-05-01" in both.stdout, both.stderr

    events = run("events", "--tables", out, "--model", "trapcam:1", "--gap-s", "10800", "--json")
    assert events.returncode == 0, events.stderr
    assert json.loads(events.stdout)["events"] > 0 and Path(json.loads(events.stdout)["written"]).is_file()

    rep = run("report", "--tables", out, "--model", "trapcam:1", "--filters-hash", json.loads(events.stdout)[
        "filters_hash"], "--compare", "trapcam:2", "--out", str(d / "report"), "--json")
    assert rep.returncode == 0, rep.stderr
    result = json.loads(rep.stdout)
    assert result["compared_with"] == "trapcam:2" and result["only_a"] > 0 and result["thumbnails"] > 0
    assert Path(result["index"]).is_file()


@pytest.mark.skipif(find_chromium() is None, reason="no Chromium binary: `apt-get install chromium` (Debian) "
                                                     "or set TRAPLINE_CHROMIUM to run the browser test")
def test_the_report_loads_in_chromium_without_console_errors_and_shows_the_gallery(tmp_path):
    spec, _, out, _ = two_version_tables(tmp_path)  # its own tables: the other test adds filter sets
    rep = run("report", "--tables", str(out), "--model", "trapcam:1", "--compare", "trapcam:2", "--out",
              str(tmp_path / "report"))
    assert rep.returncode == 0, rep.stderr
    page = visit(tmp_path / "report" / "index.html", PAGE_FACTS)
    assert page.console_errors == []
    facts = page.value
    assert facts["cards"] > 0 and facts["loaded"] == facts["cards"] and facts["allImages"]
    assert facts["failedRows"] == len(spec.failed)
    assert facts["thresholdRows"] == 2 and facts["compareRows"] == 2  # deer, fox
    shot = tmp_path / "report.png"
    shot.write_bytes(page.screenshot)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape[1] >= 1000 and pixels.shape[0] > 1000 and pixels.std() > 20  # not a blank page


def test_a_page_with_a_broken_script_or_a_missing_picture_is_caught(tmp_path):
    if find_chromium() is None:
        pytest.skip("no Chromium binary: `apt-get install chromium` (Debian) or set TRAPLINE_CHROMIUM")
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body><img src="nope.png">'
                    "<script>undefinedFunction()</script></body></html>")
    errors = visit(page).console_errors
    assert any("undefinedFunction" in e for e in errors) and any("nope.png" in e for e in errors), errors
