"""The season's signals are declared once (batch/season_signals.py) and everything else agrees with the declaration:
each signal's alert rules are in deploy/prometheus/rules.yml, read its gauge and (where declared) its default bound,
with a runbook section in docs/guide/monitoring.md; every season alert belongs to a signal; GET /metrics serves
exactly the declared families with their labels; `trapline health`'s options and checks are the declared ones; and
the monitoring guide's table of metrics and its list of thresholds name each signal with its labels and default."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from batch.health import judge
from batch.health_options import HealthOptions, HealthThresholds
from batch.season_signals import SIGNALS, Alert, Signal, Threshold, thresholds
from batch.views.season_metrics import render
from model_store.tables.season import Camera, Signals

REPO = Path(__file__).resolve().parents[2]
GUIDE = (REPO / "docs" / "guide" / "monitoring.md").read_text()
SEASON_GROUP = "trapline-season"


def _rules() -> dict[str, dict]:
    """The season group's alert rules by name."""
    groups = yaml.safe_load((REPO / "deploy" / "prometheus" / "rules.yml").read_text())["groups"]
    return {r["alert"]: r for g in groups if g["name"] == SEASON_GROUP for r in g["rules"]}


def _headings(text: str) -> set[str]:
    return {re.sub(r"[^a-z0-9]", "", h.lower()) for h in re.findall(r"^#+ (.+)$", text, re.MULTILINE)}


def missing(signals: tuple[Signal, ...], rules: dict[str, dict], headings: set[str]) -> list[str]:
    """What a signal lacks, one line naming it each: an alert (when `trapline health` checks it), its rule, the rule
    reading its gauge and its default bound, the rule's runbook link and section."""
    out = []
    for s in signals:
        if s.threshold is not None and not s.alerts:
            out.append(f"{s.name}: checked by trapline health but watched by no alert rule")
        for alert in s.alerts:
            rule = rules.get(alert.name)
            if rule is None:
                out.append(f"{s.name}: no alert rule {alert.name} in deploy/prometheus/rules.yml")
                continue
            if not re.search(rf"\b{s.metric}\b", rule["expr"]):
                out.append(f"{s.name}: {alert.name} does not read {s.metric}")
            if alert.at_default and not re.search(rf"[<>]=?\s*{s.threshold.default:g}(?![\w.])", rule["expr"]):
                out.append(f"{s.name}: {alert.name}'s bound is not the default {s.threshold.default:g}")
            if rule.get("annotations", {}).get("runbook_url", "").rsplit("#", 1)[-1] != alert.runbook:
                out.append(f"{s.name}: {alert.name}'s runbook_url does not end in #{alert.runbook}")
            if alert.runbook not in headings:
                out.append(f"{s.name}: no runbook section {alert.name} in docs/guide/monitoring.md")
    return out


def test_every_signal_has_its_alert_rules_and_their_runbooks():
    problems = missing(SIGNALS, _rules(), _headings(GUIDE))
    assert not problems, "\n".join(problems)


def test_a_signal_missing_its_rule_or_runbook_is_named():
    never = Threshold("never", lambda *a: None, "max_never", 3)
    lone = Signal("lonely", "no alert", lambda s, now: [], threshold=never)
    unruled = Signal("unruled", "its alert is nowhere", lambda s, now: [], alerts=(Alert("TraplineNowhere"),))
    rules = {"TraplineOff": {"expr": "trapline_season_off > 4", "annotations": {"runbook_url": "x#traplineoff"}}}
    off = Signal("off", "a bound not the default, no runbook", lambda s, now: [], threshold=never,
                 alerts=(Alert("TraplineOff", at_default=True),))
    other = Signal("other", "a rule over another gauge", lambda s, now: [], alerts=(Alert("TraplineOff"),))
    found = missing((lone, unruled, off, other), rules, set())
    assert found == ["lonely: checked by trapline health but watched by no alert rule",
                     "unruled: no alert rule TraplineNowhere in deploy/prometheus/rules.yml",
                     "off: TraplineOff's bound is not the default 3",
                     "off: no runbook section TraplineOff in docs/guide/monitoring.md",
                     "other: TraplineOff does not read trapline_season_other",
                     "other: no runbook section TraplineOff in docs/guide/monitoring.md"]


def test_every_season_alert_belongs_to_a_signal():
    declared = {a.name for s in SIGNALS for a in s.alerts}
    assert set(_rules()) == declared, set(_rules()) ^ declared
    assert len(SIGNALS) == len({s.name for s in SIGNALS}) and not [n for n, k in Counter(
        a.name for s in SIGNALS for a in s.alerts).items() if k > 1]


def _full() -> Signals:
    """Figures with something in every signal."""
    s = Signals("t", up=True, refreshed_at_s=0.0, cameras={"cam01": Camera(1.0, 2.0, 3, 1)}, individuals=1,
                new_individuals_last_day=1, sightings=2, sightings_assigned=1, occurrences_to_review=1,
                running=[{"run_id": "r", "kind": "reprocess", "processed": 1, "failed": 0, "to_process": 2,
                          "images_per_s": 0.5}])
    s.runs[("reprocess", "failed")] = 1
    s.last_run_s[("reprocess", "failed")] = 1.0
    s.clock_problems["jump"] = 1
    s.table_bytes[("images", "m", "1", "abc")] = 10
    return s


def test_metrics_serves_exactly_the_declared_gauges_with_their_labels():
    served = {f.name: f for f in text_string_to_metric_families(render({"site": _full()}, now_s=5.0).decode())}
    assert list(served) == [s.metric for s in SIGNALS]
    for s in SIGNALS:
        family = served[s.metric]
        assert family.type == "gauge" and family.documentation == s.help, s.name
        assert family.samples and all(set(x.labels) == {"source", *s.labels} for x in family.samples), s.name


def test_health_has_the_declared_options_and_checks():
    declared = {t.option: t.default for t in thresholds() if t.option}
    assert {k: f.default for k, f in HealthThresholds.model_fields.items()} == declared
    assert set(HealthOptions.model_fields) == {*declared, "tables"}
    report = judge(_full(), HealthThresholds(), now_s=5.0)
    assert [c.name for c in report.checks] == [t.check for t in thresholds()]


def test_the_monitoring_guide_lists_every_gauge_with_its_labels():
    rows = re.findall(r"^\| (`trapline_season_[^|]+)\| ([^|]+) \|", GUIDE, re.MULTILINE)
    listed = {m: tuple(x.strip() for x in labels.split(",")) for names, labels in rows
              for m in re.findall(r"`(trapline_season_\w+)`", names)}
    assert listed == {s.metric: ("source", *s.labels) for s in SIGNALS}


def test_the_monitoring_guide_lists_every_threshold_with_its_default():
    listed = dict(re.findall(r"`(\w+)` \(([^):]+)", GUIDE.split("## The daily health check", 1)[1].split("\n## ")[0]))
    for t in thresholds():
        if t.option is None:
            continue
        assert t.option in listed, t.option
        shown = listed[t.option]
        assert shown == "not checked unless set" if t.default is None else float(shown) == t.default, t.option
