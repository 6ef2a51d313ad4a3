"""The gate before promote (batch/review/promote_gate.py): on a season of the demo's scenes run through
demo-detector:1 and reviewed by simulated people (tests/fixtures/gate_season.py), a candidate is compared with the
alias's current version on the held-out cameras; a version worse beyond the intervals is refused (exit 2, the
comparison printed, the alias unchanged; 409 with the comparison over HTTP), --force promotes it and is audited, a
better or equal one promotes, too little evidence is said, and a first promote (or one without tables) has no gate."""

from __future__ import annotations

import json
import warnings

import pytest

from batch.models_commands import GATE_MIN_BOXES
from batch.review import promote_gate as pg
from batch.review.promote_gate import MIN_BOXES, VERDICTS, count, figures, held_out, verdict
from model_store import ModelStore
from model_store.demo.publish import publish_demo
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from tests.fixtures.gate_season import publish_shuffled, publish_threshold, write_season
from trapline.cli import main

DEMO = "demo-detector"


@pytest.fixture(scope="module")
def season(tmp_path_factory):
    """A store with the demo detectors (production -> 1), 2-never (a threshold no box reaches), 2-same, and the season's
    tables reviewed on demo-detector:1."""
    root = tmp_path_factory.mktemp("gate")
    store = str(root / "store")
    models = ModelStore(store)
    publish_demo(models, with_torch=False)
    publish_threshold(models, f"{DEMO}:2", "2-never", 0.999)
    publish_threshold(models, f"{DEMO}:2", "2-same", 0.25)  # the config's own score threshold: the same boxes
    tables = write_season(root / "season", models, f"{DEMO}:1")
    return store, tables, root


def promote(capsys, *argv):
    code = main(["models", "promote", *argv])
    said = capsys.readouterr()
    return code, said.out, said.err


def alias_of(store: str, alias: str = "production") -> str:
    return ModelStore(store).resolve(f"{DEMO}@{alias}").version


