"""`trapline reprocess` and `trapline serve --config serve.yaml` as a user runs them on the embedded default: only
trapline's own lines on the console, Ray's in the log file the output names; a stale `ray start` record on the
machine is ignored; every port the serving process tree listens on is a loopback one; the service answers, hot-swaps
on a promote and stops on SIGTERM (what systemd, `docker stop` and Kubernetes send) without leaving a process or a port
behind (issue 67; the stops while it starts and when it cannot be placed: tests/e2e/test_serve_stops_clean.py). Ctrl-C
on a ready service: tests/e2e/test_serve_cli.py, tests/e2e/test_serve_identify.py."""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from model_store import ModelStore
from serve.local import free_port
from serve.polling import wait_until
from tests.fixtures.archive import brightness_config, brightness_model, build_archive, write_local
from tests.fixtures.images import encode, gradient
from tests.fixtures.onnx_models import fixture_config
from tests.fixtures.processes import MARK, listening, marked

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-admin-token"

# Ray's console formats: Python logging ("... INFO worker.py:2038 -- ..."), Serve's ("INFO 2026-.. serve"),
# the C++ core ("[2026-.. E 123 123] core_worker.cc:..."), worker/raylet prefixes, Ray Data's bars.
RAY_LINE = re.compile(
    r"\b(DEBUG|INFO|WARNING|ERROR)\b.*\.py:\d+ --|^(DEBUG|INFO|WARNING|ERROR) \d{4}-"
    r"|^\[\d{4}-\d\d-\d\d [\d:,.]+ [DIWEF] \d+|core_worker|\(raylet\)|graceful_shutdown"
    r"|\(\w[\w:.-]* pid=\d+\)|Running Dataset|✔️|Started a local Ray")


def ray_lines(text: str) -> list[str]:
    """The lines of `text` that Ray printed rather than trapline."""
    return [line for line in text.splitlines() if RAY_LINE.search(line)]


def named_logs_dir(text: str) -> Path:
    """The directory of the one `Ray logs: DIR` line, which must exist."""
    named = re.findall(r"^Ray logs: (\S+)", text, re.M)
    assert len(named) == 1, text
    assert Path(named[0]).is_dir()
    return Path(named[0])


