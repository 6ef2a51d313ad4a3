"""`trapline models list | show | publish | inspect | quantize | promote | rollback | verify`: the runners and
printers of the registry's `models` commands (their entries and options: batch/models_commands.py, which this
module may not import: the store sits below batch/). Each runner takes the options by attribute and returns a
`Printed`: its text for people, its data for --json."""

from __future__ import annotations

import json
from typing import Any

from ground.errors import QuantizeRefusedError, UserError
from ground.printed import Printed
from model_store.core.backend_specs import CLASSIFIER_BACKENDS
from model_store.core.refs import ModelRef
from model_store.core.species.data import SpeciesSources
from model_store.store.quantize import quantize_version
from model_store.store.quantize_report import Gate
from model_store.store.store import ModelStore, prepare_config
from model_store.store.trainable import trainable_extras


def list_models(o: Any, progress: Any = None) -> Printed:
    store = ModelStore(o.store)
    rows = []
    for name in store.list_models():
        aliases = {k: v.version for k, v in store.aliases(name).items()}
        refused = [{"version": r["version"], "reason": r.get("reason", "")} for r in store.refusals(name)]
        rows.append({"name": name, "versions": store.list_versions(name), "aliases": aliases, "refused": refused})
    lines = [] if rows else [f"no models in {store.root}"]
    for row in rows:
        aliases = ", ".join(f"{a}->{v}" for a, v in sorted(row["aliases"].items()))
        lines.append(f"{row['name']}: versions {', '.join(row['versions'])}; aliases {aliases or '-'}")
        lines += [f"  refused {r['version']}: {r['reason']}" for r in row["refused"]]
    return Printed(rows, "\n".join(lines))


def show(o: Any, progress: Any = None) -> Printed:
    store = ModelStore(o.store)
    mv = store.get(o.ref)
    aliases = sorted(a for a, rec in store.aliases(mv.name).items() if rec.version == mv.version)
    card = store.card(mv.ref)
    out = {"name": mv.name, "version": mv.version, "url": mv.url, "aliases": aliases,
           "config": mv.config.model_dump(mode="json"), "card": card}
    lines = [f"{mv.name}:{mv.version}  ({', '.join(aliases) or 'no aliases'})  {mv.url}", *graph_lines(mv.config),
             json.dumps(mv.config.model_dump(mode="json", exclude={"graph"}), indent=2)]
    if card:
        lines.append("\n" + card.rstrip())
    return Printed(out, "\n".join(lines))


def trainable_of(o: Any) -> dict[str, bytes] | None:
    """`--trainable FILE --architecture NAME`: the extra files that make a classifier version trainable."""
    if not getattr(o, "trainable", None):
        return None
    from pathlib import Path

    parsed = prepare_config(Path(o.weights) if o.weights else None, o.config, o.preset, f"config for {o.name}")
    if parsed.backend not in CLASSIFIER_BACKENDS:
        raise UserError(f"--trainable: {o.name}:{o.version} is not a classifier (backend {parsed.backend}); "
                        "trapline fine-tunes classifiers")
    try:
        state = Path(o.trainable).read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read --trainable {o.trainable}: {exc.strerror}") from None
    return trainable_extras(o.architecture, state, list(parsed.labels))


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


def publish(o: Any, progress: Any = None) -> Printed:
    if o.dry_run:
        from pathlib import Path

        weights = Path(o.weights) if o.weights else None
        parsed = prepare_config(weights, o.config, o.preset, f"config for {o.name}:{o.version}")
        config = parsed.model_dump(mode="json", exclude={"graph"})
        return Printed({"dry_run": True, "config": parsed.model_dump(mode="json")},
                       json.dumps(config, indent=2) + "\n\n" + "\n".join(graph_lines(parsed)))
    store = ModelStore(o.store)
    mv = store.publish(o.weights, o.name, o.version, o.config, o.card, preset=o.preset,
                       species=species_sources(o.taxonomy, o.geofence, o.taxa_list or []), extras=trainable_of(o))
    cfg = mv.config
    data = {"name": mv.name, "version": mv.version, "sha256": mv.sha256, "url": mv.url,
            "config": cfg.model_dump(mode="json")}
    lines = [f"published {mv.name}:{mv.version} sha256={mv.sha256} at {mv.url}"]
    if mv.kind == "identifier":
        size = f"input {cfg.input_size[0]}x{cfg.input_size[1]}" if cfg.input_size else f"{cfg.keypoints.features} " \
            f"keypoints, ratio {cfg.keypoints.ratio}, RANSAC {cfg.keypoints.ransac_px} px"
        lines.append(f"  identifier ({cfg.backend}) for {', '.join(cfg.applies_to)}: {size}, calibration "
                     f"{cfg.calibration.kind}")
        return Printed(data, "\n".join(lines))
    labels = f"{cfg.num_classes} labels ({', '.join(cfg.labels[:5])}{', ...' if cfg.num_classes > 5 else ''})"
    if mv.is_classifier:
        lines.append(f"  classifier: {labels}, input {cfg.input_size[0]}x{cfg.input_size[1]}, output {cfg.output}, "
                     f"top {cfg.top_k}, for detector labels {cfg.applies_to or 'all'}")
    else:
        lines.append(f"  {labels}, input {cfg.input_size[0]}x{cfg.input_size[1]}, stride {cfg.stride}, letterbox "
                     f"{cfg.preprocess.letterbox}, layout {cfg.output_layout}, score >= {cfg.score_threshold}, "
                     f"NMS IoU {cfg.nms_iou}")
    lines += ["  " + line for line in graph_lines(cfg)]
    return Printed(data, "\n".join(lines))


