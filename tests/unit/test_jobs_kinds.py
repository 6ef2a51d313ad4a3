"""The control plane without Ray: a job's command line is built from validated options only, parses back to the same
options with the command's own parser, and no value can become shell syntax; which locations a job may name."""

from __future__ import annotations

import os
import shlex

import pytest

from batch.jobs.kinds import KINDS, recognise
from batch.jobs.paths import PathPolicy
from ground.errors import InvalidOptionsError, PathNotAllowedError
from serve.jobs_config import JobsConfig, OnPromote

HOSTILE = "/data/x; rm -rf / #$(id)`id`'\"\n--model=evil"

RICH = {
    "reprocess": {"archive": HOSTILE, "out": "-o", "model": "m@production", "concurrency": "1-3",
                  "since": "2024-05-01", "until": "2024-05-02", "classify": ["c=x,y", "d"],
                  "select": "latest-per-camera",
                  "filters": {"score": {"min_score": 0.3}}, "extensions": "jpg,png", "dry_run": True, "via": "actors",
                  "num_cpus": 0.25, "crops": True, "crop_padding": 0.1},
    "postprocess": {"tables": "/t", "cameras": ["a", "-b"], "occurrences": ["occ-1", "occ-2"], "since": "2024-01-01",
                    "filter": "score",
                    "config": {"min_score": 0.2}, "image": "--x.jpg", "dry_run": True},
    "events": {"tables": "/t", "gap_s": 30, "model": "m:1"},
    "export": {"tables": "/t", "format": "camtrap-dp", "out": "/x", "timezone": "+02:00",
               "observation_level": "both", "allow_missing_deployments": True},
    "report": {"tables": "/t", "out": "/r", "bands": [0.1, 0.5], "compare": "m:2", "per_band": 3},
    "crops": {"tables": "/t", "crop_square": True, "crop_padding": 0.2, "image": "a b.jpg"},
    "antenna work": {"api": "https://antenna.example/api/v2", "project": 3, "service": "http://127.0.0.1:8001",
                     "token_env": "TOK", "batch_size": 8, "streams": 1, "max_seconds": 60.0, "exit_when_idle": True},
    "identify": {"tables": HOSTILE, "identifier": "coats@production", "threshold": 0.6, "model": "m:1"},
    "train": {"ref": "species@production", "crops": HOSTILE, "version": "2-ft", "epochs": 3, "workers": 2,
              "cpus_per_worker": 0.25, "gpu": True, "batch_size": 16, "lr": 0.01, "seed": 4, "max_failures": 0,
              "checkpoints": "-c", "tables": "/t"},
}


@pytest.mark.parametrize("name", list(KINDS))
def test_argv_parses_back_to_the_same_options(name):
    kind = KINDS[name]
    options = kind.validate(RICH[name])
    argv = kind.check_round_trip(options)
    bare = [getattr(options, n) for n, style in kind.styles.items() if style.positional and hasattr(options, n)]
    assert argv[:len(bare)] == bare and not any(a.startswith("-") for a in bare)  # train's REF, first
    assert all(a.startswith("--") for a in argv[len(bare):])  # one word per option: no value can pass for a flag
    command = shlex.join(kind.command("python", options))
    assert shlex.split(command)[:2] == ["python", "-m"]
    assert kind.parse(shlex.split(command)[len(kind.module) + 1:]) == options


def test_no_value_becomes_shell_syntax():
    kind = KINDS["reprocess"]
    options = kind.validate(RICH["reprocess"])
    words = shlex.split(shlex.join(kind.command("python", options)))
    assert f"--archive={HOSTILE}" in words and sum(w.startswith("--model=") for w in words) == 1


def test_invalid_options_name_the_field_and_refused_ones_are_refused():
    with pytest.raises(InvalidOptionsError) as err:
        KINDS["reprocess"].validate({"archive": "/a", "out": "/b", "model": "m", "batch_size": 0})
    assert err.value.extra["fields"] == ["batch_size"] and "--batch-size" in err.value.message
    with pytest.raises(InvalidOptionsError) as err:
        KINDS["reprocess"].validate({"archive": "/a", "out": "/b", "model": "m", "address": "ray://elsewhere:10001"})
    assert err.value.extra["fields"] == ["address"]
    with pytest.raises(InvalidOptionsError):
        KINDS["events"].validate(["--tables", "/t"])


