"""`trapline serve`: run the online service until Ctrl-C (or SIGTERM), then shut down cleanly."""

from __future__ import annotations

import argparse
import copy
import os
import signal
import time
from typing import Any

from model_store import ModelStore
from model_store.store.cli import add_store_argument
from serve import APP_NAME, ONLINE_IMPORT_PATH
from serve.config import HttpConfig, ServeConfig, parse_serve_config
from serve.config_files import read_config_file, trapline_app
from serve.defaults import local_default
from serve.local import AppBuilder, direct_urls, run_config, run_local
from trapline.base import env
from trapline.base import service_records as services
from trapline.base.errors import UserError
from trapline.base.ray_output import console


def register(sub: argparse._SubParsersAction, builder: AppBuilder | None = None,
             import_path: str = ONLINE_IMPORT_PATH) -> None:
    """Add `trapline serve`. What it runs is the caller's: the house registers it from trapline/service.py with the
    whole service (`build_service`, `trapline.service:app_builder`); alone, it runs the online door."""
    # The defaults the help states are the config model's own, so the two cannot drift.
    host, port = HttpConfig.model_fields["host"].default, HttpConfig.model_fields["port"].default
    p = sub.add_parser(
        "serve", help="run the detection service (Ray Serve + HTTP) until Ctrl-C",
        description=f"Start a local Ray (or use --address / $RAY_ADDRESS), deploy the trapline Serve app and serve "
                    f"HTTP on {host}:{port} until Ctrl-C. A Ray Serve config file (serve.yaml) is deployed as "
                    "`serve run` would; for a long-lived deployment on a cluster use `serve deploy serve.yaml`.")
    p.add_argument("--config", default=None,
                   help=f"a Ray Serve config file (e.g. serve.yaml, import_path {import_path}) "
                        "or a YAML file holding just the trapline ServeConfig")
    add_store_argument(p)
    p.add_argument("--model", action="append", dest="models", metavar="NAME",
                   help="serve this model (repeatable; default: the config's models, else every model in the "
                        "store that has a production alias)")
    p.add_argument("--host", default=None, help=f"HTTP bind address (default {host}: reachable from this machine "
                                                "only; 0.0.0.0 exposes the HTTP port, and only it)")
    p.add_argument("--port", type=int, default=None, help=f"HTTP port (default {port}; 0 picks a free one)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to deploy to, e.g. auto for the one `ray start` runs on this machine "
                        "(default: $RAY_ADDRESS, else start a local Ray for the lifetime of this command)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray it starts (default: all)")
    p.add_argument("--app-name", default=None,
                   help=f"Serve application name (default {APP_NAME}; with --config: which trapline app of the file)")
    p.add_argument("--record", default=None, metavar="ARCHIVE_URL",
                   help="keep what POST /v1/images receives: the bytes in this archive (directory or s3://), the "
                        "rows in --tables (with a config file: its `record:` block)")
    p.add_argument("--tables", default=None, metavar="TABLES_URL",
                   help="with --record: the tables the uploads' rows go to (those `trapline reprocess --out` writes)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config as a Ray Serve config file (for serve run/deploy) and exit")
    p.set_defaults(func=cmd_serve, app_builder=builder, import_path=import_path)


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
        # Replicas sized to fit the CPUs of the local Ray this starts (or of this machine).
        remote = args.address or env.RAY_ADDRESS.get()
        cpus = None if remote else (args.num_cpus or os.cpu_count())
        cfg = local_default(args.store, args.models, cpus, **http)
        record = _record_block(args, None)
        return cfg if record is None else parse_serve_config({**cfg.model_dump(mode="json"), "record": record},
                                                              "default config")
    data = copy.deepcopy(data)
    record = _record_block(args, data.get("record"))
    if record:
        data["record"] = record
    data["store"] = _absolute_store(args.store or data.get("store"))
    if args.models:
        known = {m.get("name"): m for m in data.get("models") or []}
        data["models"] = [known.get(name, {"name": name}) for name in args.models]
    data.setdefault("http", {}).update(http)
    return parse_serve_config(data, args.config)


