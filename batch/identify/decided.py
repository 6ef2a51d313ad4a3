"""People's decisions about individuals (model_store/tables/decisions.py) as what clustering must honour.

The log is read in order and folded (model_store/tables/identities.py `fold`: every reader applies the same fold).
Each decision names individuals by the ids people saw; the ids of the previous run's `sightings` say which
sightings those were. The fold gives, and this module turns into a run's constraints:

- `pinned`: sighting -> the individual a person put it in (confirm, split, new individual, and the
  sightings of a merged individual follow it to the one it joined);
- `must_link` / `cannot_link`: pairs of sightings a run must keep together / apart (a rejected link is
  never remade, a confirmed one never broken);
- `names`: id -> the name a person gave it; `aliases`: an absorbed id -> the id it was merged into.
"""

from __future__ import annotations

from collections import defaultdict

from ground.errors import DecisionError
from model_store.tables.decisions import Decision
from model_store.tables.identities import Decided, Key


def check_decision(decision: Decision, known_ids: set[str]) -> None:
    """Refuse a decision about an individual that is not in the tables (nothing is written)."""
    for attr in ("individual_id", "other_id"):
        ident = getattr(decision, attr, None)
        if ident is not None and ident not in known_ids:
            raise DecisionError(f"unknown individual {ident!r}: no sighting of the current run has that id",
                                field=attr)


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
