"""The export formats, one registry: `trapline export --format NAME` (and a job's `format`) accepts exactly the
names here. A new format is a class deriving from `Exporter` (batch/export/base.py) and one line below; options of
its own are its `options` model beside it (they join `ExportOptions`, batch/export/options.py), read typed from
`job.options`. `run_export` (batch/export/run.py) takes those options."""

from __future__ import annotations

from batch.export.base import Exporter
from batch.export.camtrap import CamtrapDPExporter
from batch.export.formats import CocoExporter, MegaDetectorExporter

EXPORTERS: dict[str, Exporter] = {e.name: e for e in (MegaDetectorExporter(), CocoExporter(), CamtrapDPExporter())}
FORMATS = tuple(EXPORTERS)
