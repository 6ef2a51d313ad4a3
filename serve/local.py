"""Start the service on a local Ray (or an existing cluster), wait until it is ready, tear it down after.

    with run_local(ServeConfig(store="./models", models=[{"name": "demo-detector"}])) as url:
        httpx.post(f"{url}/v1/detect", content=jpeg_bytes)
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from ground.env import RAY_ADDRESS
from ground.errors import ServeConfigError, ServeStartError
from ground.ray_runtime import ensure_ray, shutdown_ray
from serve import APP_NAME, is_trapline_app
from serve.config import ServeConfig, parse_serve_config
from serve.config_files import trapline_app
from serve.fit import fit_error, local_node
from serve.placement import Ask, PlacementWatch, config_asks, with_overrides
from serve.polling import wait_until
from serve.stopping import stop_apps

logger = logging.getLogger(__name__)

# Builds a Serve application from a validated config and the environment its tokens are read from.
AppBuilder = Callable[[ServeConfig, "Mapping[str, str] | None"], Any]
# Told each reason a replica cannot be placed, once, while a service waits to be ready (`trapline serve` prints it).
Unplaced = Callable[[str], None]
_EXCEPTION_PREFIX = re.compile(r"^(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception): ")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host`."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    """Fail fast (instead of a proxy that never binds) when something already listens on host:port."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
            s.bind((host, port))
    except OSError as exc:
        raise ServeStartError(f"cannot serve HTTP on {host}:{port}: {exc.strerror}; pick another --port") from None


def running_http_options() -> tuple[str, int] | None:
    """(host, port) of the Serve proxies already running on the connected cluster, or None."""
    # Serve's HTTP options are cluster-wide and fixed once Serve starts, so when it is already
    # running we must use its port, not ours. The client is a private API, hence this one place.
    from ray.serve.context import _get_global_client

    client = _get_global_client(raise_if_no_controller_running=False)
    if client is None:
        return None
    return client.http_config.host, client.http_config.port


def client_url(host: str, port: int, route_prefix: str = "/") -> str:
    """The base URL a client on this machine uses (a wildcard bind address is reached on loopback)."""
    host = "127.0.0.1" if host in ("0.0.0.0", "", None) else "[::1]" if host == "::" else host
    return f"http://{host}:{port}{route_prefix.rstrip('/')}"


def wait_ready(base_url: str, timeout_s: float = 300.0, alive: Callable[[], bool] | None = None) -> None:
    """Poll GET {base_url}/readyz until it answers 200; with `alive` (e.g. a service process's `poll() is None`),
    give up at once when it says the service is gone, since a service that exited will never answer."""
    import httpx

    last = "no answer"

    def ready() -> bool:
        nonlocal last
        if alive is not None and not alive():
            raise ServeStartError(f"the service exited before {base_url}/readyz answered 200; last answer: {last}")
        try:
            r = httpx.get(f"{base_url}/readyz", timeout=10.0, trust_env=False)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
            return False
        last = f"{r.status_code} {r.text[:300]}"
        return r.status_code == 200

    try:
        wait_until(ready, timeout_s, f"{base_url}/readyz", interval_s=0.2)
    except TimeoutError as exc:
        raise ServeStartError(f"{exc}; last answer: {last}") from None


