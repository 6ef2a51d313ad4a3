"""The models page's data: every stored version of a model (aliases, model card, quantization agreement, the int8
candidates the gate refused), and the comparison of two versions in a set of tables, shown beside promote.

`GET /v1/models` says what the replicas serve; these routes read the store and the tables, so they also show
versions no replica has loaded yet (the candidates an operator is about to promote).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, Query, Request

from batch.export.base import subset_filter
from batch.jobs.deps import control_of
from batch.postprocessing.people import agreement_with_people
from batch.review.compare import DEFAULT_MIN_IOU, compare_in_tables
from ground.errors import InvalidParameterError, NotFoundError, ScopeError, TraplineError, invalid_parameter
from model_store import ModelStore
from model_store.core.refs import check_segment
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables
from model_store.tables.table_set import resolve_table_set
from serve.deps import in_thread, read_auth, service_of

if TYPE_CHECKING:
    import pyarrow.dataset as ds

router = APIRouter()
EXAMPLES = 10  # images where the versions disagree, most confident difference first


def backfill_policy(config: Any, name: str) -> dict[str, Any] | None:
    """The model's on_promote policy as the console shows it: the alias watched and the tables it fills."""
    for m in config.models:
        if m.name == name and m.on_promote is not None:
            return {"alias": m.on_promote.alias or m.aliases[0], "out": m.on_promote.reprocess["out"],
                    "archive": m.on_promote.reprocess["archive"]}
    return None


def model_catalog(store: ModelStore, name: str, backfill: dict[str, Any] | None) -> dict[str, Any]:
    """Every stored version of `name`, oldest first, with its card and (int8) its measured agreement."""
    try:
        check_segment("model name", name)
    except ValueError as exc:
        raise NotFoundError(f"no model {name!r}: {exc}") from None
    versions = store.list_versions(name)
    refused = store.refusals(name)
    if not versions and not refused:
        raise NotFoundError(f"no model {name!r} in the store (models: {', '.join(store.list_models()) or 'none'})")
    aliases = store.aliases(name)
    out = []
    for version in versions:
        entry = {"version": version, "aliases": sorted(a for a, r in aliases.items() if r.version == version)}
        try:
            mv = store.get(f"{name}:{version}")
            entry.update(kind=mv.kind, description=mv.config.description,
                         sha256=mv.sha256, card=store.card(mv), quantization=store.quantization(mv))
        except (TraplineError, OSError, ValueError) as exc:  # one broken version never hides the others
            entry["error"] = f"{type(exc).__name__}: {exc}"
        out.append(entry)
    return {"name": name, "versions": out,
            "aliases": {a: {"version": r.version, "history": list(r.history), "updated_at": r.updated_at or None}
                        for a, r in sorted(aliases.items())},
            "refused": [r for r in refused if r.get("version") not in versions], "backfill": backfill}


def version_comparison(tables: str, a: str, b: str, store: str | None, min_iou: float,
                       subset: ds.Expression | None = None) -> dict[str, Any]:
    """What version `b` finds that `a` does not (both refs, `name:version` or `name@alias`), and the reverse, over
    the images both processed in `tables` (those `subset` keeps, when given: `subset_filter`'s expression)."""
    with invalid_parameter("tables", "cannot compare"):  # no rows for a version, no tables there
        opened = Tables(open_location(tables))
        c, (filters_a, filters_b) = compare_in_tables(opened, a, b, store, min_iou, subset)
        people = agreement_with_people(opened, [resolve_table_set(opened, ref, f, store)
                                                        for ref, f in ((c.a, filters_a), (c.b, filters_b))], min_iou)
    labels = [{"label": label, **{k: int(v) for k, v in row.items()}} for label, row in c.per_label.iterrows()]
    return {"a": c.a, "b": c.b, "filters": {"a": filters_a, "b": filters_b}, "tables": tables, "min_iou": c.min_iou,
            "images_both": c.images_both,
            "images_only_a": c.images_only_a, "images_only_b": c.images_only_b, "images_differ": len(c.diffs),
            "labels": labels, "totals": {k: sum(r[k] for r in labels) for k in ("matched", "only_a", "only_b")},
            "examples": [{"uri": d.uri, "only_a": [_box(r) for r in d.only_a], "only_b": [_box(r) for r in d.only_b],
                          "matched": len(d.matched)} for d in c.diffs[:EXAMPLES]],
            "people": people}


def _box(row: Any) -> dict[str, Any]:
    return {"label": row.label, "score": round(float(row.score), 4)}


@router.get("/v1/models/{model}/versions", tags=["models"], dependencies=[Depends(read_auth)],
            summary="Every stored version: aliases, model card, quantization agreement, refused int8 candidates")
async def versions(request: Request, model: str) -> dict[str, Any]:
    service = service_of(request)
    store = ModelStore(service.config.store, cache_dir=service.config.cache_dir)
    return await in_thread(model_catalog, store, model, backfill_policy(service.config, model))


@router.get("/v1/models/{model}/compare", tags=["models"], dependencies=[Depends(read_auth)],
            summary="Two versions' kept boxes in one set of tables, matched per image (the report's --compare)")
async def compare(request: Request, model: str,
                  a: str = Query(..., description="the version now served, e.g. 1 (or NAME@ALIAS)"),
                  b: str = Query(..., description="the candidate, e.g. 2"),
                  tables: str | None = Query(None, description="tables both versions ran into (default: the "
                                                               "model's on_promote backfill tables)"),
                  min_iou: float = Query(DEFAULT_MIN_IOU, gt=0.0, le=1.0),
                  cameras: list[str] | None = Query(None, description="only these cameras (repeatable): bounds the "
                                                                      "work on a large archive"),
                  since: str | None = Query(None, description="captured at or after (YYYY-MM-DD or ISO time)"),
                  until: str | None = Query(None, description="captured at or before")) -> dict[str, Any]:
    # "\f" keeps the reason out of the OpenAPI page: FastAPI cuts a route's docstring there
    """
    \fNine parameters: FastAPI reads each as a path or query parameter of the route (their names and help are
    the HTTP API), the request itself for the service's config."""
    service = service_of(request)
    if tables is None:
        policy = backfill_policy(service.config, model)
        if policy is None:
            raise InvalidParameterError(f"name the tables to compare in: {model!r} has no on_promote policy whose "
                                        "tables would be the default", field="tables")
        tables = policy["out"]
    else:
        tables = control_of(request).paths.check("tables", tables)
    refs = [v if ("@" in v or ":" in v) else f"{model}:{v}" for v in (a, b)]
    try:
        subset = subset_filter(cameras, since, until)
    except ScopeError as exc:
        raise InvalidParameterError(f"cannot compare: {exc}", field="since" if since or until else "cameras") from None
    return await in_thread(version_comparison, tables, refs[0], refs[1], service.config.store, min_iou, subset)
