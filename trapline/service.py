"""The whole trapline service: the online door (serve/) with the control plane over the archive door (batch/jobs/)
and the views over its tables (batch/views/).

The online door knows nothing of the archive door: its ingress takes `features` that add routers to its app
(serve/ingress.py, `Feature`). This module, above both doors, composes them: the jobs
(`batch.jobs.routes.attach_jobs`), then the console and the views it reads (`batch.views.routes.attach_views`), go
onto whichever deployment handles HTTP. Everything that runs the service goes through here:

- `trapline serve` (registered from here, so it runs `build_service`);
- Ray Serve config files, the KubeRay manifests and `trapline serve --print-config`:
  `import_path: trapline.service:app_builder` (serve.SERVICE_IMPORT_PATH);
- `trapline demo` and the tests that start the whole service.

`serve.app:app_builder` stays the online door alone (detect, models, admin, recording), for a deployment that
wants no jobs over HTTP.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from batch.flags import FlagStyle, add_model_arguments
from serve import SERVICE_IMPORT_PATH
from serve import cli as serve_cli

if TYPE_CHECKING:
    from ray.serve import Application

    from serve.config import ServeConfig
    from serve.ingress import Feature


def service_features() -> tuple[Feature, ...]:
    """What the house adds to the online door's ingress: the control plane's routes (jobs, filters, the job forms)
    with, given on_promote policies, the backfill watcher; then the views (every module of batch/views/ with a
    `router`, the console's files among them), which read through the control plane's path policy."""
    # late: `trapline --help` imports this module; FastAPI and the routes load once a service is built
    from batch.jobs.routes import attach_jobs
    from batch.views.routes import attach_views

    return (attach_jobs, attach_views)


def build_service(config: ServeConfig | Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Application:
    """`serve.app.build_app` with `service_features()`."""
    from serve.app import build_app  # late, as above: it imports Ray Serve

    return build_app(config, environ, features=service_features())


def app_builder(args: dict[str, Any]) -> Application:
    """Entry point for Ray Serve config files: `import_path: trapline.service:app_builder`, `args:` a ServeConfig."""
    return build_service(args)


def register(sub: argparse._SubParsersAction) -> None:
    """`trapline serve`, running the whole service; its flags from `ServeOptions` by the one flag generator."""
    styles = {name: FlagStyle(**style) for name, style in serve_cli.SERVE_FLAG_STYLES.items()}
    serve_cli.register(sub, lambda p: add_model_arguments(p, serve_cli.ServeOptions, styles), build_service,
                       SERVICE_IMPORT_PATH)
