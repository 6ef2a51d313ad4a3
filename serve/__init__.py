"""The online door: Ray Serve deployments and the FastAPI ingress (see serve/app.py).

Importing this package has no side effects and does not import Ray; `build_app` (serve.app)
builds the online door's application, `run_local` (serve.local) starts an application on a local or existing
cluster. The whole service, this door with the jobs and the console over it, is composed in trapline/service.py.

Contract for other Ray programs (the batch jobs): the model deployment for model NAME is
`detector-NAME` in the Serve application `trapline`; `get_detector_handle(NAME)` returns a
handle whose `detect_bytes(data, ref, filters)` and `detect_prepared(prepared, meta, ref, filters)`
go through the same dynamic batching as HTTP requests, in the lower-priority archive lane, and
answer with the `model_store.ImageDetections` record itself (see serve.replica.DetectorReplica);
`detect_bytes_many` and `detect_prepared_many` take several images in one call and answer each
with its record or the typed error that refused it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle

APP_NAME = "trapline"
DETECTOR_DEPLOYMENT_PREFIX = "detector-"
CLASSIFIER_DEPLOYMENT_PREFIX = "classifier-"
INGRESS_DEPLOYMENT_NAME = "ingress"
ANTENNA_DEPLOYMENT_NAME = "antenna"  # the Antenna door (serve/antenna/door.py)
# How a Ray Serve config file names a trapline app: the whole service (the online door with the jobs and the console,
# composed in trapline/service.py, above both doors) or the online door alone (serve/app.py). Config files, the
# KubeRay manifests and `trapline serve --print-config` use the first.
SERVICE_IMPORT_PATH = "trapline.service:app_builder"
ONLINE_IMPORT_PATH = "serve.app:app_builder"
APP_IMPORT_PATHS = (SERVICE_IMPORT_PATH, ONLINE_IMPORT_PATH)


def is_trapline_app(application: dict) -> bool:
    """Whether an `applications:` entry of a Ray Serve config file builds a trapline app (its args a ServeConfig)."""
    return str(application.get("import_path", "")) in APP_IMPORT_PATHS


def detector_deployment_name(model_name: str) -> str:
    """The Serve deployment name that serves `model_name`."""
    return f"{DETECTOR_DEPLOYMENT_PREFIX}{model_name}"


def classifier_deployment_name(model_name: str) -> str:
    """The Serve deployment name that serves the classifier `model_name`."""
    return f"{CLASSIFIER_DEPLOYMENT_PREFIX}{model_name}"


def get_detector_handle(model_name: str, app_name: str = APP_NAME) -> DeploymentHandle:
    """A handle to the deployment serving `model_name` in a running trapline app."""
    # late: importing serve/ (the CLI, batch tools, unit tests) must not load Ray
    from ray import serve

    return serve.get_deployment_handle(detector_deployment_name(model_name), app_name=app_name)


__all__ = ["ANTENNA_DEPLOYMENT_NAME", "APP_IMPORT_PATHS", "APP_NAME", "CLASSIFIER_DEPLOYMENT_PREFIX",
           "DETECTOR_DEPLOYMENT_PREFIX", "INGRESS_DEPLOYMENT_NAME", "ONLINE_IMPORT_PATH", "SERVICE_IMPORT_PATH",
           "classifier_deployment_name", "detector_deployment_name", "get_detector_handle", "is_trapline_app"]
