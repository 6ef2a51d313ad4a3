"""Jobs over HTTP on a real Ray job manager: submit, progress, stop, the bad-input list, jobs submitted another way,
the filters registry and the single-image preview, and the backfill on promote.

One Ray for the module with its dashboard (the job server) and token auth on, started in a launcher process as
tests/fixtures/multinode.py starts one (the test process is the driver of the session's own Ray); the trapline app
is deployed to it with `serve deploy`, as on a real cluster, and driven with httpx and the `trapline jobs` CLI.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
import yaml

from batch.jobs.backfill import BackfillWatcher, backfill_id
from batch.jobs.control import JobControl
from model_store import ModelStore
from model_store.tables.locations import open_location
from model_store.tables.manifest import read_manifests
from model_store.tables.reader import Tables
from model_store.tables.schema import DETECTIONS, IMAGES
from model_store.tables.table_set import resolve_table_set
from serve.jobs_config import JobsConfig
from serve.polling import wait_until
from tests.fixtures.archive import PATH_PATTERN, brightness_config, build_archive, encode, picture, write_local
from tests.fixtures.crops_sets import publish_trainable, write_crops_set
from tests.fixtures.multinode import REPO, MultiNodeCluster, slow_brightness_model

pytestmark = pytest.mark.ray

ADMIN, READ = "jobs-admin-token", "jobs-read-token"
EXTRA_IMAGES = 40  # day frames added to the fixture archive so that a job runs long enough to watch and stop
# Small parts and a small share of the CPUs: progress lands part by part, and the job fits beside the replica.
JOB = {"path_pattern": PATH_PATTERN, "rows_per_file": 2, "batch_size": 2, "read_batch_size": 2, "num_cpus": 0.25,
       "progress_interval_s": 0.5}


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.3):
    return wait_until(predicate, timeout_s, what, interval_s)  # serve.local's poll, at this module's pace


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("jobs")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    weights = slow_brightness_model(d / "slow.onnx", convs=4, channels=16)
    store.publish(weights, "trapcam", "1", brightness_config())
    store.publish(weights, "trapcam", "2", brightness_config(score_threshold=0.5))
    store.promote("trapcam:1")
    spec = build_archive()
    for i in range(EXTRA_IMAGES):
        spec.files[f"cam04/PICT{i + 1:04d}.JPG"] = encode(picture(160, 120, False, 400 + i))
        spec.mtimes[f"cam04/PICT{i + 1:04d}.JPG"] = spec.mtimes["cam03/PICT0001.JPG"]
    archive = write_local(spec, d / "archive")
    return {"dir": d, "store": store, "archive": str(archive), "n": len(spec.images)}


@pytest.fixture(scope="module")
def cluster(env) -> Iterator[MultiNodeCluster]:
    # The tokens are read where the app is built (the cluster's processes): set before its launcher starts.
    saved = {k: os.environ.get(k) for k in ("TRAPLINE_ADMIN_TOKEN", "TRAPLINE_JOBS_READ_TOKEN")}
    os.environ.update(TRAPLINE_ADMIN_TOKEN=ADMIN, TRAPLINE_JOBS_READ_TOKEN=READ)
    try:
        c = MultiNodeCluster()
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    try:
        c.start_head(num_cpus=2)
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def url(cluster, env, tmp_path_factory) -> str:
    from serve.local import free_port

    port = free_port()
    d = env["dir"]
    config = {
        "http_options": {"host": "127.0.0.1", "port": port},
        "applications": [{
            "name": "trapline", "route_prefix": "/", "import_path": "trapline.service:app_builder",
            "args": {
                "store": env["store"].root, "api_token_env": "TRAPLINE_JOBS_READ_TOKEN",
                # Two ingress replicas: both watch the aliases, and a promote must still start one backfill.
                "http": {"one_hop": False, "ingress_num_replicas": 2, "ingress_num_cpus": 0.1},
                "models": [{"name": "trapcam", "num_cpus": 0.5, "max_batch_size": 2, "alias_poll_interval_s": 1,
                            "on_promote": {"reprocess": {"archive": env["archive"], "out": str(d / "backfill"),
                                                         "dry_run": True, **JOB}}}],
                "jobs": {"roots": [str(d)], "working_dir_allowed": False, "promote_poll_s": 0.5},
            },
        }],
    }
    path = tmp_path_factory.mktemp("jobs-serve") / "serve.yaml"
    path.write_text(yaml.safe_dump(config))
    cluster.cli("serve", "deploy", str(path), "--address", cluster.dashboard_url)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(base + "/readyz", timeout=5, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ready, 180, "the app to be ready", interval_s=0.5)
    return base


def call(method: str, url: str, token: str | None = ADMIN, **kwargs) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, url, headers=headers, timeout=60, trust_env=False, **kwargs)


def ray_jobs(cluster: MultiNodeCluster) -> set[str]:
    """Every job the cluster's job manager holds, by Ray's own API."""
    return {j["submission_id"] for j in cluster.api("GET", "/api/jobs/")}


def reprocess(env, out: str, **extra) -> dict:
    return {"archive": env["archive"], "out": out, "model": "trapcam@production", **JOB, **extra}


def wait_ended(url: str, job_id: str, timeout_s: float = 240) -> dict:
    def ended():
        job = call("GET", f"{url}/v1/jobs/{job_id}", READ).json()
        return job if job["status"] in ("succeeded", "failed", "stopped") else None

    return wait_for(ended, timeout_s, f"job {job_id} to end", interval_s=0.5)


def no_orphans(out: str) -> None:
    tables = Tables(open_location(out))
    assert set(tables.parts(DETECTIONS, "trapcam", "1")) <= set(tables.parts(IMAGES, "trapcam", "1"))


def test_bad_inputs_get_a_typed_4xx_and_submit_nothing(cluster, url, env, tmp_path):
    before = ray_jobs(cluster)
    out = str(env["dir"] / "bad")
    cases = [
        ("no token", None, {"kind": "reprocess", "options": reprocess(env, out)}, 401, "unauthorized"),
        ("wrong token", "not-the-token", {"kind": "reprocess", "options": reprocess(env, out)}, 401, "unauthorized"),
        ("read token", READ, {"kind": "reprocess", "options": reprocess(env, out)}, 403, "forbidden"),
        ("unknown kind", ADMIN, {"kind": "reindex", "options": {}}, 422, "invalid_parameter"),
        ("invalid options", ADMIN, {"kind": "reprocess", "options": reprocess(env, out, batch_size=0)}, 422,
         "invalid_options"),
        ("missing option", ADMIN, {"kind": "reprocess", "options": {"out": out, "model": "trapcam"}}, 422,
         "invalid_options"),
        ("unknown option", ADMIN, {"kind": "events", "options": {"tables": out, "rm": "-rf"}}, 422,
         "invalid_options"),
        ("a caller's entry point", ADMIN, {"kind": "reprocess", "options": reprocess(env, out),
                                           "entrypoint": "rm -rf /"}, 422, "invalid_parameter"),
        ("a caller's Ray address", ADMIN, {"kind": "reprocess", "options": reprocess(env, out, address="x:1")},
         422, "invalid_options"),
        ("unknown model", ADMIN, {"kind": "reprocess", "options": {**reprocess(env, out), "model": "nosuch"}},
         404, "not_found"),
        ("unknown alias", ADMIN, {"kind": "reprocess", "options": {**reprocess(env, out),
                                                                    "model": "trapcam@staging"}}, 404, "not_found"),
        ("path outside the roots", ADMIN, {"kind": "reprocess", "options": reprocess(env, str(tmp_path / "o"))},
         422, "path_not_allowed"),
        ("escape by ..", ADMIN, {"kind": "reprocess", "options": reprocess(env, out + "/../../../etc")}, 422,
         "path_not_allowed"),
        ("bucket not named", ADMIN, {"kind": "export", "options": {"tables": "s3://other/t", "format": "coco",
                                                                   "out": out + "/x.json"}}, 422,
         "path_not_allowed"),
        ("another scheme", ADMIN, {"kind": "events", "options": {"tables": "file:///etc"}}, 422, "path_not_allowed"),
        ("a name with a control character", ADMIN, {"kind": "reprocess", "options": reprocess(env, out),
                                                     "name": "a\nb"}, 422, "invalid_parameter"),
        ("nothing to post-process", ADMIN, {"kind": "postprocess", "options": {
            "tables": out, "filter": "score", "config": {"min_score": 0.5}}}, 422, "invalid_parameter"),
    ]
    # Refused at the door, each naming its field path: nothing reaches Ray that would fail on its options there.
    at_the_door = [
        ("unknown filter", {"kind": "postprocess", "options": {"tables": out, "filter": "blur", "config": {}}},
         "invalid_options", ["filter"]),
        ("wrong filter config", {"kind": "postprocess", "options": {"tables": out, "filter": "score",
                                                                    "config": {"min_score": 2}}},
         "invalid_options", ["config.min_score"]),
        ("unknown export format", {"kind": "export", "options": {"tables": out, "format": "csv",
                                                                 "out": out + "/x.csv"}},
         "invalid_options", ["format"]),
        ("path outside the roots", {"kind": "export", "options": {"tables": out, "format": "coco",
                                                                  "out": str(tmp_path / "x.json")}},
         "path_not_allowed", ["out"]),
    ]
    for what, body, kind, fields in at_the_door:
        r = call("POST", f"{url}/v1/jobs", json=body)
        assert (r.status_code, r.json()["error"]["type"], r.json()["error"]["fields"]) == (422, kind, fields), \
            (what, r.text)
    for what, token, body, status, kind in cases:
        r = call("POST", f"{url}/v1/jobs", token, json=body)
        assert r.status_code == status, (what, r.status_code, r.text)
        assert r.json()["error"]["type"] == kind, (what, r.text)
    r = call("POST", f"{url}/v1/jobs", json={"kind": "reprocess", "options": reprocess(env, out, batch_size=0)})
    assert "--batch-size" in r.json()["error"]["message"] and r.json()["error"]["fields"] == ["batch_size"]
    r = call("POST", f"{url}/v1/jobs", json={"kind": "reprocess", "options": reprocess(env, str(tmp_path / "o"))})
    assert r.json()["error"]["field"] == "out"
    # reads: the read token (or the admin one); none or a wrong one is refused
    assert call("GET", f"{url}/v1/jobs", None).status_code == 401
    assert call("GET", f"{url}/v1/jobs", "nope").status_code == 401
    assert call("GET", f"{url}/v1/jobs", READ).status_code == 200
    assert call("GET", f"{url}/v1/jobs", ADMIN).status_code == 200
    assert call("GET", f"{url}/v1/jobs/raysubmit_nosuchjob", READ).status_code == 404
    assert call("POST", f"{url}/v1/jobs/raysubmit_nosuchjob/stop").json()["error"]["type"] == "job_not_found"
    assert call("GET", f"{url}/v1/jobs?kind=reindex", READ).json()["error"]["type"] == "invalid_parameter"
    assert ray_jobs(cluster) == before, "a refused request submitted a job"


@pytest.fixture(scope="module")
def watched_run(cluster, url, env) -> dict:
    """A reprocess of trapcam:1 submitted over HTTP (and submitted again while it runs), its progress polled until it
    ends. Its tables are version 1 of `two_versions` too: one run of the archive, not two."""
    out = str(env["dir"] / "compare")
    body = {"kind": "reprocess", "options": reprocess(env, out), "name": "run over HTTP"}
    r = call("POST", f"{url}/v1/jobs", json=body)
    assert r.status_code == 201, r.text
    job = r.json()
    before = ray_jobs(cluster)
    dup = call("POST", f"{url}/v1/jobs", json=body)  # the same job again while it runs
    after = ray_jobs(cluster)
    seen = []

    def progressed():
        shown = call("GET", f"{url}/v1/jobs/{job['id']}", READ).json()
        p = shown.get("progress")
        if shown["status"] == "running" and p:
            seen.append(p)
        return shown["status"] not in ("pending", "running")

    t0 = time.perf_counter()
    wait_for(progressed, 240, "the job to end", interval_s=0.3)
    final = wait_ended(url, job["id"])
    print(f"reprocess of {env['n']} images over HTTP: {final['status']} {time.perf_counter() - t0:.1f} s after "
          f"the submit answered; progress seen {len(seen)} time(s) while it ran")
    return {"out": out, "job": job, "dup": dup, "jobs_before_dup": before, "jobs_after_dup": after, "seen": seen,
            "final": final}


def test_reprocess_over_http_succeeds_with_progress_visible_while_it_runs(url, env, watched_run):
    out, job, final, seen = watched_run["out"], watched_run["job"], watched_run["final"], watched_run["seen"]
    assert job["kind"] == "reprocess" and job["status"] in ("pending", "running") and job["origin"] == "http"
    assert job["options"]["store"] == env["store"].root  # the service's store, filled in
    # The same job again while it ran: refused, nothing submitted.
    dup = watched_run["dup"]
    assert dup.status_code == 409 and dup.json()["error"]["type"] == "duplicate_job", dup.text
    assert dup.json()["error"]["job_id"] == job["id"]
    assert watched_run["jobs_after_dup"] == watched_run["jobs_before_dup"]
    assert final["status"] == "succeeded", call("GET", f"{url}/v1/jobs/{job['id']}/logs", READ).json()["lines"][-20:]
    running = [p for p in seen if 0 < p["images_done"] < p["images_total"]]
    assert running, f"no progress seen while it ran: {seen}"
    p = running[-1]
    assert p["images_total"] == env["n"] and p["images_per_s"] > 0 and p["eta_s"] is not None
    assert set(p["stages"]) == {"plan", "detect", "commit"} and p["stages"]["commit"]["parts"] >= 1
    done = final["progress"]
    assert done["run_status"] == "succeeded" and done["images_done"] == env["n"]
    assert final["submitted_at"] and final["ended_at"]
    listed = call("GET", f"{url}/v1/jobs", READ, params={"kind": "reprocess", "status": "succeeded",
                                                         "model": "trapcam"}).json()
    [row] = [j for j in listed["jobs"] if j["id"] == job["id"]]
    assert row["progress"]["images_done"] == env["n"] and row["ended_at"] and row["name"] == "run over HTTP"
    logs = call("GET", f"{url}/v1/jobs/{job['id']}/logs", READ, params={"tail": 5}).json()
    assert 0 < len(logs["lines"]) <= 5 and logs["total_lines"] >= len(logs["lines"])
    # Stopping what has ended: refused.
    r = call("POST", f"{url}/v1/jobs/{job['id']}/stop")
    assert r.status_code == 409 and r.json()["error"]["type"] == "job_finished"
    # The filters, and one image's preview on these tables: nothing written.
    filters = call("GET", f"{url}/v1/filters", READ).json()["filters"]
    score = next(f for f in filters if f["name"] == "score")
    assert score["required"] == ["min_score"] and score["schema"]["properties"]["min_score"]["maximum"] == 1.0
    assert {"min_size", "class_mask", "score", "repeat"} <= {f["name"] for f in filters}
    assert all(f["description"] for f in filters)
    files = sorted(p for p in Path(out).rglob("*"))
    image = "cam04/PICT0001.JPG"
    r = call("POST", f"{url}/v1/postprocess/preview", READ,
             json={"tables": out, "image": image, "filter": "score", "config": {"min_score": 0.99}})
    assert r.status_code == 200, r.text
    preview = r.json()
    assert preview["changes"] and all(c["change"] == "dropped" for c in preview["changes"] if c["kept_before"])
    assert preview["summary"]["kept_after"] == 0 and preview["summary"]["kept_before"] >= 1
    assert sorted(p for p in Path(out).rglob("*")) == files
    bad = call("POST", f"{url}/v1/postprocess/preview", READ,
               json={"tables": out, "image": image, "filter": "score", "config": {"min_score": 7}})
    assert bad.status_code == 422, bad.text


@pytest.fixture(scope="module")
def stopped_run(cluster, url, env, watched_run) -> dict:
    """A reprocess of trapcam:2 into the watched run's tables, stopped over HTTP after its first part, then submitted
    again (its options as shown, as the console's Resume sends them) to finish the rest: version 2 of `two_versions`
    too, so that the archive is run through version 2 once, not once stopped and once more whole."""
    out = watched_run["out"]
    job = call("POST", f"{url}/v1/jobs", json={"kind": "reprocess", "options": reprocess(env, out,
                                                                                         model="trapcam:2")}).json()

    def started():
        shown = call("GET", f"{url}/v1/jobs/{job['id']}", READ).json()
        return (shown.get("progress") or {}).get("images_done")

    wait_for(started, 180, "the first part")
    t0 = time.perf_counter()
    stop = call("POST", f"{url}/v1/jobs/{job['id']}/stop")
    final = wait_ended(url, job["id"])
    print(f"stop at the next part: the job ended {time.perf_counter() - t0:.1f} s after POST .../stop "
          f"({(final.get('progress') or {}).get('images_done')} of {env['n']} images done)")
    tables = Tables(open_location(out))
    stopped = {"parts": (set(tables.parts(DETECTIONS, "trapcam", "2")), set(tables.parts(IMAGES, "trapcam", "2"))),
               "manifests": read_manifests(tables.storage)}
    again = call("POST", f"{url}/v1/jobs", json={"kind": final["kind"], "options": final["options"]})
    resumed = wait_ended(url, again.json()["id"]) if again.status_code == 201 else None
    return {"out": out, "job": job, "stop": stop, "final": final, "stopped": stopped, "again": again,
            "resumed": resumed}


def test_stop_ends_the_run_at_a_part_with_nothing_half_written(cluster, url, env, watched_run, stopped_run):
    out, job, final, r = stopped_run["out"], stopped_run["job"], stopped_run["final"], stopped_run["stop"]
    assert r.status_code == 202 and r.json()["stop"] == "at_next_part", r.text
    assert final["status"] == "stopped"
    assert final["progress"]["run_status"] == "interrupted" and "stopped on request" in final["progress"]["error"]
    assert 0 < final["progress"]["images_done"] < env["n"]
    detections, images = stopped_run["stopped"]["parts"]
    assert detections <= images  # no orphans: no detections part without its images part
    # One run of this job, interrupted; the only other run in these tables is the watched one (version 1).
    manifests = stopped_run["stopped"]["manifests"]
    [manifest] = [m for m in manifests if m.ray_job_id == job["id"]]
    assert manifest.status == "interrupted" and manifest.model["version"] == "2"
    assert [m.ray_job_id for m in manifests if m is not manifest] == [watched_run["job"]["id"]]
    # The lease was released: the same job again (its options as shown, as the console's Resume sends them) runs
    # now and finishes the rest, each image once.
    again = stopped_run["again"]
    assert again.status_code == 201, again.text
    assert stopped_run["resumed"]["status"] == "succeeded"
    rows = Tables(open_location(out)).read(IMAGES, "trapcam", "2", ["uri"])["uri"].to_pylist()
    assert len(rows) == len(set(rows)) == env["n"]
    # Stopped before its first part: the job manager stops it (SIGTERM, closed as Ctrl-C), nothing written.
    early_out = str(env["dir"] / "stopped-early")
    early = call("POST", f"{url}/v1/jobs", json={"kind": "reprocess", "options": reprocess(env, early_out)}).json()
    r = call("POST", f"{url}/v1/jobs/{early['id']}/stop")
    assert r.status_code == 202 and r.json()["stop"] == "signal", r.text
    assert wait_ended(url, early["id"])["status"] == "stopped"
    no_orphans(early_out)


def test_jobs_from_ray_job_submit_and_the_cli_are_listed(cluster, url, env):
    out = str(env["dir"] / "cli")
    sid = "submitted-by-hand"
    cluster.cli("ray", "job", "submit", "--address", cluster.dashboard_url, "--submission-id", sid, "--no-wait",
                "--", "python", "-m", "batch.reprocess", "--archive", env["archive"], "--out", out,
                "--store", env["store"].root, "--model", "trapcam:1", "--dry-run")
    job = call("GET", f"{url}/v1/jobs/{sid}", READ).json()
    assert job["origin"] == "ray job submit" and job["kind"] == "reprocess"
    assert job["options"]["dry_run"] is True and job["model"] == "trapcam:1"
    assert wait_ended(url, sid)["status"] == "succeeded"
    run_cli = {**os.environ, "PYTHONPATH": str(REPO), "TRAPLINE_URL": url, "TRAPLINE_ADMIN_TOKEN": ADMIN,
               "TRAPLINE_API_TOKEN": READ}
    proc = subprocess.run([sys.executable, "-m", "trapline.cli", "jobs", "submit", "reprocess", "--archive",
                           env["archive"], "--out", out, "--model", "trapcam", "--dry-run"], env=run_cli,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.split()[3]
    assert proc.stdout.startswith(f"submitted reprocess job {job_id}")
    assert wait_ended(url, job_id)["status"] == "succeeded"
    listing = subprocess.run([sys.executable, "-m", "trapline.cli", "jobs", "list", "--kind", "reprocess"],
                             env=run_cli, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and job_id in listing.stdout and "succeeded" in listing.stdout
    first = call("GET", f"{url}/v1/jobs", READ, params={"limit": 1}).json()
    second = call("GET", f"{url}/v1/jobs", READ, params={"limit": 1, "offset": 1}).json()
    assert first["total"] >= 2 and [j["id"] for j in first["jobs"] + second["jobs"]] == [job_id, sid]  # newest first
    shown = subprocess.run([sys.executable, "-m", "trapline.cli", "jobs", "show", sid], env=run_cli,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and f"job {sid}: reprocess succeeded" in shown.stdout
    refused = subprocess.run([sys.executable, "-m", "trapline.cli", "jobs", "submit", "reprocess", "--archive",
                              "/etc", "--out", out, "--model", "trapcam"], env=run_cli, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2 and "path_not_allowed" in refused.stderr and "Traceback" not in refused.stderr


def test_a_promote_starts_exactly_one_backfill(cluster, url, env):
    sid = backfill_id("trapcam", "production", "2")
    assert sid not in ray_jobs(cluster)
    apps = cluster.api("GET", "/api/serve/applications/")["applications"]
    replicas = apps["trapline"]["deployments"]["ingress"]["replicas"]
    assert sum(r["state"] == "RUNNING" for r in replicas) == 2  # two watchers
    r = call("POST", f"{url}/v1/admin/models/trapcam/promote", params={"version": "2"})
    assert r.status_code == 200, r.text
    t0 = time.perf_counter()
    job = wait_for(lambda: sid in ray_jobs(cluster) and call("GET", f"{url}/v1/jobs/{sid}", READ).json(), 60,
                   "the backfill job")
    print(f"backfill submitted {time.perf_counter() - t0:.1f} s after the promote answered")
    assert job["origin"] == "promote trapcam@production" and job["model"] == "trapcam:2"
    assert job["name"] == "backfill of trapcam:2 (trapcam@production promoted)"
    assert wait_ended(url, sid)["status"] == "succeeded"
    # The same version promoted again, and one more watcher looking (a third replica): nothing more.
    assert call("POST", f"{url}/v1/admin/models/trapcam/promote", params={"version": "2"}).status_code == 200
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(cluster.dashboard_url, headers={"Authorization": f"Bearer {cluster.token}"})
    control = JobControl(JobsConfig(roots=[str(env["dir"])]), env["store"].root, client=client)
    policy = {"trapcam": ("production", {"archive": env["archive"], "out": str(env["dir"] / "backfill"),
                                         "dry_run": True, **JOB})}
    other = BackfillWatcher(control, env["store"], policy, interval_s=1)
    assert other.check_once() == [] and sid in other.settled
    time.sleep(2)  # two poll rounds of the service's own watcher
    backfills = [j for j in ray_jobs(cluster) if j.startswith("trapline-backfill-")]
    assert backfills == [sid]
    # A promote from the CLI (the store itself, not the service) is noticed too: rollback to 1 by moving the alias.
    env["store"].promote("trapcam:1")
    sid1 = backfill_id("trapcam", "production", "1")
    wait_for(lambda: sid1 in ray_jobs(cluster), 60, "the backfill of the CLI's promote")
    assert sorted(j for j in ray_jobs(cluster) if j.startswith("trapline-backfill-")) == sorted([sid, sid1])


@pytest.fixture(scope="module")
def two_versions(watched_run, stopped_run) -> str:
    """Tables that both versions ran into over HTTP: 1 the watched run, 2 (a higher score threshold on the same
    weights) the stopped run and its rerun."""
    assert watched_run["final"]["status"] == "succeeded"
    assert stopped_run["resumed"] and stopped_run["resumed"]["status"] == "succeeded", stopped_run["again"].text
    return stopped_run["out"]


def table_count(out: str, table: str, version: str, column: str, value) -> int:
    """Rows of one version whose `column` is `value`, read from the table files themselves."""
    return sum(pq.read_table(p, columns=[column]).column(column).to_pylist().count(value)
               for p in Path(out).rglob("*.parquet") if f"/{table}/" in p.as_posix()
               and f"model_version={version}" in p.as_posix())


def test_models_catalog_compare_and_report_links(cluster, url, env, two_versions):
    """The models page's data (every stored version, the backfill policy), two versions compared in tables, and a
    finished report opened by its signed link without a token; every way of getting these wrong is a 4xx."""
    cat = call("GET", f"{url}/v1/models/trapcam/versions", READ)
    assert cat.status_code == 200, cat.text
    cat = cat.json()
    assert [v["version"] for v in cat["versions"]] == ["1", "2"] and all(v["card"] for v in cat["versions"])
    assert cat["backfill"]["out"] == str(env["dir"] / "backfill") and cat["refused"] == []
    assert cat["aliases"]["production"]["version"] in ("1", "2")
    assert call("GET", f"{url}/v1/models/trapcam/versions", None).status_code == 401
    assert call("GET", f"{url}/v1/models/nope/versions", READ).json()["error"]["type"] == "not_found"

    r = call("GET", f"{url}/v1/models/trapcam/compare", READ, params={"a": "1", "b": "2", "tables": two_versions})
    assert r.status_code == 200, r.text
    c = r.json()
    v1, v2 = (table_count(two_versions, DETECTIONS, v, "kept", True) for v in ("1", "2"))
    failed = table_count(two_versions, IMAGES, "1", "status", "failed")  # the archive's broken files
    print(f"compare: v1 kept {v1}, v2 kept {v2}: {c['totals']}, {c['images_differ']} image(s) differ")
    # Same weights, a higher threshold: every box of 2 is a box of 1.
    assert c["a"] == "trapcam:1" and c["b"] == "trapcam:2" and c["images_both"] == env["n"] - failed > 0
    assert c["filters"]["a"] == c["filters"]["b"]  # both runs with the same filters: the differences are the models'
    assert c["totals"] == {"matched": v2, "only_a": v1 - v2, "only_b": 0} and v2 > 0
    assert len(c["examples"]) == min(c["images_differ"], 10)
    # Bounded to one camera (what a large archive needs): only its images are read and matched.
    one = call("GET", f"{url}/v1/models/trapcam/compare", READ,
               params={"a": "1", "b": "2", "tables": two_versions, "cameras": "cam04"}).json()
    assert one["images_both"] == EXTRA_IMAGES and 0 < one["totals"]["matched"] <= c["totals"]["matched"]
    assert all(x["uri"].split("/")[-2] == "cam04" for x in one["examples"])
    for params, status, kind in (
            ({"a": "1", "b": "2"}, 422, "invalid_parameter"),  # the backfill tables (a dry run): none there
            ({"a": "1", "b": "1", "tables": two_versions}, 422, "invalid_parameter"),
            ({"a": "1", "b": "9", "tables": two_versions}, 422, "invalid_parameter"),
            ({"a": "1", "b": "2", "tables": two_versions, "since": "yesterday"}, 422, "invalid_parameter"),
            ({"a": "1", "b": "2", "tables": "/etc"}, 422, "path_not_allowed")):
        r = call("GET", f"{url}/v1/models/trapcam/compare", READ, params=params)
        assert (r.status_code, r.json()["error"]["type"]) == (status, kind), (params, r.text)

    report = str(env["dir"] / "compare-report")
    job = call("POST", f"{url}/v1/jobs", json={"kind": "report", "options": {
        "tables": two_versions, "out": report, "model": "trapcam:1", "compare": "trapcam:2"}}).json()
    assert "report_url" not in job  # not before it has succeeded
    done = wait_ended(url, job["id"])
    assert done["status"] == "succeeded" and done["report_url"].startswith(f"/reports/{job['id']}/")
    listed = call("GET", f"{url}/v1/jobs", READ, params={"kind": "report"}).json()["jobs"]
    assert next(j for j in listed if j["id"] == job["id"])["report_url"].endswith("/index.html")
    page = httpx.get(url + done["report_url"], timeout=30, trust_env=False)  # no token: the link is the right
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "only in trapcam:1" in page.text or "trapcam:2" in page.text
    assert page.text == (Path(report) / "index.html").read_text()
    thumb = next(Path(report, "thumbs").iterdir())
    base = url + done["report_url"].removesuffix("index.html")
    asset = httpx.get(base + f"thumbs/{thumb.name}", timeout=30, trust_env=False)
    assert asset.status_code == 200 and asset.content == thumb.read_bytes()
    # Altered, expired, or reaching outside the report: 404, naming nothing.
    prefix, grant = done["report_url"].rsplit("/", 2)[0], done["report_url"].split("/")[3]
    expires, sig = grant.split(".")
    key = hashlib.sha256(f"trapline report links\n{hashlib.sha256(READ.encode()).hexdigest()}\n"
                         f"{hashlib.sha256(ADMIN.encode()).hexdigest()}".encode()).digest()
    past = int(time.time()) - 1
    old = hmac.new(key, f"{job['id']}\n{past}".encode(), hashlib.sha256).hexdigest()[:40]
    other = listed[-1]["id"] if listed[-1]["id"] != job["id"] else "trapline-nope"
    (Path(report) / "notes.json").write_text("{}")  # under OUT, but not something the report wrote
    far = int(time.time()) + 10 * 86400
    longer = hmac.new(key, f"{job['id']}\n{far}".encode(), hashlib.sha256).hexdigest()[:40]
    for bad in (f"{prefix}/{expires}.{'0' * 40}/index.html", f"{prefix}/{int(expires) + 1}.{sig}/index.html",
                f"/reports/{job['id']}/{far}.{longer}/index.html", f"/reports/{job['id']}/%C2%B2.{sig}/index.html",
                f"{prefix}/{grant}/notes.json",
                f"/reports/{job['id']}/{past}.{old}/index.html", f"/reports/{other}/{grant}/index.html",
                f"{prefix}/{grant}/%2e%2e%2f%2e%2e%2fcompare%2f_runs%2fx.json", f"{prefix}/{grant}/%2e%2e/x.html"):
        r = httpx.get(url + bad, timeout=30, trust_env=False)
        assert r.status_code == 404 and str(env["dir"]) not in r.text, (bad, r.text)


def test_console_starts_a_reprocess_follows_it_and_runs_a_postprocess_from_the_generated_form(url, env, two_versions,
                                                                                              screenshots):
    """The console in headless Chromium (Debian's package), one user's session: a reprocess started from its form (the
    archive picked from the locations under the roots, not typed; the dry run first, its plan shown, nothing
    written; then Confirm and run), followed with live progress on the jobs page until its tables hold every image;
    a post-processing run on them from the form generated from the filter's JSON Schema (preview first), its metrics
    on the job page; the models page (cards, the comparison beside promote, a full report opened from the reports
    page); the pages at a phone's width; no console error anywhere. `make screenshots` saves its screenshots to
    docs/ (linked from the README)."""
    import json

    from batch.review.browser import find_chromium
    from tests.fixtures.browser import Browser

    if find_chromium() is None:
        pytest.skip("no Chromium (apt-get install chromium)")
    docs = screenshots
    real = os.path.realpath  # the locations the forms pick from are listed as real paths
    out = str(env["dir"] / "from-console")
    assert call("GET", f"{url}/console", None).headers["content-security-policy"].startswith("default-src 'self'")
    with Browser(1280, 900) as b:
        b.before_load(f"sessionStorage.setItem('trapline-token', {json.dumps(ADMIN)})")  # as typed into the page
        b.navigate(f"{url}/console#/start/reprocess")
        b.wait("document.querySelector('#cfg-archive') !== null", 30, "the reprocess form")
        # the archive and the model picked from what the service knows (a select each), not typed
        archives = b.eval("[...document.querySelectorAll('#cfg-archive option')].map(o => o.value)")
        assert os.path.realpath(env["archive"]) in archives, archives
        assert "trapcam@production" in b.eval("[...document.querySelectorAll('#cfg-model option')].map(o => o.value)")
        assert b.eval("document.getElementById('job-run').disabled") is True  # no run before the dry run
        fields = {"archive": os.path.realpath(env["archive"]), "out": out, "model": "trapcam@production",
                  "path_pattern": JOB["path_pattern"], "rows_per_file": 2, "batch_size": 2, "read_batch_size": 2,
                  "num_cpus": 0.25}
        b.eval(f"""(() => {{ for (const [k, v] of Object.entries({json.dumps(fields)}))
            document.getElementById('cfg-' + k).value = String(v); }})()""")
        b.eval("document.getElementById('job-preview').click()")
        summary = b.wait("document.querySelector('#preview-summary')?.textContent", 240, "the dry run")
        assert "succeeded" in summary, summary
        assert not Path(out, "images").exists()  # a dry run writes nothing
        b.eval("window.confirm = () => true")  # the confirmation dialogs: a person clicks OK
        b.wait("document.getElementById('job-run').disabled === false", 10)
        b.eval("document.getElementById('job-run').click()")
        reprocess_id = b.wait("document.getElementById('job-link')?.textContent", 60, "the submitted job's link")
        b.screenshot(docs / "console-start.png")

        b.viewport(1280, 800)
        b.eval("location.hash = '#/jobs'")  # the same page: no load event
        b.wait(f"[...document.querySelectorAll('#jobs a')].some(a => a.textContent === {json.dumps(reprocess_id)})"
               " && document.querySelector('#jobs .bar span') !== null", 120, "live progress on the jobs page")
        b.screenshot(docs / "console-jobs.png")
        job = wait_ended(url, reprocess_id)
        assert job["status"] == "succeeded" and job["kind"] == "reprocess", job
        assert job["options"]["archive"] == os.path.realpath(env["archive"]) and not job["options"].get("dry_run")
        t = Tables(open_location(out)).read(IMAGES, "trapcam", "1")
        assert len(set(t["uri"].to_pylist())) == env["n"]

        source = resolve_table_set(Tables(open_location(out)), "trapcam:1")
        b.eval("location.hash = '#/postprocess'")
        b.wait("document.querySelectorAll('#filter option').length > 0")
        # the new tables among those the form picks from, with the model version they hold
        b.wait(f"[...document.querySelectorAll('#tables option')].some(o => o.value === {json.dumps(real(out))} && "
               "o.textContent.includes('trapcam:1'))", 30, "the new tables in the post-processing form")
        b.eval(f"""(() => {{
            const select = document.getElementById('filter');
            select.value = 'score'; select.dispatchEvent(new Event('change'));
            document.getElementById('tables').value = {json.dumps(real(out))};
            document.getElementById('image').value = 'cam04/PICT0001.JPG';
            document.getElementById('cfg-min_score').value = '0.99';
        }})()""")
        assert b.eval("document.getElementById('cfg-action').tagName") == "SELECT"  # the schema's enum
        assert b.eval("document.getElementById('run').disabled") is True  # no run before a preview
        b.eval("document.getElementById('preview').click()")
        b.wait("document.querySelector('#preview-result td.dropped') !== null", 60, "the preview")
        b.screenshot(docs / "console-postprocess.png")
        b.eval("document.getElementById('run').click()")
        job_id = b.wait("document.getElementById('job-link') && document.getElementById('job-link').textContent",
                        60, "the submitted job's link")
        b.eval("document.getElementById('job-link').click()")
        b.wait("document.getElementById('job-status') && document.getElementById('job-status').textContent"
               " === 'succeeded' && document.getElementById('stages') !== null", 180, "the job to succeed")
        stages = b.eval("document.getElementById('stages').textContent")
        assert "detections_checked" in stages and "flagged" in stages, stages
        submitted = call("GET", f"{url}/v1/jobs/{job_id}", READ).json()
        # The source set is pinned at submit, so a rerun (after a stop) resumes from it, not from its own output.
        assert submitted["kind"] == "postprocess" and submitted["options"]["filters_hash"] == source.filters_hash

        # Models: stored versions with their cards; the served version compared with 2 beside the promote button;
        # the full report of that comparison run as a job, then opened from the reports page without a token.
        b.eval("location.hash = '#/models'")
        b.wait("document.querySelector('#model-trapcam .versions tr[data-version=\"2\"]') !== null", 30, "models")
        b.wait(f"[...document.querySelectorAll('#model-trapcam .compare-tables option')].some(o => o.value === "
               f"{json.dumps(real(two_versions))})", 30, "the tables both versions ran into, among the choices")
        assert b.eval("document.querySelectorAll('#model-trapcam details.model-card').length") == 2
        b.eval(f"""(() => {{
            const card = document.getElementById('model-trapcam');
            card.querySelector('.compare-tables').value = {json.dumps(real(two_versions))};
            const select = card.querySelector('.promote-version');
            select.value = '2'; select.dispatchEvent(new Event('change'));
        }})()""")
        summary = b.wait("document.querySelector('#model-trapcam .compare-summary')?.textContent", 60, "the compare")
        assert "image(s) in both" in summary and "only trapcam:2 0." in summary, summary
        b.screenshot(docs / "console-models.png")
        b.eval("document.querySelector('#model-trapcam .full-report').click()")
        report_job = b.wait("document.querySelector('#model-trapcam .compare-result a')?.textContent", 60,
                            "the report job's link")
        assert wait_ended(url, report_job)["status"] == "succeeded"
        b.eval("location.hash = '#/reports'")
        href = b.wait("document.querySelector('#reports a.open-report')?.getAttribute('href')", 30, "an open link")
        b.navigate(url + href)
        assert "trapcam" in b.eval("document.title") and b.eval("document.images.length") > 0
        assert b.eval("[...document.images].every(i => i.complete && i.naturalWidth > 0)"), "a report image is missing"
        b.navigate(f"{url}/console#/jobs")
        b.wait("document.querySelector('#jobs') !== null", 30, "the console again")

        b.viewport(390, 844, mobile=True)
        for page, ready in (("#/jobs", "#jobs"), (f"#/job/{job_id}", "#stages"), ("#/postprocess", "#filter"),
                            ("#/models", "#model-trapcam"), ("#/reports", "#reports")):
            b.eval(f"location.hash = {json.dumps(page)}")
            b.wait(f"document.querySelector({json.dumps(ready)}) !== null", 30, page)
            width = b.eval("document.documentElement.scrollWidth")
            assert width <= 392, f"{page} is {width}px wide on a 390px phone"
        errors = b.errors()
        assert errors == [], errors


def test_a_train_job_over_http_shows_its_epochs_and_publishes_the_new_version(cluster, url, env):
    """`POST /v1/jobs` kind `train`: `trapline models train` as a Ray job on the service's own Ray (one Ray Train
    worker of a quarter CPU beside the replicas), its record in the tables the crops came from followed epoch by epoch,
    the new version published in the service's store; a bad one refused at the door (the CLI: exit 2)."""
    d, store = env["dir"], env["store"]
    publish_trainable(store, "jobspecies", "1")
    manifest = write_crops_set(d / "train-set", {"train": 24, "val": 8, "test": 8})
    tables = d / "train-tables"  # the tables the set was exported from (the fixture's own name s3://traps/tables)
    (d / "train-set" / "manifest.json").write_text(json.dumps({**manifest, "tables": str(tables)}))
    options = {"ref": "jobspecies:1", "crops": str(d / "train-set"), "version": "2", "epochs": 2, "batch_size": 8,
               "cpus_per_worker": 0.25, "checkpoints": str(d / "train-checkpoints")}
    before = ray_jobs(cluster)
    run_cli = {**os.environ, "PYTHONPATH": str(REPO), "TRAPLINE_URL": url, "TRAPLINE_ADMIN_TOKEN": ADMIN,
               "TRAPLINE_API_TOKEN": READ}
    refused = subprocess.run([sys.executable, "-m", "trapline.cli", "jobs", "submit", "train", "jobspecies:1",
                              "--crops", str(d / "train-set"), "--version", "1"], env=run_cli, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 2 and "jobspecies:1 already exists" in refused.stderr, refused.stderr
    r = call("POST", f"{url}/v1/jobs", json={"kind": "train", "options": {**options, "crops": str(d / "archive")}})
    assert r.status_code == 422 and "no manifest.json" in r.json()["error"]["message"], r.text
    assert ray_jobs(cluster) == before, "a refused train job was submitted"

    r = call("POST", f"{url}/v1/jobs", json={"kind": "train", "options": options, "name": "fine-tune"})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["kind"] == "train" and job["model"] == "jobspecies:1" and job["options"]["tables"] == str(tables)
    seen = []

    def progressed():
        shown = call("GET", f"{url}/v1/jobs/{job['id']}", READ).json()
        if shown["status"] == "running" and shown.get("progress"):
            seen.append(shown["progress"])
        return shown["status"] not in ("pending", "running")

    t0 = time.perf_counter()
    wait_for(progressed, 360, "the train job to end", interval_s=0.5)
    final = wait_ended(url, job["id"])
    logs = call("GET", f"{url}/v1/jobs/{job['id']}/logs", READ).json()["lines"]
    print(f"train job over HTTP: {final['status']} {time.perf_counter() - t0:.1f} s after the submit answered; "
          f"progress seen {len(seen)} time(s) while it ran: {[p['epoch'] for p in seen]}")
    assert final["status"] == "succeeded", "\n".join(logs[-40:])
    p = final["progress"]
    assert (p["unit"], p["run_status"], p["epoch"], p["epochs"], p["published"]) == (
        "epochs", "succeeded", 2, 2, "jobspecies:2")
    assert p["loss"] > 0 and 0 <= p["val_top1"] <= 1 and p["stages"]["train"]["val_crops"] == 8
    # while Ray still says running: the record's epochs, never back (its end may land before the job's own status)
    assert [s["epoch"] for s in seen] == sorted(s["epoch"] for s in seen) and all(s["epoch"] <= 2 for s in seen)
    assert store.list_versions("jobspecies") == ["1", "2"]  # published once, in the service's store
    training = json.loads((Path(store.root) / "jobspecies" / "2" / "training.json").read_text())
    assert training["run"]["workers"] == 1 and training["run"]["cpus_per_worker"] == 0.25
    assert training["run"]["final_val_top1"] == p["val_top1"]
    shown = subprocess.run([sys.executable, "-m", "trapline.cli", "jobs", "show", job["id"]], env=run_cli,
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and f"job {job['id']}: train succeeded" in shown.stdout
    assert "epoch 2 of 2, loss" in shown.stdout and "published jobspecies:2" in shown.stdout, shown.stdout
