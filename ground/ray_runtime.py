"""Connect to a Ray cluster, or start the embedded local default, with safe settings."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ground import ray_leftovers, ray_output, stops
from ground.env import RAY_ADDRESS
from ground.errors import RayUnreachableError

logger = logging.getLogger(__name__)

# Seconds to wait for a TCP connection to a given cluster's address before saying it is unreachable.
PROBE_TIMEOUT_S = 3.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# Ray's own switches for a local Ray, unless the environment sets them. A raylet stops an idle worker one second
# after it goes idle whenever more workers are alive than the node has CPUs, and on a small machine a job's actors
# alone are more than that (the pool's detectors and Ray Data's three helpers; a service's replicas, controller and
# proxy): every read and write task of a job then started a new Python worker, about two CPU seconds each, several a
# minute (counted during a run at 1,000,000 images). Idle workers now wait a minute before they go.
LOCAL_RAY_ENV = {"RAY_idle_worker_killing_time_threshold_ms": "60000"}


def ensure_ray(address: str | None = None, num_cpus: int | None = None, env: Mapping[str, str] | None = None,
               **kwargs: Any) -> bool:
    """Connect to `address` (or $RAY_ADDRESS) if given, else start a new local Ray on loopback.

    Returns True when this call started a local instance (the caller should stop it with
    `shutdown_ray`). Without an address this always starts its own Ray, never joining the
    cluster a past `ray start` left on record (a dead one would hang ray.init for minutes).
    Every port of that local Ray listens on 127.0.0.1 only; token authentication stays on
    (Ray's default). A given address that does not answer fails within seconds
    (`RayUnreachableError`). In quiet mode (`ray_output.set_quiet`) Ray's console output goes
    to a file in the session's log directory. `env` is added to the environment of a local Ray's
    processes (Ray's own switches, read when each process starts); it cannot reach a running cluster.
    """
    # Ray loads on first use: every CLI command imports this module, most never start Ray
    import ray

    if ray.is_initialized():
        return False
    include_dashboard = kwargs.pop("include_dashboard", False)  # a local Ray's only: a cluster has its own or none
    address = address or RAY_ADDRESS.get()
    if address == "local":
        address = None
    loopback = check_reachable(address) if address else True
    if ray_output.is_quiet():
        kwargs.setdefault("log_to_driver", False)  # workers' output stays in their own log files
    ray_output.capture_start()
    try:
        if address:
            if loopback:
                _present_token()
            with _loopback_only() if loopback else contextlib.nullcontext(), stops.ray_start():
                _connect(address, **kwargs)
        else:
            secure_token_file()  # before ray.init, which would write a new token world-readable
            ports = _dashboard_ports() if include_dashboard else contextlib.nullcontext({})
            with (_loopback_only(), _interruptible_children(), _environ(local_ray_env(env)), ports as dashboard,
                  stops.ray_start()):
                ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1",
                         dashboard_host="127.0.0.1", include_dashboard=include_dashboard, **dashboard,
                         **kwargs)
    except BaseException:
        if not address:  # a start cut short (Ctrl-C, SIGTERM, a failure): what it started goes with it
            _stop_partial_start()
        ray_output.release()
        raise
    ray_output.capture_attach(_logs_dir())
    return not address


def _stop_partial_start() -> None:
    """Stop what a local Ray's start that did not finish had started (its GCS, raylet, dashboard, agents)."""
    import ray  # late: as ensure_ray's, which alone calls this

    leftovers = ray_leftovers.ray_processes()
    try:
        ray.shutdown()
    except Exception as exc:  # noqa: BLE001 - half-started: what Ray cannot stop, reap below ends
        logger.debug("ray.shutdown after a cut-short start: %s", exc)
    ray_leftovers.end_leftovers(leftovers)


def local_ray_env(env: Mapping[str, str] | None) -> dict[str, str]:
    """What a local Ray's processes are started with beyond the caller's environment: `LOCAL_RAY_ENV` where the
    environment does not set it, then `env`."""
    return {**{k: v for k, v in LOCAL_RAY_ENV.items() if k not in os.environ}, **(env or {})}


def token_file() -> Path | None:
    """The file Ray reads its auth token from: $RAY_AUTH_TOKEN_PATH, else ~/.ray/auth_token (None when the
    token is given in $RAY_AUTH_TOKEN, or token auth is explicitly off)."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_MODE", "token").lower() != "token":
        return None
    return Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")


def _present_token() -> None:
    """Joining a loopback cluster (one started like the embedded default, e.g. by a running `trapline serve`):
    present this user's token when the mode is not set.

    Such a Ray requires the token, but ray.init given an explicit address enables token mode only when
    RAY_AUTH_MODE says so (Ray turns it on by itself only for a cluster it finds without an address), so the
    driver would send none and be refused ("Authentication token is missing") after retrying for 20 s. Ray's
    own helper (a private API: there is no public one) turns token mode on when a token is at hand and the
    mode is unset; an explicit RAY_AUTH_MODE is left as it is. Remote clusters keep the documented way
    (`export RAY_AUTH_MODE=token`)."""
    # Ray loads on first use: every CLI command imports this module, most never start Ray
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


def secure_token_file() -> Path | None:
    """Make sure the token a local Ray will use is readable by this user alone (mode 0600).

    Ray 2.5x turns token auth on for a new local cluster and, when no token exists, writes one to
    ~/.ray/auth_token with the process umask: 0644 on most systems, so any local user could read it and
    join the cluster (run code as this user). trapline writes the token first, created 0600 in a 0700
    directory (the same 256-bit form Ray generates), and narrows a token file an earlier Ray left readable
    by others. Returns the token file, or None when there is none to look after."""
    path = token_file()
    if path is None:
        return None
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process wrote it meanwhile: narrowed below
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    st = path.stat()
    if st.st_mode & 0o077 and st.st_uid == os.getuid():
        path.chmod(0o600)
    return path


@contextlib.contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    """`env` in os.environ while the block runs (the local Ray's processes inherit it), then as it was."""
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _interruptible_children() -> Iterator[None]:
    """Start Ray's processes with SIGINT at its default even when this process ignores it.

    Ray cancels a running task (a failed job's part writes, `ray.cancel`) by interrupting the worker's
    main thread, which does nothing where SIGINT is ignored. A command started in the background by a
    non-interactive shell (`trapline reprocess ... &` in a script, many schedulers) inherits SIGINT
    ignored and would pass that on to the raylet and every worker: measured, `ray.cancel` then had no
    effect in 20 s against 0.2 s. Handled signals are reset to the default in a child, ignored ones are
    not, so the driver handles SIGINT while Ray starts and ignores it again after: its own disposition
    is the caller's.
    """
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    if not ignored or threading.current_thread() is not threading.main_thread():  # only the main thread may set it
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _dashboard_ports() -> Iterator[dict[str, int]]:
    """Free ports for a local Ray's dashboard and its job agent, instead of Ray's fixed defaults (8265, 52365).

    With another Ray on the machine (a test session's, a second `trapline serve`) the fixed ports are taken: the
    dashboard then runs, but its agent cannot bind its HTTP port and every job submission fails ("No available
    agent to submit job"). ray.init takes the dashboard's port but not the agent's, which only Ray's RayParams
    default sets (a private API: there is no public one), so that default is replaced while ray.init runs."""
    from ray._private import parameter  # late: Ray's private module, only when a local Ray starts here

    original = parameter.RayParams.__init__
    agent_port = _free_port()

    def init(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("dashboard_agent_listen_port", agent_port)
        original(self, *args, **kw)

    parameter.RayParams.__init__ = init
    try:
        yield {"dashboard_port": _free_port()}
    finally:
        parameter.RayParams.__init__ = original


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shutdown_ray() -> None:
    """Stop the Ray this process started (or leave the cluster it joined) and give stderr back; what of a local Ray
    outlives its shutdown (its agents) is ended (ground/ray_leftovers.py), so every stop leaves nothing."""
    # Ray loads on first use: every CLI command imports this module, most never start Ray
    import ray

    leftovers = ray_leftovers.ray_processes()  # before: once the raylet is gone, its agents are PID 1's
    try:
        ray.shutdown()
    finally:
        ray_output.release()
        ray_leftovers.end_leftovers(leftovers)


def check_reachable(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Raise RayUnreachableError unless a gRPC server answers at the cluster's address.

    Ray itself retries a dead address for minutes with only warnings; this answers in seconds.
    Returns True when the cluster answers on loopback only (one started like the embedded
    default): Ray would dial a loopback address at the machine's address, so the caller must
    keep it loopback.
    """
    try:
        host, port = _dial_target(address)
    except (ConnectionError, ValueError) as exc:  # "auto" with no cluster on record, or a malformed address
        raise RayUnreachableError(address, str(exc).strip().splitlines()[0]) from None
    try:
        _probe(address, host, port, timeout_s)
        return False
    except RayUnreachableError:
        written = address.removeprefix("ray://").split("/", 1)[0].rpartition(":")[0].strip("[]")
        if written not in LOOPBACK_HOSTS or written == host:
            raise
        _probe(address, written, port, timeout_s)
        return True


def _probe(address: str, host: str, port: int, timeout_s: float) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as conn:
            answered = _speaks_grpc(conn)
    except TimeoutError:
        answered = False
    except OSError as exc:
        raise RayUnreachableError(address, f"{host}:{port}: {exc.strerror or exc}") from None
    if not answered:
        raise RayUnreachableError(address, f"no Ray (gRPC) answer from {host}:{port} within {timeout_s:g} s")


def _speaks_grpc(conn: socket.socket) -> bool:
    """Whether the server answers an HTTP/2 preface with a SETTINGS frame, as Ray's gRPC servers do.

    A bare TCP connect is not enough: firewalls and proxies that accept every connection would
    pass it, and ray.init would then wait for its own timeouts. With Ray's TLS on, the server
    expects a TLS handshake first, so the connect has to do.
    """
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        return True
    conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(3) + b"\x04" + bytes(5))  # preface + SETTINGS
    header = b""
    while len(header) < 4:
        chunk = conn.recv(9)
        if not chunk:
            return False
        header += chunk
    return header[3] == 0x04


def _dial_target(address: str) -> tuple[str, int]:
    """The host and port ray.init will dial for `address` (GCS, or the Ray Client server for ray://)."""
    if address.startswith("ray://"):
        target = address[len("ray://"):].split("/", 1)[0]
    else:
        # Ray's own resolution (private API, so only here): "auto" reads the cluster record, and
        # a loopback host becomes the machine's address, which is what Ray will then dial.
        from ray._private.services import canonicalize_bootstrap_address

        target = canonicalize_bootstrap_address(address) or ""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not a HOST:PORT address: {target or address!r}")
    return host.strip("[]"), int(port)


def _connect(address: str, **kwargs: Any) -> None:
    # Ray loads on first use: every CLI command imports this module, most never start Ray
    import ray

    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise RayUnreachableError(address, str(exc).strip().splitlines()[0]) from None


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    """Make ray.init keep 127.0.0.1 as the node address, so every Ray server binds loopback.

    On Linux ray.init replaces a loopback node address with the machine's address, and the GCS,
    raylet, object manager, workers and agents then listen there (or on all interfaces).
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is Ray's switch for a single-machine Ray (its default on
    macOS and Windows): the node address stays loopback. Ray reads it once at import, so the
    constant is set too, and both are put back after start-up so that a later connection to a
    real cluster from this process is unaffected. The processes started here keep the setting.
    """
    # Ray loads on first use: every CLI command imports this module, most never start Ray
    import ray._private.ray_constants as ray_constants

    name = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    saved_env, saved_flag = os.environ.get(name), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[name], ray_constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved_env


def _logs_dir() -> str | None:
    """This session's Ray log directory (a private API: Ray has no public one for it)."""
    # Ray loads on first use: every CLI command imports this module, most never start Ray
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    return node.get_logs_dir_path() if node is not None else None
