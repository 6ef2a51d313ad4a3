"""Which of two hosts a piece inside both their boxes is folded into (model_store/core/filters/track_folds.py).

In a herd pressed together a part box lies inside two animals' boxes. Nested in both, it says nothing of which
it belongs to unless it looks clearly more like one of them (at most `_CLEAR` x the other's distance) and overlaps
that one's boxes most (mean IoU); or, a piece of one or two boxes (a lone part box; in a herd of lookalikes the look
does not tell), it overlaps one host's boxes at least `_TIGHT` x any other's and does not look clearly more like
another. A part lies inside its animal's box, the tightest box around it; a neighbour's box that also holds it is
larger, or holds it only in part. Fitted on seed 7 (NOTES.md §28e, §28g). Pure numpy.
"""

from __future__ import annotations

import numpy as np

_CLEAR = 0.5  # a piece inside two tracks' boxes goes to the one it looks like at most this x the other's distance
# (and overlaps most)
_TIGHT = 1.5  # ... or, a piece of one or two boxes, to the one it overlaps at least this x any other (the look not
# saying otherwise: at most 1 / _CLEAR x the nearest's distance)


def clear_host(fold: np.ndarray, p_of: np.ndarray, look: np.ndarray, overlap: np.ndarray, k: int,
               short: np.ndarray) -> np.ndarray:
    """Per (piece, host) bool: False for the rival hosts of a piece that is clearly another host's: it looks like
    that host at most _CLEAR x the distance to the next nearest, and its boxes overlap that host's most (mean IoU);
    or, for a `short` piece (one or two boxes: a lone part box in a pressed herd of lookalikes, where the look does
    not tell), its boxes overlap that host's at least _TIGHT x any other's and it looks like that host at most
    1 / _CLEAR x the nearest's distance (the look does not say otherwise). A part lies inside its animal's box, the
    tightest box around it; a neighbour's box that also holds it is larger or holds it only in part (issue 69,
    herd: NOTES.md §28g). A piece with one host, or with neither clear, keeps all its hosts."""
    keep = np.ones(len(p_of), dtype=bool)
    cand = np.flatnonzero(fold)
    if len(cand) < 2:
        return keep
    keep[_tightest_host(cand, p_of, look, overlap, k, short)] = False
    cand = cand[np.lexsort((look[cand], p_of[cand]))]
    piece = p_of[cand]
    head = np.r_[True, piece[1:] != piece[:-1]]  # each piece's nearest host first, then the next nearest
    best = np.full(k, -1)
    best[piece[head]] = cand[head]
    second = np.full(k, np.inf)
    runner = np.flatnonzero(~head & np.r_[False, head[:-1]])
    second[piece[runner]] = look[cand[runner]]
    most = np.full(k, -np.inf)
    np.maximum.at(most, piece, overlap[cand])
    clear = (look[best[piece]] <= _CLEAR * second[piece]) & (overlap[best[piece]] >= most[piece])
    keep[cand[clear & (cand != best[piece])]] = False
    return keep


def _tightest_host(cand: np.ndarray, p_of: np.ndarray, look: np.ndarray, overlap: np.ndarray, k: int,
                   short: np.ndarray) -> np.ndarray:
    """The rival (piece, host) pairs of `cand` (a piece's fold candidates) that `clear_host`'s overlap rule drops:
    of a short piece's hosts, all but the one it overlaps at least _TIGHT x every other and looks like at most
    1 / _CLEAR x the nearest's distance."""
    cand = cand[short[cand]]
    if not len(cand):  # no short piece among them
        return cand
    cand = cand[np.lexsort((-overlap[cand], p_of[cand]))]  # each piece's hosts, the largest overlap first
    piece = p_of[cand]
    head = np.r_[True, piece[1:] != piece[:-1]]
    second = ~head & np.r_[False, head[:-1]]
    runner = np.zeros(k)
    runner[piece[second]] = overlap[cand[second]]
    nearest = np.full(k, np.inf)
    np.minimum.at(nearest, piece, look[cand])
    top = cand[head]
    tight = (np.bincount(piece, minlength=k)[p_of[top]] > 1) & (overlap[top] >= _TIGHT * runner[p_of[top]]) & (
        _CLEAR * look[top] <= nearest[p_of[top]])
    won = np.zeros(k, dtype=bool)
    won[p_of[top[tight]]] = True
    return cand[won[piece] & ~head]
