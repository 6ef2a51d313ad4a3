"""The review reports of finished `report` jobs, opened from the console by a link that carries its own right.

The jobs' listings carry each succeeded report job's signed link (batch/jobs/report_links.py). Everything under that
link's prefix, and only the files of that job's report directory, is served; a wrong, expired or altered signature
is a 404 that names nothing. Only what `trapline report` writes is served (`index.html`, `thumbs/*`, `plots/*`),
from a local absolute directory.
"""

from __future__ import annotations

import mimetypes
import os
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from batch.jobs.deps import control_of
from batch.jobs.report_links import servable, valid_grant
from ground.errors import JobNotFoundError, NotFoundError
from serve.deps import in_thread, service_of

router = APIRouter()
# The report's own inline script (the threshold slider) and styles run; nothing is loaded from elsewhere.
REPORT_HEADERS = {"Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                             "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                             "frame-ancestors 'self'",
                  "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300",
                  "Referrer-Policy": "no-referrer"}
SERVED = {".html", ".png", ".jpg", ".jpeg", ".svg", ".json", ".css", ".webp"}
# What `trapline report` writes: its page, and the pictures in two folders. Nothing else under OUT is served.
REPORT_FILES = re.compile(r"^(index\.html|(thumbs|plots)/[A-Za-z0-9][A-Za-z0-9_.-]*)$")


class ReportDirs:
    """job id -> the report directory of a succeeded report job (a finished job's options never change)."""

    def __init__(self) -> None:
        self._dirs: dict[str, str] = {}

    def get(self, control: Any, job_id: str) -> str:
        if job_id not in self._dirs:
            job = control.show(job_id, progress=False)
            out = (job.get("options") or {}).get("out")
            if job["kind"] != "report" or job["status"] != "succeeded" or not servable(out):
                raise NotFoundError("no such report")
            self._dirs[job_id] = os.path.realpath(out)
        return self._dirs[job_id]


def report_dirs(request: Request) -> ReportDirs:
    """This app's cache of report directories, made on the first report served (no await between look and set)."""
    state = request.app.state
    if getattr(state, "trapline_reports", None) is None:
        state.trapline_reports = ReportDirs()
    return state.trapline_reports


@router.get("/reports/{job_id}/{grant}/{path:path}", include_in_schema=False)
async def report_file(request: Request, job_id: str, grant: str, path: str) -> FileResponse:
    """One file of a finished report, for the holder of a link from `GET /v1/jobs` (no token: a browser tab)."""
    if not valid_grant(service_of(request).link_key(), job_id, grant):
        raise NotFoundError("no such report (the link is wrong or has expired: open it again from the console)")
    dirs = report_dirs(request)
    try:
        root = await in_thread(dirs.get, control_of(request), job_id)
    except (NotFoundError, JobNotFoundError):
        raise NotFoundError("no such report") from None
    path = path or "index.html"
    target = os.path.realpath(os.path.join(root, path))
    if not REPORT_FILES.match(path) or not target.startswith(root + os.sep) \
            or os.path.splitext(target)[1].lower() not in SERVED or not os.path.isfile(target):
        raise NotFoundError(f"no file {path!r} in this report")
    media = mimetypes.guess_type(target)[0] or "application/octet-stream"
    return FileResponse(target, media_type=media, headers=REPORT_HEADERS)
