"""A classifier's taxonomy and geofence in the model store, the `species_ensemble` filter on real crops (real ONNX
Runtime), and bad species files refused naming the line or field (issue 57)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from ground.errors import BatchError, ChecksumError, ConfigError, FilterConfigError
from model_store import FilterSet, ModelStore
from model_store.core.species.data import SpeciesSources
from model_store.core.species.geofence import Geofence, Location
from model_store.core.species.taxonomy import ANIMAL, BLANK, Taxonomy
from model_store.tables.locations import open_location
from tests.fixtures.classifiers import RGB, colour_config

HERE = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "speciesnet"
TAXONOMY = (HERE / "taxonomy.txt").read_bytes()
GEOFENCE = (HERE / "geofence.json").read_bytes()


def label(common: str) -> str:
    return next(x for x in TAXONOMY.decode().splitlines() if x.endswith(f";{common}"))


LION, BROWN_BEAR = label("lion"), label("brown bear")
SPECIES_LABELS = [LION, BROWN_BEAR, BLANK]  # red, green, blue crops


def species_config() -> dict:
    return colour_config(labels=SPECIES_LABELS, taxonomy={}, taxonomy_ranks=[], top_k=3, applies_to=[])


@pytest.fixture
def store(local_store: ModelStore, colour_onnx) -> ModelStore:
    local_store.publish(colour_onnx, "species", "1", species_config(), species=SpeciesSources(TAXONOMY, GEOFENCE))
    return local_store


def crop(colour: str) -> np.ndarray:
    return np.full((40, 40, 3), RGB[colour], np.uint8)


def ensemble(**config) -> FilterSet:
    return FilterSet.from_specs([{"name": "species_ensemble", "config": config}])


def test_the_files_live_beside_the_classifier_and_decide_with_it(store: ModelStore) -> None:
    mv = store.get("species:1")
    assert mv.config.species is not None and mv.config.species.geofence == "geofence.json"
    clf = store.load_classifier("species:1")
    assert clf.species is not None and LION in clf.species.taxonomy.labels
    # Kenya: the lion stands; Germany: lions are out of place, the answer rolls up to the cat family.
    [kenya] = clf.classify([crop("red")], ensemble(country="KEN"), detections=[("animal", 0.9)])
    assert (kenya.label, kenya.source) == (LION, "classifier")
    assert kenya.taxon_path == ["mammalia", "carnivora", "felidae", "panthera", "Panthera leo"]
    [germany] = clf.classify([crop("red")], ensemble(country="DEU"), detections=[("animal", 0.9)])
    assert germany.label.endswith(";mammalia;carnivora;felidae;;;felidae family")
    assert (germany.source, germany.rank) == ("classifier+geofence+rollup_to_family", "family")
    assert germany.top[0].label == LION  # the classifier's own answer stays beside the determination
    # A deployment's location wins over the run's; a person box is a human whatever the crop says.
    [here] = clf.classify([crop("red")], ensemble(country="KEN"), detections=[("animal", 0.9)],
                          locations=[Location(country="DEU")])
    assert here.source == "classifier+geofence+rollup_to_family"
    [person] = clf.classify([crop("red")], ensemble(), detections=[("person", 0.95)])
    assert (person.label.split(";")[-1], person.source, person.score) == ("human", "detector", 0.95)
    # Without the ensemble the classifier answers as before, with no source.
    [plain] = clf.classify([crop("red")])
    assert (plain.label, plain.source) == (LION, None)


def test_a_changed_species_file_is_refused_like_changed_weights(store: ModelStore) -> None:
    path = Path(store.storage.local_path("species", "1", "geofence.json"))
    path.write_bytes(path.read_bytes().replace(b"KEN", b"DEU"))
    with pytest.raises(ChecksumError, match="sha256 of geofence.json"):
        store.load_classifier("species:1")


def test_the_ensemble_needs_the_taxonomy(local_store: ModelStore, colour_onnx) -> None:
    local_store.publish(colour_onnx, "species", "2", species_config())
    clf = local_store.load_classifier("species:2")
    with pytest.raises(FilterConfigError, match="--taxonomy"):
        clf.classify([crop("red")], ensemble())


@pytest.mark.parametrize(("taxonomy", "geofence", "message"), [
    (TAXONOMY.replace(LION.encode() + b"\n", b""), GEOFENCE, "labels .*lion.* are not in its taxonomy"),
    (TAXONOMY + b"abc;mammalia;carnivora\n", GEOFENCE, r"taxonomy.txt line 118: a SpeciesNet label has 7 fields"),
    (TAXONOMY + b"abc;mammalia;;felidae;;;x\n", GEOFENCE, "line 118: field order is empty under a lower rank"),
    (TAXONOMY, b'{"aves;x;y;z;w": {"allow": {"USA": []}}}', r"rules for taxa the taxonomy does not have: \['aves;x"),
    (TAXONOMY, b'{"aves;;;;": {"allow": {"US": []}}}', r"aves;;;;\.allow\.US: a country is an ISO 3166-1 alpha-3"),
    (TAXONOMY, b'{"aves;;;;": {"block": {"USA": ["NJX"]}}}', r"block\.USA\.0: a first-level region is a 2-char"),
    (TAXONOMY, b'{"aves;;": {}}', "a geofence key is a 5-field taxon"),
    (TAXONOMY, b'{"aves;;;;": {"deny": {}}}', r"aves;;;;\.deny: Extra inputs are not permitted"),
])
def test_bad_species_files_are_refused_at_publish(local_store: ModelStore, colour_onnx, taxonomy: bytes,
                                                  geofence: bytes, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        local_store.publish(colour_onnx, "species", "9", species_config(),
                            species=SpeciesSources(taxonomy, geofence))
    assert "9" not in local_store.list_versions("species")


def test_bad_locations_are_refused_naming_the_field() -> None:
    with pytest.raises(FilterConfigError, match="country: a country is an ISO 3166-1 alpha-3 code"):
        ensemble(country="DE")
    with pytest.raises(FilterConfigError, match="admin1_region: a first-level region is a 2-character code"):
        ensemble(country="USA", admin1_region="NEW")
    with pytest.raises(FilterConfigError, match="admin1_region 'NJ' needs a country"):
        ensemble(admin1_region="NJ")
    with pytest.raises(FilterConfigError, match="rollup_ranks.0"):
        ensemble(rollup_ranks=["tribe"])
    assert ensemble(country="usa", admin1_region="nj").filters[0][1].location == Location(country="USA",
                                                                                          admin1_region="NJ")


def test_speciesnets_geofence_fixes_read_as_a_geofence() -> None:
    fixes = Geofence.from_fixes_csv((HERE / "geofence_fixes.csv").read_text())
    dingo = "x;mammalia;chordata;canidae;canis;lupus dingo;dingo"
    assert fixes.blocks(dingo, Location(country="DEU")) and not fixes.blocks(dingo, Location(country="AUS"))
    bear = "x;mammalia;carnivora;ursidae;ursus;americanus;american black bear"
    assert not fixes.blocks(bear, Location(country="USA", admin1_region="NJ"))
    assert fixes.blocks(bear, Location(country="USA", admin1_region="TX"))
    assert fixes.blocks(bear, Location(country="CAN"))  # fixes alone: allowed in the USA only
    assert not fixes.blocks(bear, None)
    with pytest.raises(ConfigError, match="the header must be"):
        Geofence.from_fixes_csv("taxon,rule\n")
    assert Taxonomy.parse(TAXONOMY.decode()).ancestor(LION, "genus").endswith(";panthera;;panthera species")


def test_postprocess_applies_the_ensemble_to_stored_classifications(store: ModelStore, tmp_path) -> None:
    """Over the archive: stored probability vectors, the stored boxes, and the taxonomy and geofence from the store
    (the tables keep labels, not those files) give the same decisions as live."""
    import pyarrow.dataset as ds

    from model_store.tables.reader import Tables
    from model_store.tables.schema import CLASSIFICATIONS
    from tests.fixtures.postprocess import postprocess

    lion, bear, blank = [0.97, 0.02, 0.01], [0.1, 0.6, 0.3], [0.005, 0.005, 0.99]
    out = write_species_tables(store, tmp_path, [(dt.datetime(2026, 5, 1, 12 + n), box, score, p) for n, (box, score, p)
                                                 in enumerate([("animal", 0.9, lion), ("person", 0.95, lion),
                                                               ("animal", 0.6, bear), ("animal", 0.1, blank)])])
    report = postprocess(str(out), "species_ensemble", {"country": "DEU"}, store=store.root)
    got = Tables(open_location(str(out))).read(
        CLASSIFICATIONS, "md", "5", filter=ds.field("filters_hash") == report.filters_hash
    )
    decided = {r["uri"].rsplit("/", 1)[1]: (r["label"].rsplit(";", 1)[1], r["source"]) for r in got.to_pylist()}
    assert decided == {"0.jpg": ("felidae family", "classifier+geofence+rollup_to_family"),
                       "1.jpg": ("human", "detector"),
                       "2.jpg": ("carnivora order", "classifier+rollup_to_order"),  # bear 0.6 + lion 0.1
                       "3.jpg": ("blank", "classifier")}
    assert report.relabelled == 3  # the blank stays blank
    # The camera's deployment says Kenya: it wins over the run's country, and the lion stands.
    from batch.deployments.records import import_deployments

    import_deployments(
        str(out),
        [
            {
                "deploymentID": "cam1-2026",
                "cameraID": "cam1",
                "latitude": -1.4,
                "longitude": 35.1,
                "deploymentStart": "2026-05-01T00:00:00Z",
                "deploymentEnd": "2026-05-02T00:00:00Z",
                "country": "ken",
            }
        ],
        who="test",
    )
    report = postprocess(str(out), "species_ensemble", {"country": "FRA"}, store=store.root)
    got = Tables(open_location(str(out))).read(
        CLASSIFICATIONS, "md", "5", filter=ds.field("filters_hash") == report.filters_hash
    )
    decided = {r["uri"].rsplit("/", 1)[1]: (r["label"].rsplit(";", 1)[1], r["source"]) for r in got.to_pylist()}
    assert decided["0.jpg"] == ("lion", "classifier")


def write_species_tables(store: ModelStore, tmp_path: Path, frames: list, archive: str = "/a") -> Path:
    """Tables of one camera's frames (capture time, box label, box score, the species classifier's probabilities),
    one detection each, classified by species:1; the pictures named under `archive` (cam1/N.jpg)."""
    from model_store.tables.commit import write_stage_results
    from model_store.tables.schema import STAGE_SCHEMA

    mv = store.get("species:1")
    rows = [{"uri": f"{archive}/cam1/{n}.jpg", "rel_path": f"cam1/{n}.jpg", "content_id": f"c{n}", "size_bytes": 1,
             "camera_id": "cam1", "width": 64, "height": 48, "capture_time": when, "capture_time_source": "exif",
             "status": "ok", "error_reason": None, "error": None, "detection_count": 1, "raw_detection_count": 1,
             "max_score": score,
             "detections": [{"detection_index": 0, "label": box, "class_id": 0, "score": score, "bbox_x": 0.1,
                             "bbox_y": 0.1, "bbox_w": 0.3, "bbox_h": 0.3, "kept": True, "flags": []}],
             "classifications": [{"detection_index": 0, "classifier_name": "species", "classifier_version": "1",
                                  "classifier_sha256": mv.sha256, "label": SPECIES_LABELS[int(np.argmax(p))],
                                  "score": max(p), "rank": None, "taxon_path": [], "top_labels": [],
                                  "top_scores": [], "scores": p, "flags": [], "source": None}], "snips": []}
            for n, (when, box, score, p) in enumerate(frames)]
    out = tmp_path / "tables"
    classifier = {"name": "species", "version": "1", "sha256": mv.sha256, "labels": [], "min_crop_px": 0,
                  "labels_out": SPECIES_LABELS, "taxonomy": {}, "taxonomy_ranks": [], "top_k": 3}
    write_stage_results(pa_table(rows, STAGE_SCHEMA), out_url=str(out), model_name="md", model_version="5",
                        model_sha256="0" * 64, filters_hash="c1", run_id="20260501T000000Z-c",
                        metadata={"model": {"labels": ["animal", "person", "vehicle"]},
                                  "filters": {"hash": "c1", "specs": [], "classifiers": [classifier]}})
    return out


def test_postprocess_smooths_determinations_over_an_event(store: ModelStore, tmp_path) -> None:
    """Three frames of a lion and one the ensemble could only call a carnivore, within a minute: over the event,
    MegaDetector's rules push the carnivore down to the lion; the same frame an hour later stays a carnivore."""
    import pyarrow.dataset as ds

    from model_store.tables.reader import Tables
    from model_store.tables.schema import CLASSIFICATIONS
    from tests.fixtures.postprocess import postprocess

    lion, unsure = [0.97, 0.02, 0.01], [0.6, 0.3, 0.1]  # unsure: lion 0.6 + bear 0.3 -> carnivora (0.9)
    t0 = dt.datetime(2026, 5, 1, 12)
    frames = [(t0 + dt.timedelta(seconds=10 * n), "animal", 0.9, p) for n, p in enumerate([lion, lion, unsure, lion])]
    out = write_species_tables(store, tmp_path, [*frames, (t0 + dt.timedelta(hours=1), "animal", 0.9, unsure)])

    said: dict[str, str | None] = {}  # each frame's pre_smoothing_description, as the last run wrote it

    def decided(config: dict) -> dict[str, tuple[str, str]]:
        report = postprocess(str(out), "species_ensemble", config, store=store.root)
        got = Tables(open_location(str(out))).read(CLASSIFICATIONS, "md", "5",
                                    filter=ds.field("filters_hash") == report.filters_hash).to_pylist()
        said.clear()
        said.update({r["uri"].rsplit("/", 1)[1]: r["pre_smoothing_description"] for r in got})
        return {r["uri"].rsplit("/", 1)[1]: (r["label"].rsplit(";", 1)[1], r["source"]) for r in got}

    per_image = decided({"country": "KEN", "smoothing": "image"})  # one detection an image: nothing to smooth
    assert per_image["2.jpg"] == per_image["4.jpg"] == ("carnivora order", "classifier+rollup_to_order")
    per_event = decided({"country": "KEN", "smoothing": "event"})
    assert per_event["2.jpg"] == ("lion", "classifier+rollup_to_order+smoothed")
    assert per_event["4.jpg"] == ("carnivora order", "classifier+rollup_to_order")  # an event of its own
    assert per_event["0.jpg"] == ("lion", "classifier")
    # what the event held before, kept on the record smoothing changed (MegaDetector's pre_smoothing_description)
    assert said == {"0.jpg": None, "1.jpg": None, "2.jpg": "lion (3), carnivora order (1)", "3.jpg": None,
                    "4.jpg": None}
    from model_store.tables.browse import capture  # what the console's capture view is answered (newest set)

    [box] = capture(Tables(open_location(str(out))), "/a/cam1/2.jpg", "md")["detections"]
    assert box["classifications"][0]["pre_smoothing_description"] == "lion (3), carnivora order (1)"
    decided({"smoothing": "off"})  # decided again from that set, not smoothed: no description left behind
    assert set(said.values()) == {None}


