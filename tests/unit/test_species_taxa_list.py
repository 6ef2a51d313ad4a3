"""Taxa lists against MegaDetector's `restrict_to_taxa_list`, label by label (issue 57).

tests/fixtures/reference/build_taxa_list.py ran megadetector's function with 40 generated taxa lists over the species
fixture's taxonomy (names at every rank, walking down or not, protected common names, `original_common` columns,
repeated names); for every label, trapline's restriction must give the same taxon and common name.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ground.errors import ConfigError
from model_store.core.species.taxa_list import TaxaList, TaxaRestriction

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "speciesnet"


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(gzip.decompress((HERE / "taxa_list_expected.json.gz").read_bytes()))


def test_every_label_maps_as_megadetector_maps_it(reference: dict) -> None:
    labels = reference["labels"]
    taxonomy = labels[:-1]  # the taxonomy file; the last label ("no cv result") is only classified
    wrong = []
    for n, case in enumerate(reference["cases"]):
        restriction = TaxaRestriction(TaxaList.parse(case["taxa_list"]), taxonomy, case["allow_walk_down"],
                                      case["protected"])
        for label, want in zip(labels, case["mapped"], strict=True):
            got = restriction.target(label)
            got = [";".join(label.split(";")[1:6]), label.split(";")[6]] if got is None else list(got)
            if got != want:
                wrong.append((n, label, got, want))
    assert not wrong, f"{len(wrong)} labels differ, e.g. {wrong[:3]}"
    assert len(reference["cases"]) == 40


def test_a_bad_taxa_list_is_refused_naming_the_problem(reference: dict) -> None:
    taxonomy = reference["labels"][:-1]
    with pytest.raises(ConfigError, match=r"column\(s\) \['common'\] missing"):
        TaxaList.parse("latin\npanthera leo\n")
    with pytest.raises(ConfigError, match="line 3: latin 'a b c d' is not a scientific name of 1 to 3 words"):
        TaxaList.parse("latin,common\npanthera leo,lion\na b c d,x\n")
    with pytest.raises(ConfigError, match=r"taxa the classifier's taxonomy does not have: \['panthera tigris'\]"):
        TaxaRestriction(TaxaList.parse("latin,common\npanthera leo,lion\nPanthera tigris,tiger\n"), taxonomy)
    lion = next(x for x in taxonomy if x.endswith(";lion"))
    leopard = next(x for x in taxonomy if x.endswith(";leopard"))
    only_lions = TaxaRestriction(TaxaList.parse("latin,common\npanthera leo,Lion (ours)\n"), taxonomy)
    assert only_lions.target(lion) == ("mammalia;carnivora;felidae;panthera;leo", "lion (ours)")
    assert only_lions.target(leopard) == ("mammalia;carnivora;felidae;panthera;", "panthera species")
    walk = TaxaRestriction(TaxaList.parse("latin,common\npanthera leo,lion\n"), taxonomy, allow_walk_down=True)
    assert walk.target(leopard) == ("mammalia;carnivora;felidae;panthera;leo", "lion")
