"""`trapline export --format yolo | coco-dataset | crops` (batch/export/training_*.py): a training set of what people
verified, on the sheet tables (tests/fixtures/occurrences.py) reviewed with the review verbs as in test_accuracy.py:
rejected boxes out, added boxes in, empty images negatives, unreviewed images left out and counted, whole cameras per
split drawn by the seed, the COCO files read by pycocotools, the YOLO layout as Ultralytics' dataset check reads it,
and nothing that looks like a set left behind by a refused or failed export."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml

from batch.export import training_formats
from batch.export.training_set import Box, Item, split
from batch.postprocessing import detection_review as review
from batch.postprocessing.occurrences import SetPlace
from model_store.tables.deployments import DeploymentsTable
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from tests.fixtures.occurrences import write_sheet_tables
from tests.unit.test_accuracy import decide
from tests.unit.test_review_verbs import det, img
from trapline.cli import main

IMG_SUFFIXES = {"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"}  # Ultralytics'


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    root = tmp_path_factory.mktemp("training")
    place = SetPlace(Tables(open_location(str(write_sheet_tables(root / "sheet")))))
    decide(place, root / "sheet" / "archive")
    return place, root


def export(place: SetPlace, out: Path, fmt: str, *flags: str) -> int:
    return main(["export", "--tables", place.tables.url, "--format", fmt, "--out", str(out), *flags])


def yolo_labels(out: Path) -> dict[str, tuple[str, list[list[str]]]]:
    """picture name -> (its split, its label lines split in fields)."""
    found = {}
    for txt in (out / "labels").glob("*/*.txt"):
        found[txt.stem] = (txt.parent.name, [line.split() for line in txt.read_text().splitlines()])
    return found


def test_yolo_holds_the_verified_boxes_and_negatives_only(reviewed, tmp_path, capsys):
    place, _ = reviewed
    out = tmp_path / "yolo"
    assert export(place, out, "yolo") == 0
    said = capsys.readouterr().out
    assert "left out 8 image(s): nobody reviewed" in said and "left out 3 image(s): partly reviewed" in said
    data = yaml.safe_load((out / "data.yaml").read_text())
    names = data["names"]
    assert names == {0: "deer", 1: "moth", 2: "roe deer"} and data["nc"] == 3
    labels = yolo_labels(out)
    # confirmed (000, 004 x2, burst 0), relabelled (burst 1: roe deer), rejected then confirmed (burst 2), an added
    # box after an empty mark (late1); marked empty: 006 and 008 (its box added before the mark voided), late0
    assert sorted(labels) == ["burst__0", "burst__1", "burst__2", "sheet__000", "sheet__004", "sheet__006",
                              "sheet__008", "sheet__late0", "sheet__late1"]
    assert [names[int(r[0])] for r in labels["burst__1"][1]] == ["roe deer"]
    assert len(labels["sheet__004"][1]) == 2 and labels["sheet__006"][1] == labels["sheet__late0"][1] == []
    cls, cx, cy, w, h = labels["sheet__late1"][1][0]  # the added box (0.5, 0.5, 0.1, 0.1): centre 0.55
    assert names[int(cls)] == "moth" and [float(v) for v in (cx, cy, w, h)] == [0.55, 0.55, 0.1, 0.1]
    # left out: nobody reviewed (sheet 002), every box of burst 3 (its rejection revoked), partly reviewed (001: an
    # added box beside a box nobody judged; 005; 007: only its speck rejected)
    assert not {"sheet__002", "burst__3", "sheet__001", "sheet__005", "sheet__007"} & set(labels)
    m = json.loads((out / "manifest.json").read_text())
    assert m["left_out"] == {"partly_reviewed": 3, "unreviewed": 8} and m["model"] == "sheetcam:1"
    assert sum(s["images"] for s in m["splits"].values()) == 9 and m["labels"] == ["deer", "moth", "roe deer"]
    assert sum(s["negatives"] for s in m["splits"].values()) == 3
    assert m["decisions"]["count"] == len(m["decisions"]["ids"]) == 11 and len(m["decisions"]["sha256"]) == 64
    per_split = {s: Counter(names[int(r[0])] for stem, (sp, rows) in labels.items() if sp == s for r in rows)
                 for s in ("train", "val", "test")}
    assert {s: dict(c) for s, c in per_split.items()} == {s: m["splits"][s]["boxes"] for s in per_split}


def test_the_yolo_layout_is_what_ultralytics_dataset_check_reads(reviewed, tmp_path):
    """ultralytics/data/utils.py: `check_det_dataset` wants train and val keys, names (nc equal to their count) and
    an absolute `path` (else it is read under its datasets dir); `img2label_paths` finds each label file by the last
    /images/ of the picture's path made /labels/ and its suffix .txt; `verify_image_label` wants 5 columns, class
    below nc, coordinates normalised (0..1), and takes an empty file as a background image."""
    place, _ = reviewed
    out = tmp_path / "y"
    assert export(place, out, "yolo", "--pictures", "symlink") == 0
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert {"train", "val", "names"} <= set(data) and data["nc"] == len(data["names"])
    assert Path(data["path"]).is_absolute() and Path(data["path"]) == out
    pictures = [p for s in ("train", "val", "test") for p in (out / data[s]).iterdir()]
    assert len(pictures) == 9 and all(p.is_symlink() and p.resolve().is_file() for p in pictures)
    for p in pictures:
        assert p.suffix[1:].lower() in IMG_SUFFIXES
        head, _, tail = str(p).rpartition("/images/")
        label = Path(f"{head}/labels/{tail}").with_suffix(".txt")
        for row in label.read_text().splitlines():
            cls, *xywh = row.split()
            assert len(xywh) == 4 and 0 <= int(cls) < data["nc"] and all(0 <= float(v) <= 1 for v in xywh)


def test_the_coco_files_are_read_by_pycocotools_with_the_manifests_counts(reviewed, tmp_path):
    coco_api = pytest.importorskip("pycocotools.coco")
    place, _ = reviewed
    out = tmp_path / "coco"
    assert export(place, out, "coco-dataset", "--pictures", "hardlink") == 0
    m = json.loads((out / "manifest.json").read_text())
    seen = 0
    for s in ("train", "val", "test"):
        c = coco_api.COCO(str(out / "annotations" / f"{s}.json"))
        assert len(c.getImgIds()) == m["splits"][s]["images"]
        by_label = Counter(c.cats[a["category_id"]]["name"] for a in c.anns.values())
        assert dict(by_label) == m["splits"][s]["boxes"]
        negatives = [i for i in c.getImgIds() if not c.getAnnIds(imgIds=[i])]
        assert len(negatives) == m["splits"][s]["negatives"]
        for i in c.getImgIds():
            assert (out / "images" / s / c.imgs[i]["file_name"]).is_file()
        for a in c.anns.values():
            x, y, w, h = a["bbox"]
            assert a["iscrowd"] == 0 and a["area"] == pytest.approx(w * h, abs=0.01)
        late1 = [i for i in c.getImgIds() if c.imgs[i]["file_name"] == "sheet__late1.jpg"]
        if late1:  # the added box (0.5, 0.5, 0.1, 0.1) of a 640x480 picture, in pixels
            (ann,) = c.loadAnns(c.getAnnIds(imgIds=late1))
            assert ann["bbox"] == [320.0, 240.0, 64.0, 48.0] and c.cats[ann["category_id"]]["name"] == "moth"
            seen += 1
    assert seen == 1 and [c["name"] for c in coco_api.COCO(str(out / "annotations" / "train.json")).dataset[
        "categories"]] == ["deer", "moth", "roe deer"]


def test_crops_are_an_image_folder_of_verified_boxes_with_their_margin(reviewed, tmp_path):
    import cv2

    place, _ = reviewed
    out = tmp_path / "crops"
    assert export(place, out, "crops", "--margin", "0.5") == 0
    m = json.loads((out / "manifest.json").read_text())
    found = Counter()
    for f in (out / "crops").glob("*/*/*.jpg"):
        found[(f.parent.parent.name, f.parent.name)] += 1
    dirs = m["label_dirs"]
    assert dirs["roe deer"] == "roe_deer" and m["margin"] == 0.5
    expected = {(s, dirs[label]): n for s, c in m["splits"].items() for label, n in c["boxes"].items()}
    assert dict(found) == expected
    # crops take the verified boxes of partly reviewed images (001's added box, 005's relabel) but no negative
    assert sum(found.values()) == 9 and ("noctua" in {d for _, d in found})
    assert sum(c["negatives"] for c in m["splits"].values()) == 0
    split_of_sheet = next(s for s, c in m["splits"].items() if "sheet" in c["cameras"])
    added = cv2.imread(str(out / "crops" / split_of_sheet / "moth" / "sheet__late1_added0.jpg"))
    assert added.shape[:2] == (96, 128)  # a 64x48 box with half its size more on each side


def test_no_camera_is_in_two_splits_and_the_seed_decides(reviewed, tmp_path):
    place, _ = reviewed
    cams = {}
    for seed in ("1", "2", "1"):
        out = tmp_path / f"seed{len(cams)}"
        assert export(place, out, "yolo", "--seed", seed, "--train-fraction", "0.5", "--val-fraction", "0.5",
                      "--test-fraction", "0") == 0
        m = json.loads((out / "manifest.json").read_text())
        placed = [c for s in m["splits"].values() for c in s["cameras"]]
        assert sorted(placed) == ["burst", "sheet"]  # each camera once
        cams[len(cams)] = {s: v["cameras"] for s, v in m["splits"].items()}
    assert cams[0] == cams[2]


def test_cameras_that_stood_at_one_deployment_site_share_a_split(tmp_path):
    place = SetPlace(Tables(open_location(str(write_sheet_tables(tmp_path / "t")))))
    archive = tmp_path / "t" / "archive"
    for rel in ("burst/0.jpg", "sheet/000.jpg"):
        review.confirm(place, det(archive, rel), "ann")
    halves = ["--train-fraction", "0.5", "--val-fraction", "0.5", "--test-fraction", "0"]
    assert export(place, tmp_path / "apart", "yolo", *halves) == 0
    apart = json.loads((tmp_path / "apart" / "manifest.json").read_text())["splits"]
    assert (apart["train"]["cameras"], apart["val"]["cameras"]) in ((["burst"], ["sheet"]), (["sheet"], ["burst"]))
    DeploymentsTable(place.tables.storage).add([
        {"deploymentID": f"{cam}-2026", "cameraID": cam, "latitude": 51.05 + i * 1e-3, "longitude": 4.35,
         "deploymentStart": "2026-05-01T00:00:00Z", "deploymentEnd": "2026-07-01T00:00:00Z", "locationID": "ridge"}
        for i, cam in enumerate(("sheet", "burst"))], "ann")
    assert export(place, tmp_path / "joined", "yolo", *halves) == 0
    joined = json.loads((tmp_path / "joined" / "manifest.json").read_text())["splits"]
    assert sorted(c for s in joined.values() for c in s["cameras"]) == ["burst", "sheet"]
    assert {len(s["cameras"]) for s in joined.values()} == {0, 2}  # one site: one split


def test_a_tracked_sets_occurrences_each_lie_in_one_split(tmp_path):
    import pyarrow.dataset as ds

    from model_store.tables.reader import Tables
    from model_store.tables.schema import DETECTIONS
    from tests.fixtures.postprocess import postprocess

    tables = write_sheet_tables(tmp_path / "t")
    tracked = postprocess(tables, "track", {"appearance": "none"})
    place = SetPlace(Tables(open_location(str(tables))), filters_hash=tracked.filters_hash)
    decide(place, tmp_path / "t" / "archive")
    out = tmp_path / "set"
    assert export(place, out, "crops", "--filters-hash", tracked.filters_hash, "--seed", "4") == 0
    m = json.loads((out / "manifest.json").read_text())
    assert m["filters_hash"] == tracked.filters_hash
    rows = (
        Tables(open_location(str(tables)))
        .read(
            DETECTIONS,
            "sheetcam",
            "1",
            ["uri", "detection_index", "occurrence_id"],
            filter=ds.field("filters_hash") == tracked.filters_hash,
        )
        .to_pylist()
    )
    occurrence = {(Path(r["uri"]).parent.name + "__" + Path(r["uri"]).stem, r["detection_index"]): r["occurrence_id"]
                  for r in rows}
    split_of: dict[str, set[str]] = {}
    for f in (out / "crops").glob("*/*/*.jpg"):
        stem, _, tag = f.stem.rpartition("_")
        if tag.startswith("added"):  # a box people added has no occurrence
            continue
        split_of.setdefault(occurrence[(stem, int(tag.removeprefix("d")))], set()).add(f.parent.parent.name)
    assert len(split_of) >= 3 and all(len(s) == 1 for s in split_of.values())
    assert sum(s["occurrences"] for s in m["splits"].values()) == len(split_of)


def items(cameras: dict[str, int], occurrences: dict[str, list[str]] | None = None) -> list[Item]:
    """`n` reviewed images per camera; `occurrences`: id -> the cameras it was seen in."""
    out = []
    for cam, n in cameras.items():
        for i in range(n):
            occ = {o for o, where in (occurrences or {}).items() if cam in where and i == 0}
            out.append(Item(f"/a/{cam}/{i}.jpg", "c", f"{cam}/{i}.jpg", cam, 10, 10, None,
                            [Box("moth", (0.1, 0.1, 0.2, 0.2), "confirmed")], False, True, occ))
    return out


def test_the_split_keeps_whole_cameras_and_occurrences_and_is_drawn_by_the_seed():
    cameras = {f"cam{i:02d}": 5 + i % 7 for i in range(30)}
    fractions = {"train": 0.7, "val": 0.15, "test": 0.15}
    draws = []
    for seed in (0, 0, 1):
        found = items(cameras, {"occ-a": ["cam03", "cam17"]})
        split(found, fractions, seed)
        per_camera = {}
        for it in found:
            assert per_camera.setdefault(it.camera_id, it.split) == it.split  # no camera in two splits
        assert per_camera["cam03"] == per_camera["cam17"]  # one occurrence seen by both: one split
        share = Counter(it.split for it in found)
        assert all(abs(share[s] / len(found) - f) < 0.06 for s, f in fractions.items()), share
        draws.append(per_camera)
    assert draws[0] == draws[1] and draws[0] != draws[2]
    for seed in range(5):  # a deployment site seen by two cameras: one split
        found = items(cameras)
        split(found, fractions, seed, {"cam05": {"ridge"}, "cam22": {"ridge", "pond"}, "cam09": {"pond"}})
        assert len({it.split for it in found if it.camera_id in ("cam05", "cam22", "cam09")}) == 1


@pytest.mark.parametrize(("flags", "message"), [
    (["--train-fraction", "0.8"], "must add up to 1"),
    (["--val-fraction", "1.5"], "--val-fraction"),
    (["--train-fraction", "0", "--val-fraction", "0.5", "--test-fraction", "0.5"], "--train-fraction must be above 0"),
    (["--pictures", "move"], "--pictures"),
])
def test_bad_options_exit_2_and_write_nothing(reviewed, tmp_path, capsys, flags, message):
    place, _ = reviewed
    try:
        code = export(place, tmp_path / "out", "yolo", *flags)
    except SystemExit as exc:  # argparse's own refusal of a choice
        code = exc.code
    assert code == 2 and message in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_an_out_that_holds_files_or_is_remote_is_refused(reviewed, tmp_path, capsys):
    place, _ = reviewed
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert export(place, tmp_path / "full", "crops") == 2
    assert "exists and is not an empty directory" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]
    assert main(["export", "--tables", place.tables.url, "--format", "yolo", "--out", "s3://bucket/set"]) == 2
    assert "writes a local directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert export(place, tmp_path / "empty", "yolo") == 0 and (tmp_path / "empty" / "manifest.json").is_file()


def test_tables_nobody_reviewed_give_a_clear_error_and_no_directory(tmp_path, capsys):
    place = SetPlace(Tables(open_location(str(write_sheet_tables(tmp_path / "fresh")))))
    assert export(place, tmp_path / "set", "coco-dataset") == 2
    err = capsys.readouterr().err
    assert "no reviewed image" in err and "left out 20 image(s): nobody reviewed" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh"]
    review.mark_empty(place, img(tmp_path / "fresh" / "archive", "sheet/000.jpg"), "ann")
    assert export(place, tmp_path / "set", "coco-dataset") == 0  # one negative is a set
    assert json.loads((tmp_path / "set" / "manifest.json").read_text())["left_out"] == {"unreviewed": 19}


def test_a_failure_part_way_leaves_nothing_that_looks_like_a_set(reviewed, tmp_path, monkeypatch):
    place, _ = reviewed
    calls = []

    def failing(it, dest, how):
        calls.append(it.uri)
        if len(calls) == 3:
            raise RuntimeError("disk gone")
        Path(dest).write_bytes(b"x")

    monkeypatch.setattr(training_formats, "place_picture", failing)
    with pytest.raises(RuntimeError, match="disk gone"):
        export(place, tmp_path / "set", "yolo")
    assert len(calls) == 3 and list(tmp_path.iterdir()) == []


def test_a_picture_gone_from_the_archive_is_left_out_and_named(tmp_path, capsys):
    place = SetPlace(Tables(open_location(str(write_sheet_tables(tmp_path / "t")))))
    archive = tmp_path / "t" / "archive"
    for rel in ("burst/0.jpg", "burst/1.jpg"):
        review.confirm(place, det(archive, rel), "ann")
    (archive / "burst" / "1.jpg").unlink()
    assert export(place, tmp_path / "set", "yolo") == 0
    assert f"left out {archive / 'burst' / '1.jpg'}" in capsys.readouterr().out
    m = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert sum(s["images"] for s in m["splits"].values()) == 1
