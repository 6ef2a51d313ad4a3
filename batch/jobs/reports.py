"""The review reports of finished `report` jobs, opened from the console by a link that carries its own right.

A browser following a link sends no `Authorization` header, and a report is a page with relative links to its
`thumbs/` and `plots/`. So a succeeded report job's view carries `report_url`:
`/reports/<job>/<expires>.<signature>/index.html`, signed (HMAC-SHA256) with a key derived from the service's token
digests, valid for `LINK_TTL_S`. Everything under that prefix, and only the files of that job's report directory,
is served; a wrong, expired or altered signature is a 404 that names nothing. Only a caller allowed to read jobs
gets such a link, and all ingress replicas share the key (the same tokens), so any replica serves it. Only what
`trapline report` writes is served (`index.html`, `thumbs/*`, `plots/*`), from a local absolute directory.
"""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import os
import re
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from batch.jobs.deps import control_of
from serve.deps import in_thread, service_of
from trapline.errors import JobNotFoundError, NotFoundError

router = APIRouter()
LINK_TTL_S = 12 * 3600
# The report's own inline script (the threshold slider) and styles run; nothing is loaded from elsewhere.
REPORT_HEADERS = {"Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                                             "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                                             "frame-ancestors 'self'",
                  "X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=300",
                  "Referrer-Policy": "no-referrer"}
SERVED = {".html", ".png", ".jpg", ".jpeg", ".svg", ".json", ".css", ".webp"}
# What `trapline report` writes: its page, and the pictures in two folders. Nothing else under OUT is served.
REPORT_FILES = re.compile(r"^(index\.html|(thumbs|plots)/[A-Za-z0-9][A-Za-z0-9_.-]*)$")
GRANT = re.compile(r"^(\d{1,12})\.([0-9a-f]{40})$")


def servable(out: str | None) -> bool:
    """A report directory this service can serve: a local, absolute path (not s3://, not relative to a shell)."""
    return bool(out) and "://" not in out and os.path.isabs(out)


def signature(key: bytes, job_id: str, expires: int) -> str:
    return hmac.new(key, f"{job_id}\n{expires}".encode(), hashlib.sha256).hexdigest()[:40]


def report_url(key: bytes, job_id: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + LINK_TTL_S)
    return f"/reports/{job_id}/{expires}.{signature(key, job_id, expires)}/index.html"


def with_report_links(key: bytes, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add `report_url` to the succeeded report jobs of a listing (in place; also returned)."""
    for job in jobs:
        out = (job.get("options") or {}).get("out")
        if job.get("kind") == "report" and job.get("status") == "succeeded" and servable(out):
            job["report_url"] = report_url(key, job["id"])
    return jobs


def _valid(key: bytes, job_id: str, grant: str) -> bool:
    m = GRANT.match(grant)
    if m is None:
        return False
    expires, now = int(m.group(1)), time.time()
    if not now <= expires <= now + LINK_TTL_S + 60:  # expired, or longer-lived than any link this service signs
        return False
    return hmac.compare_digest(m.group(2), signature(key, job_id, expires))


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


@router.get("/reports/{job_id}/{grant}/{path:path}", include_in_schema=False)
async def report_file(request: Request, job_id: str, grant: str, path: str) -> FileResponse:
    """One file of a finished report, for the holder of a link from `GET /v1/jobs` (no token: a browser tab)."""
    if not _valid(service_of(request).link_key(), job_id, grant):
        raise NotFoundError("no such report (the link is wrong or has expired: open it again from the console)")
    dirs: ReportDirs = request.app.state.trapline_reports
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
