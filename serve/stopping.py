"""The end of a `run_local` / `run_config` block (serve/local.py): its apps drained, then deleted.

A trapline app that came up is drained first: every replica that handles HTTP closes its gate (serve/draining.py),
so a new request gets a typed 503 + Retry-After, and answers the requests it holds. Serve then stops the proxies
first, with the routes still in place, and the replicas after (gracefully, callers first: a recorder commits its
rows), so a request that comes in meanwhile gets the draining replica's 503, then no connection; never a 404 for a
route that a deleted app took away while the proxy still listened.

An app that never came up has nothing to drain, and replicas Ray may never have placed: its delete does not wait out
Serve's graceful stop of those (serve/placement.py, `end_pending_replicas`).
"""

from __future__ import annotations

import logging

from serve import ANTENNA_DEPLOYMENT_NAME
from serve.placement import end_pending_replicas
from serve.polling import wait_until

logger = logging.getLogger(__name__)

# How long a stopping service waits for the requests its replicas hold (`drain_app`), within the grace period that
# compose.yaml (stop_grace_period: 60 s) and Kubernetes (30 s by default) give before they kill it.
DRAIN_TIMEOUT_S = 25.0


def stop_apps(names: list[str], trapline_app: str, up: bool, serve_ends: bool) -> None:
    """Stop the apps `names` that a block deployed, `trapline_app` among them, `up` when it came up; when Serve ends
    right after (`serve_ends`: the block started it), Serve's own shutdown removes them (see the module)."""
    if up:
        drain_app(trapline_app)
    else:  # every app's delete begun before any is waited for, as Serve's shutdown would
        begun = [name for name in names if _begin_delete(name)]
        _end_pending_until_gone(begun)
    if not serve_ends:  # Serve outlives the block: the apps are deleted, and gone, before it returns
        for name in names:
            _delete_app(name)


def drain_app(name: str, timeout_s: float = DRAIN_TIMEOUT_S) -> int | None:
    """Close the gate of every replica of trapline app `name` that handles HTTP (serve/draining.py): the ingress's and
    the Antenna door's, at once: new requests get 503 + Retry-After from now on; returns once the requests they hold
    are answered (at most `timeout_s`), with how many there were; None when the app could not be reached (best
    effort: the stop goes on)."""
    # late: the CLI imports serve.local for `trapline --help`; Ray loads once a service runs
    from ray import serve

    try:
        handles = [serve.get_app_handle(name)]
        app = serve.status().applications.get(name)
        if app is not None and ANTENNA_DEPLOYMENT_NAME in app.deployments:
            handles.append(serve.get_deployment_handle(ANTENNA_DEPLOYMENT_NAME, app_name=name))
        calls = [handle.broadcast("drain", timeout_s) for handle in handles]  # all sent before any is waited on
        held = [n for call in calls for n in call.results(timeout_s=timeout_s + 10, return_exceptions=True)]
    except Exception as exc:  # noqa: BLE001 - best effort: the app may be gone or failing already
        logger.warning("could not drain Serve app %r: %s", name, exc)
        return None
    return sum(n for n in held if isinstance(n, int))


def _begin_delete(name: str) -> bool:
    """Begin deleting Serve app `name`, which never came up; True once Serve says DELETING (best effort)."""
    # late: the CLI imports serve.local for `trapline --help`; Ray loads once a service runs
    from ray import serve

    try:
        serve.delete(name, _blocking=False)
        wait_until(lambda: getattr(serve.status().applications.get(name), "status", "DELETING") == "DELETING",
                   30, f"Serve to delete app {name!r}")
        return True
    except Exception as exc:  # noqa: BLE001 - best effort: Serve may already be gone
        logger.warning("could not delete Serve app %r: %s", name, exc)
        return False


def _end_pending_until_gone(names: list[str], timeout_s: float = 30.0) -> None:
    """Kill the replicas of the apps `names` (being deleted) that Ray never placed, again and again until the apps
    are gone (end_pending_replicas says why). Once is not enough: the app reads DELETING before its controller
    loop has marked the deployments deleted, and a replica killed in between is replaced by a new one, which
    Serve's graceful stop then waits 20 s for (a CI run's start ended 21 s after it was told to). Best effort."""
    # late: the CLI imports serve.local for `trapline --help`; Ray loads once a service runs
    from ray import serve

    def all_gone() -> bool:
        left = [name for name in names if name in serve.status().applications]
        for name in left:
            end_pending_replicas(name)
        return not left

    try:
        wait_until(all_gone, timeout_s, f"Serve to delete {names}", interval_s=0.25)
    except Exception as exc:  # noqa: BLE001 - best effort: Serve may already be gone, or still deleting
        logger.warning("Serve apps %s not deleted yet: %s", names, exc)


def _delete_app(name: str) -> None:
    """Delete Serve app `name` and wait until it is gone (best effort). For an app whose delete `_begin_delete` began,
    Serve takes the second delete as a no-op and only waits."""
    # late: the CLI imports serve.local for `trapline --help`; Ray loads once a service runs
    from ray import serve

    try:
        serve.delete(name)
    except Exception as exc:  # noqa: BLE001 - best effort: Serve may already be gone
        logger.warning("could not delete Serve app %r: %s", name, exc)
