"""The export formats, one registry: `trapline export --format NAME` (and a job's `format`) accepts exactly the
names here. A new format is a class deriving from `Exporter` (batch/export/base.py) and one entry below naming it;
options of its own are its `options` model, deriving from `FormatOptions` (batch/export/common_options.py): the
format's variant of `ExportOptions` (batch/export/options.py), so its options are refused with another format.
The exporter reads them typed from `job.options`; `run_export` (batch/export/run.py) takes those options.

An entry names its exporter's class rather than importing it: the exporters read tables (pandas, pyarrow), which
the command line's help and option checks do not need (a `trapline` command starts without them)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batch.export.camtrap_options import CamtrapOptions
from batch.export.common_options import FormatOptions
from batch.export.training_options import CropsSetOptions, TrainingSetOptions

if TYPE_CHECKING:
    from batch.export.base import Exporter


@dataclass(frozen=True)
class ExportFormat:
    """One format: its name, what `--help` says of it, its options model (what every format takes, and its own),
    and its `Exporter` as "module:Class", loaded by `exporter()` when an export runs."""

    name: str
    description: str
    implementation: str
    options: type[FormatOptions] = FormatOptions

    def exporter(self) -> Exporter:
        module, _, cls = self.implementation.partition(":")
        return getattr(importlib.import_module(module), cls)()


EXPORTERS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat("megadetector", "MegaDetector batch output JSON (format 1.4), with detector and classifier metadata "
                                 "in `info`", "batch.export.formats:MegaDetectorExporter"),
    ExportFormat("coco", "COCO results JSON (pycocotools' loadRes) and an images index beside it (<out>.images.json)",
                 "batch.export.formats:CocoExporter"),
    ExportFormat("camtrap-dp", "a Camtrap DP 1.0.2 package directory: datapackage.json, deployments.csv (from "
                               "--deployments, else the deployments table), media.csv, observations.csv",
                 "batch.export.camtrap:CamtrapDPExporter", options=CamtrapOptions),
    ExportFormat("yolo", "a training set of people's verified boxes (docs/guide/exports.md): images/ and labels/ per "
                         "split, data.yaml for Ultralytics, manifest.json",
                 "batch.export.training_formats:YoloExporter", options=TrainingSetOptions),
    ExportFormat("coco-dataset", "a training set of people's verified boxes as COCO datasets: annotations/{split}.json "
                                 "(pycocotools' COCO), images/ per split, manifest.json",
                 "batch.export.training_formats:CocoDatasetExporter", options=TrainingSetOptions),
    ExportFormat("crops", "a training set of people's verified boxes as crops/{split}/{label}/*.jpg (torchvision's "
                          "ImageFolder), manifest.json", "batch.export.training_formats:CropsExporter",
                 options=CropsSetOptions),
)}
FORMATS = tuple(EXPORTERS)
