"""Storage faults: the S3-compatible server drops connections or answers 503 mid-job; the store is unreachable.

A small fault-injecting HTTP proxy on loopback sits in front of the moto server; the job's
driver and its Ray tasks reach S3 only through it (TRAPLINE_S3_ENDPOINT_URL, which the job
forwards to its tasks). Rules decide per request whether it passes, gets a 503 SlowDown, or
has its connection dropped without an answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pyarrow.parquet as pq
import pytest

from batch.reprocess.job import run_reprocess
from batch.reprocess.options import ReprocessOptions
from model_store import ModelStore
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from tests.conftest import free_port
from tests.fixtures.archive import PATH_PATTERN, brightness_config, brightness_model, build_archive, write_s3
from tests.fixtures.proxy import FaultProxy, Rule
from tests.integration.test_faults_batch import assert_exactly_once

pytestmark = [pytest.mark.ray, pytest.mark.s3]

def fail_first(n: int, match: Callable[[str, str], bool], action: str) -> Rule:
    """A transient fault: the first `n` matching requests get `action`, then everything passes."""
    left = [n]

    def rule(method: str, path: str) -> str:
        if left[0] > 0 and match(method, path):
            left[0] -= 1
            return action
        return "pass"

    return rule


def is_parquet_put(method: str, path: str) -> bool:
    return method == "PUT" and ".parquet" in path


def is_image_get(method: str, path: str) -> bool:
    return method == "GET" and "/archive/" in path and re.search(r"\.(jpg|png)(\?|$)", path, re.I) is not None


@pytest.fixture
def faulty_s3(s3_server, s3_bucket, tmp_path, monkeypatch) -> Iterator[dict]:
    """Model store and archive on moto; the job's S3 traffic goes through a FaultProxy."""
    store = ModelStore(f"{s3_bucket}/models", cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    spec = build_archive()
    archive = write_s3(spec, f"{s3_bucket}/archive", s3_server)
    with FaultProxy(s3_server) as proxy:
        monkeypatch.setenv("TRAPLINE_S3_ENDPOINT_URL", proxy.url)
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        yield {"proxy": proxy, "spec": spec, "n": len(spec.images), "store": store,
               "options": {"archive": archive, "out": f"{s3_bucket}/tables", "model": "trapcam:1",
                           "store": store.root, "path_pattern": PATH_PATTERN, "num_cpus": 0.5, "read_cpus": 0.25,
                           "concurrency": "1", "rows_per_file": 6, "batch_size": 4, "progress_interval_s": 1}}


def parquet_files_are_whole(out: str) -> int:
    """Every Parquet object under `out` opens and reads in full; returns how many there are."""
    storage = Tables(open_location(out)).storage
    paths = [p for p in storage.fs.find(storage.path()) if p.endswith(".parquet")]
    for p in paths:
        with storage.fs.open(p, "rb") as f:
            pq.read_table(f)
    return len(paths)


def test_transient_s3_errors_are_retried_and_the_job_succeeds(ray_cluster, faulty_s3):
    proxy, n = faulty_s3["proxy"], faulty_s3["n"]
    parquet = fail_first(3, is_parquet_put, "error")
    images = fail_first(3, is_image_get, "drop")
    proxy.rule = lambda method, path: parquet(method, path) if method == "PUT" else images(method, path)
    report = run_reprocess(ReprocessOptions(**faulty_s3["options"]))
    print(f"\ntransient S3 faults injected: {dict(proxy.counts)}; job {report.status}, {report.processed} processed")
    assert proxy.counts["error"] == 3 and proxy.counts["drop"] == 3  # the faults really happened
    assert report.status == "succeeded", report.error
    spec = faulty_s3["spec"]
    assert report.processed == n and report.failed == len(spec.failed)  # no image lost to a read_error
    assert_exactly_once(faulty_s3["options"]["out"], n)


def test_persistent_s3_errors_end_the_job_clearly_and_a_rerun_completes_it(ray_cluster, faulty_s3, monkeypatch):
    proxy, n, out = faulty_s3["proxy"], faulty_s3["n"], faulty_s3["options"]["out"]
    # Fewer botocore attempts per s3fs try (3, not the default 5), as RELIABILITY.md suggests to fail faster: the
    # run still goes through both layers of retries (3 x 5 tries per write, several seconds of backoff, so a
    # write that outlived its run would still be seen below), without ~50 s of them. Forwarded to the tasks.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    written, late, ended = [0], [0], [0.0]

    def rule(method: str, path: str) -> str:  # after two part files, every part write fails; manifests land
        if not is_parquet_put(method, path):
            return "pass"
        written[0] += 1
        if ended[0] and time.monotonic() > ended[0] + 1.0:
            late[0] += 1  # a write of the failed run still trying after it ended
        return "pass" if written[0] <= 2 else "error"

    proxy.rule = rule
    report = run_reprocess(ReprocessOptions(**faulty_s3["options"]))
    ended[0] = time.monotonic()
    print(f"\npersistent S3 fault: {dict(proxy.counts)}; job {report.status}: {report.error}")
    assert report.status == "failed"
    # One clear line: the stage and the storage error after its retries, not a remote traceback.
    assert report.error.startswith("PartWriter(write_results): ") and "SlowDown" in report.error, report.error
    assert "\n" not in report.error and "Traceback" not in report.error and len(report.error) < 1000
    manifests = Tables(open_location(out)).manifests()
    assert [m.status for m in manifests] == ["failed"] and manifests[0].error == report.error
    parquet_files_are_whole(out)
    done = Tables(open_location(out)).read("images", "trapcam", "1").num_rows
    assert done < n  # what is committed is whole; a detections file without its images file is a stray

    # The failed run's writes stopped with it (their tasks were cancelled, uploads and retries included):
    # nothing of it can land later, next to what a rerun writes.
    time.sleep(3.0)
    assert late[0] == 0, f"{late[0]} part writes of the failed run were still retrying after it ended"
    proxy.rule = lambda method, path: "pass"  # the store is back
    rerun = run_reprocess(ReprocessOptions(**faulty_s3["options"]))
    assert rerun.status == "succeeded" and rerun.already_done == done and rerun.processed == n - done
    assert_exactly_once(out, n)
    parquet_files_are_whole(out)


def test_model_store_on_unreachable_s3_fails_cleanly(s3_server, s3_bucket, monkeypatch, capsys):
    """`trapline models ...` against an S3 endpoint nobody listens on: one `error:` line, exit 2, no traceback."""
    from trapline.cli import main

    monkeypatch.setenv("TRAPLINE_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    for argv in (["models", "list"], ["models", "show", "trapcam:1"], ["models", "verify", "trapcam:1"]):
        code = main([*argv, "--store", f"{s3_bucket}/models"])
        err = capsys.readouterr().err
        assert code == 2, (argv, err)
        assert err.startswith("error: ") and "Traceback" not in err and len(err.splitlines()) == 1, err
        assert "s3://" in err or "endpoint" in err.lower(), err


def test_reprocess_with_unreachable_store_fails_cleanly(s3_bucket, monkeypatch, tmp_path, capsys):
    from trapline.cli import main

    monkeypatch.setenv("TRAPLINE_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    (tmp_path / "archive").mkdir()
    code = main(["reprocess", "--archive", str(tmp_path / "archive"), "--out", str(tmp_path / "out"),
                 "--model", "trapcam:1", "--store", f"{s3_bucket}/models"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
