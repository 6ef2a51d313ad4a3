"""Camtrap DP 1.0 media and observations rows from the detection tables (`trapline export --format camtrap-dp`).

Observations at media level (one per kept box; a blank image one `blank` row), at event level
(one per event and what was seen; batch/postprocessing/events.py) or both. The first classifier's answer, where
there is one, gives the scientificName.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import mimetypes
import posixpath
from collections import defaultdict
from typing import Any

import pandas as pd

from batch.export.base import Exporter, ExportJob, ExportRows, open_output, write_file
from batch.export.camtrap_options import CamtrapOptions
from batch.export.camtrap_package import PackageFacts, camtrap_package, load_package_meta
from batch.export.deployments import CAMTRAP_DEPLOYMENT_FIELDS, load_deployments, table_deployments
from batch.export.fields import box_of, capture_offset, iso_time, iso_times, scientific_name
from batch.postprocessing.events import group_events
from model_store.tables.cameras import camera_or_default
from model_store.tables.clock import utc_offset_text
from model_store.tables.table_set import TableSet

HUMAN_LABELS = {"person", "people", "human", "humans", "hiker"}
VEHICLE_LABELS = {"vehicle", "car", "truck", "bus", "motorcycle", "bicycle"}
BLANK_LABELS = {"blank", "empty"}

CAMTRAP_MEDIA_FIELDS = ["mediaID", "deploymentID", "captureMethod", "timestamp", "filePath", "filePublic",
                        "fileName", "fileMediatype", "exifData", "favorite", "mediaComments"]
CAMTRAP_OBSERVATION_FIELDS = [
    "observationID", "deploymentID", "mediaID", "eventID", "eventStart", "eventEnd", "observationLevel",
    "observationType", "cameraSetupType", "scientificName", "count", "lifeStage", "sex", "behavior",
    "individualID", "individualPositionRadius", "individualPositionAngle", "individualSpeed", "bboxX", "bboxY",
    "bboxWidth", "bboxHeight", "classificationMethod", "classifiedBy", "classificationTimestamp",
    "classificationProbability", "observationTags", "observationComments",
]


def observation_type(label: str) -> str:
    """Camtrap DP observationType for a detector label."""
    key = label.lower()
    if key in HUMAN_LABELS:
        return "human"
    if key in VEHICLE_LABELS:
        return "vehicle"
    if key in BLANK_LABELS:
        return "blank"
    return "animal"


def media_id(uri: str, content_id: str) -> str:
    return hashlib.sha1(f"{uri}\0{content_id}".encode()).hexdigest()[:16]


def camtrap_dp(rows: ExportRows, tset: TableSet, options: CamtrapOptions, individuals: dict | None = None
               ) -> tuple[list[dict], list[dict]]:
    """Camtrap DP 1.0 media and observations rows of one slice of `rows` (failed images are left out), shaped
    by the command's options whole (`timezone`, `observation_level`, `gap_s`: a new option is read here, not
    threaded through as one more argument).

    `observation_level` media: one observation per kept box (blank images one `blank` row);
    event: one per event (batch/postprocessing/events.py, `gap_s`) and label, `count` the most boxes of that
    label in one image; both: the two, the media-level rows carrying their eventID. With `occurrences` (a tracked
    set) an event's observations are its animals: one per determined label, `count` the confirmed occurrences seen
    in the event (a person's identification is `classificationMethod` human), and each media-level box names its
    occurrence in its tags. With `individuals` ((uri, content_id, detection_index) -> id, from `trapline
    identify` with people's decisions applied) each media-level box of an identified animal has its individualID.
    """
    images, dets, occurrences = rows.images, rows.dets, rows.occurrences
    offset, observation_level, gap_s = options.timezone, options.observation_level, options.gap_s
    individuals = individuals or {}
    by_uri = detections_by_uri(dets)
    classified_by = machine(tset)
    media, observations = [], []
    events = group_events(images, dets, gap_s, tset.filters_hash, occurrences) if observation_level != "media" \
        else None
    event_of = {} if events is None else {uri: ev for ev in events.itertuples(index=False) for uri in ev.uris}
    live = images[images["status"] != "failed"]
    # columns as Python lists and times formatted a column at once: a row at a time through pandas cost the
    # export at a million images most of its 55 s
    if "capture_time_local" in live:  # placed by the deployments table (model_store/tables/clock.py)
        whens = iso_times(live["capture_time_local"], utc_offset_text(live["capture_time_local"],
                                                                       live["capture_time"]))
    else:
        sources = live["capture_time_source"].tolist() if "capture_time_source" in live else [None] * len(live)
        whens = iso_times(live["capture_time"], [capture_offset(s, offset) for s in sources])
    classified = iso_times(live["processed_at"], "Z")
    clip_of = {r.uri: r for r in live.itertuples(index=False) if getattr(r, "kind", None) == "video"}
    columns = (live[c].tolist() for c in ("uri", "content_id", "camera_id", "rel_path"))
    for uri, content_id, camera_id, rel_path, deployment, when, classified_at in zip(
            *columns, _deployments(live), whens, classified, strict=True):
        mid = media_id(uri, content_id)
        path = rel_path or uri
        name = posixpath.basename(path)
        media.append({
            "mediaID": mid, "deploymentID": deployment, "captureMethod": "", "timestamp": when,
            "filePath": path, "filePublic": "false", "fileName": name,
            "fileMediatype": mimetypes.guess_type(name)[0] or "image/jpeg",
            "exifData": "", "favorite": "", "mediaComments": "",
        })
        if clip_of.get(uri) is not None:  # a clip: its animals at event level, over the clip's span
            observations += clip_observations(clip_of[uri], mid, deployment, when, classified_at, tset)
            continue
        ev = event_of.get(uri)
        base = {"deploymentID": deployment, "mediaID": mid, "eventID": ev.event_id if ev else "",
                "eventStart": when, "eventEnd": when, "observationLevel": "media", "classificationMethod": "machine",
                "classifiedBy": classified_by, "classificationTimestamp": classified_at}
        if observation_level == "event":
            continue
        g = by_uri.get(uri)
        if g is None:
            observations.append({**base, "observationID": f"{mid}_blank", "observationType": "blank",
                                 "observationTags": f"filters:{tset.filters_hash}"})
            continue
        for n, d in enumerate(g, start=1):
            x, y, w, h = box_of(d)
            bbox = {"bboxX": round(x, 4), "bboxY": round(y, 4), "bboxWidth": round(w, 4), "bboxHeight": round(h, 4)}
            if w <= 0 or h <= 0:
                bbox = {}  # a degenerate box: keep the observation, drop the geometry
            obs = {
                **base, **bbox, "observationID": f"{mid}_{n}", "observationType": observation_type(d.label),
                "count": 1, "classificationProbability": round(float(d.score), 4),
                "observationTags": f"label:{d.label}|filters:{tset.filters_hash}"
                                   + (f"|occurrence:{d.occurrence_id}" if isinstance(getattr(d, "occurrence_id", None),
                                                                                     str) else ""),
            }
            if (ind := individuals.get((uri, content_id, int(d.detection_index)))) is not None:
                obs["individualID"] = ind
            if getattr(d, "classifications", None):  # the species answer: the first classifier's
                c = d.classifications[0]
                obs.update(scientificName=scientific_name(c), classificationProbability=round(float(c["score"]), 4),
                           classifiedBy=f"{classified_by} + {c['classifier_name']} {c['classifier_version']}",
                           observationTags=f"{obs['observationTags']}|classification:{c['label']}"
                                           + (f"|source:{c['source']}" if c.get("source") else ""))
            observations.append(obs)
    if events is not None and occurrences is not None:
        observations += _event_animals(events, occurrences, images, tset, offset)
    elif events is not None:
        observations += _event_observations(events, by_uri, images, tset, offset)
    return media, observations


def _deployments(images: pd.DataFrame) -> list[str]:
    """Each image's deploymentID: its deployment in the deployments table, else (none recorded, or the picture in
    none of its camera's) its camera id, as before deployments were records."""
    cameras = [camera_or_default(c) for c in images["camera_id"]]
    if "deployment_id" not in images:
        return cameras
    return [d if isinstance(d, str) else c for d, c in zip(images["deployment_id"], cameras, strict=True)]


def machine(tset: TableSet) -> str:
    """Camtrap DP's `classifiedBy` of a machine observation: the model version that made the set."""
    return f"{tset.model_name} {tset.model_version}"


def clip_observations(clip: Any, mid: str, deployment: str, start: str, classified_at: str,
                      tset: TableSet) -> list[dict]:
    """A clip's observations, at event level as Camtrap DP has it for videos: one per label of its confirmed tracks
    (its animals, linked across its sampled frames), `count` how many; a clip without one is one `blank` row. The
    event spans the clip: from its capture time to that plus its duration."""
    tracks = [t for t in json.loads(clip.clip_tracks or "[]") if t["confirmed"]]
    end = start
    if start and isinstance(clip.duration_s, float) and clip.duration_s == clip.duration_s:
        stamp = pd.Timestamp(start[:19]) + pd.Timedelta(seconds=clip.duration_s)
        end = stamp.strftime("%Y-%m-%dT%H:%M:%S") + start[19:]
    base = {"deploymentID": deployment, "mediaID": "", "eventID": f"clip_{mid}", "eventStart": start,
            "eventEnd": end, "observationLevel": "event", "classificationMethod": "machine",
            "classifiedBy": machine(tset), "classificationTimestamp": classified_at}
    tags = f"clip:{mid}|frames:{int(clip.frames_sampled or 0)}|filters:{tset.filters_hash}"
    if not tracks:
        return [{**base, "observationID": f"clip_{mid}_blank", "observationType": "blank", "observationTags": tags}]
    by_label: dict[str, list[dict]] = defaultdict(list)
    for t in tracks:
        by_label[t["label"]].append(t)
    return [{**base, "observationID": f"clip_{mid}_{label}", "observationType": observation_type(label),
             "count": len(ts), "classificationProbability": round(max(t["score"] for t in ts), 4),
             "observationTags": f"label:{label}|{tags}"} for label, ts in sorted(by_label.items())]


def detections_by_uri(dets: pd.DataFrame) -> dict[str, list[Any]]:
    """uri -> its detection rows (named tuples, in table order), split in one pass over the table: a DataFrame per
    image, iterated image by image, cost a few hundred microseconds each (minutes at a million images)."""
    by_uri: dict[str, list[Any]] = defaultdict(list)
    if not dets.empty:
        for d in dets.itertuples(index=False):
            by_uri[d.uri].append(d)
    return by_uri


class _ImageFacts:
    """Per image of the export, what its event's rows take from it: its capture time's source (the offset of an
    event's start and end depends on it) and when it was processed (an event is classified when the last of its
    images was: the same whatever else is exported with it)."""

    def __init__(self, images: pd.DataFrame) -> None:
        sources = images["capture_time_source"] if "capture_time_source" in images else [None] * len(images)
        if "capture_time_local" in images:  # placed: an event's start and end are UTC (model_store/tables/clock.py)
            sources = ["exif_utc"] * len(images)
        self.source_of = dict(zip(images["uri"], sources, strict=True))
        self.deployment_of = dict(zip(images["uri"], _deployments(images), strict=True))
        self.processed_of = dict(zip(images["uri"], images["processed_at"], strict=True))

    def classified_at(self, uris: Any) -> str:
        times = [t for u in uris if (t := self.processed_of.get(u)) is not None and not pd.isna(t)]
        return iso_time(max(times), "Z") if times else ""


def _event_base(ev: Any, facts: _ImageFacts, tset: TableSet, offset: str) -> dict[str, Any]:
    source_of = facts.source_of
    first, last = (source_of.get(ev.uris[0]), source_of.get(ev.uris[-1])) if len(ev.uris) else (None, None)
    deployment = facts.deployment_of.get(ev.uris[0]) if len(ev.uris) else None
    return {"deploymentID": deployment or camera_or_default(ev.camera_id), "mediaID": "", "eventID": ev.event_id,
            "eventStart": iso_time(ev.start, capture_offset(first, offset)),
            "eventEnd": iso_time(ev.end, capture_offset(last, offset)), "observationLevel": "event",
            "classificationMethod": "machine", "classifiedBy": f"{tset.model_name} {tset.model_version}",
            "classificationTimestamp": facts.classified_at(ev.uris)}


def _event_animals(events: pd.DataFrame, occurrences: pd.DataFrame, images: pd.DataFrame, tset: TableSet,
                   offset: str) -> list[dict]:
    """Event-level observations of a tracked set: per event and determined label, `count` its confirmed
    occurrences seen in the event (an animal arriving after the busiest frame counts too)."""
    facts = _ImageFacts(images)
    confirmed = occurrences[occurrences["confirmed"].astype(bool)]
    by_uri: dict[str, list[dict]] = {}
    for o in confirmed.to_dict("records"):
        for d in o["detections"]:
            by_uri.setdefault(d["uri"], []).append(o)
    rows = []
    for ev in events.itertuples(index=False):
        base = _event_base(ev, facts, tset, offset)
        seen = {o["occurrence_id"]: o for uri in ev.uris for o in by_uri.get(uri, [])}
        by_label: dict[str, list[dict]] = {}
        for o in seen.values():
            by_label.setdefault(o["label"] if isinstance(o["label"], str) else "unknown", []).append(o)
        if not by_label:
            rows.append({**base, "observationID": f"{ev.event_id}_blank", "observationType": "blank",
                         "observationTags": f"images:{ev.images}|filters:{tset.filters_hash}"})
        for label, occ in sorted(by_label.items()):
            people = sorted({o["identified_by"] for o in occ if o["determined_by"] == "human"})
            scores = [float(o["score"]) for o in occ if o["score"] is not None and not pd.isna(o["score"])]
            from_model = all(v["source"] == "detector" for o in occ for v in o["votes"]) and not people
            row = {**base, "observationID": f"{ev.event_id}_{label}", "observationType": observation_type(label),
                   "count": len(occ), "classificationProbability": round(max(scores), 4) if scores else "",
                   "observationTags": f"label:{label}|occurrences:{','.join(sorted(o['occurrence_id'] for o in occ))}"
                                      f"|images:{ev.images}|filters:{tset.filters_hash}"}
            if not from_model:  # a classifier's or a person's name, not a detector class
                row["scientificName"] = label
            if people:
                row.update(classificationMethod="human", classifiedBy="; ".join(people))
            rows.append(row)
    return rows


def _event_observations(events: pd.DataFrame, by_uri: dict[str, list[Any]], images: pd.DataFrame,
                        tset: TableSet, offset: str) -> list[dict]:
    """Event-level observations: one per event and what was seen (a blank event: one `blank` row).

    "What was seen" is the detector label, or with a classifier its taxon (the first classifier's,
    as at media level): `count` is the most such boxes in one image of the event (the same animal is
    in every frame), `classificationProbability` the highest score among them.
    """
    classified_by = machine(tset)
    facts = _ImageFacts(images)
    rows = []
    for ev in events.itertuples(index=False):
        counts: dict[tuple[str, str], int] = {}
        scores: dict[tuple[str, str], float] = {}
        classifier: dict[tuple[str, str], str] = {}
        for uri in ev.uris:
            per_image: dict[tuple[str, str], int] = {}
            for d in by_uri.get(uri, ()):
                c = d.classifications[0] if getattr(d, "classifications", None) else None
                key = (d.label, scientific_name(c) if c is not None else "")
                per_image[key] = per_image.get(key, 0) + 1
                scores[key] = max(scores.get(key, 0.0), float(c["score"] if c is not None else d.score))
                if c is not None:
                    classifier[key] = f"{c['classifier_name']} {c['classifier_version']}"
            for key, n in per_image.items():
                counts[key] = max(counts.get(key, 0), n)
        base = _event_base(ev, facts, tset, offset)
        if not counts:
            rows.append({**base, "observationID": f"{ev.event_id}_blank", "observationType": "blank",
                         "observationTags": f"images:{ev.images}|filters:{tset.filters_hash}"})
        for label, taxon in sorted(counts):
            key = (label, taxon)
            row = {**base, "observationID": "_".join(filter(None, (ev.event_id, label, taxon))),
                   "observationType": observation_type(label), "count": counts[key],
                   "classificationProbability": round(scores[key], 4),
                   "observationTags": f"label:{label}|images:{ev.images}|filters:{tset.filters_hash}"}
            if taxon:
                row.update(scientificName=taxon, classifiedBy=f"{classified_by} + {classifier[key]}",
                           observationTags=f"{row['observationTags']}|classification:{taxon}")
            rows.append(row)
    return rows


def csv_bytes(rows: list[dict], fields: list[str]) -> bytes:
    """One Camtrap DP CSV table: `fields` as the header, in that order (a key not among them is an error, a missing
    one an empty cell)."""
    buf = io.StringIO()
    _csv_writer(buf, fields).writerows(rows)
    return buf.getvalue().encode()


def _csv_writer(out: io.TextIOBase, fields: list[str]) -> csv.DictWriter:
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    return writer


class CamtrapDPExporter(Exporter[CamtrapOptions]):
    """The `camtrap-dp` format (batch/export/registry.py); its options are `CamtrapOptions`
    (batch/export/camtrap_options.py)."""

    def check(self, options: CamtrapOptions) -> Any:
        """The user's deployments and package metadata, read and checked before any table is."""
        # a one-off file; else the deployments table beside the tables
        given = load_deployments(options.deployments) if options.deployments else table_deployments(options.tables)
        return given, load_package_meta(options.package_meta)

    def write(self, job: ExportJob[CamtrapOptions]) -> tuple[list[str], list[str]]:
        """media.csv and observations.csv are written a slice of whole cameras at a time as the rows are read
        (bounded memory at any archive size); deployments.csv and datapackage.json from what they gathered. On an
        error no file of the package is replaced."""
        o = job.options
        timezone, level = o.timezone, o.observation_level
        given, meta = job.inputs
        facts = PackageFacts(given, timezone, o.allow_missing_deployments)
        base = job.out.rstrip("/")
        with open_output(f"{base}/media.csv") as (media_file, media_url), \
                open_output(f"{base}/observations.csv") as (obs_file, obs_url):
            media_csv = _csv_writer(media_file, CAMTRAP_MEDIA_FIELDS)
            obs_csv = _csv_writer(obs_file, CAMTRAP_OBSERVATION_FIELDS)
            for rows in job.rows():
                media, observations = camtrap_dp(rows, job.tset, o, job.individuals)
                facts.add(media, observations)
                media_csv.writerows(media)
                obs_csv.writerows(observations)
            package = camtrap_package(facts, job.tset, meta, level)  # refuses before the CSVs are put in place
        return [write_file(f"{base}/deployments.csv", csv_bytes(package.deployments, CAMTRAP_DEPLOYMENT_FIELDS)),
                media_url, obs_url,
                write_file(f"{base}/datapackage.json", json.dumps(package.descriptor, indent=2).encode())], \
            package.notes
