"""Individuals as people see them now: the newest identify run with every later decision applied.

`trapline identify` writes `sightings` and `individuals` for one run. People decide afterwards (confirm or reject a
sighting, merge, split, name, "new individual"); those decisions go to the decisions log at once and are folded in
on every read here, the same fold the next run clusters with (batch/identify/decided.py). So a merge or a name shows
the moment it is made, and the next run makes it part of the clustering. The HTTP routes, the console and the
exports read individuals through this module.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from batch.identify.run import record_decision
from ground.errors import DecisionConflictError, DecisionError, NotFoundError
from ground.storage import Storage
from model_store.core.imaging import encode_jpeg
from model_store.tables.decisions import INDIVIDUAL_DECISIONS, Decision, DetectionKey, MergeIndividuals, make
from model_store.tables.identities import Current, current, cut_snips, fold, key_of, row_key
from model_store.tables.locations import open_location

ACTIONS: dict[str, type] = {c.model_fields["action"].default: c for c in INDIVIDUAL_DECISIONS}


def iso(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else pd.Timestamp(value).isoformat()


def summary(row: dict[str, Any]) -> dict[str, Any]:
    """One individual as the API shows it."""
    return {"individual_id": row["individual_id"], "name": row["name"] if isinstance(row["name"], str) else None,
            "label": row["label"], "first_seen": iso(row["first_seen"]), "last_seen": iso(row["last_seen"]),
            "cameras": list(row["cameras"]), "sightings": int(row["sightings"]), "confirmed": bool(row["confirmed"])}


def select(cur: Current, label: str | None = None, camera: str | None = None, since: dt.datetime | None = None,
           until: dt.datetime | None = None, confirmed: bool | None = None) -> pd.DataFrame:
    """Individuals seen by `camera`, of `label`, seen in [since, until], confirmed or not; last seen first."""
    ind = cur.individuals
    keep = pd.Series(True, index=ind.index)
    if label is not None:
        keep &= ind["label"] == label
    if camera is not None:
        keep &= ind["cameras"].map(lambda cams: camera in cams)
    if since is not None:
        keep &= ind["last_seen"] >= pd.Timestamp(since.replace(tzinfo=None))
    if until is not None:
        keep &= ind["first_seen"] <= pd.Timestamp(until.replace(tzinfo=None))
    if confirmed is not None:
        keep &= ind["confirmed"] == confirmed
    return ind[keep].sort_values(["last_seen", "individual_id"], ascending=[False, True], na_position="last")


def find(cur: Current, individual_id: str) -> dict[str, Any]:
    """An individual by id (an id merged away answers as the one it joined); NotFoundError when there is none."""
    ident = cur.decided.canonical(individual_id)
    rows = cur.individuals[cur.individuals["individual_id"] == ident]
    if rows.empty:
        raise NotFoundError(f"no individual {individual_id!r} in the newest identify run"
                            + ("" if cur.run_id else ": no identify run yet (trapline identify)"))
    return rows.iloc[0].to_dict()


def individual_of(cur: Current, sighting: DetectionKey) -> str | None:
    """The individual a sighting belongs to now (None: unidentifiable, rejected, or not in the run)."""
    s = cur.sightings
    found = s[(s["uri"] == sighting.uri) & (s["content_id"] == sighting.content_id)
              & (s["detection_index"] == sighting.detection_index)]
    return found["individual_id"].iloc[0] if len(found) else None


def sightings_of(cur: Current, individual_id: str) -> pd.DataFrame:
    """Its sightings, oldest first."""
    s = cur.sightings
    return s[s["individual_id"] == individual_id].sort_values(["capture_time", "uri", "detection_index"])


def closest(cur: Current, individual_id: str, k: int = 5) -> list[dict[str, Any]]:
    """The other individuals its sightings came nearest to (each sighting's best match in another individual, as
    the run found it; people's merges applied), highest P(same) first: the candidates a person looks at to merge."""
    s = cur.sightings
    owner = {row_key(r): r.individual_id for r in s.itertuples()}
    best: dict[str, float] = {}
    for r in sightings_of(cur, individual_id).itertuples():
        for side in ("other", "nearest"):  # its best match in another individual, and its best match overall
            uri, p = getattr(r, f"{side}_uri", None), getattr(r, f"{side}_p", None)
            if uri is None or p is None or pd.isna(p):
                continue
            other = owner.get((uri, getattr(r, f"{side}_content_id"), int(getattr(r, f"{side}_detection_index"))))
            if other is not None and other != individual_id:
                best[other] = max(best.get(other, 0.0), float(p))
    ranked = sorted(best.items(), key=lambda kv: -kv[1])[:k]
    rows = cur.individuals.set_index("individual_id")
    return [{**summary({**rows.loc[i].to_dict(), "individual_id": i}), "p_same": p}
            for i, p in ranked if i in rows.index]


def history(cur: Current, individual_id: str) -> list[dict[str, Any]]:
    """The decisions that name this individual or one of its sightings, oldest first."""
    keys = {row_key(r) for r in sightings_of(cur, individual_id).itertuples()}
    out = []
    for d in cur.decisions:
        if not isinstance(d, INDIVIDUAL_DECISIONS):
            continue
        ids = {cur.decided.canonical(i) for i in (getattr(d, "individual_id", None), getattr(d, "other_id", None))
               if i}
        named = [key_of(x) for x in (getattr(d, "sightings", None) or [getattr(d, "sighting", None)]) if x]
        if individual_id in ids or keys.intersection(named):
            out.append(d.model_dump(mode="json"))
    return out


def snip(tables_url: str, individual_id: str, n: int) -> bytes:
    """The JPEG of the individual's `n`-th sighting, cut from its archive image with the shared crop code."""
    cur = current(open_location(tables_url))
    shown = sightings_of(cur, find(cur, individual_id)["individual_id"])  # find answers the canonical id
    if not 0 <= n < len(shown):
        raise NotFoundError(f"individual {individual_id} has {len(shown)} sighting(s); no sighting {n}")
    row = shown.iloc[[n]].reset_index(drop=True)
    if "bbox_x" not in row.columns:
        raise NotFoundError("this identify run kept no boxes (made before they were kept): run trapline identify "
                            "again to see its snips")
    [crop] = cut_snips(row)
    if crop is None:
        raise NotFoundError(f"the image of sighting {n} cannot be read: {row.at[0, 'uri']}")
    return encode_jpeg(crop)


def decide(tables: Storage, action: str, who: str, comment: str | None, **fields: Any) -> Decision:
    """Record a person's decision about individuals in the tables opened at the door: a DecisionError (422) for a
    bad or unknown field, a DecisionConflictError (409) when it contradicts what people decided before; nothing is
    written then."""
    if action not in ACTIONS:
        raise DecisionError(f"action: one of {', '.join(ACTIONS)}, got {action!r}", field="action")
    cls = ACTIONS[action]
    decision = make(cls, who, comment, **{k: v for k, v in fields.items() if v is not None and k in cls.model_fields})
    cur = current(tables)
    if isinstance(decision, MergeIndividuals) and \
            cur.decided.canonical(decision.individual_id) == cur.decided.canonical(decision.other_id):
        raise DecisionConflictError(f"{decision.individual_id} and {decision.other_id} are one individual already "
                                    "(an earlier merge)", field="other_id")
    after = fold([*cur.decisions, decision], cur.previous)
    clash = sorted(k for k, ident in after.pinned.items() if ident in after.rejected.get(k, ()))
    if clash:
        uri, _, index = clash[0]
        raise DecisionConflictError(
            f"this would put sighting {uri} #{index} in an individual a person said it is not "
            f"({after.pinned[clash[0]]}); confirm it there first if that was wrong", field="action")
    return record_decision(tables, decision)


def review_queue(cur: Current, low: float, high: float) -> pd.DataFrame:
    """Sightings the run matched with P(same) in [low, high] that no person has decided on, most informative
    first: nearest the middle of the band, where a person's answer moves the clustering most."""
    s = cur.sightings
    s = s[s["decision"].isin(["matched", "new"]) & s["p_same"].between(low, high)]
    return s.assign(_gap=(s["p_same"] - (low + high) / 2).abs()).sort_values(["_gap", "uri"]).drop(columns="_gap")
