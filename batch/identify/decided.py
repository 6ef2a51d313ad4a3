"""People's decisions about individuals (batch/tables/decisions.py), folded into what clustering must honour.

The log is read in order. Each decision names individuals by the ids people saw; the ids of the previous
run's `sightings` say which sightings those were. The fold gives:

- `pinned`: sighting -> the individual a person put it in (confirm, split, new individual, and the
  sightings of a merged individual follow it to the one it joined);
- `must_link` / `cannot_link`: pairs of sightings a run must keep together / apart (a rejected link is
  never remade, a confirmed one never broken);
- `names`: id -> the name a person gave it; `aliases`: an absorbed id -> the id it was merged into.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

from batch.tables.decisions import (
    INDIVIDUAL_DECISIONS,
    ConfirmSighting,
    Decision,
    DetectionKey,
    MergeIndividuals,
    NameIndividual,
    NewIndividual,
    RejectSighting,
    SplitIndividual,
)
from trapline.errors import DecisionError

Key = tuple[str, str, int]  # (uri, content_id, detection_index)


def key_of(k: DetectionKey) -> Key:
    return (k.uri, k.content_id, k.detection_index)


def decided_id(decision_id: str) -> str:
    """The id of an individual a person started (split off, or "no match"): stable, from the decision."""
    return "ind-" + hashlib.sha1(decision_id.encode()).hexdigest()[:10]


@dataclass
class Decided:
    pinned: dict[Key, str] = field(default_factory=dict)
    rejected: dict[Key, set[str]] = field(default_factory=lambda: defaultdict(set))
    names: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    confirmed_ids: set[str] = field(default_factory=set)

    def canonical(self, ident: str) -> str:
        while ident in self.aliases:
            ident = self.aliases[ident]
        return ident


def check_decision(decision: Decision, known_ids: set[str]) -> None:
    """Refuse a decision about an individual that is not in the tables (nothing is written)."""
    for attr in ("individual_id", "other_id"):
        ident = getattr(decision, attr, None)
        if ident is not None and ident not in known_ids:
            raise DecisionError(f"unknown individual {ident!r}: no sighting of the current run has that id",
                                field=attr)


def fold(decisions: list[Decision], previous: dict[Key, str]) -> Decided:
    """The decisions, oldest first, over the previous run's sighting -> individual id."""
    out = Decided()
    members: dict[str, set[Key]] = defaultdict(set)
    for k, ident in previous.items():
        members[ident].add(k)
    for d in decisions:
        if not isinstance(d, INDIVIDUAL_DECISIONS):
            continue
        if isinstance(d, ConfirmSighting):
            ident = out.canonical(d.individual_id)
            out.pinned[key_of(d.sighting)] = ident
            out.rejected[key_of(d.sighting)].discard(ident)
            out.confirmed_ids.add(ident)
        elif isinstance(d, RejectSighting):
            k, ident = key_of(d.sighting), out.canonical(d.individual_id)
            out.rejected[k].add(ident)
            if out.pinned.get(k) == ident:
                del out.pinned[k]
        elif isinstance(d, MergeIndividuals):
            keep, gone = out.canonical(d.individual_id), out.canonical(d.other_id)
            if keep == gone:
                continue  # already one (an earlier merge): nothing left to do
            out.aliases[gone] = keep
            for k in members.pop(gone, set()):
                members[keep].add(k)
                out.pinned.setdefault(k, keep)
            for k, ident in out.pinned.items():
                if ident == gone:
                    out.pinned[k] = keep
            out.pinned.update({k: keep for k in members[keep] if k not in out.pinned})
            out.confirmed_ids.add(keep)
            if gone in out.names and keep not in out.names:
                out.names[keep] = out.names[gone]
        elif isinstance(d, SplitIndividual):
            new = decided_id(d.decision_id)
            old = out.canonical(d.individual_id)
            for s in d.sightings:
                out.pinned[key_of(s)] = new
                out.rejected[key_of(s)].add(old)
            out.confirmed_ids.add(new)
        elif isinstance(d, NameIndividual):
            out.names[out.canonical(d.individual_id)] = d.name
        elif isinstance(d, NewIndividual):
            k = key_of(d.sighting)
            if k in previous:
                out.rejected[k].add(out.canonical(previous[k]))
            out.pinned[k] = decided_id(d.decision_id)
            out.confirmed_ids.add(out.pinned[k])
    return out


def constraints(keys: list[Key], decided: Decided, previous: dict[Key, str]
                ) -> tuple[list[tuple[int, int]], list[tuple[int, int]], dict[int, str]]:
    """(must_link, cannot_link, pinned index -> id) over the sightings of this run, in `keys` order."""
    index = {k: i for i, k in enumerate(keys)}
    pinned = {index[k]: ident for k, ident in decided.pinned.items() if k in index}
    by_id: dict[str, list[int]] = defaultdict(list)
    for i, ident in pinned.items():
        by_id[ident].append(i)
    must = [(group[0], j) for group in by_id.values() for j in group[1:]]
    cannot = []
    heads = [group[0] for group in by_id.values()]
    cannot += [(a, b) for n, a in enumerate(heads) for b in heads[n + 1:]]  # two pinned ids never one
    prev_members: dict[str, list[int]] = defaultdict(list)
    for k, ident in previous.items():
        if k in index:
            prev_members[decided.canonical(ident)].append(index[k])
    for k, ids in decided.rejected.items():
        if k not in index:
            continue
        for ident in ids:
            others = set(by_id.get(ident, [])) | set(prev_members.get(ident, []))
            cannot += [(index[k], j) for j in others if j != index[k] and pinned.get(j, ident) == ident]
    return must, cannot, pinned
