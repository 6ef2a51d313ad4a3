"""A gallery of described sightings and the two-stage search against it.

Comparing a query with every sighting by verified matching costs one RANSAC per sighting: fine for a
hundred, not for ten thousand. So a query is first shortlisted cheaply, then only the `shortlist` best are
verified:

- `keypoints`: descriptor voting. The strongest `index_per_snip` descriptors of every gallery snip go into
  one approximate nearest-neighbour index (OpenCV FLANN, randomised kd-trees); each query descriptor that
  passes the ratio test against its two nearest votes for the snip its nearest belongs to, and the most
  voted snips are verified. A search visits `index_checks` leaves, so its cost grows ~log N; building the
  index is ~N log N (rebuilt lazily after `add`). A bag of visual words or VLAD was tried first: on coats of
  one species they share texture statistics, and the right individual fell out of the top 30 for one
  query in four (benchmarks/reid.py measures the shortlist's recall).
- `onnx-embedding`: the embedding itself is the global vector; cosine is the score (no second stage;
  a (N x D) product per query).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from model_store.core.identify.features import Description
from model_store.core.identify.identifier import Identifier

FLANN_KDTREE = 1
NEIGHBOURS = 5  # per query descriptor: enough to look past other views of the same individual (and the query)


@dataclass(frozen=True)
class Candidate:
    """One gallery entry matched against a query."""

    index: int
    score: float   # the raw score (verified inliers, or cosine)
    p_same: float  # calibrated P(same individual)


class Gallery:
    """Described sightings of one identifier, searchable; `add` grows it (an upload joins when it commits).

    Lifecycle: build with the identifier; `add` described sightings; `query`. The search structure (the
    FLANN index, or the matrix of embeddings) is built on the first query after an `add`. Not thread-safe:
    one gallery per worker, or a lock around add/query.
    """

    def __init__(self, identifier: Identifier) -> None:
        self.identifier = identifier
        self.descriptions: list[Description] = []
        self._index = None  # FLANN index (keypoints) or matrix of embeddings, built lazily
        self._owner: np.ndarray | None = None  # indexed descriptor -> gallery entry

    @property
    def keypoints(self) -> bool:
        return self.identifier.config.backend == "keypoints"

    def __len__(self) -> int:
        return len(self.descriptions)

    def add(self, descriptions: list[Description]) -> None:
        self.descriptions.extend(descriptions)
        self._index = None

    def _build(self) -> None:
        if not self.keypoints:
            self._index = np.stack([d.vector for d in self.descriptions])
            return
        per = self.identifier.config.keypoints.index_per_snip
        parts = [d.descriptors[:per] for d in self.descriptions]
        self._owner = np.repeat(np.arange(len(parts)), [len(p) for p in parts])
        data = np.ascontiguousarray(np.concatenate(parts), np.float32)
        cv2.setRNGSeed(0)  # FLANN's randomised trees draw from OpenCV's RNG: the same gallery, the same shortlist
        self._index = (cv2.flann_Index(data, {"algorithm": FLANN_KDTREE, "trees": 4}), data)

    def shortlist(self, query: Description, k: int, exclude: int | None = None) -> np.ndarray:
        """Indices of (at most) k gallery entries most likely to be the query's individual, best first."""
        if self._index is None:
            self._build()
        if self.keypoints:
            kp = self.identifier.config.keypoints
            index, _ = self._index
            nn, dist = index.knnSearch(np.ascontiguousarray(query.descriptors, np.float32), NEIGHBOURS,
                                       params={"checks": kp.index_checks})
            sims = np.bincount(self._votes(nn, dist, kp.ratio, exclude), minlength=len(self)).astype(np.float64)
        else:
            sims = self._index @ query.vector
        if exclude is not None:
            sims[exclude] = -np.inf
        k = min(k, len(sims) - (exclude is not None))
        if k <= 0:
            return np.zeros(0, np.int64)
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        return top[np.isfinite(sims[top]) & ((sims[top] > 0) | (not self.keypoints))]

    def _votes(self, nn: np.ndarray, dist: np.ndarray, ratio: float, exclude: int | None) -> np.ndarray:
        """The gallery entry each query descriptor votes for: its nearest indexed descriptor's owner, when that
        is clearly nearer than the nearest descriptor of any *other* entry (Lowe's ratio test across entries:
        two views of one individual in the gallery must not cancel each other's votes)."""
        owner = self._owner[nn]
        dist = np.sqrt(np.maximum(dist, 0.0))
        if exclude is not None:  # the query's own descriptors are in the index: look past them
            dist = np.where(owner == exclude, np.inf, dist)
            order = np.argsort(dist, axis=1, kind="stable")
            owner, dist = np.take_along_axis(owner, order, 1), np.take_along_axis(dist, order, 1)
        other = owner != owner[:, :1]
        has_other = other.any(axis=1)
        second = np.where(has_other, dist[np.arange(len(dist)), np.argmax(other, axis=1)], np.inf)
        passed = np.isfinite(dist[:, 0]) & (dist[:, 0] < ratio * second)
        return owner[passed, 0]

    def query(self, query: Description, k: int | None = None, exclude: int | None = None) -> list[Candidate]:
        """The best candidates for `query`, verified, most likely first (at most `shortlist` of them)."""
        if not self.descriptions:
            return []
        ident = self.identifier
        top = self.shortlist(query, k or ident.config.shortlist, exclude)
        scores = np.array([ident.score(query, self.descriptions[i]) for i in top], np.float64)
        probs = ident.p_same(scores)
        order = np.argsort(-scores, kind="stable")
        return [Candidate(int(top[i]), float(scores[i]), float(probs[i])) for i in order]
