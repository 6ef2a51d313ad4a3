"""Serve config files: a standard Ray Serve config (its trapline application's `args:`) or a bare ServeConfig, read
with errors that name the file; the models themselves are serve/config.py's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ground.errors import ServeConfigError
from serve import APP_IMPORT_PATHS, APP_NAME, is_trapline_app
from serve.config import ServeConfig, parse_serve_config


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The YAML mapping in `path`, with clear errors."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ServeConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ServeConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ServeConfigError(f"{path} must hold a mapping")
    return data


def trapline_app(serve_config: dict[str, Any], app_name: str | None = None, source: str = "config") -> dict[str, Any]:
    """The trapline application of a Ray Serve config (`is_trapline_app`; the one named `app_name` if several)."""
    apps = [a for a in serve_config.get("applications") or [] if is_trapline_app(a)]
    if not apps:
        raise ServeConfigError(f"{source} has no application with import_path {' or '.join(APP_IMPORT_PATHS)}")
    return next((a for a in apps if a.get("name") == app_name), apps[0])


def load_config_file(path: str | Path, app_name: str = APP_NAME) -> tuple[ServeConfig, dict[str, Any]]:
    """Read a config file: a Ray Serve config (`applications:`) or a bare ServeConfig.

    Returns (config, http_options); http_options is the file's top-level `http_options` ({} if none).
    """
    data = read_config_file(path)
    if "applications" not in data:
        return parse_serve_config(data, str(path)), {}
    app = trapline_app(data, app_name, str(path))
    source = f"{path} (application {app.get('name')!r})"
    return parse_serve_config(app.get("args") or {}, source), dict(data.get("http_options") or {})
