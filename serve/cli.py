"""`trapline serve`: run the online service until Ctrl-C (or SIGTERM), then shut down cleanly."""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ground import env
from ground import service_records as services
from ground.errors import UserError
from ground.ray_output import console
from model_store import ModelStore
from serve import APP_NAME, ONLINE_IMPORT_PATH
from serve.config import HttpConfig, ServeConfig, parse_serve_config
from serve.config_files import read_config_file, trapline_app
from serve.defaults import discover_models, local_default
from serve.local import AppBuilder, client_url, direct_urls, run_config, run_local
from serve.placement import local_cpus

if TYPE_CHECKING:
    from serve.protocol import ModelsResponse

MODEL_WAIT_POLL_S = 2.0  # --wait-for-models: how often an empty store is looked at again
STATE_TIMEOUT_S = 60.0  # the start-up lines' question to the ingress (each model's replicas answer it in turn)


_HOST, _PORT = HttpConfig.model_fields["host"].default, HttpConfig.model_fields["port"].default


class ServeOptions(BaseModel):
    """`trapline serve`'s flags, one field each: the command line is generated from this model by the one flag
    generator (batch/flags.py), where the house registers the command (trapline/service.py); the defaults the help
    states are the config model's own, so the two cannot drift."""

    config: str | None = Field(None, description=(
        "a Ray Serve config file (e.g. serve.yaml; --print-config writes one) or a YAML file holding just the "
        "trapline ServeConfig"))
    store: str | None = Field(None, description=env.STORE_HELP)
    models: list[str] | None = Field(None, description=(
        "serve this model (repeatable; default: the config's models, else every model in the store that has a "
        "production alias)"))
    host: str | None = Field(None, description=(
        f"HTTP bind address (default {_HOST}: reachable from this machine only; 0.0.0.0 exposes the HTTP port, and "
        "only it)"))
    port: int | None = Field(None, description=f"HTTP port (default {_PORT}; 0 picks a free one)")
    address: str | None = Field(None, description=(
        "Ray cluster to deploy to, e.g. auto for the one `ray start` runs on this machine (default: $RAY_ADDRESS, "
        "else start a local Ray for the lifetime of this command)"))
    num_cpus: int | None = Field(None, description="CPUs of the local Ray it starts (default: all)")
    app_name: str | None = Field(None, description=(
        f"Serve application name (default {APP_NAME}; with --config: which trapline app of the file)"))
    record: str | None = Field(None, description=(
        "keep what POST /v1/images receives: the bytes in this archive (directory or s3://), the rows in --tables "
        "(with a config file: its `record:` block)"))
    tables: str | None = Field(None, description=(
        "with --record: the tables the uploads' rows go to (those `trapline reprocess --out` writes)"))
    wait_for_models: bool = Field(False, description=(
        "with no model to serve in the store, say how to publish one and wait for it instead of exiting (the "
        "container image's default; $TRAPLINE_SEED_DEMO=1 publishes the demo models)"))
    print_config: bool = Field(False, description=(
        "print the resolved config as a Ray Serve config file (for serve run/deploy) and exit"))


# How some flags read (the names of batch/flags.py's FlagStyle, which serve/ may not import)
SERVE_FLAG_STYLES = {"models": {"flags": ("--model",), "metavar": "NAME", "repeatable": True},
                     "record": {"metavar": "ARCHIVE_URL"}, "tables": {"metavar": "TABLES_URL"}}


def register(sub: argparse._SubParsersAction, add_flags: Callable[[argparse.ArgumentParser], None],
             builder: AppBuilder | None = None, import_path: str = ONLINE_IMPORT_PATH) -> None:
    """Add `trapline serve`, its flags made by `add_flags` from `ServeOptions`. What it runs is the caller's: the house
    registers it from trapline/service.py with the whole service (`build_service`, `trapline.service:app_builder`);
    alone, it runs the online door."""
    p = sub.add_parser(
        "serve", help="run the detection service (Ray Serve + HTTP) until Ctrl-C",
        description=f"Start a local Ray (or use --address / $RAY_ADDRESS), deploy the trapline Serve app and serve "
                    f"HTTP on {_HOST}:{_PORT} until Ctrl-C. A Ray Serve config file (serve.yaml) is deployed as "
                    "`serve run` would; for a long-lived deployment on a cluster use `serve deploy serve.yaml`.")
    add_flags(p)
    # every option in the namespace, given or not (the generated flags leave the ones not given out)
    p.set_defaults(func=cmd_serve, app_builder=builder, import_path=import_path, stop_exit=0,
                   **{name: info.default for name, info in ServeOptions.model_fields.items()})


