"""The job control plane's own state on the app: its JobControl (set by `attach_jobs`). The service, the token
checks and the thread helper every route uses are serve/deps.py's."""

from __future__ import annotations

from fastapi import Request

from serve.jobs.control import JobControl


def control_of(request: Request) -> JobControl:
    return request.app.state.trapline_jobs
