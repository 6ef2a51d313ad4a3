"""`trapline deployments import | list | correct-clock | timestamp-issues | revoke | effort | history`.

Where and when each camera stood, and corrections of its clock, kept beside the tables (the deployments table and
the decisions log): every later read, run and export applies them.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deployments", help="where and when each camera stood; clock corrections; effort",
                       description="Deployments (a camera at a place for a period) and clock corrections, kept "
                                   "beside the tables and applied by every later read, run and export.")
    cmds = p.add_subparsers(dest="deployments_command", required=True,
                            metavar="{import,list,correct-clock,timestamp-issues,revoke,effort,history}")

    def command(name: str, help: str, func: Any) -> argparse.ArgumentParser:
        c = cmds.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        c.add_argument("--tables", required=True, metavar="DST", help="the tables the deployments explain")
        c.add_argument("--json", action="store_true", dest="json_output", help="print the result as JSON")
        c.set_defaults(func=func)
        return c

    def decided(c: argparse.ArgumentParser) -> None:
        c.add_argument("--who", default="cli", help="the person deciding, as the decisions log keeps it")
        c.add_argument("--comment", help="why (kept with the decision)")

    c = command("import", "record deployments from a Camtrap DP-shaped CSV or JSON file", _cmd_import)
    c.add_argument("file", help="deployments.csv or .json: deploymentID, cameraID, latitude, longitude, "
                                "deploymentStart, deploymentEnd, timezone and Camtrap DP's optional fields")
    c.add_argument("--timezone", help="IANA zone for rows without a `timezone` (default UTC)")
    c.add_argument("--remove", action="append", default=[], metavar="DEPLOYMENT", help="take a deployment out")
    decided(c)
    command("list", "the deployments, their pictures and the clock corrections in force", _cmd_list)
    c = command("correct-clock", "record that a camera's clock was off (or on another zone) for a while",
                _cmd_correct)
    c.add_argument("--camera", required=True, help="the camera id")
    c.add_argument("--from", dest="recorded_from", required=True, metavar="TIME",
                   help="first camera-clock reading covered, as the tables show it (e.g. 2026-03-01T00:00:00)")
    c.add_argument("--until", dest="recorded_until", required=True, metavar="TIME",
                   help="last camera-clock reading covered")
    c.add_argument("--offset", default="0", help="how far ahead the clock was: seconds or e.g. +1h03m, -30s "
                                                 "(true time = recorded - offset)")
    c.add_argument("--zone", help="read the times as local to this IANA zone (e.g. Etc/GMT-1 for a clock "
                                  "left on winter time in Central Europe)")
    decided(c)
    c = command("timestamp-issues", "mark a deployment whose clock cannot be fixed (Camtrap DP timestampIssues)",
                _cmd_issues)
    c.add_argument("deployment", help="the deploymentID")
    c.add_argument("--clear", action="store_true", help="its times can be trusted again")
    decided(c)
    c = command("revoke", "undo an earlier clock decision (it stays in the log)", _cmd_revoke)
    c.add_argument("decision_id")
    decided(c)
    from batch.deployments.effort_cli import add_effort_commands  # late: pandas is not loaded for every --help

    add_effort_commands(command)


def _records():
    from batch.deployments import records  # late: pandas and the tables are not loaded for every command's parser

    return records


def _print(args: argparse.Namespace, result: Any, text: str) -> int:
    print(json.dumps(result, indent=2, default=str) if args.json_output else text)
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    out = _records().import_deployments(args.tables, args.file, args.who, args.comment, args.timezone, args.remove)
    return _print(args, out, f"recorded {len(out['deployments'])} deployment(s) "
                             f"({', '.join(out['deployments'])})" + (f", removed {', '.join(out['removed'])}"
                                                                     if out["removed"] else "")
                  + f" as import {out['import_id']}")


def _cmd_list(args: argparse.Namespace) -> int:
    out = _records().list_deployments(args.tables)
    lines = [f"{'deployment':<14} {'camera':<10} {'location':<14} {'start (UTC)':<20} {'end (UTC)':<20} "
             f"{'zone':<18} {'pictures':>8}"]
    for d in out["deployments"]:
        lines.append(f"{d['deploymentID']:<14} {d['cameraID']:<10} {(d['locationName'] or ''):<14} "
                     f"{d['start_utc'][:19]:<20} {d['end_utc'][:19]:<20} {d['timezone']:<18} {d['pictures']:>8}"
                     + ("  timestampIssues" if d["timestampIssues"] else ""))
    for c in out["clock_corrections"]:
        what = " ".join(x for x in (f"offset {c['offset_s']:+g} s" if c["offset_s"] else "",
                                    f"zone {c['zone']}" if c["zone"] else "") if x)
        lines.append(f"clock {c['decision_id']}: {c['camera_id']} {c['recorded_from']} .. {c['recorded_until']} "
                     f"{what} (by {c['who']})")
    if out["pictures_without_deployment"]:
        lines.append(f"{out['pictures_without_deployment']} picture(s) in no deployment or in two: "
                     "`trapline tables check` lists them")
    return _print(args, out, "\n".join(lines))


def _cmd_correct(args: argparse.Namespace) -> int:
    out = _records().correct_clock(args.tables, args.camera, args.recorded_from, args.recorded_until,
                                _records().parse_offset(args.offset), args.zone, args.who, args.comment)
    return _print(args, out, f"recorded clock correction {out['decision_id']} for camera {args.camera}: "
                             "every later read, run and export applies it")


def _cmd_issues(args: argparse.Namespace) -> int:
    out = _records().mark_timestamp_issues(args.tables, args.deployment, not args.clear, args.who, args.comment)
    return _print(args, out, f"deployment {args.deployment}: timestampIssues "
                             f"{'cleared' if args.clear else 'set'} ({out['decision_id']})")


def _cmd_revoke(args: argparse.Namespace) -> int:
    out = _records().revoke(args.tables, args.decision_id, args.who, args.comment)
    return _print(args, out, f"revoked {args.decision_id} ({out['decision_id']})")

