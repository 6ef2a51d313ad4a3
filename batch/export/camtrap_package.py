"""The Camtrap DP 1.0.2 package descriptor (`datapackage.json`) around the exported tables.

`trapline export --format camtrap-dp` writes deployments.csv, media.csv and observations.csv
(batch/export/camtrap.py, batch/export/deployments.py) and this descriptor: the standard's profile and table
schema URLs, what the user's `--package-meta meta.yaml` says (title, contributors, project,
licences, ...), and what is computed from the data: `created`, `temporal` (first and last
capture date), `spatial` (the deployments' bounding box), `taxonomic` (the scientific names of
the observations, with rank and higher taxa from the classifier's taxonomy) and the project's
`observationLevel`. Required fields the meta file does not give are reported as missing: the
package is written, but does not validate until they are added.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from batch.export.deployments import Deployment, aware, deployment_rows
from model_store.tables.reader import TableSet
from trapline.errors import BatchError

CAMTRAP_DP_VERSION = "1.0.2"
STANDARD_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{CAMTRAP_DP_VERSION}"
PROFILE_URL = f"{STANDARD_URL}/camtrap-dp-profile.json"
TABLES = ("deployments", "media", "observations")
# the taxonRank values the profile allows, and the ranks it has a field for (higher taxa)
TAXON_RANKS = ("kingdom", "phylum", "class", "order", "family", "genus", "species", "subspecies")
HIGHER_RANK_FIELDS = ("kingdom", "phylum", "class", "order", "family", "genus")


def table_schema_url(table: str) -> str:
    return f"{STANDARD_URL}/{table}-table-schema.json"


class Contributor(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1)
    email: str | None = None
    path: str | None = None
    role: Literal["contact", "principalInvestigator", "rightsHolder", "publisher", "contributor"] | None = None
    organization: str | None = None


class License(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scope: Literal["data", "media"]
    name: str | None = None
    path: str | None = None
    title: str | None = None


class Project(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1)
    id: str | None = None
    acronym: str | None = None
    description: str | None = None
    path: str | None = None
    samplingDesign: Literal["simpleRandom", "systematicRandom", "clusteredRandom", "experimental",  # noqa: N815
                            "targeted", "opportunistic"] | None = None
    captureMethod: list[Literal["activityDetection", "timeLapse"]] | None = Field(None, min_length=1)  # noqa: N815
    individualAnimals: bool | None = None  # noqa: N815 - default: whether any observation names an individual


class PackageMeta(BaseModel):
    """What `--package-meta` (YAML or JSON) may say about the package; the rest is computed."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, pattern=r"^[-a-z0-9._/]+$")
    id: str | None = None
    title: str | None = None
    description: str | None = None
    version: str | None = None
    keywords: list[str] = Field(default_factory=list)
    homepage: str | None = None
    image: str | None = None
    bibliographicCitation: str | None = None  # noqa: N815
    coordinatePrecision: float | None = Field(None, gt=0)  # noqa: N815
    contributors: list[Contributor] = Field(default_factory=list)
    licenses: list[License] = Field(default_factory=list)
    project: Project | None = None
    relatedIdentifiers: list[dict[str, Any]] = Field(default_factory=list)  # noqa: N815
    references: list[str] = Field(default_factory=list)

    @field_validator("licenses")
    @classmethod
    def _both_scopes(cls, value: list[License]) -> list[License]:
        if value and {lic.scope for lic in value} != {"data", "media"}:
            raise ValueError("give one licence with scope: data and one with scope: media (Camtrap DP needs both)")
        for lic in value:
            if not (lic.name or lic.path):
                raise ValueError(f"a licence needs a name or a path: {lic.model_dump(exclude_none=True)!r}")
        return value


def load_package_meta(path: str | None) -> PackageMeta:
    """Read and check `--package-meta` (none: an empty one, and the package lists what it lacks)."""
    if path is None:
        return PackageMeta()
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f) if path.lower().endswith(".json") else yaml.safe_load(f)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise BatchError(f"--package-meta: cannot read {path}: {e}") from None
    try:
        return PackageMeta.model_validate(data or {})
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                             + (f" (got {err['input']!r})" if err["type"] != "missing" else "")
                             for err in e.errors())
        raise BatchError(f"--package-meta {path}: {problems}") from None


def temporal(media: list[dict]) -> dict[str, str] | None:
    """First and last capture date (the media timestamps' own calendar dates)."""
    dates = sorted(m["timestamp"][:10] for m in media if m.get("timestamp"))
    return {"start": dates[0], "end": dates[-1]} if dates else None


def spatial(deployments: list[dict]) -> dict | None:
    """GeoJSON of the deployments with coordinates: their bounding box (a Point for one location)."""
    points = [(float(d["longitude"]), float(d["latitude"])) for d in deployments
              if d.get("longitude") not in (None, "") and d.get("latitude") not in (None, "")]
    if not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if x0 == x1 and y0 == y1:
        return {"type": "Point", "coordinates": [x0, y0]}
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def taxonomic(observations: list[dict], classifiers: list[dict]) -> list[dict]:
    """One entry per scientificName in the observations; rank and higher taxa from the classifiers' taxonomy."""
    paths: dict[str, tuple[list[str], list[str]]] = {}  # taxon -> (path to it, rank names)
    for c in classifiers:
        ranks = list(c.get("taxonomy_ranks") or [])
        for path in (c.get("taxonomy") or {}).values():
            path = list(path)
            for depth in range(1, len(path) + 1):
                paths.setdefault(path[depth - 1], (path[:depth], ranks))
    out = []
    for name in sorted({o["scientificName"] for o in observations if o.get("scientificName")}):
        entry: dict[str, Any] = {"scientificName": name}
        path, ranks = paths.get(name, ([], []))
        if path and len(ranks) >= len(path):
            rank = ranks[len(path) - 1].lower()
            if rank in TAXON_RANKS:
                entry["taxonRank"] = rank
            for taxon, level in zip(path[:-1], ranks, strict=False):
                if level.lower() in HIGHER_RANK_FIELDS:
                    entry[level.lower()] = taxon
        out.append(entry)
    return out


