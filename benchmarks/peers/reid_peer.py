"""wildlife-tools' local matcher on trapline's synthetic identity set (run with /work/refenv's python).

    /work/refenv/bin/python benchmarks/peers/reid_peer.py SET.pkl

SET.pkl (written by benchmarks/reid.py) holds database, known and unseen query snips (RGB uint8) with their
individuals, and `speed_gallery`: snips for the queries/s measurement. wildlife-tools' recipe: SIFTFeatures
(its SIFT descriptors), MatchDescriptors (ratio-test correspondences, every query against every database
image) and KnnClassifier (1-NN). Prints one JSON object: top-1, AUROC, describe/s and queries/s.
"""

from __future__ import annotations

import json
import pickle
import sys
import time

import numpy as np
from sklearn.metrics import roc_auc_score
from wildlife_tools.features import SIFTFeatures
from wildlife_tools.inference import KnnClassifier
from wildlife_tools.similarity import MatchDescriptors

RATIO = 0.8  # the same ratio-test threshold as trapline's default keypoints identifier


def pairs(snips: list[np.ndarray]) -> list[tuple[np.ndarray, int]]:
    return [(s, 0) for s in snips]  # SIFTFeatures iterates (image, label)


def main(path: str) -> None:
    with open(path, "rb") as f:
        data = pickle.load(f)
    extract = SIFTFeatures(max_keypoints=data.get("max_keypoints"))
    t = time.perf_counter()
    db = extract(pairs(data["database"]))
    describe_s = time.perf_counter() - t
    queries = extract(pairs(data["known"] + data["unseen"]))
    match = MatchDescriptors(descriptor_dim=128, thresholds=(RATIO,))
    t = time.perf_counter()
    sim = match(queries, db)[RATIO].astype(np.float32)
    match_s = time.perf_counter() - t
    db_ids = np.asarray(data["database_ids"])
    pred = KnnClassifier(k=1, database_labels=db_ids)(sim)
    n = len(data["known"])
    top1 = float(np.mean(pred[:n] == np.asarray(data["known_ids"])))
    best = sim.max(axis=1)
    auroc = float(roc_auc_score([1] * n + [0] * len(data["unseen"]), best))
    out = {"top1": top1, "auroc": auroc, "described_per_s": len(db) / describe_s,
           "queries_per_s_at": {str(len(db)): len(queries) / match_s}}
    gallery = data.get("speed_gallery")
    if gallery:  # queries/s against a larger gallery: a few queries, every one against all of it
        g = extract(pairs(gallery))
        few = queries[: data.get("speed_queries", 10)]
        t = time.perf_counter()
        match(few, g)
        out["queries_per_s_at"][str(len(g))] = len(few) / (time.perf_counter() - t)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
