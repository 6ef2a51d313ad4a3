"""The gate before `POST /v1/admin/models/{model}/promote` (serve/routes.py calls it where `attach_views`,
batch/views/routes.py, put it on the app): the gate of `trapline models promote` (batch/review/promote_gate.py), its
tables the `tables` parameter (under the jobs' allowed roots), else the model's on_promote backfill tables, else the
recorder's; with none, the gate is not run and the answer says so. A refusal is a 409 whose body holds the
comparison. Named tables that hold nothing to judge by are a 422; default ones that hold nothing yet (a backfill that
never ran, a recorder that kept nothing) do not stop the promote: the gate is not run, and the answer says why."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from batch.jobs.deps import control_of
from batch.review.promote_gate import decide, gate, not_run
from batch.views.catalog import backfill_policy
from ground.errors import BatchError, InvalidParameterError
from model_store.store.store import ModelStore
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from serve.deps import in_thread, service_of


def default_tables(config: Any, model: str) -> str | None:
    """Where people's decisions about `model` live when the request names no tables."""
    policy = backfill_policy(config, model)
    if policy is not None:
        return policy["out"]
    return config.record.tables if config.record is not None else None


async def promote_gate(request: Request, model: str, version: str, alias: str, q: Any) -> dict[str, Any]:
    """The gate's outcome with its comparison (raises PromoteRefusedError, 409, on a refusal)."""
    service = service_of(request)
    tables = control_of(request).paths.check("tables", q.tables) if q.tables else default_tables(service.config,
                                                                                                    model)
    try:
        opened = Tables(open_location(tables)) if tables else None
        c = await in_thread(gate, ModelStore(service.config.store), f"{model}:{version}", alias, opened, q.seed)
    except BatchError as exc:  # the tables hold nothing to judge by (no images table, no rows of the model)
        if q.tables:
            raise InvalidParameterError(f"tables: {exc}", field="tables") from exc
        c = not_run(f"the default tables {tables} (the model's on_promote backfill, else the recorder's) hold nothing "
                    f"to judge by yet: {exc}", None, f"{model}:{version}")
    outcome = decide(c, q.force, q.reason)
    if outcome["forced"]:
        person = getattr(request.state, "person", None)
        outcome["who"] = person.name if person else None
    return {**outcome, "comparison": c}
