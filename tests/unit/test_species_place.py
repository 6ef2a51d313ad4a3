"""A run's `--country` / `--admin1` (reprocess and postprocess): checked at the door naming the flag, and read by the
species_ensemble filter only where an image's deployment names no country (issue 57, second pass)."""

from __future__ import annotations

import datetime as dt

import pyarrow.dataset as ds
import pytest

from batch.deployments.records import import_deployments
from batch.options import parse_options
from batch.postprocessing.options import PostprocessOptions
from batch.postprocessing.postprocess import run_postprocess
from batch.reprocess.options import ReprocessOptions
from ground.errors import OptionsError
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.schema import CLASSIFICATIONS
from tests.unit.test_species_files import store, write_species_tables  # noqa: F401 (a fixture)
from trapline.cli import main

RUN = {"archive": "/a", "out": "/o", "model": "md"}
ENSEMBLE = {"species_ensemble": {}}


def test_reprocess_places_its_cameras_in_the_ensembles_config() -> None:
    o = parse_options(ReprocessOptions, {**RUN, "country": "deu", "admin1": "by", "filters": ENSEMBLE}, "reprocess")
    assert o.filters == {"species_ensemble": {"country": "DEU", "admin1_region": "BY"}}
    given = {**RUN, "country": "DEU", "filters": {"species_ensemble": {"country": "deu"}}}
    same = parse_options(ReprocessOptions, given, "reprocess")
    assert same.filters["species_ensemble"]["country"] == "DEU"


@pytest.mark.parametrize(("given", "said"), [
    ({"country": "DE", "filters": ENSEMBLE}, r"--country: a country is an ISO 3166-1 alpha-3 code .*got 'DE'"),
    ({"country": "D1U", "filters": ENSEMBLE}, r"--country: a country is an ISO 3166-1 alpha-3 code"),
    ({"country": "USA", "admin1": "CAL", "filters": ENSEMBLE}, r"--admin1: a first-level region is a 2-character"),
    ({"admin1": "CA", "filters": ENSEMBLE}, r"--admin1 needs --country"),
    ({"country": "USA"}, r"place the cameras for the species_ensemble filter: name it in --filters"),
    ({"country": "USA", "filters": {"species_ensemble": None}}, r"name it in --filters"),
    ({"country": "USA", "filters": {"species_ensemble": {"country": "KEN"}}},
     r"--country USA and the species_ensemble config's country 'KEN' disagree"),
])
def test_reprocess_refuses_a_bad_place_naming_the_flag(given: dict, said: str) -> None:
    with pytest.raises(OptionsError, match=said):
        parse_options(ReprocessOptions, {**RUN, **given}, "reprocess")


def test_postprocess_refuses_a_bad_place_naming_the_flag() -> None:
    base = {"tables": "/t", "filter": "species_ensemble", "config": "{}"}
    assert parse_options(PostprocessOptions, {**base, "country": "usa", "admin1": "ca"}, "postprocess").config == {
        "country": "USA", "admin1_region": "CA"}
    for given, said in [({"country": "US"}, r"--country: a country is an ISO 3166-1 alpha-3 code"),
                        ({"country": "USA", "admin1": "C"}, r"--admin1: a first-level region is a 2-character"),
                        ({"filter": "score", "config": '{"min_score": 0.5}', "country": "USA"},
                         r"--country / --admin1 place the cameras for the species_ensemble filter"),
                        ({"config": None, "remove": True, "country": "USA"}, r"for the species_ensemble filter"),
                        ({"config": '{"country": "FRA"}', "country": "USA"}, r"'FRA' disagree")]:
        with pytest.raises(OptionsError, match=said):
            parse_options(PostprocessOptions, {**base, **given}, "postprocess")


def test_postprocess_country_is_where_the_deployment_says_nothing(store, tmp_path, capsys) -> None:  # noqa: F811
    """`trapline postprocess --country DEU`: a lion out of place rolls up to its family; once the camera's deployment
    says Kenya, the deployment wins and the lion stands."""
    lion = [0.97, 0.02, 0.01]
    out = write_species_tables(store, tmp_path, [(dt.datetime(2026, 5, 1, 12), "animal", 0.9, lion)])

    def decided(country: str) -> tuple[str, str]:
        # the command's own path: its options model (as the CLI and a job's JSON give it), then the run
        given = {"tables": str(out), "store": str(store.root), "filter": "species_ensemble", "config": "{}",
                 "country": country}
        o = parse_options(PostprocessOptions, given, "postprocess")
        report = run_postprocess(o)
        [row] = Tables(open_location(str(out))).read(CLASSIFICATIONS, "md", "5",
                                      filter=ds.field("filters_hash") == report.filters_hash).to_pylist()
        return row["label"].rsplit(";", 1)[1], row["source"]

    assert decided("DEU") == ("felidae family", "classifier+geofence+rollup_to_family")
    import_deployments(str(out), [{"deploymentID": "cam1-2026", "cameraID": "cam1", "latitude": -1.4,
                                   "longitude": 35.1, "deploymentStart": "2026-05-01T00:00:00Z",
                                   "deploymentEnd": "2026-05-02T00:00:00Z", "country": "ken"}], who="test")
    assert decided("FRA") == ("lion", "classifier")  # (another country: a new set, not the one made above)
    assert main(["postprocess", "--tables", str(out), "--filter", "species_ensemble", "--config", "{}",
                 "--country", "DE"]) != 0
    assert "--country: a country is an ISO 3166-1 alpha-3 code" in capsys.readouterr().err
