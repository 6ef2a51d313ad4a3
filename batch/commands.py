"""The archive commands, one registry: each command is one `Command` — its name and help, its options model (the one
source of its CLI flags, the JSON Schema of its job over HTTP and its console form), the runner that takes those
options, how its report is printed, and the rules a job of it follows (where its run manifest is, whether a rerun
resumes). `trapline <command>` (batch/cli.py), the job kinds of `POST /v1/jobs` and `ray job submit -- trapline ...`
recognition (batch/jobs/kinds.py) and the console's forms (`GET /v1/job-kinds`) are all built from `COMMANDS`.

Adding a command is one entry below (and its options model with its runner, beside the work they do); the `models`
group's entries sit with their options in batch/models_commands.py (`Command` itself: batch/command.py). An option is
a field of the command's options model: its flag, its JSON Schema and its form input follow; a field naming a path
is typed `Location` (batch/options.py), so a job's door confines it to the allowed roots without being told.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pydantic import BaseModel

from batch.command import Command, printed
from batch.command import later as _later
from batch.deployments import options as dep
from batch.export.options import EXPORT_FLAGS, ExportOptions
from batch.flags import FlagStyle
from batch.health_options import HealthOptions
from batch.identify import cli as identify_cli
from batch.identify.options import IDENTIFY_FLAGS, IdentifyJobOptions, IdentifyOptions
from batch.jobs_client import JOBS_FLAGS, JobLogsOptions, JobOptions, JobsListOptions
from batch.models_commands import MODELS_COMMANDS, MODELS_GROUP
from batch.options import (
    SET_FLAGS,
    CheckOptions,
    CommandOptions,
    CompactOptions,
    PurgeOptions,
    RetireOptions,
    SetsOptions,
)
from batch.people_commands import PEOPLE_COMMANDS, PEOPLE_GROUP
from batch.postprocessing import review_options as review
from batch.postprocessing.options import (
    CROPS_FLAGS,
    OCCURRENCE_FLAGS,
    POSTPROCESS_FLAGS,
    CropsOptions,
    EventsOptions,
    MergeOptions,
    MoveOptions,
    OccurrenceReviewOptions,
    PostprocessOptions,
    SplitOptions,
)
from batch.reprocess.options import FLAG_STYLES, ReprocessOptions
from batch.review.options import REVIEW_FLAGS, ReviewOptions
from serve.antenna_config import AntennaWorkOptions

run_reprocess, reprocess_text = _later("batch.reprocess.job:run_job"), _later("batch.reprocess.summary:format_report")
run_export = _later("batch.export.run:run_export")
run_health, health_text, health_json = (_later(f"batch.health:{n}") for n in ("run_health", "health_text",
                                                                               "health_json"))
run_postprocess = _later("batch.postprocessing.postprocess:run_postprocess")
postprocess_text = _later("batch.postprocessing.run_report:format_report")
run_crops = _later("batch.postprocessing.snips:run_crops")
crops_text = _later("batch.postprocessing.snips:format_report")
run_events = _later("batch.postprocessing.events:run_events")
build_report, report_json = _later("batch.review.build:build_report"), _later("batch.review.build:result_json")
run_antenna, antenna_text = _later("serve.antenna.worker:run_worker"), _later("serve.antenna.worker:format_report")
compact, check = _later("model_store.tables.maintenance:compact"), _later("model_store.tables.maintenance:check")
list_sets, sets_text = _later("model_store.tables.sets:list_sets"), _later("model_store.tables.sets:format_sets")
retire, purge = _later("model_store.tables.lifecycle:retire"), _later("model_store.tables.lifecycle:purge")


SET_STYLES = {"tables": FlagStyle(metavar="DST"),
              "result_set": FlagStyle(flags=("--set",), metavar="SET", also_positional=True),
              "wait_s": FlagStyle(flags=("--wait",), metavar="SECONDS")}


MAIN = ("archive", "tables", "out", "model", "format", "select", "cameras", "since", "until", "limit", "classify",
        "crops", "compare")


def _events_text(r: Any) -> str:
    lines = [f"{r.events} event(s) from {r.images} image(s) of {r.model} [filters {r.filters_hash}], gap {r.gap_s:g}s"
             + (f"; left out: {r.failed} failed" if r.failed else "")
             + (f", {r.without_time} without a capture time" if r.without_time else "")]
    if r.occurrences is not None:
        lines.append(f"{r.occurrences} animal(s) (confirmed occurrences); per camera and night/day "
                     "(events, max-per-frame count, occurrences by label):")
        for p in r.periods:
            labels = ", ".join(f"{k} {n}" for k, n in sorted(p["labels"].items())) or "none"
            lines.append(f"  {p['camera_id']:<12} {p['period']:<17} {p['events']:>4} event(s)  max-per-frame "
                         f"{p['max_per_frame']:>4}  occurrences {p['occurrences']:>4} ({labels})")
    lines.append(f"  {r.written}" if r.written else "dry run: nothing was written")
    return "\n".join(lines)


def _export_text(r: Any) -> str:
    return "\n".join([f"exported {r.images} image(s) ({r.failed} failed) and {r.detections} detection(s) of {r.model} "
                      f"[filters {r.filters_hash}] as {r.format}:", *(f"  {p}" for p in r.written),
                      *(f"note: {n}" for n in r.notes)])


def _report_text(r: Any) -> str:
    lines = [f"report of {r.model} [filters {r.filters_hash}]: {r.images} image(s), {r.thumbnails} thumbnail(s) in "
             f"{r.wall_s:.1f}s"]
    if r.compared_with:
        lines.append(f"compared with {r.compared_with}: {r.only_a} box(es) only in {r.model}, {r.only_b} only in "
                     f"{r.compared_with}")
    if r.agreement is not None:
        lines.append(f"agreement with people's identifications: {r.agreement:.0%} (per label in the report)")
    if r.occurrences is not None:
        lines.append(f"animals: {r.occurrences} confirmed occurrence(s); the model's vote disagrees with a person's "
                     f"identification on {r.disagreements}")
    if r.unreadable:
        lines.append(f"warning: {r.unreadable} image(s) could not be read (listed in the report)")
    lines.append(f"  open {r.index}")
    return "\n".join(lines)


def _people_commands() -> tuple[Command, ...]:
    """`trapline occurrences ...` and `trapline deployments ...`: people's decisions and what follows from them, on the
    command line only (the views take the same decisions over HTTP)."""
    fix, dep_run = "batch.postprocessing.occurrence_fixes:", "batch.deployments.commands:"
    rev = "batch.postprocessing.review_cli:"

    def people(name: str, help: str, options: type[BaseModel], runner: str, **kw: Any) -> Command:
        styles = {"occurrences": OCCURRENCE_FLAGS, "review": review.VERDICT_FLAGS}.get(name.split()[0],
                                                                                        dep.DEPLOYMENTS_FLAGS)
        return Command(name, help, options, _later(runner), printed, styles=styles, job=False,
                       to_json=lambda r: r.json(), description=help[0].upper() + help[1:] + ".", **kw)

    return (
        people("occurrences review", "occurrences whose weakest link the tracker is least sure of, least certain "
               "first", OccurrenceReviewOptions, fix + "review",
               example="trapline occurrences review --tables ./detections --below 0.5"),
        people("occurrences split", "this frame and the later ones are another animal", SplitOptions, fix + "split",
               example="trapline occurrences split occ-1a2b3c4d5e6f7a8b --frame 6 --tables ./detections"),
        people("occurrences merge", "two occurrences are one animal", MergeOptions, fix + "merge"),
        people("occurrences move", "one frame's detection belongs to another occurrence", MoveOptions, fix + "move"),
        people("review confirm", "this detection's box and label are right", review.ConfirmOptions, rev + "confirm",
               example="trapline review confirm cam1/0001.jpg --detection 0 --tables ./detections --who ana"),
        people("review reject", "this detection is not an animal (or its box is wrong)", review.RejectOptions,
               rev + "reject", example="trapline review reject cam1/0001.jpg --detection 1 --tables ./detections"),
        people("review relabel", "this detection's box is right and its label is another", review.RelabelOptions,
               rev + "relabel", example="trapline review relabel cam1/0001.jpg --detection 0 --label fox "
                                        "--tables ./detections"),
        people("review empty", "no animal in this image", review.EmptyOptions, rev + "empty",
               example="trapline review empty cam1/0002.jpg --tables ./detections"),
        people("review add", "an animal the model missed: its box and label", review.AddBoxOptions, rev + "add_box",
               example="trapline review add cam1/0003.jpg --box 0.41,0.3,0.2,0.25 --label fox --tables ./detections"),
        people("deployments import", "record deployments from a Camtrap DP-shaped CSV or JSON file",
               dep.ImportOptions, dep_run + "import_deployments",
               example="trapline deployments import deployments.csv --tables ./detections --timezone "
                       "Europe/Amsterdam"),
        people("deployments list", "the deployments, their pictures and the clock corrections in force",
               dep.ListOptions, dep_run + "list_deployments"),
        people("deployments correct-clock", "record that a camera's clock was off (or on another zone) for a while",
               dep.CorrectClockOptions, dep_run + "correct_clock"),
        people("deployments timestamp-issues", "mark a deployment whose clock cannot be fixed (Camtrap DP "
               "timestampIssues)", dep.TimestampIssuesOptions, dep_run + "timestamp_issues"),
        people("deployments revoke", "undo an earlier clock decision (it stays in the log)", dep.RevokeOptions,
               dep_run + "revoke"),
        people("deployments effort", "camera-days per deployment, trap rates per species, activity by local hour",
               dep.EffortOptions, dep_run + "effort"),
        people("deployments history", "a species' detection history: deployments x occasions, as CSV",
               dep.HistoryOptions, dep_run + "history"),
    )


def _jobs_commands() -> tuple[Command, ...]:
    """`trapline jobs ...`: a client of the service's /v1/jobs (never of Ray); `submit KIND` takes each job kind's
    own options, from this same registry (batch/jobs/cli.py `add_submit`)."""
    client = "batch.jobs.cli:"

    def jobs(name: str, help: str, options: type[BaseModel], runner: str, **kw: Any) -> Command:
        return Command(name, help, options, _later(runner), printed, styles=JOBS_FLAGS, job=False,
                       to_json=lambda r: r.json(), **kw)

    return (
        Command("jobs submit", "submit a job: trapline jobs submit KIND --flags of `trapline KIND`", CommandOptions,
                lambda o, progress: None, str, job=False, arguments=_later(client + "add_submit"),
                cli=_later(client + "cmd_submit")),
        jobs("jobs list", "jobs on the cluster, newest first", JobsListOptions, client + "list_jobs",
             example="trapline jobs list --status running --url http://127.0.0.1:8000"),
        jobs("jobs show", "one job: status, progress, stage metrics", JobOptions, client + "show_job",
             example="trapline jobs show raysubmit_XYZ"),
        jobs("jobs logs", "the tail of a job's log", JobLogsOptions, client + "job_logs",
             example="trapline jobs logs raysubmit_XYZ --tail 50"),
        jobs("jobs stop", "stop a job (a reprocess ends at its next part)", JobOptions, client + "stop_job",
             example="trapline jobs stop raysubmit_XYZ"),
    )


COMMANDS: dict[str, Command] = {c.name: c for c in (
    Command("reprocess", "run a model over an image archive (Ray Data) into Parquet detection tables",
            ReprocessOptions, run_reprocess, reprocess_text,
            example="trapline reprocess --archive /data/traps --out ./detections --model megadetector@production",
            description="Run a model version over an image archive and write the images/detections tables. "
                        "Reruns skip what is done; a killed run resumes where it stopped.",
            styles=FLAG_STYLES, config_file=True, entry=("-m", "batch.reprocess"), tables="out", resumes=True,
            check=_later("batch.reprocess.plan:check_options"),
            writing=lambda progress: bool(progress.get("images_done")),
            to_json=lambda r: json.dumps({**dataclasses.asdict(r), "skipped": r.skipped}, indent=2, default=str),
            exit_code=lambda r: 0 if r.status in ("succeeded", "dry-run") else 1),
    Command("export", "export detection tables as MegaDetector JSON, COCO results or Camtrap DP, or people's "
                      "verified boxes as a training set (YOLO, COCO dataset, crops)",
            ExportOptions, lambda o, progress: run_export(o), _export_text, styles=EXPORT_FLAGS,
            example="trapline export --tables ./detections --format camtrap-dp --out ./camtrap-package "
                    "--deployments deployments.csv --package-meta meta.yaml"),
    Command("postprocess", "re-apply a post-processing filter to stored detections (no model)",
            PostprocessOptions, run_postprocess, postprocess_text,
            check=_later("batch.postprocessing.postprocess:check_options"),
            example="trapline postprocess --tables ./detections --filter repeat "
                    "--config '{\"iou\": 0.85, \"min_images\": 10}' --camera cam07",
            description="Apply a filter to the stored raw detections of one model version and write the result as a "
                        "new filter set. --camera, --since/--until and --image intersect, as in every command that "
                        "takes them.",
            styles=POSTPROCESS_FLAGS, resumes=True, pins_source=True),
    Command("events", "group each camera's images into events (visits) by capture-time gap",
            EventsOptions, lambda o, progress: run_events(o), _events_text, styles=SET_FLAGS,
            example="trapline events --tables ./detections --gap-s 60",
            description="Group each camera's images into events by capture-time gap and write the `events` table "
                        "next to images/detections (rerunning replaces it)."),
    Command("report", "a static HTML page to review a run: counts, scores, galleries, failures",
            ReviewOptions, lambda o, progress: build_report(o.report_options(), log=progress), _report_text,
            example="trapline report --tables ./detections --out ./report --compare megadetector:4",
            description="Write a static HTML review report (index.html with plots/ and thumbs/ beside it; opens from "
                        "disk): counts per camera, day and label, score histograms, a gallery per label and score "
                        "band, sampled blanks, filtered-out boxes and failed files; --compare adds what another model "
                        "version found differently.",
            styles=REVIEW_FLAGS, to_json=report_json),
    Command("crops", "JPEG snips of stored kept detections, from the tables (no model)",
            CropsOptions, run_crops, crops_text, styles=CROPS_FLAGS,
            example="trapline crops --tables ./detections --crop-padding 0.1 --crop-square --camera cam07",
            description="Cut a JPEG snip of every kept detection of one model version and result set from its source "
                        "image, with the names and snips rows reprocess --crops would write. Reruns write nothing "
                        "new; unreadable images are listed, not fatal."),
    Command("tables compact", "merge small parts into large ones (same rows, fewer files)",
            CompactOptions, lambda o, progress: compact(o.tables, target_rows=o.target_rows, wait_s=o.wait_s,
                                                        log=progress),
            lambda r: r.line(), styles=SET_FLAGS, job=False,
            description="Merge each model version's committed parts into large ones, under its run lease, "
                        "atomically for trapline's readers; idempotent."),
    Command("tables check", "report duplicate or orphaned rows (exit 1 when any)",
            CheckOptions, lambda o, progress: check(o.tables), lambda r: "\n".join(r.lines()), styles=SET_FLAGS,
            exit_code=lambda r: 0 if r.clean else 1, job=False,
            description="Read every partition and report rows stored twice, images processed twice in one result "
                        "set, uncommitted part files and unsettled uploads."),
    Command("tables sets", "list result sets: model version, filters, core version, rows, bytes, what refers to them",
            SetsOptions, lambda o, progress: list_sets(o.tables, o.model, o.store), sets_text, styles=SET_FLAGS,
            to_json=lambda sets: json.dumps([s.as_dict() for s in sets], indent=2), job=False,
            description="Every result set in the tables, from its files' footers (no row is read): its model "
                        "version and filters, the trapline and core versions that made it, image rows, parts and "
                        "bytes on disk, when it was made, its state (whole, building, retired, purged) and what "
                        "refers to it (the aliases that serve it, people's identifications, the redo that replaced "
                        "it)."),
    Command("tables retire", "hide a result set from every reader (reversible: tables unretire)",
            RetireOptions, lambda o, progress: retire(o.tables, o.result_set, o.reason, o.undo), lambda r: r.line(),
            styles=SET_STYLES, job=False,
            description="Hide a result set from every reader (the console, reports, exports, postprocess); its files "
                        "stay, and `trapline tables unretire SET` shows it again."),
    Command("tables unretire", "show a retired result set to readers again",
            RetireOptions, lambda o, progress: retire(o.tables, o.result_set, o.reason, undo=True), lambda r: r.line(),
            styles=SET_STYLES, job=False),
    Command("tables purge", "delete a result set's files (--dry-run first; crash-safe, rerun to finish)",
            PurgeOptions, lambda o, progress: purge(o.tables, o.result_set, dry_run=o.dry_run,
                                                    move_decisions=o.move_decisions, store=o.store, wait_s=o.wait_s),
            lambda r: r.line(), styles=SET_STYLES, job=False,
            description="Delete a result set's files, the images files first, so readers stay right if it is killed "
                        "halfway (a rerun finishes it); refused for a set an alias serves (retire it first) or that "
                        "people's identifications point to (unless --move-decisions). Reports the bytes reclaimed."),
    Command("health", "the daily check of a season's tables: each signal against its threshold (exit 1: one failed)",
            HealthOptions, run_health, health_text, to_json=health_json, config_file=True, job=False,
            exit_code=lambda r: 0 if r.ok else 1,
            example="trapline health --tables ./detections --silent-days 2   (cron mails what it prints when it fails)",
            description="Check cameras gone silent, the failed-image share, the archive jobs (the newest failed, or "
                        "none succeeded lately), the share of sightings assigned to an individual, new individuals on "
                        "the newest day, occurrences awaiting review, failing clock checks and the tables' size, each "
                        "against its threshold (flags, or --config FILE); print them as a table (--json: as JSON) and "
                        "exit 1 when one fails. The service answers the same at GET /v1/season/health."),
    Command("antenna work", "pull mode: answer an Antenna project's ML jobs through this service's models",
            AntennaWorkOptions, run_antenna, antenna_text,
            example="trapline antenna work --api https://antenna.example/api/v2 --project 3 "
                    "--service http://127.0.0.1:8001   (token in $ANTENNA_TOKEN)",
            description="Register the pipelines of a running trapline service's Antenna door (the serve config's "
                        "`antenna:` block) with an Antenna project, then take its async jobs' tasks in batches sized "
                        "to the detectors and answer each image (its detections, or its error). SIGTERM (or "
                        "Ctrl-C) stops taking tasks and answers the ones held, then exits 0; a second one exits at "
                        "once (143, 130); what is not answered Antenna redelivers.",
            main_options=("api", "project", "service"), stop_exit=0),
    Command("identify", "re-identify individuals among stored detections (sightings and individuals tables)",
            IdentifyOptions, identify_cli.run, identify_cli.run_text, styles=IDENTIFY_FLAGS,
            example="trapline identify --tables ./detections --identifier coats@production   (then: trapline "
                    "identify evaluate --tables ./detections --truth individuals.csv)",
            job_options=IdentifyJobOptions, arguments=identify_cli.add_arguments, cli=identify_cli.cmd_identify,
            description="Describe every kept detection the identifier covers (its box cut from the archive image), "
                        "match them (a shortlist, then verified matching), cluster them into individuals honouring "
                        "people's decisions, and write the sightings and individuals tables beside detections. "
                        "`trapline identify evaluate --tables T --truth CSV` compares the newest run with known "
                        "individuals; `trapline identify weekly --tables T` gives per week the individuals seen, the "
                        "new ones, the share of sightings assigned and whether the profiles are ready to be named."),
    *_people_commands(),
    *_jobs_commands(),
    *MODELS_COMMANDS,
    *PEOPLE_COMMANDS,
)}

# Commands grouped under a word ("tables compact", "tables check"): the group's own help.
GROUPS = {"models": MODELS_GROUP, "people": PEOPLE_GROUP,
          "antenna": ("trapline as an Antenna processing service (pull mode)",
                       "Antenna (RolnickLab/antenna) processing-service commands; push mode is the serve config's "
                       "`antenna:` block."),
          "tables": ("upkeep of stored tables: compact, check, list, retire and purge result sets",
                     "Maintenance of the tables runs and the online recorder write (no model)."),
          "occurrences": ("list the least certain occurrences; split, merge or move their detections (the decisions "
                          "log)", "review: occurrences whose weakest link the tracker is least sure of, least certain "
                          "first. split OCC --frame N: the N-th frame (0: first, as `review` shows them) and the later "
                          "ones are another animal. merge OCC OTHER: one animal. move OCC --frame N --to OTHER: that "
                          "frame's detection belongs to OTHER. Fixes apply at the next `trapline postprocess --filter "
                          "track`."),
          "jobs": ("submit, list, follow and stop archive jobs through the service's HTTP API",
                   "Jobs run on the cluster's job manager; this talks to the service's /v1/jobs (--url, default "
                   "$TRAPLINE_URL or http://127.0.0.1:8000). Tokens: $TRAPLINE_ADMIN_TOKEN for submit and stop, "
                   "$TRAPLINE_API_TOKEN (else the admin token) for reads."),
          "review": ("confirm, reject or relabel a detection, mark an image empty, add a missed box (decisions log)",
                     "What people verified about one model version's detections: every later read honours it (a "
                     "rejected detection gives its occurrence no vote) and `trapline models accuracy` measures the "
                     "version from it. IMAGE: its URI or path in the archive; --detection N: its detection_index."),
          "deployments": ("where and when each camera stood; clock corrections; effort",
                          "Deployments (a camera at a place for a period) and clock corrections, kept beside the "
                          "tables and applied by every later read, run and export.")}

