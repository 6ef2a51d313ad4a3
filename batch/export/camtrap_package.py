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
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from batch.export.deployments import Deployment, aware, deployment_rows
from ground.errors import BatchError
from ground.problems import describe, problems
from model_store.tables.table_set import TableSet

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
        raise BatchError(f"--package-meta {path}: {describe(problems(e))}") from None


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


def taxonomic(names: Iterable[str | None], classifiers: list[dict]) -> list[dict]:
    """One entry per scientific name observed; rank and higher taxa from the classifiers' taxonomy."""
    paths: dict[str, tuple[list[str], list[str]]] = {}  # taxon -> (path to it, rank names)
    for c in classifiers:
        ranks = list(c.get("taxonomy_ranks") or [])
        for path in (c.get("taxonomy") or {}).values():
            path = list(path)
            for depth in range(1, len(path) + 1):
                paths.setdefault(path[depth - 1], (path[:depth], ranks))
    out = []
    for name in sorted({n for n in names if n}):
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


def descriptor(meta: PackageMeta, deployments: list[dict], facts: PackageFacts, observation_levels: list[str],
               tset: TableSet, created: dt.datetime | None = None) -> tuple[dict, list[str]]:
    """(datapackage.json, the required fields it lacks) for the three tables written beside it (`tset`: the result
    set exported, for its model version and classifiers)."""
    from importlib.metadata import PackageNotFoundError, version

    created = created or dt.datetime.now(dt.timezone.utc)
    given = meta.model_dump(exclude_none=True, exclude_defaults=True)
    try:
        trapline_version = version("trapline")
    except PackageNotFoundError:
        trapline_version = "unknown"
    out: dict[str, Any] = {
        "profile": PROFILE_URL,
        "name": given.pop("name", package_name(tset.model_name, tset.model_version)),
        **({"id": given.pop("id")} if "id" in given else {}),
        "created": created.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "title": given.pop("title", f"Camera-trap detections by {tset.model_name} {tset.model_version} (trapline)"),
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
    project.setdefault("individualAnimals", facts.individuals)
    out["project"] = project
    if (where := spatial(deployments)) is not None:
        out["spatial"] = where
    if facts.dates is not None:  # first and last capture date (the media timestamps' own calendar dates)
        out["temporal"] = {"start": facts.dates[0], "end": facts.dates[1]}
    out["taxonomic"] = taxonomic(facts.names, tset.classifiers)
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
class PackageFacts:
    """What deployments.csv and datapackage.json need from the media and observations rows, gathered as the rows
    are written (`add`, a slice at a time), so the rows themselves need not be held."""

    given: dict[str, Deployment]  # the user's deployments
    offset: str
    allow_missing: bool = False
    spans: dict[str, tuple[dt.datetime, dt.datetime]] = field(default_factory=dict)  # camera -> first, last capture
    outside: Counter[str] = field(default_factory=Counter)  # camera -> media outside its deployment's window
    dates: tuple[str, str] | None = None
    names: set[str] = field(default_factory=set)  # scientific names observed
    individuals: bool = False  # an observation names an individual
    _windows: dict[str, tuple[dt.datetime, dt.datetime]] = field(default_factory=dict, repr=False)

    def add(self, media: list[dict], observations: list[dict]) -> None:
        for m in media:
            when = aware(m["timestamp"], self.offset)
            camera = m["deploymentID"]
            first, last = self.spans.get(camera, (when, when))
            self.spans[camera] = (min(first, when), max(last, when))
            if camera in self.given:
                if camera not in self._windows:
                    self._windows[camera] = self.given[camera].window(self.offset)
                start, end = self._windows[camera]
                self.outside[camera] += not start <= when <= end
            if day := (m.get("timestamp") or "")[:10]:
                self.dates = (day, day) if self.dates is None else (min(self.dates[0], day), max(self.dates[1], day))
        for o in observations:
            if o["deploymentID"] not in self.spans and o.get("eventStart"):  # for completeness: media come first
                when = aware(o["eventStart"], self.offset)
                self.spans[o["deploymentID"]] = (when, aware(o.get("eventEnd") or o["eventStart"], self.offset))
            if o.get("scientificName"):
                self.names.add(o["scientificName"])
            self.individuals = self.individuals or bool(o.get("individualID"))
        missing = sorted(set(self.spans) - set(self.given))
        if missing and not self.allow_missing:  # refused at the first slice that shows it, not after the last
            deployment_rows({c: self.spans[c] for c in missing}, self.given, self.offset, False)


@dataclass
class CamtrapPackage:
    deployments: list[dict]  # deployments.csv rows
    descriptor: dict  # datapackage.json
    notes: list[str]  # what the user should know: cameras without a deployment, fields the package lacks


def camtrap_package(facts: PackageFacts, tset: TableSet, meta: PackageMeta, observation_level: str
                    ) -> CamtrapPackage:
    """deployments.csv rows and datapackage.json for the media and observations rows `facts` gathered."""
    rows, missing = deployment_rows(facts.spans, facts.given, facts.offset, facts.allow_missing)
    notes = []
    if missing:
        notes.append(f"deployments.csv: camera(s) {', '.join(missing)} written without coordinates "
                     "(--allow-missing-deployments); fill in latitude and longitude before publishing")
    for camera in sorted(facts.spans):
        dep = facts.given.get(camera)
        if dep is not None and (outside := facts.outside[camera]):
            notes.append(f"deployments.csv: {outside} image(s) of {camera} lie outside its deploymentStart "
                         f"{dep.deploymentStart} .. deploymentEnd {dep.deploymentEnd}")
    levels = ["media", "event"] if observation_level == "both" else [observation_level]
    desc, lacking = descriptor(meta, rows, facts, levels, tset)
    if lacking:
        notes.append(f"datapackage.json lacks {', '.join(lacking)}: give them in --package-meta; "
                     "a Camtrap DP reader refuses the package until then")
    return CamtrapPackage(rows, desc, notes)
