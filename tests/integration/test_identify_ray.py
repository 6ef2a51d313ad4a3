"""`trapline identify --ray`: describing and matching on Ray Data actor pools (the session's real local Ray) give
the same sightings, the same individuals, as the run in one process."""

from __future__ import annotations

import pytest

from batch.identify.distributed import RayWorkers
from batch.identify.options import IdentifyOptions
from batch.identify.run import run_identify
from model_store.store.store import ModelStore
from model_store.tables.identities import SIGHTINGS, read_result
from model_store.tables.locations import open_location
from tests.fixtures.reid_tables import write_identity_tables

pytestmark = pytest.mark.ray


def test_identify_on_ray_finds_what_the_local_run_finds(ray_cluster, tmp_path):
    tables, truth = write_identity_tables(tmp_path, individuals=5, views=3, tiny=True)
    store = str(tmp_path / "models")
    ModelStore(store).publish(None, "coats", "1", {"backend": "keypoints", "applies_to": ["zebra"]})
    local = run_identify(IdentifyOptions(tables=str(tables), identifier="coats:1", store=str(store)))
    by_local = read_result(open_location(tables), SIGHTINGS).set_index("uri")
    workers = RayWorkers("coats:1", store, batch_size=4)
    assert workers.concurrency >= 1
    on_ray = run_identify(IdentifyOptions(tables=str(tables), identifier="coats:1", store=str(store)), workers=workers)
    s = read_result(open_location(tables), SIGHTINGS).set_index("uri")
    assert (on_ray.sightings, on_ray.unidentifiable, on_ray.individuals) == \
        (local.sightings, local.unidentifiable, local.individuals) == (16, 1, 5)
    assert on_ray.run_id != local.run_id and s["run_id"].eq(on_ray.run_id).all()
    # the same sightings in the same individuals, under the same (stable) ids; the same reasons for the rest
    assert s["individual_id"].to_dict() == by_local["individual_id"].reindex(s.index).to_dict()
    assert s["decision"].to_dict() == by_local["decision"].reindex(s.index).to_dict()
    true_of = {t["uri"]: t["individual"] for t in truth}
    groups = s.dropna(subset=["individual_id"]).groupby("individual_id").apply(
        lambda g: {true_of[u] for u in g.index}, include_groups=False)
    assert all(len(g) == 1 for g in groups) and len(groups) == 5
