"""The options of `trapline jobs list | show | logs | stop`: one pydantic model each, registered in the command
registry (batch/commands.py) like every other command. Beside the registry, not in batch/jobs/: the registry sits
below the control plane (the jobs' kinds are built from it), so it may not import that room. `trapline jobs submit
KIND` takes each kind's own options (batch/jobs/cli.py builds them from the same registry). Light: every command
line builds the registry."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from batch.flags import FlagStyle
from batch.options import CommandOptions
from ground import env

JobStatus = Literal["pending", "running", "succeeded", "failed", "stopped"]


class ServiceOptions(CommandOptions):
    url: str | None = Field(None, description=f"the service (default $TRAPLINE_URL, else {env.URL.default})")


class SubmitOptions(ServiceOptions):
    """What `trapline jobs submit KIND` takes besides the kind's own options (which it sends)."""

    job_name: str | None = Field(None, description="a name for people, shown in job lists")


class JobsListOptions(ServiceOptions):
    kind: str | None = Field(None, description="only jobs of this kind (reprocess, export, ...)")
    status: JobStatus | None = Field(None, description="only jobs in this state")
    model: str | None = Field(None, description="a model name or NAME:VERSION")
    limit: int = Field(20, ge=1, description="jobs per page")
    offset: int = Field(0, ge=0, description="skip this many (newest first)")


class JobOptions(ServiceOptions):
    job_id: str = Field(..., min_length=1, description="the job's id (as `trapline jobs list` shows it)")


class JobLogsOptions(JobOptions):
    tail: int = Field(200, ge=0, description="last lines (0: all)")


JOBS_FLAGS = {"job_id": FlagStyle(positional=True, metavar="JOB_ID"), "job_name": FlagStyle(flags=("--name",))}
