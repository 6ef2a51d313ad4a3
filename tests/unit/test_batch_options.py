"""Reprocess options: flags, config files, validation messages, and the CLI wiring (no Ray)."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys

import pytest

from batch.cli import options
from batch.commands import COMMANDS
from batch.export.options import ExportOptions
from batch.options import parse_options
from batch.postprocessing.options import CropsOptions, EventsOptions, PostprocessOptions
from batch.reprocess.calls import CALLS_PER_ACTOR, images_per_call, spread_calls
from batch.reprocess.options import ReprocessOptions
from batch.reprocess.sizing import check_cpu_budget, plan_resources, read_tasks
from batch.review.options import ReviewOptions
from ground.errors import OptionsError
from tests.conftest import REPO
from trapline.cli import build_parser, main

BASE = ["reprocess", "--archive", "/data/traps", "--out", "/data/tables", "--model", "demo-detector@production"]


def parse(*extra: str) -> ReprocessOptions:
    return options(COMMANDS["reprocess"], build_parser().parse_args([*BASE, *extra]))


def test_flags_map_onto_the_options_model():
    o = parse("--latest-per-camera", "--since", "2024-05-01", "--until", "2024-05-31", "--limit", "10",
              "--concurrency", "2-4", "--filters", '{"min_size": {"min_area_fraction": 0.001}}',
              "--extensions", "jpg,.PNG", "--dry-run")
    assert o.select == "latest-per-camera" and o.latest_per_camera and o.needs_capture_times
    assert o.since == dt.datetime(2024, 5, 1) and o.until == dt.datetime(2024, 5, 31, 23, 59, 59, 999999)
    assert (o.limit, o.concurrency, o.dry_run) == (10, (2, 4), True)
    assert o.filters == {"min_size": {"min_area_fraction": 0.001}} and o.extensions == [".jpg", ".PNG"]
    defaults = parse()
    assert (defaults.select, defaults.via, defaults.actor_cpus, defaults.rows_per_file) == ("all", "auto", 1.0, 1000)
    assert parse("--via", "serve").actor_cpus == 0.25


def test_config_file_with_flags_overriding(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text("archive: s3://traps/archive\nout: s3://traps/tables\nmodel: demo-detector@production\n"
                   "rows-per-file: 500\nselect: latest-per-camera\nfilters:\n  score: {min_score: 0.3}\n")
    o = options(COMMANDS["reprocess"], build_parser().parse_args(["reprocess", "--config", str(cfg), "--rows-per-file",
                                                                   "50"]))
    assert (o.archive, o.rows_per_file, o.select) == ("s3://traps/archive", 50, "latest-per-camera")
    assert o.filters == {"score": {"min_score": 0.3}}


@pytest.mark.parametrize(("extra", "message"), [
    (["--limit", "0"], r"--limit: .*greater than or equal to 1 \(got 0\)"),
    (["--since", "May 1st"], r"--since: expected YYYY-MM-DD.*'May 1st'"),
    (["--since", "2024-06-01", "--until", "2024-05-01"], "is after until"),
    (["--concurrency", "4-2"], r"--concurrency: .*MIN <= MAX"),
    (["--filters", "{not json"], r"--filters: not valid JSON"),
    (["--path-pattern", "(?P<cam>x)"], "unknown named groups"),
    (["--via", "serve", "--num-gpus", "1"], "--num-gpus applies to --via actors"),
])
def test_bad_options_are_reported_with_the_value(extra, message):
    with pytest.raises(OptionsError, match=message):
        parse(*extra)


def test_missing_and_invalid_model(capsys):
    assert main(["reprocess", "--archive", "a", "--out", "b"]) == 2
    assert "--model is required" in capsys.readouterr().err
    with pytest.raises(OptionsError, match="--model: invalid model name"):
        parse("--model", "../etc")


def test_the_module_entry_is_the_registrys_reprocess(tmp_path, capsys):
    """`python -m batch.reprocess` (what `ray job submit` and cron run) is `trapline reprocess`: one parser, one
    `--config` merge, the same help and errors; it is not a second command line."""
    cfg = tmp_path / "job.yaml"
    cfg.write_text(f"archive: {tmp_path / 'missing'}\nout: {tmp_path / 't'}\nmodel: m:1\nstore: {tmp_path}\n")
    runs = [subprocess.run([sys.executable, *entry, "--config", str(cfg), "--dry-run", *extra], cwd=REPO,
                           capture_output=True, text=True, timeout=60)
            for entry in (("-m", "batch.reprocess"), ("-m", "trapline.cli", "reprocess"))
            for extra in ((), ("--help",), ("--limit", "0"))]
    half = len(runs) // 2
    for module, cli in zip(runs[:half], runs[half:], strict=True):
        assert (module.returncode, module.stdout, module.stderr) == (cli.returncode, cli.stdout, cli.stderr)
    missing, helped, refused = runs[:half]  # the file's store and model were read
    assert missing.returncode == 2 and missing.stderr == "error: no version '1' of model 'm' (versions: none)\n"
    assert helped.returncode == 0 and "--config CONFIG" in helped.stdout and "--json" in helped.stdout
    assert refused.returncode == 2 and "--limit" in refused.stderr
    old = subprocess.run([sys.executable, "-m", "batch.reprocess.job", "--config", str(cfg)], cwd=REPO,
                         capture_output=True, text=True, timeout=60)  # the entry before it: refused, not a silent 0
    assert old.returncode == 1 and "python -m batch.reprocess" in old.stderr


def test_cli_errors_exit_2_without_traceback(tmp_path, capsys):
    code = main([*BASE[:2], str(tmp_path / "missing"), "--out", str(tmp_path / "t"), "--model", "m:1",
                 "--store", str(tmp_path / "store"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err


def test_export_and_postprocess_are_registered(capsys):
    args = build_parser().parse_args(["export", "--tables", "t", "--format", "camtrap-dp", "--out", "dp"])
    assert args.format == "camtrap-dp" and callable(args.func)
    args = build_parser().parse_args(["postprocess", "--tables", "t", "--filter", "min_size", "--config",
                                      json.dumps({"min_area_fraction": 0.001}), "--camera", "c1", "--camera", "c2"])
    assert args.cameras == ["c1", "c2"] and args.filter == "min_size"
    opts = options(COMMANDS["postprocess"], args)  # the flags are the options model's fields
    assert opts.config == {"min_area_fraction": 0.001} and opts.scope().describe() == "camera c1, c2"
    bad = build_parser().parse_args(["postprocess", "--tables", "t", "--filter", "min_size"])
    with pytest.raises(OptionsError, match=r"--config \(or --config-from .*\), or --remove"):
        options(COMMANDS["postprocess"], bad)
    ok = json.dumps({"min_score": 0.5})
    for flags, problem in ((["--config", "{nope"], "--config: not valid JSON"),
                           (["--config", ok, "--rows-per-file", "0"], "--rows-per-file: Input should be greater"),
                           (["--config", ok, "--since", "2024-13-01"], "--since/--until: month must be in 1..12"),
                           # the filter's own config model, at the door: the path into the config is named
                           (["--config", "{}"], "--config: min_score is required"),
                           (["--config", '{"min_score": 2}'], "--config: min_score: Input should be less than or "
                                                              "equal to 1 (got 2)")):
        bad = build_parser().parse_args(["postprocess", "--tables", "t", "--filter", "score", *flags])
        with pytest.raises(OptionsError, match=re.escape(problem)):
            options(COMMANDS["postprocess"], bad)


def test_every_table_command_validates_its_options_with_one_model():
    """The same models a job over HTTP is validated with: a bad value names its flag, nothing runs."""
    cases = [(ExportOptions, {"tables": "t", "format": "xml", "out": "o"}, "--format"),
             (PostprocessOptions, {"tables": "t", "filter": "blur", "config": {}}, "--filter: Input should be "
                                                                                  "'min_size', 'class_mask'"),
             (ExportOptions, {"tables": "t", "format": "coco", "out": "o", "timezone": "CET"}, "--timezone"),
             (EventsOptions, {"tables": "t", "gap_s": 0}, "--gap-s"),
             (ReviewOptions, {"tables": "t", "out": "r", "bands": "a,b"}, "--bands"),
             (CropsOptions, {"tables": "t", "crop_padding": -1}, "options"),
             (CropsOptions, {"tables": "t", "since": "2024-05-02", "until": "2024-05-01"}, "after --until"),
             (ExportOptions, {"tables": "t", "format": "coco", "out": "o", "colour": "red"}, "--colour")]
    for model, given, named in cases:
        with pytest.raises(OptionsError, match=named):
            parse_options(model, given, "x")
    ok = parse_options(ReviewOptions, {"tables": "t", "out": "r", "bands": "0.3,0.6"}, "report")
    assert ok.report_options().edges == [0.3, 0.6]


def test_cpu_budget_defaults_never_starve_the_read_write_or_classify_tasks():
    for o, reads, stage in ((parse(), 0.0, 0.0), (parse("--decode", "tasks"), "share", 0.0),
                            (parse("--classify", "species:1"), 0.0, 0.5)):
        for cpus in (1, 2, 3, 4, 8, 16, 64):
            n, actor_cpus = plan_resources(o, cpus, 0)
            assert n >= 1 and check_cpu_budget(o, n, cpus, actor_cpus) is None, cpus
            held = max(o.read_cpus, 0.2 * cpus) if reads == "share" else reads
            assert n * actor_cpus + held + stage + 0.25 <= cpus + 1e-9 or cpus == 1, (o.decode, cpus)
    o = parse()  # the actors read and decode their own images: only the writer keeps CPU beside them
    assert plan_resources(o, 1, 0) == (1, 0.75)
    assert plan_resources(o, 2, 0) == (2, 0.87)
    assert plan_resources(o, 16, 0) == (16, 0.98)
    tasks = parse("--decode", "tasks")  # read tasks keep a fifth of the CPUs
    assert plan_resources(tasks, 1, 0) == (1, 0.25)
    assert plan_resources(tasks, 2, 0) == (2, 0.62)
    assert plan_resources(tasks, 16, 0) == (13, 0.96)
    assert plan_resources(parse("--classify", "species:1"), 2, 0) == (2, 0.62)  # the classify actor's 0.5
    assert plan_resources(parse("--num-cpus", "2"), 16, 0) == (7, 2.0)
    assert plan_resources(parse("--concurrency", "3"), 16, 0) == (3, 5.25)
    assert plan_resources(parse("--num-gpus", "0.5"), 16, 2) == (4, 1.0)
    assert plan_resources(parse("--via", "serve"), 16, 0) == (4, 0.25)
    assert plan_resources(parse("--via", "serve"), 2, 0) == (2, 0.25)  # one drains its batch, the other sends
    assert "need 4.25 CPUs" in check_cpu_budget(o, 4, 2)
    assert "need 4.5 CPUs" in check_cpu_budget(tasks, 4, 2)
    # Read tasks at once: what the actors and the writer leave (the writer must never starve behind them).
    assert read_tasks(o, 2, 2, 0.87) is None  # the actors read
    assert read_tasks(tasks, *plan_resources(tasks, 2, 0)[:1], 2, 0.62) == 1  # 2 - 1.24 - 0.25 = 0.51 -> one of 0.5
    assert read_tasks(parse("--decode", "tasks", "--read-cpus", "0.25"), 2, 2, 0.75) == 1
    assert read_tasks(parse("--decode", "tasks", "--read-cpus", "0.25"), 4, 16, 2.0) == 31


def test_a_tiled_run_hands_its_actors_fewer_images_a_call():
    # A tiled still is ~9 inputs: 16 a call left one of two actors idle for most of a 36-image run.
    assert images_per_call(parse(), tiled=False) == 16
    assert images_per_call(parse(), tiled=True) == 2
    assert images_per_call(parse("--batch-size", "4"), tiled=True) == 1  # never none
    assert images_per_call(parse("--batch-size", "64"), tiled=True) == 8
    assert images_per_call(parse("--via", "serve"), tiled=True) == 16  # the replicas batch the tiles themselves


def test_a_small_run_is_spread_so_every_actor_gets_calls():
    # 48 tiled images at 16 a call on 2 actors: 3 calls, one actor idle for a third of the run. Spread: 12 a call.
    assert spread_calls(16, 48, 2) == 12
    assert spread_calls(16, 20, 2) == 5
    assert spread_calls(16, 3, 2) == 1  # never none
    assert spread_calls(16, 100_000, 2) == 16  # a big run keeps the user's batch size
    assert spread_calls(16, 48, 0) == 16  # no actors counted: as if one
    for images, per_call, actors in ((48, 16, 2), (20, 16, 2), (100, 8, 3), (7, 64, 4)):
        calls = -(-images // spread_calls(per_call, images, actors))
        assert calls >= min(images, actors * CALLS_PER_ACTOR) or spread_calls(per_call, images, actors) == per_call


def test_every_option_has_a_flag_whose_help_states_the_models_default():
    """Flags are generated from ReprocessOptions: none is missing, and each stated default is the model's own."""
    from batch.reprocess.options import FLAG_STYLES

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices["reprocess"]
    by_dest = {a.dest: a for a in sub._actions}
    for name, info in ReprocessOptions.model_fields.items():
        assert name in by_dest, f"ReprocessOptions.{name} has no flag"
        default = info.get_default(call_default_factory=True)
        style = FLAG_STYLES.get(name)
        if info.is_required() or default in (None, False) or (style and style.default_text):
            continue
        shown = ",".join(map(str, default)) if isinstance(default, list) else str(default)
        assert f"(default {shown})" in (by_dest[name].help or "") or style and style.switches, (name, shown)
    # a value given on the command line reaches the model under the field's name
    assert parse("--wait", "30").wait_s == 30 and parse("--progress-interval", "2").progress_interval_s == 2