@contextmanager
def serve_session(host: str, port: int, *, address: str | None = None, num_cpus: int | None = None,
                  request_timeout_s: float | None = None,
                 direct_ingress: bool = False) -> Iterator[tuple[str, int, bool]]:
    """Ray + Serve for the duration of the block; yields (host, port, ends_serve): where the HTTP proxies listen,
    and whether Serve ends with the block (this call started it).

    Connects to `address` (or $RAY_ADDRESS), else starts a local Ray on loopback. Starts Serve
    with host/port (port 0: a free one) unless Serve already runs, whose port is then used.
    Shuts down only what it started. `direct_ingress` starts a local Ray with Serve's direct ingress on
    (`direct_urls`); a running cluster has it on or off already.
    """
    # late: the CLI imports this module for `trapline --help`; Ray loads once a service runs
    from ray import serve

    # The local Ray runs its dashboard (on 127.0.0.1, token auth on): its job server runs /v1/jobs (batch/jobs/).
    started_ray = ensure_ray(address, num_cpus=num_cpus, env=direct_ingress_env() if direct_ingress else None,
                             include_dashboard=True)
    started_serve = False
    try:
        running = running_http_options()
        if running is None:
            port = port or free_port(host if host not in ("0.0.0.0", "::") else "127.0.0.1")
            if started_ray:  # the proxy will bind on this machine
                check_port_free(host, port)
            options: dict[str, Any] = {"host": host, "port": port}
            if request_timeout_s:
                options["request_timeout_s"] = request_timeout_s
            serve.start(http_options=options)
            started_serve = True
        else:
            if port and running != (host, port):
                logger.warning("Serve already runs on %s:%s; using it instead of %s:%s", *running, host, port)
            host, port = running
        yield host, port, started_serve
    finally:
        if started_serve:
            serve.shutdown()
        if started_ray:
            shutdown_ray()


def starts_local_ray(address: str | None) -> bool:
    """Whether `serve_session(address=...)` starts a local Ray (rather than joining a running one)."""
    import ray  # late: the CLI imports this module for `trapline --help`

    address = address or RAY_ADDRESS.get()
    return not ray.is_initialized() and (not address or address == "local")


def check_fits(asks: list[Ask], address: str | None, num_cpus: int | None) -> bool:
    """Refuse, before Ray starts, a config whose replicas cannot fit the local Ray it would start (serve/fit.py: CPUs,
    GPUs, memory, custom resources); returns whether a local Ray will be started."""
    local = starts_local_ray(address)
    if local and (reason := fit_error(asks, local_node(num_cpus))):
        raise ServeConfigError(reason)
    return local


