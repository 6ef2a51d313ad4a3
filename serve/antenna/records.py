"""What the door answered Antenna, also written to trapline's tables (`antenna.record`), through the online door's
recorder (serve/recording/recorder.py `Recorder.record_source`): the same journal, fenced commit and rows as
`POST /v1/images`, so `trapline report`, exports and occurrences read Antenna's captures like any other.

Identity, exactly once: an image is recorded once per (its URL, the detector name and version that answered it).
- The URL, not Antenna's capture id: the row's source is the URL (what a reader can fetch again), and the id is only
  unique within one Antenna; the URL names the same bytes for every job and project that sends it.
- The detector version: the tables hold one row per image per model version (a reprocess of a new version adds its
  own rows beside the old), and a promoted detector is a new pipeline in Antenna (`SLUG-vN`) whose results Antenna
  also keeps apart. So an image Antenna sends again to the same version (a job run again, a task NATS delivers
  again after its time-to-reprocess, a push request retried) finds its record and adds no row; the same image
  through a promoted detector gets its row in that version's partition.
- Not the classifier's version: a classifier promoted between two answers of one image would otherwise give the
  image two rows in one detector partition; the first answer's row stands, as an upload's does.
"""

from __future__ import annotations

import hashlib
import logging
from urllib.parse import unquote, urlsplit

from ground.errors import ImageDecodeError, ModelRunError, TraplineError
from model_store import ImageDetections, ModelStore
from model_store.core.refs import check_segment
from model_store.core.video import VideoDecodeError
from serve.antenna_config import AntennaRecordConfig
from serve.config import RecordConfig
from serve.recording.recorder import ClassifierVersion, Recorder, Source
from serve.recording.uploads import UploadRecord

logger = logging.getLogger("ray.serve.trapline")

DEFAULT_CAMERA = "antenna"  # an URL whose path names no camera (the archive's rule names it "unknown")
# What an image's own failure is: recorded as a failed row, as an upload's is. A fetch that failed has no bytes to
# record (and an upload without bytes keeps nothing either); an overloaded or unready service says nothing about
# the image.
RECORDED_FAILURES = (ImageDecodeError, VideoDecodeError, ModelRunError)


def source_image_id(url: str, detector: str, version: str) -> str:
    """The identity of an answered image in the journal (see the module docstring)."""
    return hashlib.sha256(f"antenna\0{url}\0{detector}\0{version}".encode()).hexdigest()[:32]


def url_source(url: str, cfg: AntennaRecordConfig, data: bytes, image_id: str) -> Source:
    """The image as the tables name it: the URL its uri, the URL's path its rel_path, camera and time from the
    path pattern (a camera that is not a valid path segment falls back to DEFAULT_CAMERA)."""
    rel_path = unquote(urlsplit(url).path).lstrip("/")
    _, camera, when = cfg.pattern().match(rel_path)
    try:
        camera = check_segment("camera", camera or DEFAULT_CAMERA)
    except ValueError:
        camera = DEFAULT_CAMERA
    return Source(image_id=image_id, uri=url, rel_path=rel_path, camera=camera, data=data, capture_time=when)


class SourceRecorder:
    """Lifecycle: built once per door when `antenna.record` is set, with the serve config's `record:` block; the
    recorder it wraps takes its lease on the first image and flushes on its own thread; `close()` (the door's
    shutdown) commits what is buffered."""

    def __init__(self, cfg: AntennaRecordConfig, record: RecordConfig, store: ModelStore,
                 routes_of: dict[str, list], classifier_version: ClassifierVersion) -> None:
        self.cfg = cfg
        self.recorder = Recorder(record, store)
        self.routes_of = routes_of  # detector -> its classifier routes (the serve config's `classify`)
        self.classifier_version = classifier_version

    async def record(self, url: str, detector: str, version: str, data: bytes,
                     outcome: ImageDetections | TraplineError) -> tuple[UploadRecord, bool] | None:
        """Journal one answered image (None: a failure that says nothing about the image, not recorded)."""
        if isinstance(outcome, TraplineError) and not isinstance(outcome, RECORDED_FAILURES):
            return None
        source = url_source(url, self.cfg, data, source_image_id(url, detector, version))

        async def answered(_: bytes) -> tuple[ImageDetections, dict]:
            if isinstance(outcome, TraplineError):
                raise outcome
            return outcome, {"antenna": {"url": url}}

        return await self.recorder.record_source(source, f"{detector}:{version}", answered,
                                                 self.routes_of.get(detector, []), self.classifier_version)

    def close(self) -> None:
        self.recorder.close()
