"""What an identifier extracts from one snip, and the local matcher of the `keypoints` backend.

A snip is an RGB uint8 array (a detection's box cut from its image). `snip_problem` says why a snip
has too little to match on (too small, blank); `describe_keypoints` finds SIFT (RootSIFT) or ORB
features on it; `verified_inliers` matches two snips with Lowe's ratio test and counts the matches
that one affine map explains (RANSAC): a pattern seen again under another pose keeps many, two
different coats keep a handful of chance matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from model_store.core.config.identifier import KeypointParams


@dataclass(frozen=True)
class Description:
    """One snip described: keypoint positions and descriptors (`keypoints`) or one unit vector (embedding)."""

    points: np.ndarray | None = None       # (N, 2) float32 pixel positions in the resized snip
    descriptors: np.ndarray | None = None  # (N, D): float32 RootSIFT or uint8 ORB
    vector: np.ndarray | None = None       # (D,) float32, L2-normalised

    @property
    def size(self) -> int:
        return len(self.points) if self.points is not None else int(self.vector is not None)


def snip_problem(snip: np.ndarray | None, min_px: int, min_contrast: float) -> str | None:
    """Why this snip cannot be identified (a sentence), or None when it can."""
    if snip is None or snip.ndim < 2 or snip.size == 0:
        return "no snip"
    h, w = snip.shape[:2]
    if min(h, w) < min_px:
        return f"snip {w}x{h} px is smaller than {min_px} px on its shorter side"
    gray = snip if snip.ndim == 2 else cv2.cvtColor(snip, cv2.COLOR_RGB2GRAY)
    if float(gray.std()) < min_contrast:
        return f"snip is blank (grey-level spread {float(gray.std()):.1f} < {min_contrast})"
    return None


def _gray(snip: np.ndarray, longer: int) -> np.ndarray:
    gray = snip if snip.ndim == 2 else cv2.cvtColor(snip, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    s = longer / max(h, w)
    gray = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))),
                      interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    # Local contrast equalisation: a coat under dusk light or a flash keeps the same keypoints.
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(gray)


def describe_keypoints(snip: np.ndarray, params: KeypointParams) -> Description | str:
    """The snip's strongest keypoints, or a sentence saying why there are too few to match on."""
    gray = _gray(snip, params.snip_size)
    if params.features == "sift":
        finder = cv2.SIFT_create(nfeatures=params.max_features, contrastThreshold=params.contrast)
    else:
        finder = cv2.ORB_create(nfeatures=params.max_features, edgeThreshold=15, patchSize=15)
    keypoints, desc = finder.detectAndCompute(gray, None)
    if desc is None or len(keypoints) < params.min_keypoints:
        return f"only {0 if desc is None else len(keypoints)} keypoints (needs {params.min_keypoints})"
    if params.features == "sift":
        # RootSIFT (Arandjelovic & Zisserman 2012): Hellinger distance matches texture better than L2.
        desc = np.sqrt(desc / np.maximum(desc.sum(axis=1, keepdims=True), 1e-7)).astype(np.float32)
    order = np.argsort([-k.response for k in keypoints], kind="stable")  # strongest first: the index keeps a prefix
    points = np.array([k.pt for k in keypoints], np.float32)[order]
    return Description(points=points, descriptors=np.ascontiguousarray(desc[order]))


def ratio_matches(a: Description, b: Description, params: KeypointParams) -> tuple[np.ndarray, np.ndarray]:
    """(indices in a, indices in b) of the matches that pass Lowe's ratio test."""
    norm = cv2.NORM_L2 if params.features == "sift" else cv2.NORM_HAMMING
    pairs = cv2.BFMatcher(norm).knnMatch(a.descriptors, b.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < params.ratio * p[1].distance]
    return (np.array([m.queryIdx for m in good], np.int64), np.array([m.trainIdx for m in good], np.int64))


def verified_inliers(a: Description, b: Description, params: KeypointParams) -> int:
    """The number of ratio-test matches one affine map between the two snips explains (RANSAC)."""
    qi, ti = ratio_matches(a, b, params)
    if len(qi) < 4:
        return 0
    _, mask = cv2.estimateAffine2D(a.points[qi], b.points[ti], method=cv2.RANSAC,
                                   ransacReprojThreshold=params.ransac_px, maxIters=500, confidence=0.99)
    return 0 if mask is None else int(mask.sum())