@pytest.mark.parametrize("kind, raw, fields, named", [
    ("postprocess", {"tables": "/t", "filter": "blur", "config": {}}, ["filter"], "--filter: Input should be"),
    ("postprocess", {"tables": "/t", "filter": "repeat", "config": {"iou": 0}}, ["config.iou"],
     "--config: iou: Input should be greater than 0 (got 0)"),
    ("postprocess", {"tables": "/t", "filter": "class_mask", "config": {"allowed": ["x"]}},
     ["config.allowed", "config.allowed_labels"], "--config: allowed_labels is required"),
    ("reprocess", {"archive": "/a", "out": "/b", "model": "m", "filters": {"score": {"min_score": -1}}},
     ["filters.score.min_score"], "--filters: score: min_score: Input should be greater than or equal to 0"),
    ("reprocess", {"archive": "/a", "out": "/b", "model": "m", "filters": {"blur": None}}, ["filters.blur"],
     "--filters: blur: Input should be"),
    ("reprocess", {"archive": "/a", "out": "/b", "model": "m", "progress_interval_s": 0}, ["progress_interval_s"],
     "--progress-interval: Input should be greater than 0"),
    ("export", {"tables": "/t", "format": "csv", "out": "/o"}, ["format"], "--format: Input should be one of "
     "'megadetector', 'coco', 'camtrap-dp', 'yolo', 'coco-dataset', 'crops' (got 'csv')"),
    ("export", {"tables": "/t", "out": "/o"}, ["format"], "--format is required"),
    # an option of another format is refused, naming the option and the format (never accepted and ignored)
    ("export", {"tables": "/t", "format": "coco", "out": "/o", "timezone": "+02:00"}, ["timezone"],
     "--timezone: format coco has no such option (got '+02:00')"),
    ("export", {"tables": "/t", "format": "camtrap-dp", "out": "/o", "timezone": "CET"}, ["timezone"],
     "--timezone: must be Z or +HH:MM"),
    ("reprocess", {"archive": "/a", "out": "/b", "model": "m", "clip_counting": {"still_confirm_score": 2}},
     ["clip_counting.still_confirm_score"], "--clip-counting: still_confirm_score: Input should be less than or equal"),
])
def test_registry_names_and_filter_configs_are_checked_at_the_door(kind, raw, fields, named):
    """One formatter for every door: the field path in `fields`, the flag in the message, the value quoted."""
    with pytest.raises(InvalidOptionsError) as err:
        KINDS[kind].validate(raw)
    assert err.value.extra["fields"] == fields and named in err.value.message, err.value.message


def test_reprocess_filter_overrides_may_leave_out_what_the_model_config_gives():
    options = KINDS["reprocess"].validate({"archive": "/a", "out": "/b", "model": "m",
                                           "filters": {"repeat": {"iou": 0.5}, "score": None}})
    assert options.filters == {"repeat": {"iou": 0.5}, "score": None}


def test_location_fields_are_found_from_the_options_types():
    assert KINDS["reprocess"].paths == ("archive", "out", "store")
    assert KINDS["export"].paths == ("tables", "store", "out", "deployments", "package_meta")
    assert KINDS["report"].paths == ("tables", "store", "out", "archive")
    assert KINDS["antenna work"].paths == ()  # it reads and writes no files: Antenna and the service are URLs
    assert KINDS["train"].paths == ("store", "crops", "checkpoints", "tables")
    assert all(k.paths[:2] == ("tables", "store") for k in KINDS.values() if k.name not in ("reprocess",
                                                                                           "antenna work", "train"))


