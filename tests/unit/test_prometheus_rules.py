"""deploy/prometheus/: the alert rules unit-tested by `promtool test rules` (each alert fires when its condition is
made true and resolves when it is cleared), the scrape config checked by `promtool check config`, every alert's
runbook a section of docs/guide/monitoring.md, and every season metric a rule reads one that GET /metrics serves.
promtool is Debian's `prometheus` package (`make promtool`); without it those two tests skip, saying so."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from batch.views.season_metrics import render
from model_store.tables.season import Camera, Signals

REPO = Path(__file__).resolve().parents[2]
PROM = REPO / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (make promtool: Debian's "
                                                             "`prometheus` package)")


def _rules() -> list[dict]:
    return [r for g in yaml.safe_load((PROM / "rules.yml").read_text())["groups"] for r in g["rules"]]


@needs_promtool
def test_every_alert_fires_when_its_condition_is_made_true_and_resolves_when_it_is_cleared():
    done = subprocess.run([PROMTOOL, "test", "rules", "rules_test.yml", "rules_test_days.yml"], cwd=PROM,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (\w+)", (PROM / "rules_test.yml").read_text()
                            + (PROM / "rules_test_days.yml").read_text()))
    assert tested == {r["alert"] for r in _rules()}  # no alert without its test


@needs_promtool
def test_the_scrape_config_and_the_rules_are_valid():
    done = subprocess.run([PROMTOOL, "check", "config", "--syntax-only", "prometheus.yml"], cwd=PROM,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_its_runbook_section_in_the_docs():
    headings = {re.sub(r"[^a-z0-9]", "", h.lower()) for h in
                re.findall(r"^#+ (.+)$", (REPO / "docs" / "guide" / "monitoring.md").read_text(), re.MULTILINE)}
    for rule in _rules():
        anchor = rule["annotations"]["runbook_url"].rsplit("#", 1)[1]
        assert anchor == rule["alert"].lower() and anchor in headings, rule["alert"]


def test_the_season_metrics_the_rules_read_are_the_ones_the_service_serves():
    s = Signals("t", up=True, refreshed_at_s=0.0, cameras={"cam01": Camera(1.0, 2.0, 3, 1)}, individuals=1,
                sightings=2, sightings_assigned=1, occurrences_to_review=1)
    s.runs[("reprocess", "failed")] = 1
    s.last_run_s[("reprocess", "failed")] = 1.0
    s.clock_problems["jump"] = 1
    s.table_bytes[("images", "m", "1", "abc")] = 10
    served = set(re.findall(r"^(trapline_season_\w+)", render({"site": s}).decode(), re.MULTILINE))
    read = {m for r in _rules() for m in re.findall(r"\btrapline_season_\w+", r["expr"])}
    assert read <= served, read - served
    for doc in yaml.safe_load_all((PROM / "podmonitor.yaml").read_text()):
        assert doc["kind"] == "PodMonitor" and doc["spec"]["podMetricsEndpoints"]
