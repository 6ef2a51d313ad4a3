"""Sightings -> individuals: constrained average-linkage clustering over calibrated P(same), and stable ids.

`cluster` joins groups of sightings while their mean P(same) is at least the threshold, best first, unless
the join would put two sightings a person kept apart into one individual (cannot-link); pairs a person
joined (must-link) are joined first, whatever their score. `stable_ids` names the new clusters after
the previous run's individuals by overlap (an optimal one-to-one assignment), so a re-run with another
threshold or identifier version keeps the ids people know, and says what merged, split or is new.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np


def cluster(n: int, pairs: Iterable[tuple[int, int, float]], threshold: float,
            must_link: Iterable[tuple[int, int]] = (), cannot_link: Iterable[tuple[int, int]] = ()) -> np.ndarray:
    """A cluster label (0..k-1, in order of first member) per sighting.

    Average linkage over the sparse graph of scored pairs (a pair never scored counts as P = 0): two
    clusters join while the mean P(same) over all their cross pairs is at least `threshold`, best first.
    Single linkage (connected components) would let one chance match chain two individuals together;
    the average needs most of their sightings to agree. Must-links join first; a join that would put a
    cannot-linked pair into one cluster is never made.
    """
    parent = list(range(n))
    size = [1] * n
    links: list[dict[int, float]] = [{} for _ in range(n)]  # root -> {other root: sum of P over cross pairs}
    apart: list[set[int]] = [set() for _ in range(n)]
    for a, b, p in pairs:
        if a != b:
            links[a][b] = max(links[a].get(b, 0.0), p)  # a pair scored both ways counts once, at its best
            links[b][a] = links[a][b]
    for a, b in cannot_link:
        apart[a].add(b)
        apart[b].add(a)

    def merge(a: int, b: int) -> int:
        if size[a] < size[b]:
            a, b = b, a
        parent[b] = a
        size[a] += size[b]
        for other, total in links[b].items():
            if other == a:
                continue
            links[a][other] = links[a].get(other, 0.0) + total
            links[other][a] = links[a][other]
            del links[other][b]
        links[a].pop(b, None)
        links[b] = {}
        for other in apart[b]:
            apart[other].discard(b)
            apart[other].add(a)
        apart[a] |= apart[b]
        return a

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in must_link:
        ra, rb = root(a), root(b)
        if ra != rb and rb not in apart[ra]:
            merge(ra, rb)
    heap = [(-total / (size[a] * size[b]), a, b) for a in range(n) if parent[a] == a
            for b, total in links[a].items() if a < b]
    heapq.heapify(heap)
    while heap:
        neg, a, b = heapq.heappop(heap)
        if parent[a] != a or parent[b] != b or b not in links[a]:
            continue  # stale: one side was merged since
        avg = links[a][b] / (size[a] * size[b])
        if abs(avg + neg) > 1e-12:
            continue  # stale: the link changed since; its current value was pushed too
        if avg < threshold:
            break
        if b in apart[a]:
            continue
        r = merge(a, b)
        for other, total in links[r].items():
            heapq.heappush(heap, (-total / (size[r] * size[other]), min(r, other), max(r, other)))
    roots = [root(i) for i in range(n)]
    order: dict[int, int] = {}
    return np.array([order.setdefault(r, len(order)) for r in roots], np.int64)


@dataclass
class IdChanges:
    """What a re-run changed: ids whose sightings were joined into another, ids split, ids new."""

    merged: dict[str, list[str]] = field(default_factory=dict)  # kept id -> ids absorbed into it
    split: dict[str, list[str]] = field(default_factory=dict)   # old id -> new ids that took some of it
    new: list[str] = field(default_factory=list)


def stable_ids(labels: Sequence[int], previous: Sequence[str | None], new_id: Callable[[int], str],
               pinned: dict[int, str] | None = None) -> tuple[list[str], IdChanges]:
    """An individual id per sighting: a cluster holding a person's pinned sighting takes that id; the rest
    take the previous id they overlap most (one-to-one, most overlap first); the others get `new_id(cluster)`."""
    from scipy.optimize import linear_sum_assignment  # imported here: only clustering needs scipy

    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if len(labels) else 0
    names: dict[int, str] = {}
    for i, ident in (pinned or {}).items():
        names.setdefault(int(labels[i]), ident)
    taken = set(names.values())
    old = sorted({p for p in previous if p is not None and p not in taken})
    free = [c for c in range(k) if c not in names]
    if old and free:
        overlap = np.zeros((len(free), len(old)))
        col = {o: j for j, o in enumerate(old)}
        row = {c: i for i, c in enumerate(free)}
        for lab, prev in zip(labels, previous, strict=True):
            if prev in col and int(lab) in row:
                overlap[row[int(lab)], col[prev]] += 1
        rows, cols = linear_sum_assignment(-overlap)
        for r, c in zip(rows, cols, strict=True):
            if overlap[r, c] > 0:
                names[free[r]] = old[c]
    changes = IdChanges()
    for c in range(k):
        if c not in names:
            names[c] = new_id(c)
            changes.new.append(names[c])
    ids = [names[int(c)] for c in labels]
    before: dict[str, Counter] = {}
    for prev, now in zip(previous, ids, strict=True):
        if prev is not None:
            before.setdefault(prev, Counter())[now] += 1
    for prev, went in before.items():
        others = sorted(i for i in went if i != prev)
        if prev in went and others:
            changes.split[prev] = others
        elif prev not in went:  # every sighting of it now sits under another id
            for now in went:
                changes.merged.setdefault(now, []).append(prev)
    return ids, changes