@pytest.fixture(scope="module")
def stale_ray_tmpdir():
    """A Ray temp dir whose cluster record points at a cluster that is gone (what `ray start` leaves behind)."""
    root = Path(tempfile.mkdtemp(prefix="tl-", dir="/tmp"))  # short: Ray's socket paths live under it
    (root / "ray").mkdir()
    (root / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def user_env(ray_tmpdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # the embedded default
    return env | {"RAY_TMPDIR": str(ray_tmpdir)}


def test_reprocess_prints_only_trapline_lines(tmp_path, stale_ray_tmpdir):
    store = ModelStore(str(tmp_path / "store"), cache_dir=str(tmp_path / "cache"))
    store.publish(brightness_model(tmp_path / "m.onnx"), "trapcam", "1", brightness_config())
    archive = write_local(build_archive(), tmp_path / "archive")
    proc = subprocess.run(
        [sys.executable, "-m", "trapline.cli", "reprocess", "--archive", str(archive), "--out", str(tmp_path / "out"),
         "--model", "trapcam:1", "--store", store.root, "--limit", "6"],
        cwd=REPO, env=user_env(stale_ray_tmpdir), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "processed 6:" in proc.stdout and "processed 6/6 (100%)" in proc.stderr
    assert ray_lines(proc.stdout + proc.stderr) == []
    logs = named_logs_dir(proc.stderr)
    # its own Ray, started under the stale temp dir: the dead cluster on record was passed over, not waited for (a
    # wait would be Ray's minutes of retries: the run's own timeout above, not a time of this machine, bounds it)
    assert logs.is_relative_to(stale_ray_tmpdir)
    [driver_log] = logs.glob("trapline_driver_*.err")
    assert "Started a local Ray instance" in driver_log.read_text()


def _children(root: int) -> set[int]:
    """`root` and every process below it, from /proc."""
    parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        new = {pid for pid, ppid in parent.items() if ppid in tree} - tree
        tree |= new
        grew = bool(new)
    return tree


def _proc_address(hex_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])
    ip = ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return ip.ipv4_mapped or ip


def listening_sockets(root: int) -> list[tuple[str, str, int]]:
    """(process command line, address, port) of every TCP socket in LISTEN state in the process tree."""
    owner: dict[str, str] = {}
    for pid in _children(root):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    owner[target[8:-1]] = cmd
        except OSError:
            continue  # a process that just ended
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            if cols[3] == "0A" and cols[9] in owner:  # 0A: LISTEN
                addr, port = cols[1].split(":")
                found.append((owner[cols[9]], str(_proc_address(addr)), int(port, 16)))
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory, fixture_models, stale_ray_tmpdir):
    """Run `trapline serve` (embedded default) once, from the repo's serve.yaml (sized for a 2-core test machine;
    --store/--model/--port override it): its console output, listening sockets, answers before and after a promote,
    and exit status and what it left behind after SIGTERM (and a second one while it drains)."""
    d = tmp_path_factory.mktemp("quiet-serve")
    store = ModelStore(str(d / "store"), cache_dir=str(d / "cache"))
    store.publish(fixture_models["yolov8"], "fixture", "1", fixture_config("yolov8"))
    store.publish(fixture_models["yolov5"], "fixture", "2", fixture_config("yolov5"))
    store.promote("fixture:1")
    config = yaml.safe_load((REPO / "serve.yaml").read_text())
    args = config["applications"][0]["args"]
    args["http"]["ingress_num_cpus"] = 0.1
    args["models"][0].update(num_cpus=0.25, alias_poll_interval_s=0.5)
    (d / "serve.yaml").write_text(yaml.safe_dump(config))
    port, log_path, mark = free_port(), d / "serve.log", uuid.uuid4().hex
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trapline.cli", "serve", "--config", str(d / "serve.yaml"), "--store", store.root,
             "--model", "fixture", "--port", str(port), "--num-cpus", "2"],
            stdout=log, stderr=subprocess.STDOUT, cwd=d, start_new_session=True,
            env=user_env(stale_ray_tmpdir) | {"TRAPLINE_ADMIN_TOKEN": TOKEN, MARK: mark})
    try:
        def up() -> bool:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            return "Ctrl-C to stop" in log_path.read_text()

        wait_until(up, 240, "trapline serve to come up", interval_s=0.5)
        up_output = log_path.read_text()
        sockets = listening_sockets(proc.pid)
        running = marked(mark)
        running_ports = listening(set(running))
        image = encode(gradient(640, 480))
        before = httpx.post(f"{url}/v1/detect", content=image, timeout=30)
        promote = httpx.post(f"{url}/v1/admin/models/fixture/promote", params={"version": "2"},
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
        after = httpx.post(f"{url}/v1/detect", content=image, timeout=30)
        stopping = StopWatcher(f"{url}/v1/detect", image)
        # The watcher has had an answer before Ctrl-C: on a loaded machine its thread and client could start after
        # the proxy had gone, and every request it sent was refused (seen in CI on 2026-11-28).
        wait_until(lambda: stopping.answers, 30, "the watcher's first answer", interval_s=0.05)
        proc.send_signal(signal.SIGTERM)
        # and again while it drains (a second `docker stop`, an impatient Ctrl-C): ignored, the stop goes on whole
        wait_until(lambda: "shutting down..." in log_path.read_text() or proc.poll() is not None, 60,
                   "the stop to begin", interval_s=0.05)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        returncode = proc.wait(timeout=120)
        leftovers = marked(mark)  # at once: the stop ends what outlived Ray's shutdown before it exits
        stopping.join()
        try:
            httpx.get(f"{url}/healthz", timeout=5)
            gone = False
        except httpx.ConnectError:
            gone = True
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # only the process group this test started
            proc.wait(30)
        for pid in marked(mark):  # what a failed stop leaves is this test's own
            os.kill(pid, signal.SIGKILL)
    return {"port": port, "output": log_path.read_text(), "up_output": up_output, "sockets": sockets,
            "returncode": returncode, "before": before, "promote": promote, "after": after, "gone": gone,
            "while_stopping": stopping.answers,
            "running": running, "running_ports": running_ports, "leftovers": leftovers}


class StopWatcher(threading.Thread):
    """Sends requests one after another while the service stops, until it no longer accepts connections: each
    answer's status and Retry-After, or "refused"."""

    def __init__(self, url: str, image: bytes) -> None:
        super().__init__(daemon=True)
        self.url, self.image, self.answers = url, image, []
        self.start()

    def run(self) -> None:
        deadline = time.monotonic() + 120
        with httpx.Client(timeout=30) as client:
            while time.monotonic() < deadline:
                try:
                    r = client.post(self.url, content=self.image)
                except httpx.HTTPError:
                    self.answers.append("refused")
                    if self.answers[-3:] == ["refused"] * 3:
                        return
                    time.sleep(0.05)
                    continue
                kind = None
                if r.status_code != 200:
                    try:
                        kind = r.json()["error"]["type"]
                    except (ValueError, KeyError, TypeError):
                        kind = f"not trapline's: {r.text[:80]}"
                self.answers.append((r.status_code, r.headers.get("retry-after"), kind))


def test_serve_answers_hot_swaps_on_a_promote_and_stops_on_sigterm(served):
    out = served["up_output"]
    assert f"trapline is up at http://127.0.0.1:{served['port']}" in out and "serving fixture: production -> 1" in out
    assert "admin routes enabled" in out
    r = served["before"]
    assert r.status_code == 200 and r.json()["model"]["version"] == "1" and len(r.json()["detections"]) == 4
    assert served["promote"].status_code == 200, served["promote"].text
    assert served["after"].json()["model"]["version"] == "2"
    assert served["returncode"] == 0, served["output"][-3000:]  # SIGTERM: a clean stop
    assert "stopped" in served["output"]
    assert served["gone"], "the service still answered after SIGTERM"


def test_a_stopped_service_leaves_no_process_and_no_port(served):
    """Ray's processes (GCS, raylet, dashboard and its agents, replicas) are counted while the service runs and right
    after it exited: none is left, and so no port."""
    running, ports, leftovers = served["running"], served["running_ports"], served["leftovers"]
    assert len(running) >= 4 and len(ports) >= 2, (running, ports)  # GCS, raylet, dashboard, agents...
    assert served["returncode"] == 0, served["output"][-3000:]
    assert leftovers == {} and listening(set(leftovers)) == set(), "\n".join(
        [f"{pid}: {cmd[:300]}" for pid, cmd in leftovers.items()] + [served["output"][-2000:]])


def test_while_it_stops_a_request_is_answered_or_refused_with_a_typed_503_never_a_404(served):
    """SIGTERM (or Ctrl-C) closes the replicas' gate first, then Serve's proxy goes with the app's route still in
    place: a request sent meanwhile gets its answer, a 503 not_ready with Retry-After, or no connection."""
    answers = served["while_stopping"]
    assert answers[-1] == "refused" and answers[0] != "refused", answers
    assert {a for a in answers if a != "refused"} <= {(200, None, None), (503, "1", "not_ready")}, answers


def test_serve_starts_its_own_ray_despite_a_stale_record(served, stale_ray_tmpdir):
    assert served["returncode"] == 0, served["output"][-3000:]
    assert f"trapline is up at http://127.0.0.1:{served['port']}" in served["output"]
    assert named_logs_dir(served["output"]).is_relative_to(stale_ray_tmpdir)


def test_serve_output_is_quiet_from_start_to_stop(served):
    out = served["output"]
    assert ray_lines(out) == [], "\n".join(ray_lines(out))
    assert out.rstrip().endswith("stopped") and "shutting down..." in out


# The one non-loopback socket, named in SECURITY.md (not bound to loopback: it cannot be): Ray Serve 2.60
# starts each replica's inter-deployment gRPC server on "[::]:0", hard-coded in
# ray/serve/_private/replica.py (`add_port_to_grpc_server(self._server, "[::]:0")`) with no setting to
# change it; it carries Ray's token-auth interceptor. Everything else must be loopback.
def _serve_replica_wildcard(cmd: str, address: str) -> bool:
    return cmd.startswith("ray::ServeReplica") and address == "::"


def test_every_ray_port_listens_on_loopback(served):
    sockets = served["sockets"]
    assert any(cmd.startswith("ray::ProxyActor") and port == served["port"] for cmd, _, port in sockets), sockets
    assert any("gcs_server" in cmd for cmd, _, _ in sockets) and any("raylet" in cmd for cmd, _, _ in sockets)
    exposed = [s for s in sockets if not ipaddress.ip_address(s[1]).is_loopback and not _serve_replica_wildcard(*s[:2])]
    assert exposed == [], exposed
    # The exception is stated where users read about exposure, with why it is safe and how to firewall it.
    security = (REPO / "SECURITY.md").read_text()
    assert "inter-deployment gRPC port" in security and "token" in security and "firewall" in security
