"""Re-identification on the synthetic identity set (tests/fixtures/reid_scenes.py), query/database protocol.

    flock /tmp/trapline-heavy.lock .venv/bin/python -m benchmarks.reid [--known 250 --unseen 100]
        [--galleries 1000,10000] [--peer-python /work/refenv/bin/python] [--out benchmarks/results/reid.json]

Measures, for trapline's default `keypoints` identifier (published to a scratch store and loaded from it):
top-1 of known individuals' queries against a database of their other sightings, AUROC of new-vs-known
(the best candidate's P(same) for queries of known vs never-seen individuals), sightings described per
second, and queries per second against galleries of 1,000 and 10,000 sightings (the accuracy database
plus other individuals), with the shortlist's share of a query's time, so the cost's growth with N shows.
Beside it, wildlife-tools' local matcher (SIFT + ratio-test correspondences, 1-NN) on the same snips, run
by benchmarks/peers/reid_peer.py in the reference venv.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from model_store.core.identify.gallery import Gallery
from model_store.core.identify.identifier import Identifier
from model_store.store.store import ModelStore
from tests.fixtures.reid_scenes import protocol, sightings

IDENTIFIER = {"backend": "keypoints", "applies_to": ["zebra"], "description": "benchmark: default keypoints"}


def load_identifier(scratch: str) -> Identifier:
    store = ModelStore(os.path.join(scratch, "models"))
    store.publish(None, "coats", "1", IDENTIFIER)
    return store.load_identifier("coats:1")


def describe(ident: Identifier, snips: list[np.ndarray]) -> tuple[list, float]:
    t = time.perf_counter()
    out = ident.describe(snips)
    return out, len(snips) / (time.perf_counter() - t)


def accuracy(ident: Identifier, database, known, unseen) -> tuple[dict, Gallery, list]:
    db_desc, rate = describe(ident, [s.snip for s in database])
    gallery = Gallery(ident)
    keep = [i for i, d in enumerate(db_desc) if not isinstance(d, str)]
    gallery.add([db_desc[i] for i in keep])
    owner = np.array([database[i].individual for i in keep])
    queries = known + unseen
    q_desc = ident.describe([s.snip for s in queries])
    hits, best, listed = [], [], []
    t = time.perf_counter()
    for s, d in zip(queries, q_desc, strict=True):
        if isinstance(d, str):
            hits.append(False)
            best.append(0.0)
            continue
        found = gallery.query(d)
        hits.append(bool(found) and owner[found[0].index] == s.individual)
        best.append(found[0].p_same if found else 0.0)
        if s.individual in set(owner):
            listed.append(s.individual in set(owner[gallery.shortlist(d, ident.config.shortlist)]))
    qps = len(queries) / (time.perf_counter() - t)
    n = len(known)
    return {"top1": float(np.mean(hits[:n])), "auroc": float(roc_auc_score([1] * n + [0] * len(unseen), best)),
            "shortlist_recall": float(np.mean(listed)), "described_per_s": rate,
            "unidentifiable": sum(isinstance(d, str) for d in db_desc + q_desc),
            "queries_per_s": qps, "database": len(database), "known_queries": n, "unseen_queries": len(unseen)
            }, gallery, q_desc


def speed(ident: Identifier, gallery: Gallery, owners: list[int], known, q_desc, size: int, first: int,
          n_queries: int, seed: int) -> dict:
    """Grow the gallery to `size` with other individuals' sightings; time queries of known individuals."""
    extra = size - len(gallery)
    rate = None
    if extra > 0:
        more = sightings(range(first, first + (extra + 1) // 2), 2, seed)[:extra]
        desc, rate = describe(ident, [s.snip for s in more])
        ok = [d for d in desc if not isinstance(d, str)]
        gallery.add(ok)
        owners.extend([-1] * len(ok))
    ready = [(s, d) for s, d in zip(known, q_desc, strict=False) if not isinstance(d, str)][:n_queries]
    owner = np.array(owners)
    t = time.perf_counter()
    gallery.shortlist(ready[0][1], 1)  # builds the index once, outside the per-query figures
    build_s = time.perf_counter() - t
    shortlist_s = verify_s = 0.0
    hits = 0
    for s, d in ready:
        t0 = time.perf_counter()
        gallery.shortlist(d, ident.config.shortlist)
        t1 = time.perf_counter()
        found = gallery.query(d)  # shortlists again, then verifies: verify time = this minus the shortlist
        t2 = time.perf_counter()
        shortlist_s += t1 - t0
        verify_s += (t2 - t1) - (t1 - t0)
        hits += bool(found) and owner[found[0].index] == s.individual
    total = shortlist_s + verify_s
    return {"gallery": len(gallery), "queries": len(ready), "queries_per_s": len(ready) / total,
            "shortlist_ms": 1000 * shortlist_s / len(ready), "verify_ms": 1000 * verify_s / len(ready),
            "top1": hits / len(ready), "described_per_s": rate, "index_build_s": build_s}


def run_peer(python: str, database, known, unseen, speed_gallery, scratch: str) -> dict | None:
    if not Path(python).exists():
        return None
    data = {"database": [s.snip for s in database], "database_ids": [s.individual for s in database],
            "known": [s.snip for s in known], "known_ids": [s.individual for s in known],
            "unseen": [s.snip for s in unseen], "speed_gallery": [s.snip for s in speed_gallery],
            "speed_queries": 10, "max_keypoints": IDENTIFIER.get("keypoints", {}).get("max_features", 300)}
    path = os.path.join(scratch, "set.pkl")
    with open(path, "wb") as f:
        pickle.dump(data, f)
    peer = Path(__file__).parent / "peers" / "reid_peer.py"
    done = subprocess.run([python, str(peer), path], capture_output=True, text=True, timeout=7200)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--known", type=int, default=250)
    p.add_argument("--unseen", type=int, default=100)
    p.add_argument("--galleries", default="1000,10000")
    p.add_argument("--speed-queries", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peer-python", default="/work/refenv/bin/python")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        ident = load_identifier(scratch)
        database, known, unseen = protocol(args.known, args.unseen, seed=args.seed)
        acc, gallery, q_desc = accuracy(ident, database, known, unseen)
        print(f"accuracy: top-1 {acc['top1']:.3f}, new-vs-known AUROC {acc['auroc']:.3f}, shortlist recall "
              f"{acc['shortlist_recall']:.3f}, {acc['described_per_s']:.1f} sightings described/s, "
              f"{acc['queries_per_s']:.1f} queries/s at {acc['database']}", flush=True)
        owners = [s.individual for s in database]  # every database snip is identifiable in this set (checked)
        if len(owners) != len(gallery):
            owners = owners[:len(gallery)]
        first = args.known + args.unseen
        scale = []
        for size in sorted(int(x) for x in args.galleries.split(",")):
            row = speed(ident, gallery, owners, known, q_desc, size, first + len(owners) // 2, args.speed_queries,
                        args.seed)
            scale.append(row)
            print(f"gallery {row['gallery']}: {row['queries_per_s']:.1f} queries/s (shortlist "
                  f"{row['shortlist_ms']:.2f} ms + verify {row['verify_ms']:.1f} ms), top-1 {row['top1']:.3f}",
                  flush=True)
        peer_gallery = database + sightings(range(10 * first, 10 * first + 250), 2, args.seed)
        peer = run_peer(args.peer_python, database, known, unseen, peer_gallery[:1000], scratch)
        if peer:
            print(f"wildlife-tools: {json.dumps(peer)}", flush=True)
    result = {"identifier": IDENTIFIER, "accuracy": acc, "scale": scale, "peer": peer,
              "load_before": load, "load_after": os.getloadavg(), "argv": sys.argv[1:]}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