def inspect(o: Any, progress: Any = None) -> Printed:
    from pathlib import Path

    # here: every trapline command builds the registry; onnx and the heads load only for `models inspect`
    from model_store.core.graph import inspect_onnx
    from model_store.core.heads import head_for

    path = Path(o.weights)
    graph, metadata = inspect_onnx(path)
    names = metadata.get("names")
    found = {k: metadata[k] for k in ("task", "end2end", "head", "imgsz", "stride") if k in metadata}
    if isinstance(metadata.get("args"), dict) and "nms" in metadata["args"]:
        found["args.nms"] = metadata["args"]["nms"]
    if names is not None:
        found["names"] = f"{len(names)} classes" if isinstance(names, dict | list | tuple) else names
    lines = [f"{path.name}", f"  graph input:   {graph.input.describe()}",
             f"  graph outputs: {', '.join(o.describe() for o in graph.outputs)}",
             f"  producer:      {graph.producer}"
             + (f" ({', '.join(f'{k}={v}' for k, v in found.items())})" if found else " (no metadata trapline reads)")]
    try:
        cfg = prepare_config(path, o.config, o.preset, f"config for {path.name}")
    except Exception:
        print("\n".join(lines))  # what the file says stays above the error (ConfigError: the config keys to give)
        raise
    p = cfg.preprocess
    head = head_for(cfg.output_layout, cfg.task)
    if cfg.graph and cfg.graph.probed_outputs:
        lines.append(f"  ran once:      outputs {cfg.graph.probed_outputs} on a blank {cfg.input_size[0]}x"
                     f"{cfg.input_size[1]} input (the graph leaves dims symbolic)")
    lines.append("would publish:")
    task = " (task segment: each detection carries its mask)" if cfg.task == "segment" else ""
    lines.append(f"  layout:        {cfg.output_layout} - {head.summary}{task}")
    lines.append(f"  labels:        {cfg.num_classes} ({', '.join(cfg.labels[:5])}"
                 f"{', ...' if cfg.num_classes > 5 else ''})")
    lines.append(f"  input:         {cfg.input_size[0]}x{cfg.input_size[1]}, stride {cfg.stride}, {p.input_dtype}")
    pad = p.pad_value if isinstance(p.pad_value, int) else list(p.pad_value)
    norm = f", mean {list(p.mean)} std {list(p.std)}" if p.mean or p.std else ""
    lines.append(f"  preprocessing: letterbox {p.letterbox}, pad {p.pad_anchor} in {pad}, {p.interpolation} resize "
                 f"({p.resize_rounding}), {p.color_order}, scale {p.scale:.6g}{norm}")
    nms = f"NMS IoU {cfg.nms_iou}" if head.nms else "no NMS (the graph's own top-K)"
    lines.append(f"  decoding:      score >= {cfg.score_threshold}, {nms}, at most {cfg.max_detections} boxes")
    return Printed({"file": str(path), "metadata": found, "config": cfg.model_dump(mode="json")}, "\n".join(lines))


def cmd_inspect(args: Any) -> int:
    """`inspect` printed, for a caller with the flags already parsed."""
    print(inspect(args).text)
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


def quantize(o: Any, progress: Any = None) -> Printed:
    import logging

    if o.min_match is not None:
        raise UserError("--min-match was replaced by --min-recall and --min-precision: the int8 version is judged "
                        "by how many of the parent's boxes it finds and how many of its boxes the parent has "
                        "(same class, IoU >= 0.5), see `trapline models quantize --help`")
    gate = Gate(min_recall=o.min_recall, min_precision=o.min_precision, min_boxes=o.min_boxes,
                min_class_boxes=o.min_class_boxes, min_score=o.min_score)
    # ONNX Runtime's quantizer warns on the root logger about details the report already covers.
    logging.disable(logging.WARNING)
    store = ModelStore(o.store)
    try:
        report = quantize_version(store, o.ref, o.calibrate, o.version,
                                  holdout_fraction=o.holdout_fraction, gate=gate, force=o.force)
    except QuantizeRefusedError as refused:
        print(refused.report.table())  # the figures behind the one-line refusal the CLI prints on stderr
        raise
    mv = store.get(report.candidate)
    forced = f" (forced: {report.verdict})" if not report.passed else ""
    data = {"candidate": report.candidate, "parent": report.parent, "passed": report.passed,
            "verdict": report.verdict, "sha256": mv.config.weights.sha256, "url": mv.url, "table": report.table()}
    return Printed(data, f"published {report.candidate}, int8 of {report.parent}{forced}, "
                         f"sha256={mv.config.weights.sha256} at {mv.url}\n{report.table()}")


def promote(o: Any, progress: Any = None) -> Printed:
    return promoted(ModelStore(o.store), o)


def promoted(store: ModelStore, o: Any) -> Printed:
    """`o.ref` promoted to `o.alias` in the store a door opened (`trapline models promote` opens it for its gate)."""
    ref = ModelRef.parse(o.ref)
    record = store.promote(ref, o.alias)
    before = record.history[-1] if record.history else None
    return Printed({"name": ref.name, "alias": o.alias, "version": record.version, "was": before},
                   f"{ref.name}@{o.alias} -> {record.version} (was {before or 'nothing'})")


def rollback(o: Any, progress: Any = None) -> Printed:
    store = ModelStore(o.store)
    record = store.rollback(o.name, o.alias)
    return Printed({"name": o.name, "alias": o.alias, "version": record.version},
                   f"{o.name}@{o.alias} -> {record.version} (rolled back)")


def verify(o: Any, progress: Any = None) -> Printed:
    store = ModelStore(o.store)
    mv = store.verify(o.ref)
    return Printed({"name": mv.name, "version": mv.version, "sha256": mv.sha256, "ok": True},
                   f"ok: {mv.name}:{mv.version} config valid, sha256 {mv.sha256} matches")