def package_name(model_name: str, model_version: str) -> str:
    """A Data Package `name` (lower case, `-a-z0-9._/`) for a model version's export."""
    return re.sub(r"[^-a-z0-9._/]+", "-", f"trapline-{model_name}-{model_version}".lower()).strip("-")


def descriptor(meta: PackageMeta, deployments: list[dict], media: list[dict], observations: list[dict],
               observation_levels: list[str], classifiers: list[dict], model: tuple[str, str],
               created: dt.datetime | None = None) -> tuple[dict, list[str]]:
    """(datapackage.json, the required fields it lacks) for the three tables written beside it."""
    from importlib.metadata import PackageNotFoundError, version

    created = created or dt.datetime.now(dt.timezone.utc)
    given = meta.model_dump(exclude_none=True, exclude_defaults=True)
    try:
        trapline_version = version("trapline")
    except PackageNotFoundError:
        trapline_version = "unknown"
    out: dict[str, Any] = {
        "profile": PROFILE_URL,
        "name": given.pop("name", package_name(*model)),
        **({"id": given.pop("id")} if "id" in given else {}),
        "created": created.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "title": given.pop("title", f"Camera-trap detections by {model[0]} {model[1]} (trapline)"),
        "contributors": given.pop("contributors", []),
        **given,
        "sources": [{"title": "trapline", "version": trapline_version}],
        "resources": [{"name": t, "path": f"{t}.csv", "profile": "tabular-data-resource", "format": "csv",
                       "mediatype": "text/csv", "encoding": "utf-8", "schema": table_schema_url(t)}
                      for t in TABLES],
    }
    project = dict(given.get("project") or {})
    project["observationLevel"] = observation_levels
    # true when the observations identify individuals (trapline identify), unless the user's metadata says
    project.setdefault("individualAnimals", any(o.get("individualID") for o in observations))
    out["project"] = project
    if (where := spatial(deployments)) is not None:
        out["spatial"] = where
    if (when := temporal(media)) is not None:
        out["temporal"] = when
    out["taxonomic"] = taxonomic(observations, classifiers)
    missing = [name for name, ok in (
        ("contributors", bool(out["contributors"])),
        ("project.title", "title" in project),
        ("project.samplingDesign", "samplingDesign" in project),
        ("project.captureMethod", "captureMethod" in project),
        ("spatial (deployments with coordinates)", "spatial" in out),
        ("temporal (media with a capture time)", "temporal" in out),
    ) if not ok]
    return out, missing


@dataclass
class CamtrapPackage:
    deployments: list[dict]  # deployments.csv rows
    descriptor: dict  # datapackage.json
    notes: list[str]  # what the user should know: cameras without a deployment, fields the package lacks


def camtrap_package(media: list[dict], observations: list[dict], tset: TableSet,
                    inputs: tuple[dict[str, Deployment], PackageMeta], offset: str,
                    observation_level: str, allow_missing_deployments: bool = False) -> CamtrapPackage:
    """deployments.csv rows and datapackage.json for exported media and observations rows."""
    given, meta = inputs
    spans: dict[str, tuple[dt.datetime, dt.datetime]] = {}
    for m in media:
        when = aware(m["timestamp"], offset)
        first, last = spans.get(m["deploymentID"], (when, when))
        spans[m["deploymentID"]] = (min(first, when), max(last, when))
    for o in observations:  # an event-level export still has media rows; this is for completeness
        if o["deploymentID"] not in spans and o.get("eventStart"):
            when = aware(o["eventStart"], offset)
            spans[o["deploymentID"]] = (when, aware(o.get("eventEnd") or o["eventStart"], offset))
    rows, missing = deployment_rows(spans, given, offset, allow_missing_deployments)
    notes = []
    if missing:
        notes.append(f"deployments.csv: camera(s) {', '.join(missing)} written without coordinates "
                     "(--allow-missing-deployments); fill in latitude and longitude before publishing")
    for camera, (first, last) in sorted(spans.items()):
        dep = given.get(camera)
        if dep is not None:
            start, end = dep.window(offset)
            outside = sum(1 for m in media if m["deploymentID"] == camera
                          and not start <= aware(m["timestamp"], offset) <= end)
            if outside:
                notes.append(f"deployments.csv: {outside} image(s) of {camera} lie outside its deploymentStart "
                             f"{dep.deploymentStart} .. deploymentEnd {dep.deploymentEnd}")
    levels = ["media", "event"] if observation_level == "both" else [observation_level]
    desc, lacking = descriptor(meta, rows, media, observations, levels, tset.classifiers,
                               (tset.model_name, tset.model_version))
    if lacking:
        notes.append(f"datapackage.json lacks {', '.join(lacking)}: give them in --package-meta; "
                     "a Camtrap DP reader refuses the package until then")
    return CamtrapPackage(rows, desc, notes)