def audit(capsys, store: str) -> list[dict]:
    assert main(["audit", "--store", store, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_matching_is_one_to_one_by_score_and_label():
    truth = [("animal", (0.1, 0.1, 0.2, 0.2)), ("person", (0.6, 0.6, 0.2, 0.2))]
    found = [("animal", 0.9, (0.11, 0.1, 0.2, 0.2)), ("animal", 0.8, (0.1, 0.11, 0.2, 0.2)),  # one box, twice
             ("animal", 0.7, (0.6, 0.6, 0.2, 0.2))]  # the person's box, the wrong label
    assert count(found, truth) == (1, 2, 1)
    assert count([], truth) == (0, 0, 2) and count(found, []) == (0, 3, 0)
    half = [("animal", (0.0, 0.0, 0.5, 0.5))]
    assert count([("animal", 0.5, (0.0, 0.0, 0.25, 0.5))], half) == (1, 0, 0)  # IoU exactly 0.5 counts
    assert count([("animal", 0.5, (0.0, 0.0, 0.25, 0.49))], half) == (0, 1, 1)


def test_the_rule_names_worse_better_and_no_worse():
    base = figures(80, 20, 20)  # precision 0.8, recall 0.8
    assert verdict(figures(80, 20, 20), base) == VERDICTS[1]
    assert verdict(figures(60, 40, 40), base) == VERDICTS[2]  # upper bounds ~0.69 < 0.8
    assert verdict(figures(78, 22, 22), base) == VERDICTS[1]  # within the intervals
    assert verdict(figures(97, 3, 20), base) == VERDICTS[0]  # precision's lower bound ~0.91 > 0.8
    assert verdict(figures(97, 3, 60), base) == VERDICTS[2]  # better precision, recall worse beyond: refused
    assert verdict(figures(0, 0, 100), base) == VERDICTS[2]  # finds nothing: recall 0 of 100


def test_the_held_out_images_are_the_training_splits_test_cameras(season):
    store, tables, _ = season
    h = held_out(Tables(open_location(tables)), f"{DEMO}:1", store, seed=0)
    assert h.items and {it.split for it in h.items} == {"test"} and all(it.whole for it in h.items)
    assert set(h.cameras) == {it.camera_id for it in h.items} and len(h.cameras) < 6
    other = held_out(Tables(open_location(tables)), f"{DEMO}:1", store, seed=5)
    assert h.reviewed_images == other.reviewed_images  # another seed, another draw of the same reviewed images


def test_a_worse_version_is_refused_and_the_alias_stays(season, capsys):
    store, tables, _ = season
    code, out, err = promote(capsys, f"{DEMO}:2-never", "--store", store, "--tables", tables)
    assert code == 2 and "promote refused" in err and "worse beyond the intervals" in err
    assert f"candidate {DEMO}:2-never" in out and f"current {DEMO}:1" in out and "verdict: worse beyond" in out
    assert "- (0/0)" in out  # the candidate keeps no box: no precision, recall 0 of n
    assert alias_of(store) == "1"
    entry = audit(capsys, store)[0]
    assert entry["action"] == f"models promote {DEMO}:2-never @production" and entry["outcome"] == "failed"


def test_force_promotes_and_is_audited_with_who_and_why(season, capsys):
    store, tables, _ = season
    code, out, err = promote(capsys, f"{DEMO}:2-never", "--alias", "forced", "--store", store, "--tables", tables,
                             "--force", "--reason", "testing the night camera")
    assert code == 0, err
    assert "gate: not run" in out and "points at no version yet" in out  # a first promote of an alias: no gate
    ModelStore(store).promote(f"{DEMO}:1", "forced")
    code, out, err = promote(capsys, f"{DEMO}:2-never", "--alias", "forced", "--store", store, "--tables", tables,
                             "--force", "--reason", "testing the night camera")
    assert code == 0, err
    assert "verdict: worse beyond the intervals" in out and "(forced past the gate)" in out
    assert alias_of(store, "forced") == "2-never"
    entry = audit(capsys, store)[0]
    assert entry["outcome"] == "done" and entry["answer"]["gate"]["forced"] is True
    assert entry["answer"]["gate"]["why"] == "testing the night camera" and entry["answer"]["gate"]["who"]
    assert entry["answer"]["comparison"]["figures"]["candidate"]["tp"] == 0


def test_a_better_or_equal_version_promotes_with_the_comparison(season, capsys):
    store, tables, _ = season
    ModelStore(store).promote(f"{DEMO}:1", "better")
    code, out, err = promote(capsys, f"{DEMO}:2", "--alias", "better", "--store", store, "--tables", tables)
    assert code == 0, err
    assert "verdict: better" in out  # precision 0.55 (0.38-0.71) against 0.34 on the held-out camera
    assert "precision (95 % Wilson, k/n)" in out and alias_of(store, "better") == "2"
    code, out, err = promote(capsys, f"{DEMO}:2-same", "--alias", "better", "--store", store, "--tables", tables,
                             "--json")
    assert code == 0, err  # a config-only version keeping the same boxes: equal
    data = json.loads(out)
    assert data["comparison"]["current"] == f"{DEMO}:2" and data["gate"]["verdict"] == VERDICTS[1]
    figures_ = data["comparison"]["figures"]
    assert figures_["current"] == figures_["candidate"] and data["gate"]["forced"] is False
    code, out, err = promote(capsys, f"{DEMO}:1", "--alias", "better", "--store", store, "--tables", tables)
    assert code == 2 and "worse beyond the intervals" in err  # back to the weaker 1: the gate cuts both ways
    assert main(["models", "rollback", DEMO, "--alias", "better", "--store", store]) == 0  # rollback is not gated
    assert alias_of(store, "better") == "2"


def test_too_little_evidence_or_no_tables_is_said_not_pretended(season, capsys):
    store, tables, _ = season
    ModelStore(store).promote(f"{DEMO}:1", "few")
    code, out, err = promote(capsys, f"{DEMO}:2-never", "--alias", "few", "--store", store, "--tables", tables,
                             "--min-boxes", "100000")
    assert code == 0, err
    assert "verdict: not enough evidence" in out and "fewer than 100000" in out
    ModelStore(store).promote(f"{DEMO}:1", "few")
    code, out, err = promote(capsys, f"{DEMO}:2-never", "--alias", "few", "--store", store)
    assert code == 0 and "gate: not run: no tables of people's reviews named" in out
    code, _, err = promote(capsys, f"{DEMO}:2", "--alias", "few", "--store", store, "--tables",
                           str(season[2] / "nothing-here"))
    assert code == 2 and err.startswith("error:")  # named tables that hold nothing are an error, not a pass
    assert alias_of(store, "few") == "2-never"


def test_a_classifier_is_judged_by_its_top1_on_the_held_out_crops(season, capsys):
    store, _, root = season
    models = ModelStore(store)
    shuffled = publish_shuffled(models, "demo-species:1", "1-shuffled")
    tables = write_season(root / "kinds", models, f"{DEMO}:2", per_camera=20, kinds=True)
    code, out, err = promote(capsys, shuffled, "--store", store, "--tables", tables)
    assert code == 2 and "worse beyond the intervals" in err
    assert "top-1 (95 % Wilson, k/n)" in out and "current demo-species:1" in out
    c = pg.compare(Tables(open_location(tables)), "demo-species:1", shuffled, models)
    now, cand = c["figures"]["current"]["top1"], c["figures"]["candidate"]["top1"]
    assert c["kind"] == "classifier" and now["n"] == cand["n"] >= 10 and cand["high"] < now["value"]
    assert models.resolve("demo-species@production").version == "1"
    same = pg.compare(Tables(open_location(tables)), "demo-species:1", "demo-species:1", models)
    assert same["verdict"] == VERDICTS[1] and same["figures"]["current"] == same["figures"]["candidate"]


def test_over_http_a_refusal_is_a_409_with_the_comparison(season, tmp_path_factory):
    from serve.ingress import IngressCore, token_digest
    from trapline.service import service_features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    store, tables, root = season
    ModelStore(store).promote(f"{DEMO}:1", "web")
    core = IngressCore({"models": [{"name": DEMO}], "store": store,
                        "jobs": {"roots": [str(root)], "working_dir_allowed": False}},
                       {DEMO: None}, token_digest("gate-admin"), features=service_features())

    async def nothing(*args):  # no replicas here: the store's alias is what is asserted
        return []

    core._preload_everywhere = nothing
    core._refresh_everywhere = nothing
    auth = {"Authorization": "Bearer gate-admin"}
    url = f"/v1/admin/models/{DEMO}/promote"
    with TestClient(core.__serve_build_asgi_app__()) as client:
        r = client.post(url, params={"version": "2-never", "alias": "web", "tables": tables}, headers=auth)
        assert r.status_code == 409, r.text
        body = r.json()["error"]
        assert body["type"] == "promote_refused" and body["comparison"]["verdict"] == "worse beyond the intervals"
        assert body["comparison"]["figures"]["current"]["recall"]["n"] > 0 and alias_of(store, "web") == "1"
        r = client.post(url, params={"version": "2-never", "alias": "web", "tables": tables, "force": True,
                                     "reason": "night"}, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["gate"]["forced"] is True and alias_of(store, "web") == "2-never"
        r = client.post(url, params={"version": "1", "alias": "web"}, headers=auth)  # no tables, no policy
        assert r.status_code == 200 and r.json()["gate"]["ran"] is False and "no tables" in r.json()["gate"]["reason"]
        r = client.post(url, params={"version": "2", "alias": "web", "tables": "/etc"}, headers=auth)
        assert r.status_code == 422 and alias_of(store, "web") == "1"
        empty = root / "no-tables-yet"
        empty.mkdir()
        r = client.post(url, params={"version": "2", "alias": "web", "tables": str(empty)}, headers=auth)
        assert r.status_code == 422 and r.json()["error"]["field"] == "tables", r.text
        assert "no images table" in r.json()["error"]["message"] and alias_of(store, "web") == "1"
    forced = [e for e in core.audit.read() if "forced past the gate" in e["action"]]
    assert forced and forced[0]["who"] == "admin" and forced[0]["reason"] == "night"


def test_the_flag_default_is_the_gates_own():
    assert GATE_MIN_BOXES == MIN_BOXES  # stated twice so that the command registry does not import the gate


def test_over_http_default_tables_with_nothing_yet_do_not_stop_a_promote(season):
    """The model's on_promote backfill tables are the gate's default: before the first backfill ran they hold
    nothing, and the promote (which starts that backfill) goes ahead with the gate not run, saying why."""
    from serve.ingress import IngressCore, token_digest
    from trapline.service import service_features

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    store, _, root = season
    ModelStore(store).promote(f"{DEMO}:1", "backfilled")
    archive = root / "archive-of-backfill"
    archive.mkdir()
    policy = {"reprocess": {"archive": str(archive), "out": str(root / "backfill-never-ran")}}
    core = IngressCore({"models": [{"name": DEMO, "on_promote": policy}], "store": store,
                        "jobs": {"roots": [str(root)], "working_dir_allowed": False}},
                       {DEMO: None}, token_digest("gate-admin"), features=service_features())

    async def nothing(*args):
        return []

    core._preload_everywhere = nothing
    core._refresh_everywhere = nothing
    with TestClient(core.__serve_build_asgi_app__()) as client:
        r = client.post(f"/v1/admin/models/{DEMO}/promote", params={"version": "2", "alias": "backfilled"},
                        headers={"Authorization": "Bearer gate-admin"})
    assert r.status_code == 200, r.text
    gate = r.json()["gate"]
    assert gate["ran"] is False and "backfill-never-ran" in gate["reason"], gate
    assert "nothing to judge by yet" in gate["reason"]
    assert alias_of(store, "backfilled") == "2"