def pa_table(rows: list[dict], schema):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=schema)


def test_a_taxa_list_published_by_name_restricts_and_thresholds(local_store: ModelStore, colour_onnx) -> None:
    ours = b"latin,common,threshold\nfelidae,cat,0.99\nursus arctos,brown bear,\n"
    local_store.publish(colour_onnx, "species", "3", species_config(),
                        species=SpeciesSources(TAXONOMY, GEOFENCE, {"ours": ours}))
    assert local_store.get("species:3").config.species.taxa_lists["ours"].file == "taxa-ours.csv"
    clf = local_store.load_classifier("species:3")
    [cat] = clf.classify([crop("red")], ensemble(country="KEN", taxa_list="ours"), detections=[("animal", 0.9)])
    # only the family is listed: the lion (0.997) is a cat, under the list's name, clearing the family's 0.99
    assert cat.label.endswith(";mammalia;carnivora;felidae;;;cat") and cat.source == "classifier+taxa_list"
    assert cat.score > 0.99 and cat.taxon_path == ["mammalia", "carnivora", "felidae"]
    # a bear in Kenya is out of place: the geofence rolls it up to its family, which the list allows as it is,
    # unless the family's one listed line is walked down to the brown bear
    [bear] = clf.classify([crop("green")], ensemble(country="KEN", taxa_list="ours"), detections=[("animal", 0.9)])
    assert (bear.label.rsplit(";", 1)[-1], bear.source) == ("ursidae family", "classifier+geofence+rollup_to_family")
    [walked] = clf.classify([crop("green")], ensemble(country="KEN", taxa_list="ours", allow_walk_down=True),
                            detections=[("animal", 0.9)])
    assert (walked.label.rsplit(";", 1)[-1], walked.source) == ("brown bear",
                                                                "classifier+geofence+rollup_to_family+taxa_list")
    [strict] = clf.classify([crop("green")], ensemble(country="KEN", taxa_list="ours", default_threshold=1.0),
                            detections=[("animal", 0.9)])
    assert (strict.label, strict.source) == (ANIMAL, "classifier+geofence+rollup_to_family+below_threshold")
    with pytest.raises(FilterConfigError, match=r"no taxa list 'theirs' was published with the classifier"):
        clf.classify([crop("red")], ensemble(taxa_list="theirs"), detections=[("animal", 0.9)])


