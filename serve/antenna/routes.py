"""The Antenna door's HTTP routes: parse, call the door, encode in Antenna's schema. No logic here.

Antenna calls `GET /readyz` (timeout 90 s) and `GET /info` (timeout 6 s) when a service is registered, then
`POST /process` per batch of captures (no timeout); it joins `/process` to the root of the registered URL, so these
routes live at the root of the door's own port. `GET /trapline/sizing` tells the pull worker how many tasks to take,
`GET /trapline/slugs` which jobs' pipelines it can answer.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ground.errors import NotReadyError, TraplineError
from ground.problems import describe, problems
from serve.antenna.catalog import Catalog
from serve.antenna.process import ImageResults, Processor
from serve.antenna.protocol import LiveAnswer, PipelineRequest, PipelineResults, ReadyAnswer, ServiceInfo

INFO_TIMEOUT_S = 5.0  # Antenna gives /info 6 s


class Door(Protocol):
    """What the routes need (serve/antenna/door.py `AntennaDoor`; tests give their own)."""

    catalog: Catalog
    processor: Processor

    async def ready_slugs(self) -> list[str]: ...
    async def unplaced(self) -> list[str]: ...
    def sizing(self) -> dict[str, Any]: ...


def _door(request: Request) -> Door:
    return request.app.state.door


def create_door_app(door: Door) -> FastAPI:
    app = FastAPI(title="trapline for Antenna", version="1", docs_url="/docs", redoc_url=None,
                  description="Antenna's processing-service API (push mode) over trapline's served models.")
    app.state.door = door

    @app.exception_handler(TraplineError)
    async def _error(request: Request, exc: TraplineError) -> JSONResponse:
        # `detail` too: what Antenna puts in the job's log for an error answer (FastAPI's key, which it reads first)
        return JSONResponse({**exc.body(), "detail": exc.message}, status_code=exc.status or 500, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": {"type": "invalid_parameter", "message": describe(problems(exc))}},
                            status_code=422)

    @app.get("/livez")
    async def livez() -> LiveAnswer:
        return LiveAnswer()

    @app.get("/readyz", responses={503: {}})
    async def readyz(request: Request) -> ReadyAnswer:
        slugs = await _door(request).ready_slugs()
        if not slugs:  # with the reason a replica cannot be placed, when that is why (serve/placement.py)
            unplaced = await _door(request).unplaced()
            raise NotReadyError("no pipeline's models serve yet" + "".join(f"; {r}" for r in unplaced), status=[])
        return ReadyAnswer(status=slugs)

    @app.get("/info")
    async def info(request: Request) -> ServiceInfo:
        # from the store, not the replicas: it answers while models load
        try:
            return await asyncio.wait_for(asyncio.to_thread(_door(request).catalog.info), INFO_TIMEOUT_S)
        except TimeoutError:
            raise NotReadyError(f"the model store did not answer within {INFO_TIMEOUT_S:g} s") from None

    @app.post("/process")
    async def process(request: Request, body: PipelineRequest) -> PipelineResults:
        return await _door(request).processor.process(body)

    @app.post("/trapline/process/images")
    async def process_images(request: Request, body: PipelineRequest) -> ImageResults:
        """Pull mode: each image's own answer (its PipelineResults, or its typed error), for one task each."""
        return await _door(request).processor.process_each(body)

    @app.get("/trapline/sizing")
    async def sizing(request: Request) -> dict[str, Any]:
        return _door(request).sizing()

    @app.get("/trapline/slugs")
    async def slugs(request: Request) -> list[str]:
        """Every pipeline slug the door answers, earlier detector versions' included (`Catalog.answerable`)."""
        return await asyncio.to_thread(_door(request).catalog.answerable)

    return app
