"""Prometheus metrics (through ray.serve.metrics) and the in-process stats shown by GET /v1/models.

Serve adds the deployment, replica and application tags to every metric; we add the model
name and version, and the label for detection counts. Metric names start with `trapline_`
(Ray exports them with a `ray_` prefix, e.g. `ray_trapline_images_total`).
"""

from __future__ import annotations

import threading
from collections import Counter

from ray.serve import metrics

from serve.answers import BatchStatsOut

LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000]
BATCH_BOUNDARIES = [1, 2, 4, 8, 16, 32, 64, 128, 256]


class ReplicaMetrics:
    """The metrics of one model replica; metric objects are created once, here, never per request."""

    def __init__(self, model: str) -> None:
        self.model = model
        keys = ("model", "version")
        self.images = metrics.Counter("trapline_images_total", "Images run through the detector.", tag_keys=keys)
        self.detections = metrics.Counter("trapline_detections_total", "Kept detections, by label.",
                                          tag_keys=(*keys, "label"))
        self.errors = metrics.Counter("trapline_request_errors_total", "Requests refused, by error type.",
                                      tag_keys=("model", "type"))
        self.batch_size = metrics.Histogram("trapline_batch_size", "Images per model forward pass.",
                                            boundaries=BATCH_BOUNDARIES, tag_keys=keys)
        self.inference_ms = metrics.Histogram("trapline_inference_latency_ms", "Model forward pass per batch (ms).",
                                              boundaries=LATENCY_BOUNDARIES_MS, tag_keys=keys)
        self.request_ms = metrics.Histogram("trapline_request_latency_ms",
                                            "Replica time per image: decode, queue, inference, postprocess (ms).",
                                            boundaries=LATENCY_BOUNDARIES_MS, tag_keys=keys)
        self.serving = metrics.Gauge("trapline_alias_version_info", "1 for the version each alias serves.",
                                     tag_keys=("model", "alias", "version"))
        self.refusals = metrics.Counter("trapline_version_refused_total", "Versions refused at load, by reason.",
                                        tag_keys=(*keys, "reason"))
        self.preempted = metrics.Counter("trapline_bulk_preempted_total",
                                         "Archive forward passes stopped for an online request (run again after it).",
                                         tag_keys=("model",))

    def batch(self, version: str, size: int, inference_ms: float) -> None:
        tags = {"model": self.model, "version": version}
        self.batch_size.observe(size, tags=tags)
        self.inference_ms.observe(inference_ms, tags=tags)
        self.images.inc(size, tags=tags)

    def result(self, version: str, labels: list[str], total_ms: float) -> None:
        tags = {"model": self.model, "version": version}
        for label, n in Counter(labels).items():
            self.detections.inc(n, tags={**tags, "label": label})
        self.request_ms.observe(total_ms, tags=tags)

    def bulk_preempted(self) -> None:
        self.preempted.inc(tags={"model": self.model})

    def error(self, kind: str) -> None:
        self.errors.inc(tags={"model": self.model, "type": kind})

    def refused(self, version: str, reason: str) -> None:
        self.refusals.inc(tags={"model": self.model, "version": version, "reason": reason})

    def swapped(self, alias: str, old: str | None, new: str) -> None:
        if old is not None:
            self.serving.set(0, tags={"model": self.model, "alias": alias, "version": old})
        self.serving.set(1, tags={"model": self.model, "alias": alias, "version": new})


class BatchStats:
    """Counts kept in the replica for GET /v1/models: batches by size, images per version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.batch_sizes: Counter[int] = Counter()
        self.images: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.bulk_preempted = 0

    def preempted(self) -> None:
        with self._lock:
            self.bulk_preempted += 1

    def batch(self, version: str, size: int) -> None:
        with self._lock:
            self.batch_sizes[size] += 1
            self.images[version] += size

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def snapshot(self) -> BatchStatsOut:
        with self._lock:
            return BatchStatsOut(
                images=sum(self.images.values()),
                images_by_version=dict(self.images),
                batches=sum(self.batch_sizes.values()),
                batch_sizes={str(k): v for k, v in sorted(self.batch_sizes.items())},
                max_batch_size_seen=max(self.batch_sizes, default=0),
                errors=dict(self.errors),
                bulk_preempted=self.bulk_preempted,
            )


def merge_stats(snapshots: list[BatchStatsOut]) -> BatchStatsOut:
    """Sum the stats of several replicas."""
    images_by_version: Counter[str] = Counter()
    batch_sizes: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for snap in snapshots:
        images_by_version.update(snap.images_by_version)
        batch_sizes.update(snap.batch_sizes)
        errors.update(snap.errors)
    return BatchStatsOut(
        images=sum(s.images for s in snapshots), images_by_version=dict(images_by_version),
        batches=sum(s.batches for s in snapshots),
        batch_sizes=dict(sorted(batch_sizes.items(), key=lambda kv: int(kv[0]))),
        max_batch_size_seen=max((s.max_batch_size_seen for s in snapshots), default=0),
        errors=dict(errors), bulk_preempted=sum(s.bulk_preempted for s in snapshots))