@pytest.mark.parametrize(("name", "data", "message"), [
    ("ours", b"latin,common\npanthera tigris,tiger\n", r"taxa-ours.csv: taxa the classifier's taxonomy does not"),
    ("ours", b"latin,common,threshold\npanthera leo,lion,2\n", r"taxa-ours.csv line 2: threshold must be"),
    ("ours", b"name,common\nx,y\n", r"column\(s\) \['latin'\] missing"),
    ("../x", b"latin,common\npanthera leo,lion\n", "a taxa list's name is letters"),
])
def test_bad_taxa_lists_are_refused_at_publish(local_store: ModelStore, colour_onnx, name: str, data: bytes,
                                               message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        local_store.publish(colour_onnx, "species", "9", species_config(),
                            species=SpeciesSources(TAXONOMY, GEOFENCE, {name: data}))


def test_a_deployments_location_is_checked_where_it_enters() -> None:
    from model_store.tables.deployment_fields import validate_rows

    row = {"deploymentID": "d1", "latitude": 0.0, "longitude": 0.0, "deploymentStart": "2026-05-01T00:00:00Z",
           "deploymentEnd": "2026-05-02T00:00:00Z"}
    assert validate_rows([{**row, "country": "usa", "admin1Region": "nj"}], "deployments")["d1"].admin1Region == "NJ"
    with pytest.raises(BatchError, match="entry 1: country: .*ISO 3166-1 alpha-3"):
        validate_rows([{**row, "country": "US"}], "deployments")
    with pytest.raises(BatchError, match="admin1Region 'NJ' needs a country"):
        validate_rows([{**row, "admin1Region": "NJ"}], "deployments")


def test_a_reprocess_classify_stage_places_each_camera_by_its_deployment(store: ModelStore, tmp_path) -> None:
    """The archive door's classify stage (the Ray Data actor, called on a plain batch): each crop gets its box and
    its camera's deployment location; a camera without one keeps the run's country."""
    import pyarrow as pa
    from PIL import Image

    from batch.deployments.records import import_deployments
    from batch.reprocess.actor_settings import ClassifySettings
    from batch.reprocess.classify import ClassifyActor
    from model_store.tables.schema import RESULT_SCHEMA
    from tests.fixtures.classifiers import painted

    archive, out = tmp_path / "archive", tmp_path / "tables"
    rows = []
    for camera in ("kenya", "nowhere"):
        path = archive / camera / "1.png"
        path.parent.mkdir(parents=True)
        Image.fromarray(painted(200, 100, [("red", (50, 20, 150, 80))])).save(path)
        rows.append({"uri": str(path), "rel_path": f"{camera}/1.png", "content_id": camera,
                     "size_bytes": path.stat().st_size, "camera_id": camera, "kind": "image", "width": 200,
                     "height": 100, "capture_time": dt.datetime(2026, 5, 1, 12), "capture_time_source": "exif",
                     "status": "ok", "detection_count": 1, "raw_detection_count": 1, "max_score": 0.9,
                     "detections": [{"detection_index": 0, "label": "animal", "class_id": 0, "score": 0.9,
                                     "bbox_x": 0.25, "bbox_y": 0.2, "bbox_w": 0.5, "bbox_h": 0.6, "kept": True,
                                     "flags": []}]})
    out.mkdir()
    import_deployments(str(out), [{"deploymentID": "k1", "cameraID": "kenya", "latitude": -1.4, "longitude": 35.1,
                                   "deploymentStart": "2026-05-01T00:00:00Z", "deploymentEnd": "2026-05-02T00:00:00Z",
                                   "country": "KEN"}], who="test")
    actor = ClassifyActor(ClassifySettings(store.root, [{"model": "species:1", "labels": ["animal"]}],
                                           [{"name": "species_ensemble", "config": {"country": "DEU"}}], None,
                                           str(archive), str(out), "md", "5", "h"))
    got = actor(pa.Table.from_pylist(rows, schema=RESULT_SCHEMA)).to_pylist()
    decided = {r["camera_id"]: (r["classifications"][0]["label"].rsplit(";", 1)[1], r["classifications"][0]["source"])
               for r in got}
    assert decided == {"kenya": ("lion", "classifier"),
                       "nowhere": ("felidae family", "classifier+geofence+rollup_to_family")}


def test_the_megadetector_export_names_speciesnet_labels_as_megadetector_does() -> None:
    """7-field labels: common names as the categories, the labels as their descriptions (what MegaDetector writes for
    SpeciesNet results, and what its smoothing and taxa-list tools read); other labels as before."""
    from batch.export.formats import md_categories

    assert md_categories({LION: "1", BLANK: "2"}) == {
        "classification_categories": {"1": "lion", "2": "blank"},
        "classification_category_descriptions": {"1": LION, "2": BLANK}}
    assert md_categories({"red": "1", "green": "2"}) == {"classification_categories": {"1": "red", "2": "green"}}


def test_a_reprocess_refuses_the_ensemble_before_it_starts_when_the_files_are_missing(local_store: ModelStore,
                                                                                       colour_onnx) -> None:
    from batch.reprocess.job import preflight_classifier

    local_store.publish(colour_onnx, "species", "2", species_config())
    ensemble_only = FilterSet.from_specs([{"name": "species_ensemble", "config": {}}])
    with pytest.raises(BatchError, match="classifier species:2: species_ensemble needs the classifier's taxonomy"):
        preflight_classifier(local_store, "species:2", ensemble_only)
    preflight_classifier(local_store, "species:2", FilterSet())  # without the ensemble it runs


def test_the_online_door_checks_the_ensemble_against_the_classifiers_files(store: ModelStore) -> None:
    """What serve/classifier.py runs before a request joins a batch: a refusal there is the request's alone."""
    from model_store.core.filters.species import check_species

    species = store.load_classifier("species:1").species
    check_species(ensemble(country="KEN").classifier_filters("species"), species)
    with pytest.raises(FilterConfigError, match="needs the classifier's taxonomy"):
        check_species(ensemble().classifier_filters("species"), None)
    with pytest.raises(FilterConfigError, match="no taxa list 'park'"):
        check_species(ensemble(taxa_list="park").classifier_filters("species"), species)
    check_species(FilterSet().classifier_filters("species"), None)  # no ensemble: nothing to check
