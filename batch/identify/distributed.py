"""`trapline identify --ray`: describing and verified matching spread over a Ray cluster's workers (Ray Data).

The run itself (reading the tables, clustering, people's decisions, ids, the commit) stays in the driver, as in
batch/identify/run.py; the two costly stages go to actor pools:

- describe: the covered detections' rows in blocks of `batch_size`; each `_Describe` actor loads the identifier
  once, cuts each row's snip from its archive image and describes it;
- match: every description is put in the object store once; each `_Match` actor builds the same gallery from it
  (the FLANN index is seeded: every actor's shortlist is the driver's) and answers a block of queries.

Each actor asks `ACTOR_CPUS`, and as many run as leave half a CPU free (Ray Data's own tasks need one).
"""

from __future__ import annotations

import math
import pickle
from typing import Any

import pandas as pd

from batch.identify.run import LocalWorkers
from model_store.core.identify.features import Description
from model_store.core.identify.gallery import Candidate, Gallery
from model_store.store.store import ModelStore

ACTOR_CPUS = 0.75
SNIP_COLUMNS = ["uri", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]


class _Describe:
    """Ray Data actor: the identifier loaded once; a block of rows in, their pickled descriptions out."""

    def __init__(self, identifier: str, store: str | None) -> None:
        self.local = LocalWorkers(ModelStore(store).load_identifier(identifier))

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        rows = batch.reset_index(drop=True)
        descs = self.local.describe(rows[SNIP_COLUMNS])
        return pd.DataFrame({"i": rows["i"], "desc": [pickle.dumps(d) for d in descs]})


class _Match:
    """Ray Data actor: the gallery of every description built once; a block of query positions in, each one's
    verified candidates (index, score, P(same)) out."""

    def __init__(self, identifier: str, store: str | None, descs: list) -> None:
        import ray  # late: the module is imported by the CLI for `trapline --help`; Ray runs in the actors

        self.descs = ray.get(descs[0])  # an object ref inside a list: passed as is, resolved here
        self.gallery = Gallery(ModelStore(store).load_identifier(identifier))
        self.gallery.add(self.descs)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        found = [[(c.index, c.score, c.p_same) for c in self.gallery.query(self.descs[g], exclude=int(g))]
                 for g in batch["g"]]
        return pd.DataFrame({"g": batch["g"], "found": [pickle.dumps(f) for f in found]})


class RayWorkers:
    """Describe and match on Ray Data actor pools (the connected Ray, or the one `ensure_ray` started)."""

    def __init__(self, identifier: str, store: str | None, batch_size: int = 16) -> None:
        import ray  # late: see _Match

        self.identifier, self.store, self.batch_size = identifier, ModelStore(store).root, batch_size
        cpus = float(ray.cluster_resources().get("CPU", 1))
        self.concurrency = max(1, math.floor((cpus - 0.5) / ACTOR_CPUS))

    def _pool(self, table: pd.DataFrame, fn, **kwargs: Any) -> list[dict]:
        import ray.data  # late: see _Match

        # one block per batch: every actor of the pool gets work (one block in would feed one actor)
        blocks = [table.iloc[i:i + self.batch_size] for i in range(0, len(table), self.batch_size)]
        return ray.data.from_pandas(blocks).map_batches(
            fn, fn_constructor_kwargs={"identifier": self.identifier, "store": self.store, **kwargs},
            batch_size=self.batch_size, batch_format="pandas", concurrency=self.concurrency,
            num_cpus=ACTOR_CPUS).take_all()

    def describe(self, rows: pd.DataFrame) -> list[Description | str]:
        if rows.empty:
            return []
        out = self._pool(rows[SNIP_COLUMNS].assign(i=range(len(rows))), _Describe)
        by_i = {int(r["i"]): pickle.loads(r["desc"]) for r in out}
        return [by_i[i] for i in range(len(rows))]

    def match(self, descs: list[Description]) -> list[list[Candidate]]:
        import ray  # late: see _Match

        if not descs:
            return []
        ref = ray.put(descs)
        out = self._pool(pd.DataFrame({"g": range(len(descs))}), _Match, descs=[ref])
        by_g = {int(r["g"]): pickle.loads(r["found"]) for r in out}
        return [[Candidate(int(i), float(s), float(p)) for i, s, p in by_g[g]] for g in range(len(descs))]
