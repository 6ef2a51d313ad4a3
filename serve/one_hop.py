"""One hop: the model deployment is its own HTTP ingress (`http.one_hop`, the default for one model).

With a separate ingress every request crosses two Ray hops (proxy -> ingress replica -> model
replica), each a serialisation of the image bytes and a scheduling decision: on a 2-core box
that plumbing cost more than a null model's whole request. Here the FastAPI routes run in the
model replica itself, and `detect` calls the replica's code in process. Everything else is
unchanged: the routes, auth and error mapping are the ingress core's; versions, batching,
admission and hot swap are DetectorReplica's; the deployment keeps the name `detector-<model>`,
so batch jobs (`--via serve`) and `get_detector_handle` find it as before.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any

from ray import serve

from serve import APP_NAME, detector_deployment_name
from serve.answers import ClipAsk, DetectAnswer, DetectAsk
from serve.compose import CropRequest
from serve.ingress import Feature, IngressCore
from serve.replica import DetectorReplica


class OneHopCore(IngressCore):
    """Ingress core + one DetectorReplica in the same actor.

    Lifecycle: `__init__` builds the ingress core (config, token digests) and the replica (store
    handle, pools; nothing loaded); Serve then calls `reconfigure(user_config)`, which loads and
    warms the served versions before the replica takes traffic, exactly as for a model-only
    deployment. Admin and status routes broadcast through a handle to this same deployment, so
    every replica answers and swaps, this one included.
    """

    def __init__(self, config: dict[str, Any], replica_args: tuple, admin_token_sha256: str | None = None,
                 api_token_sha256: str | None = None, classifiers: dict[str, Any] | None = None,
                 features: Sequence[Feature] = (), antenna: Any = None) -> None:
        """Seven parameters: as `IngressCore.__init__`, Serve passes the `.bind(...)` arguments of `serve/app.py`; here
        the detector replica's own arguments come as one tuple (`replica_args`)."""
        super().__init__(config, {}, admin_token_sha256, api_token_sha256, classifiers, features, antenna)
        self.replica = DetectorReplica(*replica_args)
        name = self.replica.model
        try:
            app = serve.get_replica_context().app_name
        except Exception:  # noqa: BLE001 - not inside Serve (unit tests)
            app = APP_NAME
        self.handles = {name: serve.get_deployment_handle(detector_deployment_name(name), app_name=app)}

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        await self.replica.reconfigure(user_config)

    def refuse_early(self, model: str | None) -> None:
        # The admission check, before the body is read: in one hop the route runs on the replica itself.
        if model is None or model == self.replica.model:
            self.replica.refuse_if_full("online")

    def clip_on(self, name: str, handle: Any, data: bytes, ref: str | None, ask: ClipAsk) -> Coroutine[Any, Any, Any]:
        # in process, as detect_on
        return self.replica.detect_clip(data, ref, ask.filters, ask.sampling, tiling=ask.tiling)

    def detect_on(self, name: str, handle: Any, data: bytes, ref: str | None, ask: DetectAsk,
                  request: CropRequest | None) -> Coroutine[Any, Any, DetectAnswer]:
        # In process: the crops the replica cuts stay in this actor until they go to the classifiers.
        return self.replica.detect(data, ref, ask.filters, ask.render, request, tiling=ask.tiling)


# What the broadcasts (status, refresh, preload) and batch jobs (detect_bytes, detect_prepared, one image or _many)
# call on a model deployment: here the same methods of the replica in this actor. Serve calls them by name, so each
# is a method of the class (an async function, as Serve requires to await it), not a __getattr__ fallback.
# (Not `detect_clip`: that name is the ingress core's own, with the route's arguments; clip_on calls the replica's.)
REPLICA_CALLS = ("status", "refresh", "preload", "detect_bytes", "detect_prepared", "detect_bytes_many",
                 "detect_prepared_many")


def _forward(name: str):
    async def call(self: OneHopCore, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.replica, name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(DetectorReplica, name).__doc__
    return call


for _name in REPLICA_CALLS:
    setattr(OneHopCore, _name, _forward(_name))

OneHopIngress = serve.ingress()(OneHopCore)
