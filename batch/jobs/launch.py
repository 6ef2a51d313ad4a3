"""What the console's job forms are built from: each job kind's options (their JSON Schema, which of them name
locations) and the archives and tables under the roots a job may use, so that a location is picked, not typed blind.
The job itself is submitted with `POST /v1/jobs` (routes.py), which validates everything again."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from batch.commands import MAIN
from batch.jobs import locations as locs
from batch.jobs.kinds import KINDS, REFUSED
from batch.jobs.launch_protocol import JobKindOut, JobKindsOut, LocationsOut, VariantsOut
from batch.option_variants import form_schema, variants_of
from serve.deps import in_thread, read_auth, service_of

router = APIRouter(tags=["jobs"])
HIDDEN = {*REFUSED, "store"}  # a job uses the service's store; the refused ones cannot be set over HTTP


@router.get("/v1/job-kinds", dependencies=[Depends(read_auth)], response_model=JobKindsOut,
            summary="Every job kind with the JSON Schema of the options POST /v1/jobs accepts for it")
async def job_kinds() -> JobKindsOut:
    out = []
    for kind in KINDS.values():
        schema = form_schema(kind.options)
        schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k not in HIDDEN}
        required = [r for r in schema.get("required", []) if r not in HIDDEN]
        variants = variants_of(kind.options)
        out.append(JobKindOut(name=kind.name, help=kind.spec.help, paths=[p for p in kind.paths if p not in HIDDEN],
                              required=required, options_schema=schema, preview="dry_run" in schema["properties"],
                              main=[n for n in MAIN if n in schema["properties"]], resumes=kind.spec.resumes,
                              variants=variants and VariantsOut(key=variants.key, options={
                                  tag: [n for n in m.model_fields if n not in HIDDEN]
                                  for tag, m in variants.models.items()})))
    return JobKindsOut(kinds=out)


@router.get("/v1/locations", dependencies=[Depends(read_auth)], response_model=LocationsOut,
            summary="Archives and tables under the roots jobs may use: what the console's job forms pick from")
async def list_locations(request: Request) -> LocationsOut:
    return LocationsOut.model_validate(await in_thread(locs.locations, service_of(request).config.jobs.roots))
