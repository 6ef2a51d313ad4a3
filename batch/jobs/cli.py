"""`trapline jobs submit|list|show|logs|stop`: a client of the service's /v1/jobs routes (never of Ray itself); the
runners of the registry's `jobs` commands (batch/commands.py; options: batch/jobs_client.py).

The submit flags of each kind are generated from the same options models as the command's own (`trapline
reprocess --help` and `trapline jobs submit reprocess --help` list the same flags); the service validates them
again and answers with the job. Tokens come from the environment: $TRAPLINE_ADMIN_TOKEN for submit and stop,
$TRAPLINE_API_TOKEN (else the admin token) for reads.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from batch.flags import add_config_flag, add_json_flag, add_model_arguments
from batch.jobs.kinds import KINDS, REFUSED
from batch.jobs_client import JOBS_FLAGS, JobLogsOptions, JobOptions, JobsListOptions, SubmitOptions
from batch.options import load_config_file
from ground import env
from ground.errors import ServiceRequestError, UserError
from ground.printed import Printed


def add_submit(parser: argparse.ArgumentParser) -> None:
    """`trapline jobs submit KIND ...`: one subcommand per job kind, with the flags of `trapline KIND`."""
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind in KINDS.values():
        k = kinds.add_parser(kind.name, help=f"the options of `trapline {kind.spec.name}`")
        add_model_arguments(k, kind.options, kind.styles, skip=tuple(REFUSED))
        if kind.spec.config_file:
            add_config_flag(k, dest="config_file")
        add_model_arguments(k, SubmitOptions, JOBS_FLAGS)  # --url, --name
        add_json_flag(k, "the service's answer")
        k.set_defaults(func=cmd_submit)


def request(args: Any, method: str, path: str, admin: bool = False, **kwargs: Any) -> Any:
    """`method path` on the service `args.url` names (a parsed command line or a command's options)."""
    # Here, not at the top: `trapline` registers these commands for every command it runs, and httpx costs
    # the others ~0.7 s of start-up they do not need.
    import httpx

    url = (getattr(args, "url", None) or env.URL.get()).rstrip("/")  # a flag not given is not in the namespace
    try:  # each also from the file NAME_FILE names
        token = env.ADMIN_TOKEN.secret() if admin else (env.API_TOKEN.secret() or env.ADMIN_TOKEN.secret())
    except ValueError as exc:
        raise UserError(str(exc)) from None
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.request(method, url + path, headers=headers, timeout=60, trust_env=False, **kwargs)
    except httpx.HTTPError as exc:
        raise ServiceRequestError(f"cannot reach the service at {url}: {exc}") from None
    if r.status_code >= 400:
        try:
            err = r.json()["error"]
            message = f"{err['message']} ({r.status_code} {err['type']})"
        except (ValueError, KeyError, TypeError):
            message = f"{r.status_code}: {r.text[:300]}"
        raise ServiceRequestError(message)
    return r.json()


def submitted_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options `trapline jobs submit KIND ...` sends: the flags given (over the --config file's)."""
    skip = {"func", "command", "jobs_command", "kind", "url", "json_output", "config_file", "job_name"}
    options = {k: v for k, v in vars(args).items() if k not in skip}
    if getattr(args, "config_file", None):
        options = {**load_config_file(args.config_file), **options}
    return options


def cmd_submit(args: argparse.Namespace) -> int:
    body = {"kind": args.kind, "options": submitted_options(args)}
    if getattr(args, "job_name", None):
        body["name"] = args.job_name
    job = request(args, "POST", "/v1/jobs", admin=True, json=body)
    if args.json_output:
        print(json.dumps(job, indent=2))
    else:
        print(f"submitted {job['kind']} job {job['id']} ({job['status']})")
        print(f"  follow it: trapline jobs show {job['id']}   logs: trapline jobs logs {job['id']}")
    return 0


def list_jobs(o: JobsListOptions, progress: Any = None) -> Printed:
    params = {k: v for k in ("kind", "status", "model", "limit", "offset") if (v := getattr(o, k)) is not None}
    page = request(o, "GET", "/v1/jobs", params=params)
    if not page["jobs"]:
        return Printed(page, "no jobs")
    lines = [f"{'ID':<34} {'KIND':<11} {'STATUS':<10} {'SUBMITTED':<19} {'ENDED':<19} {'MODEL':<20} IMAGES / NAME"]
    for j in page["jobs"]:
        name = f"  {j['name']}" if j.get("name") else ""
        lines.append(f"{j['id']:<34} {j['kind']:<11} {j['status']:<10} {_when(j['submitted_at']):<19} "
                     f"{_when(j['ended_at']):<19} {j['model'] or '-':<20} "
                     f"{_progress_text(j.get('progress'), j['status'] == 'running') or '-'}{name}")
    shown = page["offset"] + len(page["jobs"])
    if shown < page["total"]:
        lines.append(f"({shown} of {page['total']}; --offset {shown} for more)")
    return Printed(page, "\n".join(lines))


def _when(iso: str | None) -> str:
    return iso[:19].replace("T", " ") if iso else "-"


def _progress_text(p: dict[str, Any] | None, running: bool = True) -> str:
    if not p:
        return ""
    if p.get("unit") == "epochs":  # a fine-tune (batch/jobs/control.py `train_progress`)
        text = f"epoch {p['epoch']} of {p['epochs']}"
        if p.get("loss") is not None:
            text += f", loss {p['loss']:.4f}"
        if p.get("val_top1") is not None:
            text += f", val top-1 {p['val_top1']:.3f}"
        return text + (f", published {p['published']}" if p.get("published") else "")
    text = f"{p['images_done']}/{p['images_total']}"
    if running and p.get("images_per_s"):
        text += f", {p['images_per_s']:.1f} images/s"
    if running and p.get("eta_s") is not None:
        text += f", ETA {p['eta_s']:.0f}s"
    return text


def show_job(o: JobOptions, progress: Any = None) -> Printed:
    job = request(o, "GET", f"/v1/jobs/{o.job_id}")
    lines = [f"job {job['id']}: {job['kind']} {job['status']} (submitted {job['submitted_at']}, ended "
             f"{job['ended_at'] or '-'}, by {job['origin']})" + (f": {job['name']}" if job.get("name") else "")]
    if job.get("message"):
        lines.append(f"  {job['message']}")
    for k, v in sorted((job.get("options") or {}).items()):
        lines.append(f"  {k} = {json.dumps(v) if isinstance(v, dict | list) else v}")
    p = job.get("progress")
    if p:
        lines.append(f"progress {_progress_text(p)} (run {p['run_id']}, {p['run_status']})")
        for stage, counts in p["stages"].items():
            lines.append(f"  {stage:<9} " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return Printed(job, "\n".join(lines))


def job_logs(o: JobLogsOptions, progress: Any = None) -> Printed:
    logs = request(o, "GET", f"/v1/jobs/{o.job_id}/logs", params={"tail": o.tail})
    return Printed(logs, "\n".join(logs["lines"]))


def stop_job(o: JobOptions, progress: Any = None) -> Printed:
    job = request(o, "POST", f"/v1/jobs/{o.job_id}/stop", admin=True)
    how = "at its next part" if job["stop"] == "at_next_part" else "now (signalled)"
    return Printed(job, f"job {job['id']} stops {how}")
