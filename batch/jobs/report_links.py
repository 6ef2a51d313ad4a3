"""The signed links to the review reports of finished `report` jobs, added to the jobs' listings.

A browser following a link sends no `Authorization` header, and a report is a page with relative links to its
`thumbs/` and `plots/`. So a succeeded report job's view carries `report_url`:
`/reports/<job>/<expires>.<signature>/index.html`, signed (HMAC-SHA256) with a key derived from the service's token
digests, valid for `LINK_TTL_S`. Only a caller allowed to read jobs gets such a link, and all ingress replicas share
the key (the same tokens), so any replica serves it (batch/views/reports.py checks the link and serves the files).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from typing import Any

LINK_TTL_S = 12 * 3600
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


def valid_grant(key: bytes, job_id: str, grant: str) -> bool:
    """`grant` (`<expires>.<signature>`) is this service's, for this job, and not expired."""
    m = GRANT.match(grant)
    if m is None:
        return False
    expires, now = int(m.group(1)), time.time()
    if not now <= expires <= now + LINK_TTL_S + 60:  # expired, or longer-lived than any link this service signs
        return False
    return hmac.compare_digest(m.group(2), signature(key, job_id, expires))
