"""Keep compiled bytecode (.pyc) only for the modules trapline's processes import.

    python compile-runtime.py --fresh          # deps stage: drop every __pycache__, compile what the runtime imports
    python compile-runtime.py --packages model_store serve batch trapline ground  # last stage: what trapline imports

pip compiles every module it installs: 133 MB of .pyc in the image, most of it for modules no trapline process ever
imports (Ray's Tune, Train and LLM libraries, most of scipy and pandas, ...). The .pyc of what is imported must stay:
the image's user (uid 1000) cannot write them back into the venv, so every replica and worker would compile its
imports at each start (measured: a replica's imports take 1.1 s with them, 3.4 s without). So the build drops them
all and imports, once, what the runtime's processes import; Python writes the .pyc of exactly those. A module this
misses still works: it is compiled in memory each time it is imported, and only that costs time.

The second call, in the image's last stage, imports every module of trapline's own packages: that compiles what
they import from the dependencies that the first call did not (a few files, in the last layer), so the list below
can stay the dependencies' entry points, which change with Ray's version, not with trapline's code.
"""

from __future__ import annotations

import argparse
import compileall
import importlib
import pkgutil
import re
import shutil
import site
import sys
from pathlib import Path

# What the processes of a running service and of a job import, besides trapline's own modules: Ray's processes
# (workers, the dashboard and its modules with the job API, the log monitor, the autoscaler's monitor), Serve's
# controller, proxy and replicas, Ray Data's executor, and the libraries trapline's core loads late.
RUNTIME = """
ray ray.serve ray.data ray.dashboard ray.dashboard.dashboard ray.dashboard.agent ray.dashboard.http_server_head
ray._private.workers.default_worker ray._private.log_monitor ray.autoscaler._private.monitor ray.autoscaler.v2.monitor
ray.serve._private.replica ray.serve._private.proxy ray.serve._private.controller ray.serve._private.router
ray.data._internal.execution.streaming_executor ray.data._internal.execution.operators.actor_pool_map_operator
ray.job_submission ray.scripts.scripts ray.util.state
pyarrow.dataset pyarrow.parquet pyarrow.fs pyarrow.compute pyarrow.csv pyarrow.json
numpy pandas scipy.optimize scipy.sparse.csgraph onnxruntime cv2 av av.video.reformatter PIL.Image
pycocotools.mask jinja2 yaml pydantic fastapi uvicorn starlette
multipart httpx aiohttp uvloop grpc fsspec s3fs botocore.session aiobotocore
""".split()
# Packages whose every module a process may load by name (the dashboard walks its modules at start).
WALKED = ["ray.dashboard.modules"]
# Trees compiled whole, because their modules are loaded late, by name or by a process of their own, in ways the
# imports above do not reach: Ray Data's planner and operators (at a job's first execution), Ray's runtime-env agent
# (with its vendored aiohttp), Pillow's format plugins (Image.open loads them all), the HTTP servers under Serve's
# proxy and httpx. Found by running the service, a job through it and a job with its own actors in the image as
# root and listing the .pyc that appeared. Ray's Tune, Train and LLM libraries stay out: nothing loads them.
TREES = ["ray", "PIL", "uvicorn", "h11", "httptools", "websockets", "httpcore", "anyio", "fastapi", "fsspec"]
SKIPPED = re.compile(r"/ray/(tune|train|llm)/")


def _import(name: str) -> None:
    if name.rsplit(".", 1)[-1] == "__main__":  # importing a __main__ runs the program
        return
    try:
        importlib.import_module(name)
    except BaseException as exc:  # noqa: BLE001 - an optional extra missing (torch, ...) leaves that module out
        print(f"compile-runtime: {name} not imported ({type(exc).__name__}: {str(exc)[:80]})", file=sys.stderr)


def _walk(package: str) -> None:
    _import(package)
    module = sys.modules.get(package)
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), package + ".", onerror=lambda _name: None):
        _import(info.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fresh", action="store_true", help="first remove every __pycache__ in site-packages")
    parser.add_argument("--packages", nargs="*", default=[], help="import every module of these packages too")
    args = parser.parse_args()
    if args.fresh:
        for root in site.getsitepackages():
            for cache in Path(root).rglob("__pycache__"):
                shutil.rmtree(cache, ignore_errors=True)
    sys.dont_write_bytecode = False
    for name in RUNTIME if args.fresh else []:
        _import(name)
    for package in (WALKED if args.fresh else []) + args.packages:
        _walk(package)
    for tree in TREES if args.fresh else []:
        for root in site.getsitepackages():
            if (Path(root) / tree).is_dir():
                compileall.compile_dir(Path(root) / tree, quiet=1, rx=SKIPPED)
    kept = sum(p.stat().st_size for root in site.getsitepackages() for p in Path(root).rglob("*.pyc"))
    print(f"compile-runtime: {kept / 1e6:.0f} MB of .pyc in site-packages")


if __name__ == "__main__":
    main()
