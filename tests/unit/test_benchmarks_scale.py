"""benchmarks/scale.py's process runner: a step's own peak memory, and a step over the cap killed and marked."""

from __future__ import annotations

import sys

from benchmarks.common import timed_rss
from benchmarks.scale import S3_BUCKET, add_new, committed_rows, s3_server, upload

HOLD = "import time; block = bytearray({mib} * 2**20); block[::4096] = b'x' * len(block[::4096]); time.sleep({s})"


def test_a_step_reports_its_own_peak_memory_and_output():
    row = timed_rss([sys.executable, "-c", HOLD.format(mib=200, s=1) + "; print('done')"])
    assert row["stdout"].strip() == "done" and "over_cap" not in row
    ballast = bytearray(600 * 2**20)  # the runner bigger than the step: the step's figure must not be the runner's
    ballast[::4096] = b"x" * len(ballast[::4096])
    small = timed_rss([sys.executable, "-c", HOLD.format(mib=0, s=1)])
    assert 200 <= row["peak_rss_mib"] < 400 and small["peak_rss_mib"] < 100


def test_a_step_over_the_cap_is_killed_and_marked_not_bounded():
    step_s = 60
    row = timed_rss([sys.executable, "-c", HOLD.format(mib=300, s=step_s)], cap_mib=150)
    assert row["over_cap"] is True and row["peak_rss_mib"] == "> 150"
    assert row["wall_s"] < step_s  # killed, not waited for: it did not live out its own sleep


def test_one_percent_new_files_go_to_a_camera_folder_of_their_own(tmp_path):
    archive = tmp_path / "archive-300"
    (archive / "cam000").mkdir(parents=True)
    (tmp_path / "archive-300-source-0.jpg").write_bytes(b"\xff\xd8jpeg")
    assert add_new(archive, 300) == 3
    assert sorted(p.name for p in (archive / "cam-new").iterdir()) == ["NEW_0000000.jpg", "NEW_0000001.jpg",
                                                                       "NEW_0000002.jpg"]
    assert add_new(archive, 300) == 3 and len(list((archive / "cam-new").iterdir())) == 3  # again: replaced


def test_the_scale_plot_takes_the_later_file_per_step_and_size_and_marks_killed_steps(tmp_path):
    import json

    from PIL import Image

    from benchmarks.scale_plot import _rss, load_rows, plot

    def rows(*r):
        return json.dumps({"rows": [dict(zip(("images", "step", "wall_s", "peak_rss_mib"), x, strict=True))
                                    for x in r]})

    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(rows((10, "report", 1.0, 200.0), (100, "report", 9.0, "> 6144"), (10, "other", 1.0, 1.0)))
    new.write_text(rows((100, "report", 2.0, 300.0)))
    found = load_rows([old, new])
    assert set(found) == {"report"} and found["report"][100]["wall_s"] == 2.0
    assert _rss(load_rows([old])["report"][100]) == (6144.0, True)
    out = plot(load_rows([old]), tmp_path / "plot.png")
    assert Image.open(out).size[0] > 500


def test_the_s3_mode_serves_the_archive_from_a_moto_server_of_its_own(tmp_path):
    import os

    import s3fs

    archive = tmp_path / "archive-3"
    for name in ("cam000/IMG_0.jpg", "cam000/IMG_1.jpg", "cam-new/NEW_0.jpg"):
        (archive / name).parent.mkdir(parents=True, exist_ok=True)
        (archive / name).write_bytes(b"\xff\xd8" + name.encode())
    before = os.environ.get("TRAPLINE_S3_ENDPOINT_URL")
    with s3_server() as server:
        assert os.environ["TRAPLINE_S3_ENDPOINT_URL"] == server.endpoint  # what trapline and its Ray will use
        assert upload(archive, "archive-3", server.endpoint, only="cam000") == 2
        assert upload(archive, "archive-3", server.endpoint) == 3  # the whole archive: the two again, and one
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": server.endpoint})
        assert sorted(fs.find(f"{S3_BUCKET}/archive-3")) == [f"{S3_BUCKET}/archive-3/{n}" for n in (
            "cam-new/NEW_0.jpg", "cam000/IMG_0.jpg", "cam000/IMG_1.jpg")]
        assert fs.cat_file(f"{S3_BUCKET}/archive-3/cam000/IMG_1.jpg") == b"\xff\xd8cam000/IMG_1.jpg"
        spent = server.cpu_since_last()  # the server's own CPU, step by step: a reading right after counts from it
        assert spent > 0 and server.cpu_since_last() < spent
    assert os.environ.get("TRAPLINE_S3_ENDPOINT_URL") == before  # the environment as it was


def test_committed_rows_reads_each_part_once_and_skips_hidden_temp_files(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    part_dir = tmp_path / "images" / "model_name=m" / "model_version=1"
    part_dir.mkdir(parents=True)
    pq.write_table(pa.table({"uri": ["a", "b"]}), part_dir / "part-1.parquet")
    pq.write_table(pa.table({"uri": ["c"]}), part_dir / ".part-2.parquet.tmp")  # not committed yet
    seen: dict = {}
    assert committed_rows(tmp_path, seen) == 2
    pq.write_table(pa.table({"uri": ["c", "d", "e"]}), part_dir / "part-2.parquet")
    assert committed_rows(tmp_path, seen) == 5
    assert len(seen) == 2
