"""`trapline models ...`: list, show, publish, quantize, promote, rollback and verify model versions."""

from __future__ import annotations

import argparse
import json

from model_store.core.refs import DEFAULT_ALIAS, ModelRef
from model_store.core.species.data import SpeciesSources
from model_store.store.derive import PRESETS
from model_store.store.quantize import quantize_version
from model_store.store.quantize_report import Gate
from model_store.store.store import ModelStore, prepare_config
from trapline.base.errors import QuantizeRefusedError, UserError


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

    p = msub.add_parser(
        "publish", help="publish new weights as an immutable version",
        description="Publish weights as NAME:VERSION. An ONNX file is inspected first: an Ultralytics (YOLOv8, "
                    "YOLO11, ...) or YOLOv5 export needs no config (labels, input size, stride and layout are read "
                    "from the file); --preset and then --config override what was derived, and a config that "
                    "contradicts the graph is refused.",
        epilog="examples:\n  trapline models publish yolov8n.onnx --name yolov8n --version 1\n"
               "  trapline models publish md_v5a.onnx --name megadetector --version 5a --preset megadetector-v5\n"
               "  trapline models publish model.onnx --name moths --version 3 --config overrides.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_argument(p)
    p.add_argument("weights", nargs="?", default=None,
                   help="weights file (e.g. model.onnx); none for a keypoints identifier (its --config is the model)")
    p.add_argument("--name", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--config", default=None,
                   help="config.json for this version, whole or only the fields to override (weights.sha256 is "
                        "filled in); optional for ONNX exports that carry their class names")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="a known model family's configuration (applied before --config)")
    p.add_argument("--dry-run", action="store_true", help="print the config that would be published and stop")
    p.add_argument("--card", default=None, help="README.md model card")
    p.add_argument("--taxonomy", default=None, help="a classifier's SpeciesNet taxonomy file (7-field labels, one a "
                                                    "line), published beside it for the species ensemble")
    p.add_argument("--geofence", default=None, help="a classifier's SpeciesNet geofence file (JSON allow/block "
                                                    "rules); needs --taxonomy")
    p.add_argument("--taxa-list", action="append", default=[], metavar="NAME=FILE",
                   help="a project's taxa list (CSV latin,common[,threshold]) published beside the classifier under "
                        "NAME, for species_ensemble's taxa_list; repeatable; needs --taxonomy")
    p.set_defaults(func=cmd_publish)

    p = msub.add_parser(
        "inspect", help="show what an ONNX file says about itself and the config publish would derive from it",
        description="Read an ONNX detector's inputs, outputs and producer metadata (Ultralytics: task, end2end, "
                    "head, names, imgsz, stride) and print the output layout, labels and preprocessing that "
                    "`trapline models publish` would choose, and why; or the one line saying which config keys to "
                    "give. Nothing is written.",
        epilog="examples:\n  trapline models inspect yolo26n.onnx\n"
               "  trapline models inspect detr.onnx --config overrides.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("weights", help="an ONNX file")
    p.add_argument("--config", default=None, help="config fields to put over what is derived (as for publish)")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS), help="a known model family's configuration")
    p.set_defaults(func=cmd_inspect)

    p = msub.add_parser(
        "quantize", help="publish an int8 version beside its parent, if it keeps the parent's boxes",
        description="Quantize NAME:VERSION to int8 (ONNX Runtime static quantization: QDQ, per-channel int8 "
                    "weights) and publish it as NAME:V2 beside its parent, with the parent's config. Images in "
                    "DIR are split deterministically: activation ranges are calibrated on most of them, and on the "
                    "held-out rest both versions run through the detector. The parent's boxes are the truth: the "
                    "report gives the int8 version's recall and precision of them (same class, IoU >= 0.5), per "
                    "class and overall, mAP@0.5 with the parent as truth, |Δscore| of matched boxes (reported, "
                    "not judged) and ms/image on one thread; it goes into the new version's model card. Below "
                    "--min-recall or --min-precision (overall, or for a class with --min-class-boxes boxes) "
                    "nothing is published (exit 2) unless --force; with fewer than --min-boxes of the parent's "
                    "boxes on the held-out images the command says there are too few to judge and publishes "
                    "nothing unless --force. No alias is moved (promote the int8 version to serve it), but the "
                    "implicit `latest` is the highest version name, which the new one may be.",
        epilog="examples:\n  trapline models quantize demo-detector:2 --calibrate samples/ --version 2-int8\n"
               "  trapline models quantize yolov8n:1 --calibrate /data/traps/sample --version 1-int8 "
               "--min-recall 0.95",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_argument(p)
    p.add_argument("ref", help="NAME:VERSION or NAME@ALIAS of an ONNX model to quantize")
    p.add_argument("--calibrate", required=True, metavar="DIR",
                   help="directory of representative images (searched recursively); a few hundred from the "
                        "cameras the model serves, most of them with objects in them")
    p.add_argument("--version", required=True, help="version to publish the int8 model as")
    p.add_argument("--holdout-fraction", type=float, default=0.3,
                   help="share of the images kept out of calibration to compare the versions on (default 0.3)")
    gate = Gate()
    p.add_argument("--min-recall", type=float, default=gate.min_recall,
                   help="refuse when the int8 version finds less of the parent's boxes, overall or in a judged "
                        f"class (default {gate.min_recall:g})")
    p.add_argument("--min-precision", type=float, default=gate.min_precision,
                   help="refuse when fewer of the int8 version's boxes are the parent's, overall or in a judged "
                        f"class (default {gate.min_precision:g})")
    p.add_argument("--min-boxes", type=int, default=gate.min_boxes,
                   help="parent boxes on the held-out images needed to judge at all; below it nothing is "
                        f"published without --force (default {gate.min_boxes})")
    p.add_argument("--min-class-boxes", type=int, default=gate.min_class_boxes,
                   help=f"boxes of one class from which that class is judged on its own (default "
                        f"{gate.min_class_boxes})")
    p.add_argument("--min-score", type=float, default=gate.min_score,
                   help=f"boxes scoring below this count on neither side (default {gate.min_score:g})")
    p.add_argument("--min-match", type=float, default=None, help=argparse.SUPPRESS)  # replaced; says so
    p.add_argument("--force", action="store_true",
                   help="publish even when the int8 version is below the gate or there are too few boxes to judge")
    p.set_defaults(func=cmd_quantize)

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
        refused = [{"version": r["version"], "reason": r.get("reason", "")} for r in store.refusals(name)]
        rows.append({"name": name, "versions": store.list_versions(name), "aliases": aliases, "refused": refused})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print(f"no models in {store.root}")
    for row in rows:
        aliases = ", ".join(f"{a}->{v}" for a, v in sorted(row["aliases"].items()))
        print(f"{row['name']}: versions {', '.join(row['versions'])}; aliases {aliases or '-'}")
        for r in row["refused"]:
            print(f"  refused {r['version']}: {r['reason']}")
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
    print("\n".join(graph_lines(mv.config)))
    print(json.dumps(mv.config.model_dump(mode="json", exclude={"graph"}), indent=2))
    card = store.card(mv.ref)
    if card:
        print("\n" + card.rstrip())
    return 0


def species_sources(taxonomy: str | None, geofence: str | None, taxa_lists: list[str] = ()) -> SpeciesSources | None:
    """The bytes of `--taxonomy` / `--geofence` / `--taxa-list NAME=FILE`, or None."""
    from pathlib import Path

    if (geofence or taxa_lists) and not taxonomy:
        raise UserError("--geofence and --taxa-list need --taxonomy: they name taxa of the classifier's taxonomy")
    if not taxonomy:
        return None
    pairs = [item.partition("=") for item in taxa_lists]
    bad = [f"{n}{sep}{f}" for n, sep, f in pairs if not (n and sep and f)]
    if bad:
        raise UserError(f"--taxa-list takes NAME=FILE, got {bad[0]!r}")
    try:
        return SpeciesSources(Path(taxonomy).read_bytes(), Path(geofence).read_bytes() if geofence else None,
                              {n: Path(f).read_bytes() for n, _, f in pairs})
    except OSError as exc:
        raise UserError(f"cannot read {exc.filename}: {exc.strerror}") from None


def cmd_publish(args: argparse.Namespace) -> int:
    if args.dry_run:
        from pathlib import Path

        weights = Path(args.weights) if args.weights else None
        parsed = prepare_config(weights, args.config, args.preset, f"config for {args.name}:{args.version}")
        print(json.dumps(parsed.model_dump(mode="json", exclude={"graph"}), indent=2))
        print("\n" + "\n".join(graph_lines(parsed)))
        return 0
    store = ModelStore(args.store)
    mv = store.publish(args.weights, args.name, args.version, args.config, args.card, preset=args.preset,
                       species=species_sources(args.taxonomy, args.geofence, args.taxa_list))
    cfg = mv.config
    print(f"published {mv.name}:{mv.version} sha256={mv.sha256} at {mv.url}")
    if mv.kind == "identifier":
        size = f"input {cfg.input_size[0]}x{cfg.input_size[1]}" if cfg.input_size else f"{cfg.keypoints.features} " \
            f"keypoints, ratio {cfg.keypoints.ratio}, RANSAC {cfg.keypoints.ransac_px} px"
        print(f"  identifier ({cfg.backend}) for {', '.join(cfg.applies_to)}: {size}, calibration "
              f"{cfg.calibration.kind}")
        return 0
    labels = f"{cfg.num_classes} labels ({', '.join(cfg.labels[:5])}{', ...' if cfg.num_classes > 5 else ''})"
    if mv.is_classifier:
        print(f"  classifier: {labels}, input {cfg.input_size[0]}x{cfg.input_size[1]}, output {cfg.output}, "
              f"top {cfg.top_k}, for detector labels {cfg.applies_to or 'all'}")
    else:
        print(f"  {labels}, input {cfg.input_size[0]}x{cfg.input_size[1]}, stride {cfg.stride}, letterbox "
              f"{cfg.preprocess.letterbox}, layout {cfg.output_layout}, score >= {cfg.score_threshold}, "
              f"NMS IoU {cfg.nms_iou}")
    for line in graph_lines(cfg):
        print("  " + line)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from pathlib import Path

    # here: every trapline command builds this parser; onnx and the heads load only for `models inspect`
    from model_store.core.graph import inspect_onnx
    from model_store.core.heads import head_for

    path = Path(args.weights)
    graph, metadata = inspect_onnx(path)
    names = metadata.get("names")
    found = {k: metadata[k] for k in ("task", "end2end", "head", "imgsz", "stride") if k in metadata}
    if isinstance(metadata.get("args"), dict) and "nms" in metadata["args"]:
        found["args.nms"] = metadata["args"]["nms"]
    if names is not None:
        found["names"] = f"{len(names)} classes" if isinstance(names, dict | list | tuple) else names
    print(f"{path.name}")
    print(f"  graph input:   {graph.input.describe()}")
    print(f"  graph outputs: {', '.join(o.describe() for o in graph.outputs)}")
    print(f"  producer:      {graph.producer}"
          + (f" ({', '.join(f'{k}={v}' for k, v in found.items())})" if found else " (no metadata trapline reads)"))
    cfg = prepare_config(path, args.config, args.preset, f"config for {path.name}")  # ConfigError: the keys to give
    p = cfg.preprocess
    head = head_for(cfg.output_layout, cfg.task)
    if cfg.graph and cfg.graph.probed_outputs:
        print(f"  ran once:      outputs {cfg.graph.probed_outputs} on a blank {cfg.input_size[0]}x{cfg.input_size[1]}"
              " input (the graph leaves dims symbolic)")
    print("would publish:")
    task = " (task segment: each detection carries its mask)" if cfg.task == "segment" else ""
    print(f"  layout:        {cfg.output_layout} - {head.summary}{task}")
    print(f"  labels:        {cfg.num_classes} ({', '.join(cfg.labels[:5])}{', ...' if cfg.num_classes > 5 else ''})")
    print(f"  input:         {cfg.input_size[0]}x{cfg.input_size[1]}, stride {cfg.stride}, {p.input_dtype}")
    pad = p.pad_value if isinstance(p.pad_value, int) else list(p.pad_value)
    norm = f", mean {list(p.mean)} std {list(p.std)}" if p.mean or p.std else ""
    print(f"  preprocessing: letterbox {p.letterbox}, pad {p.pad_anchor} in {pad}, {p.interpolation} resize "
          f"({p.resize_rounding}), {p.color_order}, scale {p.scale:.6g}{norm}")
    nms = f"NMS IoU {cfg.nms_iou}" if head.nms else "no NMS (the graph's own top-K)"
    print(f"  decoding:      score >= {cfg.score_threshold}, {nms}, at most {cfg.max_detections} boxes")
    return 0


def graph_lines(cfg) -> list[str]:
    """What the inspected graph says, for people: input, output, batch, producer."""
    g = cfg.graph
    if g is None:
        return [f"graph: not inspected (backend {cfg.backend})"]
    batch = f"static batch {g.fixed_batch} (formed batches run in chunks of {g.fixed_batch})" if g.fixed_batch \
        else "dynamic batch"
    spatial = "static spatial dims" if g.static_hw else "dynamic spatial dims"
    meta = ", ".join(f"{k}={v}" for k, v in sorted(g.metadata.items()) if k in ("version", "task", "imgsz", "stride",
                                                                                  "batch", "date"))
    return [f"graph input:  {g.input.describe()} ({batch}, {spatial})",
            f"graph output: {', '.join(o.describe() for o in g.outputs)}",
            f"producer:     {g.producer}{f' ({meta})' if meta else ''}"]


def cmd_quantize(args: argparse.Namespace) -> int:
    import logging

    if args.min_match is not None:
        raise UserError("--min-match was replaced by --min-recall and --min-precision: the int8 version is judged "
                        "by how many of the parent's boxes it finds and how many of its boxes the parent has "
                        "(same class, IoU >= 0.5), see `trapline models quantize --help`")
    gate = Gate(min_recall=args.min_recall, min_precision=args.min_precision, min_boxes=args.min_boxes,
                min_class_boxes=args.min_class_boxes, min_score=args.min_score)
    # ONNX Runtime's quantizer warns on the root logger about details the report already covers.
    logging.disable(logging.WARNING)
    store = ModelStore(args.store)
    try:
        report = quantize_version(store, args.ref, args.calibrate, args.version,
                                  holdout_fraction=args.holdout_fraction, gate=gate, force=args.force)
    except QuantizeRefusedError as refused:
        print(refused.report.table())  # the figures behind the one-line refusal the CLI prints on stderr
        raise
    mv = store.get(report.candidate)
    forced = f" (forced: {report.verdict})" if not report.passed else ""
    print(f"published {report.candidate}, int8 of {report.parent}{forced}, sha256={mv.config.weights.sha256} "
          f"at {mv.url}")
    print(report.table())
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
    print(f"ok: {mv.name}:{mv.version} config valid, sha256 {mv.sha256} matches")
    return 0
