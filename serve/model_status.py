"""One served model as all its replicas see it: their `ReplicaStatus` answers merged into `ModelStatusOut`.

The ingress core (serve/ingress.py) broadcasts `status` to a model's replicas and merges the answers here; nothing
here calls Ray.
"""

from __future__ import annotations

from typing import Any, Literal

from serve.answers import RefusedVersionOut, ReplicaStatus
from serve.protocol import LoadedVersionOut, ModelStatusOut
from serve.telemetry import merge_stats


def merged_status(name: str, kind: Literal["detector", "classifier"], deployment: str,
                  classify: list[dict[str, Any]] | None, replicas: list[ReplicaStatus]) -> ModelStatusOut:
    """The model's status over `replicas`: ready when each serves its default alias; aliases agree once a swap is
    done (while they disagree, each alias lists the versions the replicas answer with)."""
    if not replicas:
        return ModelStatusOut(name=name, kind=kind, deployment=deployment, replicas=[], classify=classify,
                              ready=False, default_alias=None, aliases={}, store_aliases={}, versions=[],
                              errors=[], batching=None, stats=merge_stats([]))
    first = replicas[0]
    versions: dict[str, LoadedVersionOut] = {}
    errors: dict[tuple, RefusedVersionOut] = {}
    for rep in replicas:
        for v in rep.versions:
            merged = versions.setdefault(v.version, LoadedVersionOut(
                version=v.version, sha256=v.sha256, device=v.device, pinned=v.pinned, tiling=v.tiling))
            merged.aliases = sorted({*merged.aliases, *v.aliases})
        for e in rep.errors:
            errors[(e.version, e.type)] = e
    same_aliases = all(r.aliases == first.aliases for r in replicas)
    return ModelStatusOut(
        name=name, kind=kind, deployment=deployment, replicas=replicas, classify=classify,
        ready=all(rep.aliases.get(rep.default_alias) for rep in replicas),
        default_alias=first.default_alias,
        aliases=first.aliases if same_aliases
        else {a: sorted({str(r.aliases.get(a)) for r in replicas}) for a in first.aliases},
        store_aliases=first.store_aliases,
        versions=list(versions.values()),
        errors=list(errors.values()),
        batching=first.batching,
        stats=merge_stats([r.stats for r in replicas]),
    )
