"""`trapline models thresholds`: the runner and printer of its registry entry (batch/models_commands.py). The work is
batch/postprocessing/thresholds.py (the proposal) and thresholds_publish.py (`--publish`), as over HTTP."""

from __future__ import annotations

from typing import Any

from batch.postprocessing.accuracy_stats import shown
from batch.postprocessing.occurrences import SetPlace
from batch.postprocessing.thresholds import proposal
from batch.postprocessing.thresholds_publish import publish_thresholds
from ground.printed import Printed
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables


def thresholds_lines(p: dict[str, Any]) -> list[str]:
    """The proposal for people: the rule, each label's threshold (or why none), its cameras."""
    lines = [f"thresholds of {p['model']} [filters {p['filters_hash']}] for precision {p['target_precision']:g} from "
             f"{p['decisions']['count']} review decision(s) in {p['tables']} (Wilson {p['confidence']:.0%} "
             "intervals; k/n is the evidence)", f"rule: {p['rule']}"]
    for e in p["labels"]:
        if e["threshold"] is None:
            lines.append(f"  {e['label']:<20} no threshold: {e['reason']}")
        else:
            lines.append(f"  {e['label']:<20} score >= {e['threshold']:.4f}  precision {shown(e['precision']):<26} "
                         f"recall {shown(e['recall'])}")
        for c in e["cameras"]:
            said = (f"score >= {c['threshold']:.4f}  precision {shown(c['precision']):<26} recall "
                    f"{shown(c['recall'])}" if c["uses"] == "camera" else f"the label's ({c['reason']})")
            lines.append(f"    camera {str(c['camera_id']):<13} {said}")
    return lines


def thresholds(o: Any, progress: Any = None) -> Printed:
    place = SetPlace(Tables(open_location(o.tables)), o.ref, o.filters_hash, o.store)
    p = proposal(place, o.target_precision, o.min_label_evidence, o.min_camera_evidence)
    lines = thresholds_lines(p)
    if o.publish:
        done = publish_thresholds(p, o.version, o.store)
        p = {**p, "published": done}
        lines += [f"published {done['published']} (weights sha256 {done['sha256'][:12]}…, as {done['source']}): "
                  f"promote it with `trapline models promote {done['published']}`; apply it to the tables with "
                  f"`trapline postprocess --filter label_score --config-from {done['published']}`"]
    return Printed(p, "\n".join(lines))
