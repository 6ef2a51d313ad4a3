"""The two Parquet tables a reprocessing run writes, and the row shape that flows between stages.

Layout under the destination `DST` (a directory or s3://bucket/prefix)::

    DST/images/model_name=NAME/model_version=VERSION/part-RUNID-DIGEST.parquet
    DST/detections/model_name=NAME/model_version=VERSION/part-RUNID-DIGEST.parquet
    DST/_runs/RUNID.json                      one manifest per run (see model_store/tables/manifest.py)

`model_name` and `model_version` are hive partition keys: they live in the directory names,
not inside the files (readers add them back as columns). A part's images file and detections
file share one name; the images file is written last and is the commit marker for both.

images: one row per image per model version and filter set.

    uri                  string     s3://bucket/key or an absolute local path; an http(s) URL for an image recorded
                                    where it was fetched from (the Antenna door's `antenna.record`)
    rel_path             string     path relative to the archive root ("/"-separated; a URL's: its path)
    content_id           string     identity of the bytes: "etag=...;size=N" (S3) or "size=N;mtime_us=T"
                                    ("sha256=...;size=N" for a URL)
    size_bytes           int64
    camera_id            string     from --path-pattern's `camera` group, else the first directory, else "unknown"
    capture_time         timestamp  naive; camera clock for path/EXIF/upload times, UTC for UTC_TIME_SOURCES
    capture_time_source  string     path | exif | exif_utc (EXIF with OffsetTimeOriginal, as UTC) | mtime;
                                    uploads (POST /v1/images): upload (the client's
                                    captured_at) | upload_utc (one with an offset, as UTC) | exif | received
    width, height        int32      original pixels after EXIF orientation (null when failed)
    status               string     ok (>= 1 kept detection) | empty (none kept) | failed
    error_reason         string     failed only: empty | not_image | truncated | too_large | unsupported |
                                    decode_error | read_error (read errors are retried by the next run)
    error                string     failed only: the human-readable message
    detection_count      int32      kept detections
    raw_detection_count  int32      all detections after NMS, kept and dropped
    max_score            float64    highest kept score (null when none)
    model_sha256         string     sha256 of the weights that ran
    filters_hash         string     FilterSet.hash of the post-processing filters applied
    run_id               string     the run that wrote the row
    processed_at         timestamp  UTC
    kind                 string     image | video (null in files written before clips: an image)
    duration_s, fps, frame_count        a clip's length, average frame rate and frames (container; null: image)
    frames_sampled       int32      a clip's frames that went through the detector (those read before a failure)
    max_per_frame        int32      a clip's most kept detections in one sampled frame
    clip_animals         int32      a clip's confirmed tracks (its animals, linked across its sampled frames)
    clip_label, clip_score          a clip's determination: the label of its most confident confirmed track
    clip_tracks          string     JSON list of a clip's tracks: {track, label, score, detections, first_offset_s,
                                    last_offset_s, best_frame, best_detection_index, confirmed}
    clip_settings        string     the hash of the clip's sampling, tracking and counting (ClipSettings.hash; the
                                    settings are in the part's metadata): a rerun with others redoes the clip, and
                                    readers take the newest row (null in files written before: done, whatever the run)

    content_digest       string     sha256 (hex) of the file's bytes, hashed from the bytes read for decoding: what
                                    confirms a file whose size and path match a done row but whose mtime or ETag do
                                    not (a copy, a move to a bucket: model_store/tables/digests.py); null for clips
                                    (never read whole), uploads and rows written before the column

    A clip is one row: its capture time is the container's creation_time (source `container`) unless the path
    gave one; its detections are those of every sampled frame, detection_index running across the clip.

detections: one row per raw detection (kept and dropped, so filters can be re-applied later).

    uri, content_id      string     join keys to images (with model_name, model_version, filters_hash, run_id)
    detection_index      int32      0.. within the image, highest score first
    label                string
    class_id             int32
    score                float64
    bbox_x, bbox_y       float64    top-left corner, normalised 0..1
    bbox_w, bbox_h       float64    size, normalised 0..1
    kept                 bool       false when a filter with action "drop" fired
    flags                list<string> names of every filter that fired
    filters_hash, run_id string
    occurrence_id        string     the occurrence (track) the kept detection belongs to, when the set has the
                                    `track` filter (null otherwise, and in files written before the column)
    frame_number         int32      a clip's detection: the sampled frame's number (null for a still)
    frame_offset_s       float64    its time from the clip's start; frame_time = capture_time + offset
    frame_time           timestamp  the frame's capture time
    clip_track           int32      the track of the clip (images.clip_tracks) a kept detection belongs to
    mask                 struct<size list<int32>, counts string>  a segmentation model's mask in image pixels,
                                    COCO compressed RLE ({"size": [h, w], "counts": ...}, pycocotools); null for
                                    box-only models and in files written before the column

With classifiers (`--classify`) or snips (`--crops`) a part has two more files, written before
its images file like the detections file (same name, same partition = the detector's):

classifications: one row per (kept detection, classifier it was routed to).

    uri, content_id, detection_index   join keys to detections (with filters_hash, run_id)
    classifier_name, classifier_version, classifier_sha256
    label, score         the answer after the classifier filters (a rolled-up taxon, or a label)
    rank                 taxonomy rank of a rolled-up label (null: one of the model's labels)
    taxon_path           list<string> taxonomy path of `label`, root first (empty without a taxonomy)
    top_labels, top_scores  the model's own top-k
    scores               list<float> the whole probability vector, in the classifier's label order
    flags                list<string> classifier filters that changed the answer
    source               which rule decided the label (the species ensemble: `classifier+rollup_to_genus`, ...;
                         null for other classifiers and in parts written before the column)
    pre_smoothing_description  where smoothing changed the label: what its image or event held before, as
                         MegaDetector's `pre_smoothing_description` ("red fox (3), animal (1)"); else null

snips: one row per JPEG snip written under DST/crops/ (see model_store.core.crops.snip_path).

    uri, content_id, detection_index, crop_uri, crop_width, crop_height

A set with the `track` filter (`trapline postprocess --filter track`) has one more file per part:

occurrences: one row per occurrence (one animal's detections linked across frames), keyed by the image of
its first detection, so the part that commits that image commits the occurrence (batch/postprocessing/tracks.py).

    uri, content_id      the first detection's image
    occurrence_id        stable: camera + first detection key + tracker config hash (a rerun gives the same id)
    camera_id, first_time, last_time, frames (distinct images), detections list<{uri, content_id, detection_index}>
    best_uri, best_content_id, best_detection_index   the detection whose snip shows it best (highest score)
    label, score, determined_by   the determination when written: `model` (a vote of its classifications or
                                  detection labels) or `human` (the decisions log's identification)
    model_label, model_score      the model's vote (equal to label/score unless a person decided otherwise)
    identified_by, decision_id    who decided, and the decision (human only)
    votes                list<{uri, content_id, detection_index, label, score, source}> what the vote used
    confirmed            bool       counts as an animal: enough frames or one confident detection (the tracker's
                                    `min_frames` / `confirm_score`); a lone unsure box is kept but not counted
    tracker_hash         hash of the track filter's config
    link_confidence      float      how sure the tracker is of the occurrence's weakest link, 0..1 (1: a single
                                    detection; null: tables written before issue 48); the review queue shows the
                                    least certain first
    weakest_link         {uri, content_id, detection_index} the detection that weakest link attached (where a
                                    person would most likely cut the occurrence; null: a single detection)
    stitches             list<{uri, content_id, detection_index, distance, gap_frames, probability}> each join the
                                    tracker's stitching pass made (the detection it attached; the look distance,
                                    frames missed and calibrated probability of one animal, which is also that
                                    link's confidence); empty: none (null: tables written before issue 58)
    folds                list<{uri, content_id, detection_index, share, spread, moved}> the animal's second boxes
                                    the tracker folded in (a head inside its box, a duplicate beside it): each
                                    detection folded, the share of its piece's frames inside or on the animal's
                                    box, the spread of its place there and how far the animal moved meanwhile (box
                                    sizes; null: a hand-over, where a duplicate took the animal's track for a
                                    frame); empty: none (null: tables written before issue 69)
    static               bool       the track never moved (a leaf, a mark on the sheet: the repeat-detection rule's
                                    thresholds, the tracker's `static_*`): not counted, `confirmed` false, unless a
                                    person identified it (null: tables written before issue 69)

When a run classifies, `filters_hash` of its rows identifies the result set: the filter set
plus every classifier version and route (`model_store.core.pipeline.result_hash`), so the skip key
covers every model version of the pipeline. Without classifiers it is the filter set's hash.

Each file also carries key-value metadata `trapline` (JSON: model name/version/sha256, labels, detection thresholds,
filter specs), so a single part can be interpreted without the model store.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1
IMAGES = "images"
DETECTIONS = "detections"
CLASSIFICATIONS = "classifications"
SNIPS = "snips"
OCCURRENCES = "occurrences"
RUNS_DIR = "_runs"
PARTITION_KEYS = ("model_name", "model_version")
STATUSES = ("ok", "empty", "failed")
KINDS = ("image", "video")
TIME_SOURCES = ("path", "exif", "exif_utc", "container", "mtime", "upload", "upload_utc", "received")
# Sources whose times are UTC (the rest are the camera's clock): EXIF with OffsetTimeOriginal, a file's mtime, the
# time the online door received an upload, and an upload's `captured_at` that carried a UTC offset.
UTC_TIME_SOURCES = ("exif_utc", "mtime", "upload_utc", "received")
UPLOAD_TIME_SOURCES = ("upload", "upload_utc", "received")  # what only the online door knows of a file

# Readers must not let pyarrow/DuckDB infer "1" as an integer version: always strings.
PARTITION_SCHEMA = pa.schema([pa.field(k, pa.string()) for k in PARTITION_KEYS])

CLIP_FIELDS = [
    pa.field("kind", pa.string()),  # image | video
    pa.field("duration_s", pa.float64()),
    pa.field("fps", pa.float64()),
    pa.field("frame_count", pa.int64()),
    pa.field("frames_sampled", pa.int32()),
    pa.field("max_per_frame", pa.int32()),
    pa.field("clip_animals", pa.int32()),
    pa.field("clip_label", pa.string()),
    pa.field("clip_score", pa.float64()),
    # JSON text, not a nested list: the images table's columns stay flat (Acero joins them: browse.latest_many)
    pa.field("clip_tracks", pa.string()),
    pa.field("clip_settings", pa.string()),  # ClipSettings.hash: a rerun with other settings redoes the clip
]

IMAGES_SCHEMA = pa.schema([
    pa.field("uri", pa.string(), nullable=False),
    pa.field("rel_path", pa.string()),
    pa.field("content_id", pa.string(), nullable=False),
    pa.field("size_bytes", pa.int64()),
    pa.field("camera_id", pa.string()),
    pa.field("capture_time", pa.timestamp("us")),
    pa.field("capture_time_source", pa.string()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("error_reason", pa.string()),
    pa.field("error", pa.string()),
    pa.field("detection_count", pa.int32()),
    pa.field("raw_detection_count", pa.int32()),
    pa.field("max_score", pa.float64()),
    pa.field("model_sha256", pa.string()),
    pa.field("filters_hash", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("processed_at", pa.timestamp("us", tz="UTC")),
    *CLIP_FIELDS,  # last, so files written before them read with nulls (a null kind is an image)
    pa.field("content_digest", pa.string()),  # likewise: null in files written before it, and for clips
])

DETECTION_FIELDS = [
    pa.field("detection_index", pa.int32()),
    pa.field("label", pa.string()),
    pa.field("class_id", pa.int32()),
    pa.field("score", pa.float64()),
    pa.field("bbox_x", pa.float64()),
    pa.field("bbox_y", pa.float64()),
    pa.field("bbox_w", pa.float64()),
    pa.field("bbox_h", pa.float64()),
    pa.field("kept", pa.bool_()),
    pa.field("flags", pa.list_(pa.string())),
]

# A clip's detection: which sampled frame it is in (null for a still's).
FRAME_FIELDS = [
    pa.field("frame_number", pa.int32()),
    pa.field("frame_offset_s", pa.float64()),
    pa.field("frame_time", pa.timestamp("us")),
    pa.field("clip_track", pa.int32()),
]
# A segmentation model's mask of one detection, in image pixels: COCO compressed RLE as pycocotools writes it.
MASK_RLE = pa.struct([pa.field("size", pa.list_(pa.int32())), pa.field("counts", pa.string())])

DETECTIONS_SCHEMA = pa.schema([
    pa.field("uri", pa.string(), nullable=False),
    pa.field("content_id", pa.string(), nullable=False),
    *DETECTION_FIELDS,
    pa.field("filters_hash", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("occurrence_id", pa.string()),  # last, so files written before it read with nulls
    *FRAME_FIELDS,  # likewise
    pa.field("mask", MASK_RLE),  # likewise (null for box-only models)
])

CLASSIFICATION_FIELDS = [
    pa.field("detection_index", pa.int32()),
    pa.field("classifier_name", pa.string()),
    pa.field("classifier_version", pa.string()),
    pa.field("classifier_sha256", pa.string()),
    pa.field("label", pa.string()),
    pa.field("score", pa.float64()),
    pa.field("rank", pa.string()),
    pa.field("taxon_path", pa.list_(pa.string())),
    pa.field("top_labels", pa.list_(pa.string())),
    pa.field("top_scores", pa.list_(pa.float64())),
    pa.field("scores", pa.list_(pa.float32())),
    pa.field("flags", pa.list_(pa.string())),
    pa.field("source", pa.string()),  # the species ensemble's rule (issue 57); null in parts written before it
    pa.field("pre_smoothing_description", pa.string()),  # where smoothing changed the label; else null
]
SNIP_FIELDS = [
    pa.field("detection_index", pa.int32()),
    pa.field("crop_uri", pa.string()),
    pa.field("crop_width", pa.int32()),
    pa.field("crop_height", pa.int32()),
]


def _keyed(fields: list[pa.Field]) -> pa.Schema:
    return pa.schema([pa.field("uri", pa.string(), nullable=False), pa.field("content_id", pa.string(), nullable=False),
                      *fields, pa.field("filters_hash", pa.string(), nullable=False),
                      pa.field("run_id", pa.string(), nullable=False)])


DETECTION_KEY = pa.struct([pa.field("uri", pa.string()), pa.field("content_id", pa.string()),
                           pa.field("detection_index", pa.int32())])
VOTE = pa.struct([*DETECTION_KEY, pa.field("label", pa.string()), pa.field("score", pa.float64()),
                  pa.field("source", pa.string())])
STITCH = pa.struct([*DETECTION_KEY, pa.field("distance", pa.float64()), pa.field("gap_frames", pa.int32()),
                    pa.field("probability", pa.float64())])
FOLD = pa.struct([*DETECTION_KEY, pa.field("share", pa.float64()), pa.field("spread", pa.float64()),
                  pa.field("moved", pa.float64())])
OCCURRENCE_FIELDS = [
    pa.field("occurrence_id", pa.string()),
    pa.field("camera_id", pa.string()),
    pa.field("first_time", pa.timestamp("us")),
    pa.field("last_time", pa.timestamp("us")),
    pa.field("frames", pa.int32()),
    pa.field("detections", pa.list_(DETECTION_KEY)),
    pa.field("best_uri", pa.string()),
    pa.field("best_content_id", pa.string()),
    pa.field("best_detection_index", pa.int32()),
    pa.field("label", pa.string()),
    pa.field("score", pa.float64()),
    pa.field("determined_by", pa.string()),
    pa.field("model_label", pa.string()),
    pa.field("model_score", pa.float64()),
    pa.field("identified_by", pa.string()),
    pa.field("decision_id", pa.string()),
    pa.field("votes", pa.list_(VOTE)),
    pa.field("confirmed", pa.bool_()),
    pa.field("tracker_hash", pa.string()),
    pa.field("link_confidence", pa.float64()),
    pa.field("weakest_link", DETECTION_KEY),
    pa.field("stitches", pa.list_(STITCH)),
    pa.field("folds", pa.list_(FOLD)),
    pa.field("static", pa.bool_()),
]

CLASSIFICATIONS_SCHEMA = _keyed(CLASSIFICATION_FIELDS)
SNIPS_SCHEMA = _keyed(SNIP_FIELDS)
OCCURRENCES_SCHEMA = _keyed(OCCURRENCE_FIELDS)

# Columns of one image's result as it leaves the inference stage: the image row (without the
# per-run constants the writer adds) plus its detections nested, so one batch row = one image.
PER_RUN_COLUMNS = ("model_sha256", "filters_hash", "run_id", "processed_at")
RESULT_SCHEMA = pa.schema(
    [f for f in IMAGES_SCHEMA if f.name not in PER_RUN_COLUMNS]
    + [pa.field("detections", pa.list_(pa.struct([*DETECTION_FIELDS, *FRAME_FIELDS, pa.field("mask", MASK_RLE)])))]
)

# The listing rows handed to the read stage (times as int64 microseconds, -1 = unknown, so the
# blocks have one fixed schema whatever the first rows hold). The uri is also what the read stage opens:
# fsspec takes a URL as it takes its bare path, so no second column holds the path (72 MiB at a million files).
ENTRY_SCHEMA = pa.schema([
    pa.field("uri", pa.string()),
    pa.field("rel_path", pa.string()),
    pa.field("content_id", pa.string()),
    pa.field("size_bytes", pa.int64()),
    pa.field("mtime_us", pa.int64()),
    pa.field("camera_id", pa.string()),
    pa.field("capture_time_us", pa.int64()),
    pa.field("capture_time_source", pa.string()),
])


def image_key(uri: str, content_id: str) -> tuple[str, str]:
    """The identity of one image version: together with model version and filters hash, the skip key."""
    return (uri, content_id)

# The nested columns a crop/classify stage adds to a results batch; the commit writes each as its own file.
EXTRA_COLUMNS = {CLASSIFICATIONS: pa.list_(pa.struct(CLASSIFICATION_FIELDS)), SNIPS: pa.list_(pa.struct(SNIP_FIELDS))}
STAGE_SCHEMA = pa.schema(list(RESULT_SCHEMA) + [pa.field(k, t) for k, t in EXTRA_COLUMNS.items()])


# -- the tables later tools add beside them ------------------------------------------------------------------

# `trapline events` (batch/postprocessing/events.py): one row per event of a camera, per filter set
EVENTS = "events"

EVENTS_SCHEMA = pa.schema([
    pa.field("event_id", pa.string(), nullable=False),
    pa.field("camera_id", pa.string()),
    pa.field("start", pa.timestamp("us")),
    pa.field("end", pa.timestamp("us")),
    pa.field("duration_s", pa.float64()),
    pa.field("images", pa.int32()),
    pa.field("images_with_detections", pa.int32()),
    pa.field("detections", pa.int32()),
    pa.field("max_score", pa.float64()),
    pa.field("labels", pa.list_(pa.string())),
    pa.field("label_counts", pa.list_(pa.int32())),  # per label (same order): most boxes in one image
    pa.field("label_max_scores", pa.list_(pa.float64())),
    pa.field("uris", pa.list_(pa.string())),  # the event's images in capture order
    pa.field("period", pa.string()),  # night YYYY-MM-DD | day YYYY-MM-DD, of the event's start
    pa.field("occurrences", pa.int32()),  # confirmed occurrences seen in the event (null: the set has none)
    pa.field("occurrence_labels", pa.list_(pa.string())),
    pa.field("label_occurrences", pa.list_(pa.int32())),  # per occurrence label (same order)
    pa.field("filters_hash", pa.string(), nullable=False),
    pa.field("gap_s", pa.float64(), nullable=False),
])

# `trapline identify` (batch/identify/, model_store/tables/identities.py): the sightings and the individuals
SIGHTINGS, INDIVIDUALS = "sightings", "individuals"
SIGHTINGS_SCHEMA = pa.schema([
    ("uri", pa.string()), ("content_id", pa.string()), ("detection_index", pa.int32()), ("rel_path", pa.string()),
    ("label", pa.string()), ("camera_id", pa.string()), ("capture_time", pa.timestamp("us")),
    ("individual_id", pa.string()), ("p_same", pa.float64()), ("decision", pa.string()), ("reason", pa.string()),
    ("nearest_uri", pa.string()), ("nearest_content_id", pa.string()), ("nearest_detection_index", pa.int32()),
    ("nearest_p", pa.float64()),
    # its best match in another individual: who a person compares it with before a merge
    ("other_uri", pa.string()), ("other_content_id", pa.string()), ("other_detection_index", pa.int32()),
    ("other_p", pa.float64()), ("identifier_name", pa.string()), ("identifier_version", pa.string()),
    ("identifier_sha256", pa.string()), ("run_id", pa.string()),
    # the detection's box (fractions of the image): its snip, cut again for people and the console
    ("bbox_x", pa.float64()), ("bbox_y", pa.float64()), ("bbox_w", pa.float64()), ("bbox_h", pa.float64()),
    # the result set the detection rows came from: detection_index is an index within it
    ("model_name", pa.string()), ("model_version", pa.string()), ("filters_hash", pa.string()),
])
INDIVIDUALS_SCHEMA = pa.schema([
    ("individual_id", pa.string()), ("name", pa.string()), ("label", pa.string()),
    ("first_seen", pa.timestamp("us")), ("last_seen", pa.timestamp("us")), ("cameras", pa.list_(pa.string())),
    ("sightings", pa.int32()), ("confirmed", pa.bool_()), ("run_id", pa.string()),
])

# The digest book (model_store/tables/digests.py): what confirming moved files by content learnt, for every model
DIGESTS_DIR = "_digests"
DIGESTS_SCHEMA = pa.schema([("uri", pa.string()), ("content_id", pa.string()), ("content_digest", pa.string())])
