"""Online re-identification with a separate ingress (`http.one_hop: false`, as the KubeRay RayService serves): the
ingress deployment identifies, in its own actor, what the model deployment detected; an upload recorded through it
joins its gallery. The same scenario as tests/e2e/test_serve_identify.py (one hop, `trapline serve`), on the
session's Ray."""

from __future__ import annotations

import pytest

from serve.local import run_local
from tests.fixtures.reid_tables import identified_site, identify_online
from tests.fixtures.serving import QUICK_STOP

pytestmark = pytest.mark.ray


def test_the_separate_ingress_identifies_and_a_recorded_upload_joins_its_gallery(ray_cluster, tmp_path):
    store_root = str(tmp_path / "store")
    tables, known = identified_site(tmp_path, store_root)
    config = {"store": store_root, "http": {"one_hop": False, "ingress_num_cpus": 0.1},
              "models": [{"name": "trapcam", "num_cpus": 0.25, "identify": {"identifier": "coats@production"},
                          **QUICK_STOP}],
              "record": {"archive": str(tmp_path / "uploads"), "tables": tables, "flush_interval_s": 1}}
    with run_local(config, app_name="trapline-identify", route_prefix="/identify", environ={}) as url:
        assert identify_online(url, {}, known) == {"matched": 5, "new": 1}
