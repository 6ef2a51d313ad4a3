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

    def secret(self, environ: Mapping[str, str] | None = None) -> str | None:
        """As `get`, for a secret: also read from the file `NAME_FILE` names (see `secret`)."""
        return secret(self.name, environ) or self.default


def secret(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """A secret's value: the variable `name`, else the contents of the file `${name}_FILE` names (compose
    `secrets:`, a Kubernetes Secret mounted as a file), one trailing newline dropped; None when neither is set.
    ValueError when both are set (which one wins would be a guess) or the file cannot be read."""
    env = os.environ if environ is None else environ
    value, path = env.get(name) or None, env.get(f"{name}_FILE") or None
    if value and path:
        raise ValueError(f"both ${name} and ${name}_FILE are set: set one")
    if path is None:
        return value
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ValueError(f"${name}_FILE names {path}, which cannot be read: {exc.strerror}") from None
    text = text[:-1] if text.endswith("\n") else text
    return text.removesuffix("\r") or None


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
                     "`admin_token_env` can name another variable); `trapline jobs` sends it. Like every token "
                     "variable, it can instead name a file: `TRAPLINE_ADMIN_TOKEN_FILE=/run/secrets/admin`.")
API_TOKEN = EnvVar("TRAPLINE_API_TOKEN", "The API token `trapline jobs` sends for reads (else the admin token). "
                   "The service reads the variable its config's `api_token_env` names. Or from a file: "
                   "`TRAPLINE_API_TOKEN_FILE`.")
ADMIN_TOKEN_FILE = EnvVar("TRAPLINE_ADMIN_TOKEN_FILE", "A file holding the admin token instead of the variable "
                          "(compose `secrets:`, a Kubernetes Secret mounted as a file); every token variable NAME is "
                          "also read from NAME_FILE (one of the two, not both).")
API_TOKEN_FILE = EnvVar("TRAPLINE_API_TOKEN_FILE", "A file holding the API token instead of the variable.")
URL = EnvVar("TRAPLINE_URL", "The service `trapline jobs` talks to.", "http://127.0.0.1:8000")
STATE_DIR = EnvVar("TRAPLINE_STATE_DIR", "Where `trapline serve` notes its running services (so that `trapline "
                   "reprocess --via auto` finds them); default ~/.trapline.")
CHROMIUM = EnvVar("TRAPLINE_CHROMIUM", "The Chromium/Chrome binary for the report's and console's screenshots "
                  "(default: the first chromium on PATH).")
SEED_DEMO = EnvVar("TRAPLINE_SEED_DEMO", "1: `trapline serve` publishes the demo models into a store that has "
                   "nothing to serve before it starts (the container's first run on an empty ./models).")
RAY_ADDRESS = EnvVar("RAY_ADDRESS", "Ray's own: the cluster to join (`ray job submit` sets it). Unset, trapline "
                     "starts a private local Ray for the command.")
FETCH_ALLOWED_HOSTS = EnvVar("TRAPLINE_FETCH_ALLOWED_HOSTS", "Batch commands reading pictures recorded by their URL "
                             "(report, snips): the hosts they may fetch from, comma-separated (`*.example.org` for "
                             "subdomains); default any host whose addresses are public. The service uses its "
                             "config's `antenna.fetch` instead.")
FETCH_PRIVATE_HOSTS = EnvVar("TRAPLINE_FETCH_PRIVATE_HOSTS", "Batch commands: hosts, by name as URLs write them, "
                             "that may resolve to loopback, private or link-local addresses (e.g. `127.0.0.1`); "
                             "any other host resolving to one is refused.")

ANTENNA_SECRET = EnvVar("TRAPLINE_ANTENNA_SECRET", "The Antenna door's shared secret, where the serve config's "
                        "`antenna.secret_env` names it (this name in the Antenna guide); `trapline antenna work` "
                        "sends it to the door as `Authorization: Bearer` (`--service-secret-env` names another). "
                        "Like a token, also read from the file its NAME_FILE names.")
TRAIN_FAULT = EnvVar("TRAPLINE_TRAIN_FAULT", "Testing only: `EPOCH:MARKER` makes `trapline models train`'s first "
                     "Ray Train worker exit at the start of that epoch, once (it creates the file MARKER first and "
                     "does not exit while it exists): how the tests kill a worker mid-run and see it resume from its "
                     "checkpoint.")

VARIABLES: tuple[EnvVar, ...] = (MODEL_STORE, MODEL_CACHE, S3_ENDPOINT_URL, ADMIN_TOKEN, ADMIN_TOKEN_FILE, API_TOKEN,
                                 API_TOKEN_FILE, URL, STATE_DIR,
                                 CHROMIUM, SEED_DEMO, RAY_ADDRESS, FETCH_ALLOWED_HOSTS, FETCH_PRIVATE_HOSTS,
                                 ANTENNA_SECRET, TRAIN_FAULT)

# Handed by the driver to its Ray tasks as they are (workers of a cluster started before the driver's environment
# was set, or on other nodes, lack them). With instance roles / IRSA there are no keys to forward.
FORWARDED: tuple[str, ...] = (
    S3_ENDPOINT_URL.name, MODEL_STORE.name, MODEL_CACHE.name, "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
    "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    # botocore's retry policy for S3 errors (mode, attempts): the tasks must retry like the driver
    "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS")
