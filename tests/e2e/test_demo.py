"""The README's path as a new user walks it, in order, in one directory: `make demo`'s program on the
embedded default (./models, ./samples, ./out/detections), then `trapline serve` + curl on the store it
left, `trapline reprocess`, the console's pages, `trapline report` and `trapline export`. Each step's output is
checked; a step that a new user would meet failing (as `trapline serve` did after the demo began promoting its
species classifier) fails here.

The directory is a copy of the checkout (its tracked files, as a fresh clone has them), not an empty folder: the
README is followed there, and a folder that holds pictures of its own (docs/, then ./samples) beside the tables
hid them from the console (issue 71)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pyarrow.dataset as pads
import pytest

from model_store.demo.scenes import KINDS
from serve.local import free_port
from serve.polling import wait_until
from tests.e2e.test_quiet_output import named_logs_dir, ray_lines
from tests.unit.test_docs import code_blocks

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[2]
DETECTORS, SPECIES = {"demo-detector", "demo-detector-torch"}, "demo-species"


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """The new user's checkout (the files git tracks or would, as they are in this working tree) and $HOME (so the
    Ray token the steps leave is theirs to inspect)."""
    home = tmp_path_factory.mktemp("new-user")
    listed = ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    tracked = subprocess.run(listed, cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, tracked.decode().split("\0")):
        if (REPO / rel).is_file():  # a file deleted in this working tree is not copied
            (home / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, home / rel)
    return home


def start(home: Path, *args: str) -> subprocess.Popen:
    """`trapline ARGS` started in the user's directory; `finish` waits for it. Commands that only read the tables
    run side by side (each one's start-up is about 1.5 s of imports)."""
    return subprocess.Popen([sys.executable, "-m", "trapline.cli", *args], cwd=home, env=user_env(home),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=timeout)
    args = proc.args[3:]
    assert proc.returncode == 0, f"trapline {' '.join(args)}:\n{out[-3000:]}{err[-3000:]}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def trapline(home: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return finish(start(home, *args), timeout)


def user_env(home: Path) -> dict[str, str]:
    drop = ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "TRAPLINE_MODEL_STORE", "TRAPLINE_STATE_DIR")
    return {k: v for k, v in os.environ.items() if k not in drop} | {"HOME": str(home)}


@pytest.fixture(scope="module")
def demo(home) -> subprocess.CompletedProcess:
    """`make demo`'s program with its defaults, run in the user's directory, offline: pip finds no index (an empty
    local folder), so the MegadetectorLite step takes its one-line way out (tests never touch the network)."""
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(home / "no-index")}
    return subprocess.run([sys.executable, "-m", "trapline.demo"], cwd=home, env=user_env(home) | offline,
                          capture_output=True, text=True, timeout=420)


@pytest.fixture(scope="module")
def demo_left(demo, home, tmp_path_factory) -> Path:
    """A directory holding what `make demo` left (its tables, store and samples), copied before the later steps
    add to them (test_1 asks for it, so it is made right after the demo)."""
    left = tmp_path_factory.mktemp("demo-left")
    for name in ("out", "models", "samples"):
        if (home / name).is_dir():  # a demo that failed left less: test_1 says why
            shutil.copytree(home / name, left / name, symlinks=True)
    return left


