"""`trapline models promote` and `POST /v1/admin/models/{model}/promote` through the gate
(batch/review/promote_gate.py): the comparison first, then the promote (the store's, audited), or a refusal.

When the gate runs: the alias already points at another version, and the tables where people's decisions live are
known (`--tables`; over HTTP the `tables` parameter, else the model's on_promote backfill tables). Otherwise it says
it was not run and why (a first promote has nothing to compare against; without tables there is no evidence), and
the promote goes ahead: a promote is never silently held up by a gate that could not look. Tables that are named
but hold no reviewed set of the current version are an error (exit 2, 422), not a pass.
"""

from __future__ import annotations

import getpass
from typing import Any

from batch.review.promote_gate import PromoteRefusedError, decide, gate, table
from ground.printed import Printed
from model_store.store.store import ModelStore
from model_store.tables.locations import open_location
from model_store.tables.reader import Tables


def promote(o: Any, progress: Any = None) -> Printed:
    """`trapline models promote`: the gate, its comparison printed either way, then the promote; the outcome (a
    refusal, a forced promote with who and why) in the audit log beside the store."""
    from model_store.store import cli as store_cli  # late: the registry names this runner without importing it
    from serve import people_cli  # late: as above

    def work(o: Any) -> Printed:
        models = ModelStore(o.store)  # opened once: the gate and the promote both use it, as the tables
        c = gate(models, o.ref, o.alias, Tables(open_location(o.tables)) if o.tables else None, o.seed, o.min_boxes)
        try:
            outcome = decide(c, o.force, o.reason)
        except PromoteRefusedError:
            print(table(c), flush=True)  # the figures behind the one-line refusal on stderr
            raise
        if outcome["forced"]:
            outcome["who"] = getpass.getuser()
        done = store_cli.promoted(models, o)
        return Printed({**done.data, "gate": outcome, "comparison": c},
                       f"{table(c)}\n{done.text}" + (" (forced past the gate)" if outcome["forced"] else ""))

    return people_cli.audited(o, f"models promote {o.ref} @{o.alias}", work)
