"""`trapline antenna work`: pull mode (Antenna's "PSv2" task API), through a running trapline service's door.

Antenna's contract (ami/jobs/views.py, ami/ml/views.py): register the pipelines with a project (`POST
/projects/{id}/pipelines/`), poll for the project's async jobs on them, reserve tasks (`POST /jobs/{id}/tasks/`, a
NATS reservation redelivered after NATS_TASK_TTR unless answered), answer each with a PipelineResultsResponse or
`{"error", "image_id"}` (`POST /jobs/{id}/result/`). The images go through the door's `/trapline/process/images`:
the same fetch, ingress `detect` and mapping as push mode's `/process`, one answer per image.

Exactly once: a batch's results are posted once and never re-posted (a post that failed on the wire may have been
taken; NATS redelivers what Antenna did not save). On SIGTERM the worker takes no new tasks, finishes the batches it
holds and posts them, then exits; a second signal exits at once, leaving what it held for redelivery. A door that
cannot answer (down, 5xx) leaves the batch for redelivery too: only an image's own failure is answered as an error.
A worker killed hard posts nothing of what it held: Antenna redelivers those tasks after its NATS_TASK_TTR to the next
worker, which finds the job whichever detector version it runs on (it polls every slug the door answers, earlier
detector versions' included). An image the door answered twice that way is recorded once (serve/antenna/records.py).
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ground.env import secret
from ground.errors import ServiceRequestError, UserError
from ground.every import Every
from serve.antenna.protocol import Task, TaskError, TaskResult
from serve.antenna_config import AntennaWorkOptions

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]


@dataclass
class WorkReport:
    """What one worker run did."""

    project: int
    pipelines: list[str] = field(default_factory=list)
    registrations: int = 0
    batches: int = 0
    tasks_answered: int = 0
    tasks_failed: int = 0
    tasks_left: int = 0  # taken and not answered: Antenna redelivers them
    detections: int = 0
    seconds: float = 0.0
    stopped_by: str = ""

    @property
    def images_per_s(self) -> float:
        return self.tasks_answered / self.seconds if self.seconds else 0.0


def format_report(r: WorkReport) -> str:
    return (f"antenna project {r.project}: {r.tasks_answered} task(s) answered ({r.tasks_failed} as errors), "
            f"{r.detections} detection(s) in {r.batches} batch(es), {r.images_per_s:.2f} images/s over "
            f"{r.seconds:.1f}s; pipelines {', '.join(r.pipelines) or 'none'} (registered {r.registrations}x)"
            + (f"; {r.tasks_left} task(s) left for redelivery" if r.tasks_left else "")
            + (f"; stopped: {r.stopped_by}" if r.stopped_by else ""))


class _Http:
    def __init__(self, base: str, authorization: str | None = None, timeout_s: float = 60.0) -> None:
        headers = {"Accept": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        # trust_env=False: both ends are named explicitly; a proxy from the environment must not intercept them
        self.client = httpx.Client(base_url=base.rstrip("/"), headers=headers, timeout=timeout_s, trust_env=False)

    def call(self, method: str, path: str, payload: Any = None, timeout_s: float | None = None) -> Any:
        kw: dict[str, Any] = {} if timeout_s is None else {"timeout": timeout_s}
        response = self.client.request(method, path, json=payload, **kw)
        if response.status_code >= 400:
            raise ServiceRequestError(f"{method} {self.client.base_url}{path} answered HTTP {response.status_code}: "
                                      f"{response.text[:400]}")
        return response.json() if response.content else None


class Worker:
    """Lifecycle: built with the options (the token read there), `run()` registers, then `streams` threads each
    poll -> reserve -> process -> post until stopped (`stop()`, SIGTERM, `max_seconds`, or idle when asked)."""

    def __init__(self, options: AntennaWorkOptions, progress: Progress | None = None) -> None:
        try:
            token = options.token or secret(options.token_env)
            door_secret = secret(options.service_secret_env)  # the door's antenna.secret_env, when it has one
        except ValueError as exc:
            raise UserError(str(exc)) from None
        if not token:
            raise UserError(f"no Antenna token: give --token or set ${options.token_env} (or "
                            f"${options.token_env}_FILE)")
        self.options = options
        self.progress = progress or (lambda line: None)
        self.antenna = _Http(options.api, f"Token {token}")
        self.door = _Http(options.service, f"Bearer {door_secret}" if door_secret else None, timeout_s=600.0)
        self.client_info = {"hostname": socket.gethostname(), "software": "trapline", "version": "1",
                            "service": options.service}
        self.stopping = threading.Event()  # take no new tasks
        self.report = WorkReport(project=options.project)
        self._lock = threading.Lock()
        self._registered: str | None = None  # the /info pipelines last registered, as JSON
        self._slugs: list[str] = []  # the jobs polled for: every slug registered by this run or the door answers
        self._registration_check = Every(options.poll_interval_s)
        self.batch_size = options.batch_size or int(self.door.call("GET", "/trapline/sizing")["batch_size"])

    def stop(self, reason: str = "stopped") -> None:
        if not self.stopping.is_set():
            self.report.stopped_by = reason
            self.stopping.set()

    # -- registration ---------------------------------------------------------------------------------------------
    def register(self, force: bool = False) -> None:
        """Register the door's /info pipelines when they changed (a promotion: new algorithm versions)."""
        with self._lock:
            if force:
                self._registration_check.reset()
            if not self._registration_check.take():
                return
            pipelines = self.door.call("GET", "/info", timeout_s=10.0)["pipelines"]
            seen = json.dumps(pipelines, sort_keys=True)
            if seen == self._registered:
                return
            # and the jobs of every slug the door answers: a worker started after a promotion still answers the
            # jobs Antenna runs on the earlier detector's pipeline (registered by whoever ran before it)
            answerable = self.door.call("GET", "/trapline/slugs", timeout_s=10.0)
            self.antenna.call("POST", f"/projects/{self.options.project}/pipelines/", {
                "processing_service_name": self.options.service_name, "pipelines": pipelines,
                "client_info": self.client_info})
            self._registered = seen
            self.report.pipelines = list(dict.fromkeys([*self.report.pipelines, *(p["slug"] for p in pipelines)]))
            self._slugs = list(dict.fromkeys([*self.report.pipelines, *answerable]))
            self.report.registrations += 1
        self.progress(f"registered {', '.join(p['slug'] for p in pipelines)} with Antenna project "
                      f"{self.options.project}")

    # -- one batch ------------------------------------------------------------------------------------------------
    def jobs(self) -> list[dict[str, Any]]:
        query = httpx.QueryParams({"ids_only": 1, "incomplete_only": 1, "dispatch_mode": "async_api",
                                   "pipeline__slug__in": ",".join(self._slugs), "limit": 10})
        body = self.antenna.call("GET", f"/jobs/?{query}", timeout_s=30.0)
        return list(body.get("results", [])) if isinstance(body, dict) else []

    def batch(self, job: dict[str, Any]) -> int:
        """Reserve, process and answer one batch of `job`; returns how many tasks it took."""
        job_id, slug = job["id"], job["pipeline_slug"]
        body = self.antenna.call("POST", f"/jobs/{job_id}/tasks/", {"batch_size": self.batch_size,
                                                                    "client_info": self.client_info})
        tasks = [Task.model_validate(t) for t in body.get("tasks", [])]
        if not tasks:
            return 0
        self.progress(f"job {job_id} ({slug}): {len(tasks)} task(s) taken")
        t0 = time.perf_counter()
        try:
            answer = self.door.call("POST", "/trapline/process/images", {
                "pipeline": slug, "source_images": [{"id": str(t.image_id), "url": t.image_url} for t in tasks]})
        except (httpx.HTTPError, ServiceRequestError) as exc:
            self._left(len(tasks), f"job {job_id}: the door did not answer ({exc}); "
                                   f"{len(tasks)} task(s) left for redelivery")
            return len(tasks)
        by_id = {a["id"]: a for a in answer["images"]}
        results, failed, detections = [], 0, 0
        for t in tasks:
            image = by_id.get(str(t.image_id), {"error": {"type": "missing", "message": "the door left it out"}})
            if image.get("result") is not None:
                result: Any = image["result"]
                detections += len(result["detections"])
            else:
                failed += 1
                result = TaskError(error=f"{image['error']['type']}: {image['error']['message']}",
                                   image_id=str(t.image_id))
            results.append(TaskResult(reply_subject=t.reply_subject, result=result).model_dump(mode="json"))
        try:  # once: never re-posted (see the module docstring)
            self.antenna.call("POST", f"/jobs/{job_id}/result/", {"results": results,
                                                                  "client_info": self.client_info})
        except (httpx.HTTPError, ServiceRequestError) as exc:
            self._left(len(tasks), f"job {job_id}: posting {len(tasks)} result(s) failed ({exc}); not re-posted")
            return len(tasks)
        with self._lock:
            self.report.batches += 1
            self.report.tasks_answered += len(tasks)
            self.report.tasks_failed += failed
            self.report.detections += detections
        self.progress(f"job {job_id} ({slug}): {len(tasks)} task(s) answered in {time.perf_counter() - t0:.2f}s, "
                      f"{detections} detection(s)" + (f", {failed} as errors" if failed else ""))
        return len(tasks)

    def _left(self, n: int, line: str) -> None:
        with self._lock:
            self.report.tasks_left += n
        self.progress(line)

    # -- the loop -------------------------------------------------------------------------------------------------
    def _stream(self, deadline: float | None) -> None:
        while not self.stopping.is_set():
            if deadline is not None and time.monotonic() > deadline:
                self.stop("max_seconds")
                break
            try:
                self.register()
                jobs = self.jobs()
                if not jobs and self.options.exit_when_idle:
                    self.stop("idle")
                    break
                took = sum(self.batch(job) for job in jobs if not self.stopping.is_set())
            except (httpx.HTTPError, ServiceRequestError) as exc:
                self.progress(f"antenna: {exc}; retrying in {self.options.poll_interval_s:g}s")
                took = 0
            if not took:
                self.stopping.wait(self.options.poll_interval_s)

    def run(self) -> WorkReport:
        t0 = time.monotonic()
        self.register(force=True)
        deadline = t0 + self.options.max_seconds if self.options.max_seconds else None
        self.progress(f"taking tasks in batches of {self.batch_size} ({self.options.streams} stream(s)) from "
                      f"{self.options.api}")
        threads = [threading.Thread(target=self._stream, args=(deadline,), name=f"antenna-stream-{i}", daemon=True)
                   for i in range(self.options.streams)]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)  # short joins: the main thread stays free for signals
        self.report.seconds = round(time.monotonic() - t0, 3)
        return self.report


def run_worker(options: AntennaWorkOptions, progress: Progress | None = None) -> WorkReport:
    """The command's runner: SIGTERM/SIGINT stop taking tasks and finish the batches held; a second one kills."""
    worker = Worker(options, progress)

    def on_signal(signum: int, _frame: Any) -> None:
        if worker.stopping.is_set():  # the second signal: what is held is left for redelivery
            raise SystemExit(128 + signum)
        worker.stop(signal.Signals(signum).name)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
    return worker.run()