def test_1_demo_end_to_end(demo, home, demo_left):
    proc, out = demo, home / "out" / "detections"
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    served = [line for line in lines if line.strip().startswith("scene_") and "demo-detector:1" in line]
    assert len(served) == 8
    assert any("switched to version 2" in line for line in lines)
    assert any("HTTP 422 invalid_image" in line for line in lines)
    assert any("processed 8: ok" in line for line in lines)
    assert "done: service stopped" in proc.stdout
    skipped = [line for line in lines if "real photos skipped: MegadetectorLite unavailable" in line]
    assert len(skipped) == 1 and "synthetic models run on" in skipped[0], proc.stdout[-3000:]
    # The species classifier ran on the animal detections: "scene_003.jpg  animal 0.87 -> species roe_deer 0.80 ..."
    species = [line for line in lines if re.search(r"scene_\d+\.jpg  animal [01]\.\d\d -> species \S+ [01]\.\d\d",
                                                  line)]
    assert species, proc.stdout[-3000:]
    assert any(kind in line for line in species for kind in KINDS)
    assert ray_lines(proc.stdout + proc.stderr) == [], "\n".join(ray_lines(proc.stdout + proc.stderr))
    named_logs_dir(proc.stderr)  # Ray's own lines went to the log file the output names
    images = pads.dataset(out / "images", partitioning="hive").to_table().to_pylist()
    assert len(images) == 8 and {r["status"] for r in images} <= {"ok", "empty"}
    detections = pads.dataset(out / "detections", partitioning="hive").to_table()
    assert detections.num_rows > 0
    classifications = pads.dataset(out / "classifications", partitioning="hive").to_table()
    assert classifications.num_rows > 0 and set(classifications["classifier_name"].to_pylist()) == {SPECIES}


def test_2_ray_token_is_readable_by_the_user_alone(demo, home):
    token = home / ".ray" / "auth_token"
    assert token.is_file() and token.read_text().strip()
    assert stat.S_IMODE(token.stat().st_mode) == 0o600, oct(token.stat().st_mode)
    assert stat.S_IMODE(token.parent.stat().st_mode) & 0o077 == 0


def test_3_serve_after_the_demo_detects_and_names_species_and_takes_the_archive(demo, home):
    """`trapline serve` with no flags on the store `make demo` left: detectors as detectors, the species
    classifier as a classifier deployment, curl /v1/detect answers with species; and a `trapline reprocess`
    started while it runs finds it and sends the archive through it (no actors, no model load); SIGTERM stops it
    cleanly."""
    port, log_path = free_port(), home / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "trapline.cli", "serve", "--port", str(port)],
                                cwd=home, env=user_env(home), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        def up() -> bool:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            return "Ctrl-C to stop" in log_path.read_text()

        wait_until(up, 300, "trapline serve to come up", interval_s=0.5)
        url = f"http://127.0.0.1:{port}"
        models = httpx.get(f"{url}/v1/models", timeout=30, trust_env=False).json()["models"]
        kinds = {m["name"]: m.get("kind", "detector") for m in models}
        assert kinds == {**dict.fromkeys(DETECTORS, "detector"), SPECIES: "classifier"}, kinds
        body = detect(url, home / "samples" / "scene_000.jpg")
        classified = [c for d in body["detections"] for c in d.get("classifications", [])]
        assert body["model"]["name"] == "demo-detector" and classified, body
        assert {c["model"]["name"] for c in classified} == {SPECIES}
        records = list((home / ".trapline" / "services").glob("*.json"))
        assert len(records) == 1 and stat.S_IMODE(records[0].stat().st_mode) == 0o600

        job = trapline(home, "reprocess", "--archive", "samples", "--out", "out/detections",
                       "--model", "demo-detector@production")
        first = (job.stderr + job.stdout).strip().splitlines()
        first = [line for line in first if not line.startswith("Ray logs:")][0]
        assert f"demo-detector:1 through the running trapline serve at {url}" in first, first
        assert "processed 8: ok" in job.stdout, job.stdout
        console_shows_the_readme_tables(url, home)
        # What systemd, `docker stop` and Kubernetes send: the same clean stop as Ctrl-C (which test_serve_cli sends);
        # it used to end in Ray's own handler (sys.exit) and abort in Ray's teardown (exit 134).
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    out = log_path.read_text()
    assert f"trapline is up at {url}" in out and out.rstrip().endswith("stopped")
    assert ray_lines(out) == [], "\n".join(ray_lines(out))
    assert list((home / ".trapline" / "services").glob("*.json")) == []  # off the record once stopped


