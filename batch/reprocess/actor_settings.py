"""What each actor of a reprocess run's plan is built from, as one frozen value that crosses Ray pickled (as
serve/answers.py's `DetectAsk` crosses to a replica): the inference actor's (`DetectorSettings`, `--via actors`), the
Serve client's (`ClientSettings`, `--via serve`) and the crop/classify actor's (`ClassifySettings`, `--classify` /
`--crops`). Ray Data builds each actor of a pool from `fn_constructor_kwargs={"settings": ...}`; the driver makes
the value once from the run's PlanSpec (batch/reprocess/dataset.py `detector_settings` and `client_settings`,
batch/reprocess/classify.py `add_stage`). Plain picklable values only (URLs, specs, JSON): no open handle.
"""

from __future__ import annotations

from dataclasses import dataclass

from model_store.core.clip_settings import ClipSettings
from model_store.core.imaging import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class DetectorSettings:
    """One inference actor's (batch/reprocess/detect.py `DetectorActor`): the pinned model in its store and the
    run's filters, where it runs (device, ONNX threads, decode threads), the largest image it decodes, where the
    listed files are read from (`archive_url`; None: the rows come read and prepared by read tasks) and the clips
    opened (`clips_url`; None: the archive), the clips' settings and frames a batch, and the run's tiling (None:
    the model's config)."""

    store_url: str
    ref: str  # pinned NAME:VERSION
    filter_specs: list[dict]
    device: str = "cpu"
    threads: int | None = None
    decode_threads: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    archive_url: str | None = None
    clips_url: str | None = None
    clips: ClipSettings = ClipSettings()
    clip_batch_size: int = 8
    tiling: dict | None = None


@dataclass(frozen=True)
class ClientSettings:
    """One Serve client's (batch/reprocess/detect.py `ServeClient`): the deployment (model name, app) and what each
    call asks of it (the pinned ref, the run's filter overrides, the tiling: None, plain), what each answer must
    carry (`expected`: version, sha256, filters_hash), how it sends (tries for a dead replica, images in flight, images
    a call, how long it waits out a full bulk lane), where files are read (`archive_url`; None: read by read tasks)
    and clips opened (`clips_url`; None: the archive), the clips' settings, and the model config as JSON (a clip's
    frames are letterboxed here; None: no clips) with the largest image decoded."""

    model_name: str
    ref: str  # pinned NAME:VERSION
    filter_overrides: dict | None
    expected: dict[str, str]
    app_name: str = "trapline"
    attempts: int = 3
    window: int = 8
    per_call: int = 4
    overload_wait_s: float = 600.0
    archive_url: str | None = None
    clips_url: str | None = None
    clips: ClipSettings = ClipSettings()
    config_json: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    tiling: dict | None = None


@dataclass(frozen=True)
class ClassifySettings:
    """One crop/classify actor's (batch/reprocess/classify.py `ClassifyActor`): the store and the pinned classifier
    routes (ClassifierRoute dumps), the run's filters, the crop options (a CropOptions dump; None: no snips), where
    the images are read again and the output tables (the snips, the deployments placing each camera), the result set
    the snips belong to (model name, version, result hash), the largest image decoded and the classifiers' threads."""

    store_url: str
    routes: list[dict]
    filter_specs: list[dict]
    crops: dict | None
    archive_url: str
    out_url: str
    model_name: str
    model_version: str
    result_hash: str
    max_pixels: int = DEFAULT_MAX_PIXELS
    threads: int = 1
