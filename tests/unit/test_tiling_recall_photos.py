"""The real-photo recall benchmark's labelled set (issue 70): hand-boxed photos shrunk into frames, through a COCO
file and back, as a user's labelled folder goes."""

from __future__ import annotations

import json

import cv2
import numpy as np

from benchmarks.tiling_recall_photos import FRAME, SIDES, composites, read_coco, write_coco


def test_composites_round_trip_through_a_coco_file_with_their_boxes(tmp_path):
    frames = composites(2, seed=3)
    assert [f.shape for f, _ in frames] == [(FRAME[1], FRAME[0], 3)] * 2
    for _, truth in frames:
        assert len(truth) == 12  # one hand-boxed animal per photo, twelve photos a frame
        sides = np.maximum(truth[:, 2] - truth[:, 0], truth[:, 3] - truth[:, 1])
        assert (sides >= SIDES[0] - 1).all() and (sides <= SIDES[1] + 1).all()
        assert (truth[:, :2] >= 0).all() and (truth[:, 2] <= FRAME[0]).all() and (truth[:, 3] <= FRAME[1]).all()
    labels = write_coco(frames, tmp_path / "set")
    back = read_coco(labels, labels.parent)
    assert len(back) == 2
    for (frame, truth), (read, read_truth) in zip(frames, back, strict=True):
        np.testing.assert_allclose(read_truth, truth, atol=1e-6)
        assert np.abs(read.astype(int) - frame.astype(int)).mean() < 2  # JPEG quality 95


def test_a_labelled_folder_keeps_empty_images_and_skips_empty_boxes(tmp_path):
    rgb = np.full((40, 60, 3), 90, np.uint8)
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(tmp_path / name), rgb)
    (tmp_path / "labels.json").write_text(json.dumps({
        "images": [{"id": "a", "file_name": "a.jpg"}, {"id": "b", "file_name": "b.jpg"},
                   {"id": "gone", "file_name": "missing.jpg"}],
        "categories": [{"id": 0, "name": "empty"}, {"id": 5, "name": "squirrel"}],
        "annotations": [{"id": 1, "image_id": "a", "category_id": 5, "bbox": [10, 5, 20, 10]},
                        {"id": 2, "image_id": "b", "category_id": 0}]}))
    [(a, ta), (b, tb)] = read_coco(tmp_path / "labels.json", tmp_path)  # an unreadable image is left out
    assert a.shape == (40, 60, 3) and ta.tolist() == [[10, 5, 30, 15, 0]]
    assert tb.shape == (0, 5)  # an empty image: whatever is found there is a false box