def console_shows_the_readme_tables(url: str, home: Path) -> None:
    """The console's Cameras and Captures over the tables the README's reprocess wrote, unconfigured: found under the
    service's working directory (the checkout, which holds pictures itself), each picture served; then every page of
    the console in Chromium (where there is one) with no error message shown."""
    tables = os.path.realpath(home / "out" / "detections")

    def cameras() -> dict:  # the found tables are cached for a few seconds (batch/views/found_tables.py)
        r = httpx.get(f"{url}/v1/pictures/cameras", timeout=30, trust_env=False)
        assert r.status_code in (200, 404), r.text
        return r.json() if r.status_code == 200 else {}

    page = wait_until(cameras, 30, "the README's tables on the Cameras page", interval_s=1)
    assert page["tables"] == tables and page["served"], page
    [tile] = page["cameras"]  # the samples lie directly under the archive: one camera, "unknown"
    assert tile["images"] == 8 and tile["latest"]["image"]["image_url"], tile
    captures = httpx.get(f"{url}/v1/pictures/captures", timeout=30, trust_env=False).json()
    assert captures["total"] == 8 and all(c["image_url"] for c in captures["captures"]), captures
    picture = httpx.get(url + captures["captures"][0]["thumb_url"], timeout=30, trust_env=False)
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"

    from batch.review.browser import find_chromium
    if find_chromium() is None:
        return  # the API's answers above are the check; the report's browser test says Chromium is missing
    from tests.fixtures.browser import COUNT_FETCHES, Browser, console_nav, console_page_errors

    with Browser(1280, 900) as b:
        b.before_load(COUNT_FETCHES)
        b.navigate(f"{url}/console")
        tiles = "document.querySelectorAll('.tile img').length > 0"
        assert console_page_errors(b, "#/cameras", tiles) == []
        assert console_page_errors(b, "#/captures", "document.querySelector('#captures-count') !== null") == []
        for hash in console_nav(b):
            assert console_page_errors(b, hash) == [], hash
        # the browser logs every 404 a page shows as its empty state (no occurrences, no deployments yet) and the 403
        # of the admin pages (no admin token on this service): those only
        assert [e for e in b.errors() if not re.search(r"status of 40[34]", e)] == [], b.errors()


def versions(user: Path) -> set[str]:
    """The model versions of demo-detector in the user's ./out/detections, as the files say."""
    images = pads.dataset(user / "out" / "detections" / "images", partitioning="hive").to_table(["model_version"])
    return {str(v) for v in images["model_version"].to_pylist()}


