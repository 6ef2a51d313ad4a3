"""Every environment variable trapline reads, declared once: its name, default and meaning.

Code reads a variable through its entry here (`env.MODEL_STORE.get()`), never `os.environ` by name, so
the docs' environment reference (generated from `VARIABLES`) lists exactly what the code reads. A
variable that trapline only forwards to Ray's workers or to boto is listed in `FORWARDED` instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class EnvVar:
    """One variable: `get()` is its value, or `default` when unset or empty."""

    name: str
    description: str
    default: str | None = None

    def get(self, environ: Mapping[str, str] | None = None) -> str | None:
        value = (os.environ if environ is None else environ).get(self.name)
        return value if value else self.default


MODEL_STORE = EnvVar("TRAPLINE_MODEL_STORE", "The model store root (a directory or s3://bucket/prefix) every command "
                     "uses when no --store is given.", "./models")
# Every --store flag's help, so that the default is said in one place.
STORE_HELP = (f"model store root: a directory or s3://bucket/prefix "
              f"(default ${MODEL_STORE.name} or {MODEL_STORE.default})")
MODEL_CACHE = EnvVar("TRAPLINE_MODEL_CACHE", "Where weights from an s3:// store are cached locally "
                     "(default: ~/.cache/trapline/models).")
S3_ENDPOINT_URL = EnvVar("TRAPLINE_S3_ENDPOINT_URL", "An S3-compatible endpoint (MinIO, moto, Ceph) for every "
                         "s3:// location: stores, archives, tables.")
ADMIN_TOKEN = EnvVar("TRAPLINE_ADMIN_TOKEN", "The admin token: the service's admin routes (promote, jobs, "
                     "decisions) answer 403 until it is set where the app is built (the serve config's "
                     "`admin_token_env` can name another variable); `trapline jobs` sends it.")
API_TOKEN = EnvVar("TRAPLINE_API_TOKEN", "The API token `trapline jobs` sends for reads (else the admin token). "
                   "The service reads the variable its config's `api_token_env` names.")
URL = EnvVar("TRAPLINE_URL", "The service `trapline jobs` talks to.", "http://127.0.0.1:8000")
STATE_DIR = EnvVar("TRAPLINE_STATE_DIR", "Where `trapline serve` notes its running services (so that `trapline "
                   "reprocess --via auto` finds them); default ~/.trapline.")
CHROMIUM = EnvVar("TRAPLINE_CHROMIUM", "The Chromium/Chrome binary for the report's and console's screenshots "
                  "(default: the first chromium on PATH).")
SEED_DEMO = EnvVar("TRAPLINE_SEED_DEMO", "1: `trapline serve` publishes the demo models into a store that has "
                   "nothing to serve before it starts (the container's first run on an empty ./models).")
RAY_ADDRESS = EnvVar("RAY_ADDRESS", "Ray's own: the cluster to join (`ray job submit` sets it). Unset, trapline "
                     "starts a private local Ray for the command.")

VARIABLES: tuple[EnvVar, ...] = (MODEL_STORE, MODEL_CACHE, S3_ENDPOINT_URL, ADMIN_TOKEN, API_TOKEN, URL, STATE_DIR,
                                 CHROMIUM, SEED_DEMO, RAY_ADDRESS)

# Handed by the driver to its Ray tasks as they are (workers of a cluster started before the driver's environment
# was set, or on other nodes, lack them). With instance roles / IRSA there are no keys to forward.
FORWARDED: tuple[str, ...] = (
    S3_ENDPOINT_URL.name, MODEL_STORE.name, MODEL_CACHE.name, "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    # botocore's retry policy for S3 errors (mode, attempts): the tasks must retry like the driver
    "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS")