def test_entry_points_of_jobs_submitted_another_way_are_recognised():
    kind, options = recognise("python -m batch.reprocess --archive /a --out /b --model m:1 --dry-run")
    assert kind.name == "reprocess" and options.dry_run and options.model == "m:1"
    kind, options = recognise("trapline -v crops --tables /t --camera crops")
    assert kind.name == "crops" and options.cameras == ["crops"]
    kind, options = recognise("/venv/bin/trapline events --tables /t --no-such-flag")
    assert kind.name == "events" and options is None  # a trapline job whose options do not parse: still listed
    kind, options = recognise("trapline identify --tables /t --identifier coats@production --threshold 0.7")
    assert kind.name == "identify" and options.identifier == "coats@production" and options.threshold == 0.7
    with pytest.raises(InvalidOptionsError) as err:  # a run needs its identifier
        KINDS["identify"].validate({"tables": "/t"})
    assert err.value.extra["fields"] == ["identifier"]
    assert recognise("python train.py --epochs 3") is None
    # a command of a group: `models train` is the kind `train`, its REF positional
    kind, options = recognise("trapline models train species:1 --crops /c --version 2 --cpus-per-worker 0.5")
    assert kind.name == "train" and options.ref == "species:1" and options.cpus_per_worker == 0.5
    assert recognise("python -m trapline.cli models train species:1 --crops=/c --version=2")[0].name == "train"
    assert recognise("trapline models list") is None
    with pytest.raises(InvalidOptionsError) as err:  # a REF that could pass for a flag never reaches a command line
        KINDS["train"].argv(KINDS["train"].validate({"ref": "--store=/elsewhere", "crops": "/c", "version": "2"}))
    assert err.value.extra["fields"] == ["ref"]
    assert recognise("trapline serve --port 1") is None


def test_paths_stay_under_the_roots_and_buckets(tmp_path):
    root = tmp_path / "data"
    (root / "in").mkdir(parents=True)
    os.symlink("/etc", root / "link")
    policy = PathPolicy([str(root)], ["traps"], working_dir=str(root))
    assert policy.check("archive", "in") == str(root / "in")
    assert policy.check("out", str(root / "new" / "out")) == str(root / "new" / "out")
    assert policy.check("out", "s3://traps/detections") == "s3://traps/detections"
    for field, value in [("out", "/etc"), ("out", "../x"), ("archive", "link/passwd"), ("out", str(root) + "x"),
                         ("out", "s3://other/x"), ("out", "gs://traps/x"), ("tables", "file:///etc"),
                         ("out", "http://h/x")]:
        with pytest.raises(PathNotAllowedError) as err:
            policy.check(field, value)
        assert err.value.extra["fields"] == [field] and err.value.status == 422


def test_jobs_config_resolves_roots_where_the_app_is_built(tmp_path):
    cfg = JobsConfig(roots=["data"], s3_buckets=["s3://traps/"]).resolved(str(tmp_path))
    assert cfg.roots == [str(tmp_path / "data"), str(tmp_path)] and cfg.s3_buckets == ["traps"]
    assert cfg.working_dir == str(tmp_path) and cfg.resolved("/elsewhere") == cfg  # resolved once, where built
    assert JobsConfig(roots=[], working_dir_allowed=False).resolved(str(tmp_path)).roots == []
    with pytest.raises(ValueError, match="must not name a model"):
        OnPromote(reprocess={"archive": "/a", "out": "/b", "model": "m:1"})


def test_the_documented_cronjob_runs_a_command_the_cli_accepts():
    import yaml

    from batch.jobs.cli import submitted_options
    from trapline.cli import build_parser

    path = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "kubernetes", "cronjob-jobs-submit.yaml")
    with open(path) as f:
        manifest = yaml.safe_load(f)
    [container] = manifest["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:4] == ["trapline", "jobs", "submit", "reprocess"]
    args = build_parser().parse_args(command[1:])
    KINDS["reprocess"].validate(submitted_options(args))  # the options the service will validate again
    assert {e["name"] for e in container["env"]} == {"TRAPLINE_URL", "TRAPLINE_ADMIN_TOKEN"}