def detect(url: str, image: Path) -> dict:
    """POST the image as the README's curl line does (curl itself where the machine has it)."""
    if shutil.which("curl"):
        proc = subprocess.run(["curl", "-sS", "--noproxy", "*", "-X", "POST", "-H", "Content-Type: image/jpeg",
                               "--data-binary", f"@{image}", f"{url}/v1/detect"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)
    resp = httpx.post(f"{url}/v1/detect", content=image.read_bytes(), timeout=120, trust_env=False)
    resp.raise_for_status()
    return resp.json()


def test_4_reprocess_report_export_on_the_demo_tables(demo, home):
    tables = "out/detections"
    images = pads.dataset(home / tables / "images", partitioning="hive").to_table().to_pylist()
    assert {str(r["model_version"]) for r in images} == {"1", "2"}  # the demo's v2 rows and the served run's v1
    # The README's package command: the samples lie directly under the archive root, so their camera is "unknown".
    (home / "deployments.csv").write_text("deploymentID,latitude,longitude,deploymentStart,deploymentEnd\n"
                                          "unknown,51.0501,4.3520,2020-01-01T00:00:00Z,2030-01-01T00:00:00Z\n")
    (home / "meta.yaml").write_text(
        "title: Demo camera traps\ncontributors: [{title: A User, email: user@example.org, role: contact}]\n"
        "project: {title: Demo, samplingDesign: targeted, captureMethod: [activityDetection]}\n"
        "licenses: [{name: CC0-1.0, scope: data}, {name: CC-BY-4.0, scope: media}]\n")
    # Four commands that read the tables (the rerun finds nothing to do): at once.
    again, report, md, camtrap = (start(home, *args) for args in (
        ("reprocess", "--archive", "samples", "--out", tables, "--model", "demo-detector@production"),
        ("report", "--tables", tables, "--out", "report", "--model", "demo-detector@production"),
        ("export", "--tables", tables, "--format", "megadetector", "--out", "md.json", "--model",
         "demo-detector@production"),
        ("export", "--tables", tables, "--format", "camtrap-dp", "--out", "camtrap", "--model", "demo-detector:2",
         "--deployments", "deployments.csv", "--package-meta", "meta.yaml")))
    again = finish(again)
    assert "8 already done (skipped), 0 to process" in again.stdout, again.stdout

    finish(report)
    page = (home / "report" / "index.html").read_text()
    assert "demo-detector" in page and "scene_" in page

    finish(md)
    md = json.loads((home / "md.json").read_text())
    assert len(md["images"]) == 8 and md["detection_categories"] and md["info"]

    finish(camtrap)
    with open(home / "camtrap" / "observations.csv") as f:
        header, *rows = f.read().splitlines()
    assert header.startswith("observationID") and rows
    package = json.loads((home / "camtrap" / "datapackage.json").read_text())
    assert {r["name"] for r in package["resources"]} == {"deployments", "media", "observations"}


def test_5_the_readme_archive_block_and_the_guide_python_run_as_shown(demo, home, demo_left):
    """The README's "Run a whole archive" commands, verbatim and in order, on the tables `make demo` left (as a new
    user meets them: the demo's demo-detector:2 alone), then what the README says of them: a second version beside
    the demo's, commands without --model refused until one version's set is retired and purged. Then the user
    guide's Python block (models.md), in the demo's directory: what a reader copies works."""
    user = demo_left
    assert versions(user) == {"2"}  # the demo's own run
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Run a whole archive"):readme.index("## Look at it")]
    block = section[section.index("```bash\n") + 8:section.index("\n```", section.index("```bash"))]
    commands = [line.split(" #", 1)[0].split() for line in block.splitlines() if line.startswith("trapline ")]
    assert [c[1] for c in commands] == ["reprocess", "report", "export"]
    for command in commands:
        trapline(user, *command[1:])
        if command[1] == "reprocess":
            assert versions(user) == {"1", "2"}  # production is 1 again after the demo's roll-back
    assert (user / "out" / "report" / "index.html").exists()
    assert len(json.loads((user / "out" / "md.json").read_text())["images"]) == 8

    # what the README says after the block: without --model the commands are refused, as it quotes them ...
    said = re.search(r"\(without it they answer `([^`]+)`\)", " ".join(section.split())).group(1)
    unnamed = ("export", "--tables", "./out/detections", "--format", "megadetector", "--out", "./out/one.json")
    refused = start(user, *unnamed)
    out, err = refused.communicate(timeout=300)
    assert refused.returncode == 2 and f"error: {said}" in err, out + err
    # ... until the second version's set is retired and purged: one version is left, and --model is not needed
    sets = json.loads(trapline(user, "tables", "sets", "--tables", "./out/detections", "--json").stdout)
    [second] = [s["set"] for s in sets if s["model"] == "demo-detector:1"]
    trapline(user, "tables", "retire", second, "--tables", "./out/detections")
    assert "deleted" in trapline(user, "tables", "purge", second, "--tables", "./out/detections").stdout
    assert versions(user) == {"2"} and not (user / "out" / "detections" / "images" / "model_name=demo-detector" /
                                            "model_version=1").exists()
    trapline(user, *unnamed)
    assert json.loads((user / "out" / "one.json").read_text())["info"]["detector_metadata"]["model_version"] == "2"

    [python] = code_blocks(REPO / "docs" / "guide" / "models.md", ("python",))
    proc = subprocess.run([sys.executable, "-c", python], cwd=home, env=user_env(home), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines(), "the block prints each detection: the demo scene has animals"
