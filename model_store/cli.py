"""`trapline models ...`: list, show, publish, promote, rollback and verify model versions."""

from __future__ import annotations

import argparse
import json

from .refs import DEFAULT_ALIAS, ModelRef
from .store import ModelStore


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None,
                        help="model store root: a directory or s3://bucket/prefix "
                             "(default: $TRAPLINE_MODEL_STORE or ./models)")


def register(sub: argparse._SubParsersAction) -> None:
    models = sub.add_parser("models", help="manage versioned models in the model store")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    p = msub.add_parser("list", help="list models, versions and aliases")
    add_store_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = msub.add_parser("show", help="show one version's config, aliases and model card")
    add_store_argument(p)
    p.add_argument("ref", help="NAME, NAME:VERSION or NAME@ALIAS (a bare NAME means @production)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_show)

    p = msub.add_parser("publish", help="publish new weights as an immutable version")
    add_store_argument(p)
    p.add_argument("weights", help="weights file (e.g. model.onnx)")
    p.add_argument("--name", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--config", required=True, help="config.json for this version (weights.sha256 is filled in)")
    p.add_argument("--card", default=None, help="README.md model card")
    p.set_defaults(func=cmd_publish)

    p = msub.add_parser("promote", help="point an alias at a version (verifies it first)")
    add_store_argument(p)
    p.add_argument("ref", help="NAME:VERSION")
    p.add_argument("--alias", default=DEFAULT_ALIAS)
    p.set_defaults(func=cmd_promote)

    p = msub.add_parser("rollback", help="return an alias to the version it pointed at before")
    add_store_argument(p)
    p.add_argument("name")
    p.add_argument("--alias", default=DEFAULT_ALIAS)
    p.set_defaults(func=cmd_rollback)

    p = msub.add_parser("verify", help="check a version's config and weights checksum")
    add_store_argument(p)
    p.add_argument("ref", help="NAME:VERSION or NAME@ALIAS")
    p.set_defaults(func=cmd_verify)


def cmd_list(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    rows = []
    for name in store.list_models():
        aliases = {k: v.version for k, v in store.aliases(name).items()}
        rows.append({"name": name, "versions": store.list_versions(name), "aliases": aliases})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no models in {store.root}")
    for row in rows:
        aliases = ", ".join(f"{a}->{v}" for a, v in sorted(row["aliases"].items()))
        print(f"{row['name']}: versions {', '.join(row['versions'])}; aliases {aliases or '-'}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    mv = store.get(args.ref)
    aliases = sorted(a for a, rec in store.aliases(mv.name).items() if rec.version == mv.version)
    out = {"name": mv.name, "version": mv.version, "url": mv.url, "aliases": aliases,
           "config": mv.config.model_dump(mode="json")}
    if args.json:
        out["card"] = store.card(mv.ref)
        print(json.dumps(out, indent=2))
        return 0
    print(f"{mv.name}:{mv.version}  ({', '.join(aliases) or 'no aliases'})  {mv.url}")
    print(json.dumps(out["config"], indent=2))
    card = store.card(mv.ref)
    if card:
        print("\n" + card.rstrip())
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    mv = store.publish(args.weights, args.name, args.version, args.config, args.card)
    print(f"published {mv.name}:{mv.version} sha256={mv.config.weights.sha256} at {mv.url}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    ref = ModelRef.parse(args.ref)
    record = store.promote(ref, args.alias)
    before = record.history[-1] if record.history else "nothing"
    print(f"{ref.name}@{args.alias} -> {record.version} (was {before})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    record = store.rollback(args.name, args.alias)
    print(f"{args.name}@{args.alias} -> {record.version} (rolled back)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    store = ModelStore(args.store)
    mv = store.verify(args.ref)
    print(f"ok: {mv.name}:{mv.version} config valid, sha256 {mv.config.weights.sha256} matches")
    return 0
