"""`GET /v1/filters`: the registered post-processing filters, described for a person and for a form generator.

On the online door (attached with the detect and model routes, whatever features the service has): `/v1/detect`'s
`filters` parameter points here, so a service with jobs off, or the online door alone, answers it too. Read from the
filter registry (model_store/core/filters), so a new filter is listed with no edit here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from model_store.core.filters import REGISTRY
from serve.deps import read_auth

router = APIRouter()


@router.get("/v1/filters", tags=["post-processing"], dependencies=[Depends(read_auth)],
            summary="Every registered post-processing filter: description, defaults, JSON Schema of its config")
async def list_filters() -> dict[str, Any]:
    return {"filters": [filter_info(name, cls) for name, cls in REGISTRY.items()]}


def filter_info(name: str, cls: Any) -> dict[str, Any]:
    """One filter: its name, kind, whether it needs the stored table, the first paragraph of its docstring, its
    config's defaults, required fields and JSON Schema."""
    model = cls.config_model
    doc = (cls.__doc__ or model.__doc__ or "").strip()
    defaults = {k: f.default for k, f in model.model_fields.items() if not f.is_required()}
    return {"name": name, "kind": cls.kind, "table_level": cls.table_level, "description": doc.split("\n\n")[0],
            "defaults": defaults, "required": [k for k, f in model.model_fields.items() if f.is_required()],
            "schema": model.model_json_schema()}
