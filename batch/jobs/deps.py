"""The job control plane on the app's state: its JobControl, set by `attach_jobs`. The service, the token checks and
the thread helper every route uses are serve/deps.py's."""

from __future__ import annotations

from fastapi import Request

from batch.jobs.control import JobControl


def control_of(request: Request) -> JobControl:
    return request.app.state.trapline_jobs
