"""A gallery of described sightings and the two-stage search against it.

Comparing a query with every sighting by verified matching costs one RANSAC per sighting: fine for a
hundred, not for ten thousand. So a query is first shortlisted by a cheap global vector, then only the
`shortlist` best are verified:

- `keypoints`: a bag of visual words (a vocabulary of descriptor clusters, k-means on the gallery's own
  descriptors), tf-idf weighted, cosine. Cost per query: one (N x words) product plus `shortlist` verified
  matchings, so it grows linearly in N with a tiny constant, and the verification does not grow at all.
- `onnx-embedding`: the embedding itself is the global vector; cosine is the score (no second stage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model_store.core.identify.features import Description
from model_store.core.identify.identifier import Identifier

VOCABULARY_SAMPLE = 40_000  # descriptors the vocabulary is fitted on (k-means cost is linear in it)


@dataclass(frozen=True)
class Candidate:
    """One gallery entry matched against a query."""

    index: int
    score: float   # the raw score (verified inliers, or cosine)
    p_same: float  # calibrated P(same individual)


def fit_vocabulary(descriptions: list[Description], words: int, seed: int = 0) -> np.ndarray:
    """(words, D) visual words: k-means centres of a sample of the descriptions' descriptors."""
    from sklearn.cluster import MiniBatchKMeans  # imported here: only a keypoints gallery needs it

    stacked = np.concatenate([d.descriptors for d in descriptions]).astype(np.float32)
    rng = np.random.default_rng(seed)
    if len(stacked) > VOCABULARY_SAMPLE:
        stacked = stacked[rng.choice(len(stacked), VOCABULARY_SAMPLE, replace=False)]
    words = min(words, len(stacked))
    km = MiniBatchKMeans(n_clusters=words, random_state=seed, batch_size=4096, n_init=1, max_iter=50)
    return km.fit(stacked).cluster_centers_.astype(np.float32)


def word_histogram(description: Description, vocabulary: np.ndarray) -> np.ndarray:
    """How many of the description's descriptors fall to each visual word."""
    d = description.descriptors.astype(np.float32)
    # nearest centre by squared L2: |c|^2 - 2 d.c (|d|^2 is the same for every centre)
    nearest = np.argmin((vocabulary * vocabulary).sum(axis=1) - 2.0 * d @ vocabulary.T, axis=1)
    return np.bincount(nearest, minlength=len(vocabulary)).astype(np.float32)


class Gallery:
    """Described sightings of one identifier, searchable; `add` grows it (an upload joins when it commits).

    Lifecycle: build with the identifier and (for `keypoints`) a vocabulary, or let the first `add` fit
    one from what it adds. Not thread-safe: one gallery per worker, or a lock around add/query.
    """

    def __init__(self, identifier: Identifier, vocabulary: np.ndarray | None = None) -> None:
        self.identifier = identifier
        self.vocabulary = vocabulary
        self.descriptions: list[Description] = []
        self._rows: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None  # cached weighted, normalised rows
        self._idf: np.ndarray | None = None

    @property
    def keypoints(self) -> bool:
        return self.identifier.config.backend == "keypoints"

    def __len__(self) -> int:
        return len(self.descriptions)

    def add(self, descriptions: list[Description]) -> None:
        if not descriptions:
            return
        if self.keypoints and self.vocabulary is None:
            self.vocabulary = fit_vocabulary(descriptions, self.identifier.config.keypoints.vocabulary)
        self.descriptions.extend(descriptions)
        self._rows.extend(self._global(d) for d in descriptions)
        self._matrix = None

    def _global(self, d: Description) -> np.ndarray:
        return word_histogram(d, self.vocabulary) if self.keypoints else d.vector

    def _weighted(self) -> np.ndarray:
        if self._matrix is None:
            rows = np.stack(self._rows)
            if self.keypoints:  # tf-idf: a word every coat has says nothing about which coat this is
                df = (rows > 0).sum(axis=0)
                self._idf = np.log((len(rows) + 1) / (df + 1)).astype(np.float32)
                rows = rows * self._idf
            self._matrix = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
        return self._matrix

    def shortlist(self, query: Description, k: int, exclude: int | None = None) -> np.ndarray:
        """Indices of the k gallery entries whose global vectors are closest to the query's, best first."""
        matrix = self._weighted()
        q = self._global(query)
        if self.keypoints:
            q = q * self._idf
        sims = matrix @ (q / max(float(np.linalg.norm(q)), 1e-12))
        if exclude is not None:
            sims[exclude] = -np.inf
        k = min(k, len(sims) - (exclude is not None))
        if k <= 0:
            return np.zeros(0, np.int64)
        top = np.argpartition(-sims, k - 1)[:k]
        return top[np.argsort(-sims[top], kind="stable")]

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
