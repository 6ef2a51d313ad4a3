"""`trapline models promote` and `POST /v1/admin/models/{model}/promote` through the gate
(batch/postprocessing/promote_gate.py): the comparison first, then the promote (the store's, audited), or a refusal.

When the gate runs: the alias already points at another version, and the tables where people's decisions live are
known (`--tables`; over HTTP the `tables` parameter, else the model's on_promote backfill tables). Otherwise it says
it was not run and why (a first promote has nothing to compare against; without tables there is no evidence), and
the promote goes ahead: a promote is never silently held up by a gate that could not look. Tables that are named
but hold no reviewed set of the current version are an error (exit 2, 422), not a pass.
"""

from __future__ import annotations

import getpass
from typing import Any

from batch.postprocessing.promote_gate import MIN_BOXES, PromoteRefusedError, compare, not_run, table
from model_store import ModelStore
from model_store.core.refs import ModelRef
from model_store.store.store import NotFoundError
from trapline.base.printed import Printed

NO_TABLES = ("no tables of people's reviews named (--tables; over HTTP `tables`, else the model's on_promote backfill "
             "tables): the gate compares versions on people's verified held-out data, and none was given")


def gate(store: str | None, ref: str, alias: str, tables: str | None, seed: int = 0,
         min_boxes: int = MIN_BOXES) -> dict[str, Any]:
    """The comparison of `ref` with the version `alias` points at now (or why the gate was not run)."""
    models = ModelStore(store)
    mv = models.get(ModelRef.parse(ref))
    candidate = f"{mv.name}:{mv.version}"
    try:
        now = models.resolve(ModelRef(mv.name, alias=alias))
    except NotFoundError:
        return not_run(f"{mv.name}@{alias} points at no version yet: nothing to compare against", None, candidate)
    current = f"{now.name}:{now.version}"
    if current == candidate:
        return not_run(f"{mv.name}@{alias} is {candidate} already", current, candidate)
    if mv.kind != "detector":
        return not_run(f"{candidate} is a {mv.kind}: the gate judges detectors' boxes (a classifier's top-1 on the "
                       "held-out crops is not measured yet)", current, candidate)
    if not tables:
        return not_run(NO_TABLES, current, candidate)
    return compare(tables, current, candidate, store, seed, min_boxes)


def decide(c: dict[str, Any], force: bool, reason: str | None) -> dict[str, Any]:
    """What goes into the answer and the audit: the verdict, whether the promote was forced, and why."""
    out = {"ran": c["ran"], "verdict": c.get("verdict"), "reason": c.get("reason"),
           "forced": bool(force and c["refused"]), "why": reason}
    if c["refused"] and not force:
        raise PromoteRefusedError(
            f"promote refused: {c['candidate']} is {c['verdict']} than {c['current']} on people's verified held-out "
            f"data ({c['rule']}); --force (HTTP: force=true) promotes it all the same, audited", comparison=c)
    return out


def promote(o: Any, progress: Any = None) -> Printed:
    """`trapline models promote`: the gate, its comparison printed either way, then the promote; the outcome (a
    refusal, a forced promote with who and why) in the audit log beside the store."""
    from model_store.store import cli as store_cli  # late: the registry names this runner without importing it
    from serve import people_cli

    def work(o: Any) -> Printed:
        c = gate(o.store, o.ref, o.alias, o.tables, o.seed, o.min_boxes)
        try:
            outcome = decide(c, o.force, o.reason)
        except PromoteRefusedError:
            print(table(c), flush=True)  # the figures behind the one-line refusal on stderr
            raise
        if outcome["forced"]:
            outcome["who"] = getpass.getuser()
        done = store_cli.promote(o)
        return Printed({**done.data, "gate": outcome, "comparison": c},
                       f"{table(c)}\n{done.text}" + (" (forced past the gate)" if outcome["forced"] else ""))

    return people_cli.audited(o, f"models promote {o.ref} @{o.alias}", work)