def _record_block(args: argparse.Namespace, current: dict[str, Any] | None) -> dict[str, Any] | None:
    """The `record:` block with --record/--tables applied (both or neither; relative paths made absolute here)."""
    if (args.record is None) != (args.tables is None):
        raise UserError("--record ARCHIVE_URL and --tables TABLES_URL go together: where uploads are kept and "
                        "where their rows go")
    block = dict(current or {})
    if args.record is not None:
        block.update(archive=args.record, tables=args.tables)
    for key in ("archive", "tables"):
        if key in block and "://" not in block[key]:
            block[key] = os.path.abspath(os.path.expanduser(block[key]))
    return block or None


def _absolute_store(store: str | None) -> str:
    return ModelStore(store).root  # relative paths mean the caller's directory, wherever the app is built


def _from_serve_file(raw: dict[str, Any], args: argparse.Namespace) -> tuple[dict[str, Any], ServeConfig]:
    """A Ray Serve config file with the flags applied to its trapline app and http_options."""
    raw = copy.deepcopy(raw)
    app = trapline_app(raw, args.app_name, args.config)
    app["import_path"] = args.import_path  # `trapline serve` runs what it was registered with, whatever the file names
    app_args = app.setdefault("args", {})
    app_args["store"] = _absolute_store(args.store or app_args.get("store"))
    if args.models:
        known = {m.get("name"): m for m in app_args.get("models") or []}
        app_args["models"] = [known.get(name, {"name": name}) for name in args.models]
    record = _record_block(args, app_args.get("record"))
    if record:
        app_args["record"] = record
    http = raw.setdefault("http_options", {})
    if args.host is not None:
        http["host"] = args.host
    if args.port is not None:
        http["port"] = args.port
    http.setdefault("host", "127.0.0.1")
    return raw, parse_serve_config(app_args, f"{args.config} (application {app.get('name')!r})")


def _from_flags(data: dict[str, Any] | None, args: argparse.Namespace) -> ServeConfig:
    """A ServeConfig from a bare config file, or the embedded default, with the flags applied."""
    http = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if not data:
        cfg = local_default(args.store, args.models, _local_cpus(args), **http)
        record = _record_block(args, None)
        return cfg if record is None else parse_serve_config({**cfg.model_dump(mode="json"), "record": record},
                                                              "default config")
    data = copy.deepcopy(data)
    if not data.get("models") and not args.models:
        # a config file that names no models serves the store's, as the embedded default does (the container's)
        found = local_default(args.store or data.get("store"), None, _local_cpus(args),
                              **{**data.get("http", {}), **http})
        data["models"] = [m.model_dump(mode="json", exclude_none=True) for m in found.models]
        data["classifiers"] = [c.model_dump(mode="json", exclude_none=True) for c in found.classifiers]
    record = _record_block(args, data.get("record"))
    if record:
        data["record"] = record
    data["store"] = _absolute_store(args.store or data.get("store"))
    if args.models:
        known = {m.get("name"): m for m in data.get("models") or []}
        data["models"] = [known.get(name, {"name": name}) for name in args.models]
    data.setdefault("http", {}).update(http)
    return parse_serve_config(data, args.config)


def _local_cpus(args: argparse.Namespace) -> int | None:
    """The CPUs the embedded default sizes replicas for: the local Ray this starts (or this machine); None on a
    cluster (one replica each, the cluster scales)."""
    remote = args.address or env.RAY_ADDRESS.get()
    return None if remote and remote != "local" else local_cpus(args.num_cpus)  # Ray's own count, as the check's