def serve_config_file(cfg: ServeConfig, app_name: str = APP_NAME, route_prefix: str = "/",
                      import_path: str = ONLINE_IMPORT_PATH) -> dict[str, Any]:
    """A ServeConfig as a standard Ray Serve config file (what `serve run` / `serve deploy` take)."""
    args = cfg.model_dump(mode="json", exclude_none=True)
    args["models"] = [{"name": m.pop("name"), **m} for m in args["models"]]
    return {"proxy_location": "EveryNode", "http_options": {"host": cfg.http.host, "port": cfg.http.port},
            "applications": [{"name": app_name, "route_prefix": route_prefix,
                              "import_path": import_path, "args": args}]}


def cmd_serve(args: argparse.Namespace) -> int:
    import yaml

    raw = read_config_file(args.config) if args.config else None
    if raw is not None and "applications" in raw:
        serve_file, cfg = _from_serve_file(raw, args)
        started = run_config(serve_file, address=args.address, num_cpus=args.num_cpus)
    else:
        cfg = _from_flags(raw, args)
        serve_file = serve_config_file(cfg, args.app_name or APP_NAME, import_path=args.import_path)
        started = run_local(cfg, address=args.address, num_cpus=args.num_cpus, app_name=args.app_name or APP_NAME,
                            builder=args.app_builder)
    if args.print_config:
        print(yaml.safe_dump(serve_file, sort_keys=False), end="")
        return 0

    def _terminate(signum, frame):  # SIGTERM (systemd, docker stop) shuts down like Ctrl-C
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with started as url, _registered(url, args.app_name or APP_NAME):
            # again: ray.init put its own SIGTERM handler in place (sys.exit), which skipped the clean shutdown and
            # left the process to abort in Ray's teardown (exit 134)
            signal.signal(signal.SIGTERM, _terminate)
            _announce(url, cfg, args.app_name or APP_NAME)
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print("shutting down...", file=console(), flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("stopped", file=console(), flush=True)
    return 0


def _registered(url: str, app_name: str):
    """While it runs, the service is on record for `trapline reprocess` here (trapline/base/service_records.py)."""
    # late: the CLI imports this module for `trapline --help`; Ray loads once a service runs
    import ray

    return services.registered(url, app_name, ray.get_runtime_context().gcs_address)


def _announce(url: str, cfg: ServeConfig, app_name: str) -> None:
    import httpx

    admin = "?"
    try:
        body = httpx.get(f"{url}/v1/models", timeout=30, trust_env=False).json()
        for m in body["models"]:
            print(f"serving {m['name']}: " + ", ".join(f"{a} -> {v}" for a, v in m["aliases"].items()))
        admin = body["admin_routes"]
    except (httpx.HTTPError, KeyError, ValueError):
        pass  # an API token may be required; the service is up either way
    if admin == "disabled":
        admin += f" (set ${cfg.admin_token_env} where the app is built to enable them)"
    print(f"trapline is up at {url}  (API docs: {url}/docs, readiness: {url}/readyz); admin routes {admin}")
    if cfg.http.direct_ingress:
        direct = direct_urls(app_name)
        if direct:
            print(f"direct ingress, no proxy hop ({len(direct)} replica(s); a balancer goes in front of several): "
                  + " ".join(direct))
        else:
            print("http.direct_ingress is set but this Ray cluster runs without RAY_SERVE_ENABLE_DIRECT_INGRESS=1 "
                  "(set it where `ray start` runs): only the proxy answers", file=console())
    print("archive jobs on this machine run through it: trapline reprocess --model MODEL ... (--via actors for a "
          "pool of their own)")
    if cfg.record is not None:
        print(f"recording: POST {url}/v1/images?camera=ID keeps each upload in {cfg.record.archive} and its rows in "
              f"{cfg.record.tables} (committed at least every {cfg.record.flush_interval_s:g} s)")
    print("Ctrl-C to stop", flush=True)
