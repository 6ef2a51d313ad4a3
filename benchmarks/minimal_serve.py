"""The baseline for the online door: the minimal idiomatic Ray Serve app doing the same work.

One deployment with a FastAPI ingress, the model loaded once in `__init__`, and per request
the product's own decode + letterbox + inference + NMS (`Detector.prepare_bytes` +
`run_prepared`) in Starlette's thread pool, so it uses every CPU the replica holds and never
blocks the event loop (the stronger of the two usual ways): what someone would write from the
Ray Serve docs in an afternoon. No batching, no admission control, Serve's default
`max_ongoing_requests`. `benchmarks.doors` runs it beside `trapline serve` on the same model,
CPUs and images, so the ratio between the two is what trapline's plumbing adds or saves.
"""

import contextlib
from collections.abc import Iterator

# No postponed annotations in this module: Serve's class-based views hand FastAPI the raw annotations.
from fastapi import FastAPI, Request

APP_NAME = "minimal-baseline"


def build_minimal_app(store_root: str, ref: str, num_cpus: float, num_replicas: int = 1, threads: int = 1):
    """The baseline Serve application (nothing runs until serve.run)."""
    from ray import serve
    from starlette.concurrency import run_in_threadpool

    from model_store import ModelStore

    api = FastAPI()

    @serve.deployment(num_replicas=num_replicas, ray_actor_options={"num_cpus": num_cpus})
    @serve.ingress(api)
    class MinimalDetector:
        def __init__(self) -> None:
            self.detector = ModelStore(store_root).load_detector(ref, threads=threads)

        def _detect(self, data: bytes) -> dict:
            prepared, meta = self.detector.prepare_bytes(data, 50_000_000)
            [record] = self.detector.run_prepared([prepared], [meta])
            return record.model_dump(mode="json")

        @api.post("/v1/detect")
        async def detect(self, request: Request) -> dict:
            return await run_in_threadpool(self._detect, await request.body())

    return MinimalDetector.bind()


@contextlib.contextmanager
def minimal_service(store_root: str, ref: str, num_cpus: float, port: int, num_replicas: int = 1,
                    threads: int = 1) -> Iterator[str]:
    """Run the baseline app on the running Ray (Serve's proxy port if Serve is up, else `port`); yield its
    base URL; delete the app on exit."""
    from ray import serve

    from serve.local import running_http_options

    running = running_http_options()
    if running is None:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
    else:
        port = running[1]
    serve.run(build_minimal_app(store_root, ref, num_cpus, num_replicas, threads), name=APP_NAME,
              route_prefix="/minimal")
    try:
        yield f"http://127.0.0.1:{port}/minimal"
    finally:
        serve.delete(APP_NAME)