def serve_config_file(cfg: ServeConfig, app_name: str = APP_NAME, route_prefix: str = "/",
                      import_path: str = ONLINE_IMPORT_PATH) -> dict[str, Any]:
    """A ServeConfig as a standard Ray Serve config file (what `serve run` / `serve deploy` take)."""
    args = cfg.model_dump(mode="json", exclude_none=True)
    args["models"] = [{"name": m.pop("name"), **m} for m in args["models"]]
    return {"proxy_location": "EveryNode", "http_options": {"host": cfg.http.host, "port": cfg.http.port},
            "applications": [{"name": app_name, "route_prefix": route_prefix,
                              "import_path": import_path, "args": args}]}


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM (ground/stops.py raises either as a KeyboardInterrupt). Once ready, the
    stop is said (`shutting down...`) and run here; before (waiting for a model, Ray or Serve starting, replicas
    starting) what had started is stopped on the way out (`run_local`'s and `ensure_ray`'s clean-up) and the entry
    says `stopped` (its `stop_exit`). Either way exit 0 (docs/guide/serving.md)."""
    import yaml

    raw = read_config_file(args.config) if args.config else None
    bare = raw or {}
    if not args.models and not args.print_config and not bare.get("models") and "applications" not in bare:
        _until_models(args, bare.get("store"))
    if raw is not None and "applications" in raw:
        serve_file, cfg = _from_serve_file(raw, args)
        started = run_config(serve_file, address=args.address, num_cpus=args.num_cpus, on_unplaced=_unplaced)
    else:
        cfg = _from_flags(raw, args)
        serve_file = serve_config_file(cfg, args.app_name or APP_NAME, import_path=args.import_path)
        started = run_local(cfg, address=args.address, num_cpus=args.num_cpus, app_name=args.app_name or APP_NAME,
                            builder=args.app_builder, on_unplaced=_unplaced)
    if args.print_config:
        print(yaml.safe_dump(serve_file, sort_keys=False), end="")
        return 0
    with started as url, _registered(url, args.app_name or APP_NAME):
        _announce(url, cfg, args.app_name or APP_NAME)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("shutting down...", file=console(), flush=True)
    print("stopped", file=console(), flush=True)
    return 0


def _unplaced(reason: str) -> None:
    """A replica the cluster cannot place (serve/placement.py): said at once; the service keeps waiting, since a
    cluster may scale up to make room."""
    print(f"error: {reason} (still waiting: a cluster that scales may make room)", file=console(), flush=True)


def _until_models(args: argparse.Namespace, store: str | None = None) -> None:
    """A store with nothing to serve (the embedded default's case): publish the demo models when $TRAPLINE_SEED_DEMO
    asks, else with --wait-for-models say how to publish one and wait for it. A container on an empty ./models then
    waits (unhealthy, not restarting) instead of exiting into a restart loop; without either, the default's error."""
    root = _absolute_store(args.store or store)
    try:
        if discover_models(root):
            return
    except PermissionError as exc:  # a container's user (uid 1000) on a host directory only root may read
        raise UserError(f"the model store {root} is not readable by this user (uid {os.getuid()}): {exc.strerror}. "
                        f"On the host: chmod 755 the models directory (or chown {os.getuid()} it)") from None
    if env.SEED_DEMO.get() in ("1", "true", "yes"):
        from model_store.demo.publish import publish_demo  # late: the demo's assets only when seeding is asked for

        try:
            done = publish_demo(ModelStore(root))
        except PermissionError as exc:
            raise UserError(f"{env.SEED_DEMO.name}=1 but the model store {root} is not writable by this user (uid "
                            f"{os.getuid()}): {exc.strerror}. On the host: chown {os.getuid()} the models "
                            "directory, or publish the models there yourself") from None
        print(f"{env.SEED_DEMO.name}: published the demo models into {root}: {', '.join(done) or 'none new'}",
              flush=True)
        return
    if not args.wait_for_models:
        return
    print(f"nothing to serve yet: the store {root} has no model with a production alias. Publish and promote one "
          f"into it (in a container: into the host directory mounted at {root}, with that directory as --store):\n"
          f"  trapline models publish WEIGHTS.onnx --name NAME --version 1 --store {root}\n"
          f"  trapline models promote NAME:1 --store {root}\n"
          f"or start with {env.SEED_DEMO.name}=1 for the demo models. Waiting for a model "
          f"(checking every {MODEL_WAIT_POLL_S:g} s)...", flush=True)

    while not discover_models(root):  # SIGTERM (a container's stop) ends the wait as Ctrl-C does (exit 0)
        time.sleep(MODEL_WAIT_POLL_S)
    print(f"found {', '.join(discover_models(root))} in {root}: starting", flush=True)


def _registered(url: str, app_name: str):
    """While it runs, the service is on record for `trapline reprocess` here (ground/service_records.py)."""
    # late: the CLI imports this module for `trapline --help`; Ray loads once a service runs
    import ray

    return services.registered(url, app_name, ray.get_runtime_context().gcs_address)


def _announce(url: str, cfg: ServeConfig, app_name: str) -> None:
    for line in startup_lines(url, cfg, app_name):
        print(line)
    if cfg.http.direct_ingress and not direct_urls(app_name):
        print("http.direct_ingress is set but this Ray cluster runs without RAY_SERVE_ENABLE_DIRECT_INGRESS=1 (set it "
              "where `ray start` runs): only the proxy answers", file=console())
    print("Ctrl-C to stop", flush=True)


def startup_lines(url: str, cfg: ServeConfig, app_name: str) -> list[str]:
    """What a service that came up says: each served model with its aliases, then its doors (`door_lines`). Read
    from the service's own state, its ingress's `models()` through a Serve handle, not over HTTP, where an API token
    or people's tokens would refuse the call (the lines are the same whichever tokens the service asks for)."""
    state = _service_state(app_name)
    lines = [f"serving {m.name}: " + ", ".join(f"{a} -> {v}" for a, v in m.aliases.items()) for m in state.models]
    direct = direct_urls(app_name) if cfg.http.direct_ingress else []
    return lines + door_lines(url, cfg, state.admin_routes, direct)


def _service_state(app_name: str) -> ModelsResponse:
    """The models and admin routes of the running app, as its ingress (serve/ingress.py `models`) has them."""
    from ray import serve  # late: the CLI imports this module for `trapline --help`; Ray loads once a service runs

    return serve.get_app_handle(app_name).models.remote().result(timeout_s=STATE_TIMEOUT_S)


def door_lines(url: str, cfg: ServeConfig, admin: str, direct: list[str]) -> list[str]:
    """The start-up lines that name every door the service opened, each with the address a client uses: the HTTP
    API, the direct-ingress ports, the Antenna door, the recording route."""
    if admin == "disabled":
        admin += f" (set ${cfg.admin_token_env} where the app is built, or `trapline people add` an admin)"
    lines = [f"trapline is up at {url}  (API docs: {url}/docs, readiness: {url}/readyz); admin routes {admin}"]
    if direct:
        lines.append(f"direct ingress, no proxy hop ({len(direct)} replica(s); a balancer goes in front of several): "
                     + " ".join(direct))
    if cfg.antenna is not None:
        door = client_url(cfg.antenna.host, cfg.antenna.port)
        bound = f", bound on {cfg.antenna.host}" if door != f"http://{cfg.antenna.host}:{cfg.antenna.port}" else ""
        slugs = ", ".join(p.slug for p in cfg.antenna.pipelines)
        lines.append(f"antenna door: Antenna's processing-service API at {door}{bound} (pipelines {slugs}; register "
                     f"it as the processing service's endpoint_url, or pull: trapline antenna work --service {door})")
    lines.append("archive jobs on this machine run through it: trapline reprocess --model MODEL ... (--via actors "
                 "for a pool of their own)")
    if cfg.record is not None:
        lines.append(f"recording: POST {url}/v1/images?camera=ID keeps each upload in {cfg.record.archive} and its "
                     f"rows in {cfg.record.tables} (committed at least every {cfg.record.flush_interval_s:g} s)"
                     + ("; the antenna door's answers too (antenna.record)" if cfg.antenna is not None
                        and cfg.antenna.record is not None else ""))
    return lines
