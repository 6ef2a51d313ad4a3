"""The season's routes: `GET /metrics` for Prometheus, `GET /v1/season` (the figures) and `GET /v1/season/health`
(the checks of `trapline health`) over the tables the service knows.

The figures are kept by a watcher that reads what each commit adds (model_store/tables/season.py,
batch/views/season_metrics.py): a scrape renders them and never reads the tables. `/metrics` covers every source
of the console (the recording's tables, the backfills', `jobs.pictures`, the tables found under the jobs' roots);
`/v1/season` and `/v1/season/health` take one (`tables`, default the recorder's). All need the API token.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from batch.health import judge
from batch.health_options import HealthThresholds
from batch.views.deps import TABLES, tables_of
from batch.views.picture_queries import sources
from batch.views.season_metrics import Watch, render
from ground.errors import InvalidParameterError
from serve.deps import in_thread, read_auth, service_of

router = APIRouter()
WATCH = Watch()  # one per ingress replica: its thread starts at the first request that needs it


def _sources(request: Request) -> dict[str, str]:
    return {name: s.tables for name, s in sources(service_of(request).config).items()}


@router.get("/metrics", tags=["season"], dependencies=[Depends(read_auth)], response_class=Response,
            summary="The season's signals of every source of tables, as Prometheus metrics")
async def metrics(request: Request) -> Response:
    found = await in_thread(WATCH.signals, _sources(request))
    return Response(render(found), media_type=CONTENT_TYPE_LATEST)


def _one(tables: str):
    return WATCH.signals({"tables": tables})["tables"]


@router.get("/v1/season", tags=["season"], dependencies=[Depends(read_auth)],
            summary="The season's figures of one set of tables (what /metrics shows of it)")
async def season(request: Request, tables: str | None = TABLES) -> dict[str, Any]:
    s = await in_thread(_one, await tables_of(request, tables))
    out = dataclasses.asdict(s)
    out["runs"] = [{"kind": k, "status": st, "runs": n} for (k, st), n in s.runs.items()]
    out["last_run_s"] = [{"kind": k, "status": st, "at_s": t} for (k, st), t in s.last_run_s.items()]
    out["table_bytes"] = [{"table": t, "model": m, "version": v, "set": rs, "bytes": n}
                          for (t, m, v, rs), n in s.table_bytes.items()]
    out["assignment_rate"] = s.assignment_rate
    return out


@router.get("/v1/season/health", tags=["season"], dependencies=[Depends(read_auth)],
            summary="The checks of `trapline health` for one set of tables (HTTP 200 either way: see `ok`); its "
                    "thresholds as query parameters of the same names (silent_days, max_failed_share, ...)")
async def health(request: Request, tables: str | None = TABLES) -> JSONResponse:
    given = {k: v for k, v in request.query_params.items() if k in HealthThresholds.model_fields}
    try:
        thresholds = HealthThresholds.model_validate(given)
    except ValueError as exc:
        raise InvalidParameterError(f"a threshold is not valid: {exc}") from None
    report = judge(await in_thread(_one, await tables_of(request, tables)), thresholds)
    return JSONResponse({"tables": report.tables, "ok": report.ok,
                         "checks": [dataclasses.asdict(c) for c in report.checks]})