def direct_ingress_env() -> dict[str, str]:
    """What a local Ray needs for Serve's direct ingress (read by Serve's controller and replicas when they
    start). A replica that stops waits for balancers to take it out of rotation first, 30 s by default;
    a local Ray has no balancer and stops with its `trapline serve`, so 2 s unless the caller set it."""
    drain = "RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"
    return {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1", drain: os.environ.get(drain, "2")}


def direct_urls(app_name: str = APP_NAME) -> list[str]:
    """Base URLs of `app_name`'s ingress replicas when Serve's direct ingress is on; [] when it is off.

    Each replica listens on its own port there, so a client (or a balancer such as HAProxy in front
    of several replicas) reaches the app with no proxy hop. Read from the Serve controller's target
    groups: Serve 2.60 has no public call for them yet (`TargetGroup` is an alpha schema)."""
    # late: the CLI imports this module for `trapline --help`; Ray loads once a service runs
    import ray
    from ray.serve._private.common import RequestProtocol
    from ray.serve.context import _get_global_client

    groups = ray.get(_get_global_client()._controller.get_target_groups.remote(app_name))
    urls = []
    for group in groups:
        if group.ingress_deployment_name and group.protocol == RequestProtocol.HTTP:  # proxy groups have none
            prefix = group.route_prefix.rstrip("/")
            urls += [f"http://{t.ip}:{t.port}{prefix}" for t in group.targets]
    return sorted(urls)


def deploy_failure(app_name: str) -> str | None:
    """Why an app failed to deploy, from the replicas' own errors (the last line of each traceback)."""
    # late: the CLI imports this module for `trapline --help`; Ray loads once a service runs
    from ray import serve

    app = serve.status().applications.get(app_name)
    if app is None:
        return None
    reasons = []
    for name, dep in app.deployments.items():
        if dep.status in ("DEPLOY_FAILED", "UNHEALTHY") and dep.message:
            last = [line for line in dep.message.strip().splitlines() if line.strip()][-1].strip()
            # "serve.versions.ModelUnavailableError: cannot serve ..." -> the message, which says it all
            reasons.append(f"{name}: {_EXCEPTION_PREFIX.sub('', last)}")
    return f"Serve app {app_name!r} failed to deploy: " + "; ".join(reasons) if reasons else None


@contextmanager
def run_local(config: ServeConfig | Mapping[str, Any], *, address: str | None = None, num_cpus: int | None = None,
              app_name: str = APP_NAME, route_prefix: str = "/", ready_timeout_s: float = 300.0,
              environ: Mapping[str, str] | None = None, builder: AppBuilder | None = None,
              on_unplaced: Unplaced | None = None) -> Iterator[str]:
    """Deploy a trapline app from a ServeConfig and yield its base URL once /readyz is 200.

    Ray and Serve are started as in `serve_session` (and stopped after if this call started
    them); the app is deleted on exit. `environ` is where the tokens are read (default os.environ).
    `builder(config, environ)` builds the app: by default the online door alone (serve.app.build_app); the whole
    service, with the jobs and the console, is trapline.service.build_service (what `trapline serve` runs).
    A config that cannot fit the local Ray this call would start is refused before it starts (ServeConfigError);
    a replica that cannot be placed is told to `on_unplaced` (and logged) within ~15 s, and fails the start at once
    on a local Ray (nothing will make room there), else after `ready_timeout_s` with its reason.

    Nine parameters: the config, then eight keyword-only settings of the same kind as `serve.run`'s (which Ray
    Serve also takes as keywords): where Ray is (`address`, `num_cpus`), how the app is named and mounted
    (`app_name`, `route_prefix`, `builder`), how long and how loudly to wait (`ready_timeout_s`, `on_unplaced`) and
    where the tokens are (`environ`). Each caller (the CLI, the demo, the benchmarks, the tests) sets one or two of
    them and leaves the rest to their defaults; a bundle would only be built to be unpacked here.
    """
    # late: the CLI imports this module for `trapline --help`; Ray loads once a service runs
    from ray import serve

    # serve.app builds the deployments (Ray, FastAPI): imported when an app is deployed, not by the CLI
    from serve.app import build_app

    cfg = parse_serve_config(dict(config) if isinstance(config, Mapping) else config)
    app = (builder or build_app)(cfg, environ)  # validate and read tokens before starting anything
    local = check_fits(config_asks(cfg), address, num_cpus)
    with serve_session(cfg.http.host, cfg.http.port, address=address, num_cpus=num_cpus,
                       request_timeout_s=cfg.http.request_timeout_s,
                       direct_ingress=cfg.http.direct_ingress) as (host, port, serve_ends):
        up = False
        try:
            # Not serve.run: it waits forever when a replica cannot be scheduled (e.g. more CPUs
            # asked than the machine has); we wait with a timeout and say why.
            serve.run_many([serve.RunTarget(target=app, name=app_name, route_prefix=route_prefix)],
                           wait_for_applications_running=False)
            wait_app_running(app_name, ready_timeout_s, cfg, on_unplaced, fail_unplaced=local)
            base_url = client_url(host, port, route_prefix)
            wait_ready(base_url, ready_timeout_s)
            up = True
            yield base_url
        finally:
            stop_apps([app_name], app_name, up, serve_ends)


def deploy_config(serve_config: Mapping[str, Any]) -> None:
    """Apply a Ray Serve config (the serve.yaml format) to the running Serve, as `serve deploy` does.

    Unlike `serve.run`, this is Serve's declarative path: a change limited to a deployment's
    `user_config`, `num_replicas`, `autoscaling_config` or `max_ongoing_requests` (under the
    app's `deployments:` overrides) updates the running replicas in place.
    """
    # late: the CLI imports this module for `trapline --help`; Ray loads once a service runs
    from ray.serve.context import _get_global_client
    from ray.serve.schema import ServeDeploySchema

    for app in serve_config.get("applications") or []:  # fail here, with our messages, not in a build task
        if is_trapline_app(app):
            parse_serve_config(app.get("args") or {}, f"application {app.get('name')!r}")
    _get_global_client().deploy_apps(ServeDeploySchema.model_validate(dict(serve_config)))


def wait_app_running(name: str, timeout_s: float = 300.0, cfg: ServeConfig | None = None,
                     on_unplaced: Unplaced | None = None, fail_unplaced: bool = False) -> None:
    """Wait until the Serve app is RUNNING; raise ServeStartError with Serve's reasons if it fails or times out.

    Replicas Ray cannot place (serve/placement.py) are told to `on_unplaced` once each, within ~15 s; with
    `fail_unplaced` (a local Ray, where nothing will make room) they fail the start at once."""
    # late: the CLI imports this module for `trapline --help`; Ray loads once a service runs
    from ray import serve

    watch, told = PlacementWatch(name, cfg), set()

    def running() -> bool:
        app = serve.status().applications.get(name)
        if app is not None and app.status in ("DEPLOY_FAILED", "UNHEALTHY"):
            raise ServeStartError(deploy_failure(name) or f"Serve app {name!r} is {app.status}: {app.message}")
        if app is not None and app.status == "RUNNING":
            return True
        for reason in watch.check().values():
            if fail_unplaced:
                raise ServeStartError(reason)
            if reason not in told and on_unplaced is not None:
                on_unplaced(reason)
            told.add(reason)
        return False

    try:
        wait_until(running, timeout_s, f"Serve app {name!r} to be RUNNING", interval_s=0.2)
    except TimeoutError as exc:
        if watch.reasons:
            raise ServeStartError(f"{exc}: " + "; ".join(watch.reasons.values())) from None
        app = serve.status().applications.get(name)
        waiting = [f"{dep_name}: {dep.status} {dep.message}".strip() for dep_name, dep in
                   (app.deployments.items() if app else []) if dep.status != "HEALTHY"]
        raise ServeStartError(f"{exc}; " + ("; ".join(waiting) or "no deployment reported a reason")) from None


@contextmanager
def run_config(serve_config: Mapping[str, Any], *, address: str | None = None, num_cpus: int | None = None,
               ready_timeout_s: float = 300.0, on_unplaced: Unplaced | None = None) -> Iterator[str]:
    """Deploy a whole Ray Serve config (what `serve run serve.yaml` does) and yield the trapline app's URL.

    Honours everything in the file (deployments overrides, runtime_env, other apps); the
    file's `http_options` host/port apply when Serve is not already running.
    """
    app = trapline_app(dict(serve_config))
    http = dict(serve_config.get("http_options") or {})
    names = [a.get("name", "default") for a in serve_config["applications"]]
    direct = bool(((app.get("args") or {}).get("http") or {}).get("direct_ingress"))
    cfg = parse_serve_config(app.get("args") or {}, f"application {app.get('name')!r}")
    local = check_fits(with_overrides(config_asks(cfg), app.get("deployments")), address, num_cpus)
    with serve_session(http.get("host", "127.0.0.1"), http.get("port", 8000), address=address,
                       num_cpus=num_cpus, request_timeout_s=http.get("request_timeout_s"),
                       direct_ingress=direct) as (host, port, serve_ends):
        up = False
        try:
            deploy_config(serve_config)
            for name in names:
                wait_app_running(name, ready_timeout_s, cfg if name == app.get("name", "default") else None,
                                 on_unplaced, fail_unplaced=local)
            base_url = client_url(host, port, app.get("route_prefix", "/"))
            wait_ready(base_url, ready_timeout_s)
            up = True
            yield base_url
        finally:
            stop_apps(names, app.get("name", "default"), up, serve_ends)
