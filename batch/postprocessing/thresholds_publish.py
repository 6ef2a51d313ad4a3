"""`trapline models thresholds --publish`: the proposed thresholds as a new config-only version of the model.

The new version is the source version's weights (the same file, so the same sha256; the store keeps one copy per
version) and config, with the `label_score` filter set to the proposal (replacing one the source had), and
`thresholds.json` beside it naming where the thresholds came from: the source version and its result set, the tables,
the target, the rule and the decisions (their count and ids). Its model card says the same. Promote it like any
version (`trapline models promote NAME:NEW`); `trapline postprocess --filter label_score --config-from NAME:NEW`
applies the same thresholds to the tables with no inference.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path
from typing import Any

from ground.errors import BatchError
from model_store import ModelStore

PROVENANCE_FILE = "thresholds.json"


def _card(name: str, version: str, p: dict[str, Any]) -> str:
    lines = [f"# {name} {version}", "",
             f"Config-only version of {p['model']} (same weights): per-label score thresholds from people's reviews "
             f"in {p['tables']} (set {p['filters_hash']}), target precision {p['target_precision']:g}, from "
             f"{p['decisions']['count']} decision(s); {PROVENANCE_FILE} lists them.", "", f"Rule: {p['rule']}.", ""]
    for e in p["labels"]:
        if e["threshold"] is None:
            lines.append(f"- {e['label']}: no threshold ({e['reason']})")
            continue
        lines.append(f"- {e['label']}: score >= {e['threshold']:.4f}, precision {e['precision']['value']:.3f} "
                     f"({e['precision']['k']}/{e['precision']['n']}), recall {e['recall']['value']:.3f} "
                     f"({e['recall']['k']}/{e['recall']['n']})")
        lines += [f"  - camera {c['camera_id']}: score >= {c['threshold']:.4f}" for c in e["cameras"]
                  if c["uses"] == "camera"]
    return "\n".join(lines) + "\n"


def publish_thresholds(p: dict[str, Any], version: str, store: str | None = None) -> dict[str, Any]:
    """Publish proposal `p` (batch/postprocessing/thresholds.py `thresholds_of`) as `version` of its model."""
    config = p["filter"]["config"]
    if not config["min_scores"] and not config["cameras"]:
        raise BatchError(f"no threshold to publish: no label of {p['model']} reaches precision "
                         f"{p['target_precision']:g} on the reviews (see each label's reason)")
    models = ModelStore(store)
    source, weights = models.fetch(p["model"])  # verified: the new version's weights are the same bytes
    if source.kind != "detector":
        raise BatchError(f"{source.ref} is a {source.kind}; score thresholds are published for detectors")
    body = source.config.model_dump(mode="json", exclude={"graph"})
    body["filters"] = [f for f in body["filters"] if f["name"] != p["filter"]["name"]] + [p["filter"]]
    body["description"] = (f"{source.ref} with per-label score thresholds for precision {p['target_precision']:g} "
                           f"from {p['decisions']['count']} review decision(s)")
    provenance = {"source": str(source.ref), "sha256": source.sha256, "tables": p["tables"],
                  "filters_hash": p["filters_hash"], "target_precision": p["target_precision"], "rule": p["rule"],
                  "decisions": p["decisions"], "labels": p["labels"], "filter": p["filter"],
                  "published_at": dt.datetime.now(dt.timezone.utc).isoformat()}
    with tempfile.TemporaryDirectory() as d:
        card = Path(d) / "README.md"
        card.write_text(_card(source.name, version, p))
        mv = models.publish(weights, source.name, version, body, card=card,
                            extras={PROVENANCE_FILE: json.dumps(provenance, indent=2).encode()})
    return {"published": f"{mv.name}:{mv.version}", "sha256": mv.sha256, "source": str(source.ref),
            "filters": mv.config.filters}
